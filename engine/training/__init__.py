"""Training: stages, batches, the trainer, DDP plumbing and shipping to ``models/``.

Imports torch (a ``train`` extra): never imported by the GUI or the inference engine; the CLI's
parser reads only the torch-free declaration of the ``train`` options (``command``, ``config``,
``stage_table``). Entry points:
``kernelscope-cli train`` (:mod:`engine.training.command`) and ``python -m engine.training`` (same
options; the form to use under ``torchrun``).
"""
