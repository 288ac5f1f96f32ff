"""Test configuration: Qt runs offscreen; shared data is found beside the repository."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt
# Threaded BLAS on a 2-core shared machine makes small eigh/SVD calls slower, not faster.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest  # noqa: E402

from engine.paths import shared_data_dir  # noqa: E402


@pytest.fixture(scope="session")
def shared_data():
    """``../shared/data``; tests that need real images fail loudly if it is missing (CI has it)."""
    root = shared_data_dir()
    assert root.is_dir(), f"shared data folder not found at {root} (set KERNELSCOPE_DATA)"
    return root
