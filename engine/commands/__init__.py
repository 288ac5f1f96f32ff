"""Sub-commands of ``kernelscope-cli``, one module each.

Each module exposes ``NAME`` (the sub-command), ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int`` (the exit code). Modules import heavy libraries (torch, onnxruntime) inside
``run`` only, so ``kernelscope-cli --help`` stays fast. ``engine.cli`` lists them explicitly;
``train`` lives with the training code, in :mod:`engine.training.command`.
"""
