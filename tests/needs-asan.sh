#!/bin/sh
# exe_wrapper of the asan test setup in a build without sanitizers: say
# how to get one instead of running the tests unchecked.
echo "the asan test setup needs a build configured with -Db_sanitize=address,undefined:" >&2
echo "  CC=clang meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false" >&2
echo "  meson test -C build-asan --setup=asan        (tools/test does this)" >&2
exit 1
