"""Entry script of the bundled ``kernelscope`` executable (the desktop studio).

``--selftest`` is handled here, before anything imports Qt, so the bundle's self-test runs on machines
without a display whatever ``app.main`` imports at the top; every other argument goes to
:func:`app.main.main` (which also understands ``--selftest``, for source installs).
"""

from __future__ import annotations

import multiprocessing
import sys


def main(argv: list[str] | None = None) -> int:
    """Run the self-test (``--selftest``) or open the studio window."""
    args = sys.argv[1:] if argv is None else list(argv)
    if "--selftest" in args:
        from app.selftest import run_selftest

        return run_selftest()
    from app.main import main as studio_main

    return int(studio_main(args) or 0)


if __name__ == "__main__":
    multiprocessing.freeze_support()  # a frozen child process must not start the GUI again
    sys.exit(main())
