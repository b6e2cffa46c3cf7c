"""``python3 -m bnfold ARGS...``: the bnfold program that comes with the
package, with the same command line, output and exit status (it replaces
the Python process).  ``bnfold --help`` tells the options."""

import os
import signal
import sys

from . import program


def main() -> None:
    """Run the bundled bnfold program with this process's arguments (the
    ``bnfold`` command a wheel installs calls this too)."""
    path = program()
    # Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored
    # across exec: give the program the dispositions a shell would.
    for name in ("SIGPIPE", "SIGXFSZ"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    try:
        os.execv(path, ["bnfold"] + sys.argv[1:])
    except OSError as e:
        sys.stderr.write(f"bnfold: error: cannot run {path}: {e.strerror}\n")
        # as a shell says it: 127 not found, 126 found but not runnable
        # (not 1, which is the program's own I/O error)
        sys.exit(127 if isinstance(e, FileNotFoundError) else 126)


if __name__ == "__main__":
    main()
