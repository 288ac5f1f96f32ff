"""Blind SR pipelines returning plain data: MANet + RRDB-SFT, IKC, bicubic and non-blind.

See :mod:`engine.pipeline.blind` (the pipelines), :mod:`engine.pipeline.kernelmap` (per-pixel kernel
maps with ``kernel_at``) and :mod:`engine.pipeline.models` (loading networks through model cards).
"""
