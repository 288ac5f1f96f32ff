"""Kernelscope desktop studio: the only package that imports Qt (PySide6) or pyqtgraph."""
