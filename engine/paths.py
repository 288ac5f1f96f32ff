"""One place that knows where things live: shipped models, resources and the shared data folder.

Model files are found relative to a frozen bundle (PyInstaller's ``sys._MEIPASS``) or to the source
tree, through :func:`project_root`. The shared image data (training pool and benchmarks) lives beside
the repository as ``../shared/data``; ``KERNELSCOPE_DATA`` overrides it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def project_root() -> Path:
    """Folder holding ``models/`` and ``resources/`` (the bundle root when frozen)."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle)
    return Path(__file__).resolve().parent.parent


def models_dir() -> Path:
    return Path(os.environ.get("KERNELSCOPE_MODELS", project_root() / "models"))


def resources_dir() -> Path:
    return project_root() / "resources"


def shared_data_dir() -> Path:
    """``../shared/data`` beside the repository, unless ``KERNELSCOPE_DATA`` names another folder."""
    env = os.environ.get("KERNELSCOPE_DATA")
    if env:
        return Path(env)
    return project_root().parent / "shared" / "data"
