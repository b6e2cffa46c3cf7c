#!/bin/sh
# exe_wrapper of the valgrind test setup: compiled tests run under
# $BNFOLD_WRAPPER; the Python drivers run as they are and put
# $BNFOLD_WRAPPER before every bnfold they start (tests/bnftest.py).
case "$1" in
*python3*) exec "$@" ;;
esac
# shellcheck disable=SC2086  # a command line, split on purpose
exec $BNFOLD_WRAPPER "$@"
