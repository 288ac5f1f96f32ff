"""``kernelscope-cli``: the headless command line. Sub-commands live in ``engine.commands``."""

from __future__ import annotations

import argparse
import logging
import sys
from types import ModuleType

from engine import __version__

# Explicit list (no folder scan: scans break inside frozen installers).
def _command_modules() -> list[ModuleType]:
    from engine.commands import degrade, estimate, evaluate, export, metrics, upscale
    from engine.training import command as train

    return [upscale, estimate, degrade, metrics, evaluate, export, train]


EXIT_OK = 0
EXIT_FAILURE = 1  # the command ran and something failed (bad input, some files skipped)
EXIT_USAGE = 2  # wrong arguments
EXIT_CANCELLED = 130  # Ctrl-C
TRAINING_MODULES = {"torch", "onnx", "onnxscript", "yaml"}
"""Packages of the ``train`` extra: sub-commands that need them say so instead of a traceback."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``command``, only that sub-command's options are declared (the others
    are listed with their help line): declaring ``evaluate``'s choices imports the evaluation code,
    which an ``upscale`` run does not need (issue 18: process start of ``kernelscope-cli upscale``)."""
    parser = argparse.ArgumentParser(
        prog="kernelscope-cli",
        description="Kernelscope: blind super-resolution that shows the blur it found.",
    )
    parser.add_argument("--version", action="version", version=f"kernelscope {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _command_modules():
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        if command is None or command == module.NAME:
            module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _command_in(argv: list[str]) -> str | None:
    """The sub-command named in ``argv``: its first word that is not an option (the top-level options
    take no values); None when there is none (``--help``, ``--version``)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_in(argv))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args._run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_CANCELLED
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in TRAINING_MODULES:
            print(
                f"kernelscope-cli {args.command}: needs the training extras ({exc.name} is not installed); "
                "install them with: pip install 'kernelscope[train]'",
                file=sys.stderr,
            )
            return EXIT_FAILURE
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
