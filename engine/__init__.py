"""Kernelscope engine: everything that computes. Runs without a display; never imports Qt."""

__version__ = "0.1.0"
