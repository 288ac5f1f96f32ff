"""Entry script of the bundled ``kernelscope-cli`` executable.

The bundle leaves PyTorch and the other training extras out (the application runs on onnxruntime).
Sub-commands that need them (``train``, ``export``) import them inside ``run()``; here the import
failure becomes one clear line and exit code 1 instead of a traceback.
"""

from __future__ import annotations

import multiprocessing
import sys

TRAINING_EXTRAS = frozenset({"torch", "torchvision", "onnx", "onnxscript", "onnx_ir", "yaml", "scipy"})
"""Top-level packages of ``kernelscope[train]`` (and ``[dev]``) that the bundle does not contain."""

EXIT_FAILURE = 1


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The training-extra package whose absence raised ``exc``, or None for any other module."""
    top = (exc.name or "").split(".")[0]
    return top if top in TRAINING_EXTRAS else None


def main(argv: list[str] | None = None) -> int:
    """``engine.cli.main``, with a missing training extra reported in one line."""
    from engine.cli import main as cli_main

    args = sys.argv[1:] if argv is None else list(argv)
    try:
        return int(cli_main(args))
    except ModuleNotFoundError as exc:
        package = missing_extra(exc)
        if package is None:
            raise
        command = next((a for a in args if not a.startswith("-")), "this command")
        print(
            f"kernelscope-cli {command}: needs the training extras ({package} is not part of this "
            "bundle, which runs on onnxruntime only). Install Kernelscope from source with "
            "`pip install -e '.[cpu,train]'` to use it.",
            file=sys.stderr,
        )
        return EXIT_FAILURE


if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
