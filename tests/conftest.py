"""Test configuration: Qt runs offscreen; shared data is found beside the repository."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt
# Threaded BLAS on a 2-core shared machine makes small eigh/SVD calls slower, not faster.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# Same for torch's intra-op pool: tiny test networks run faster single-threaded on 2 shared cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

from engine.paths import shared_data_dir  # noqa: E402


@pytest.fixture(scope="session")
def shared_data():
    """``../shared/data``; tests that need real images fail loudly if it is missing (CI has it)."""
    root = shared_data_dir()
    assert root.is_dir(), f"shared data folder not found at {root} (set KERNELSCOPE_DATA)"
    return root


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory):
    """A models folder with seeded random-weight ``tiny`` networks at ×4 and ×2 (graphs, cards, PCA bases).

    Exported once per test session; pipelines, the worker and the GUI tests run on it.
    """
    import shutil

    from engine.export import init_untrained
    from engine.paths import models_dir

    folder = tmp_path_factory.mktemp("tiny_models")
    for pca in models_dir().glob("pca_*"):
        shutil.copy(pca, folder / pca.name)
    for scale in (4, 2):
        for seed, network in enumerate(("manet", "rrdb_sft", "sftmd", "ikc_predictor", "ikc_corrector")):
            # TorchScript export is several times faster than dynamo; test_export covers the dynamo path.
            init_untrained(network, "tiny", scale, seed=seed, models_folder=folder, exporter="torchscript")
    return folder


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch intra-op thread for a module: on a shared 2-core machine, 2 threads spin against each other."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def manet_models(tiny_models_dir):
    """The tiny ×4 MANet + RRDB-SFT model set on the CPU."""
    from engine.pipeline.models import load_for_method

    return load_for_method("manet", 4, models_dir=tiny_models_dir, device="cpu")


@pytest.fixture(scope="module")
def ikc_models(tiny_models_dir):
    """The tiny ×4 IKC model set (predictor, SFTMD, corrector) on the CPU."""
    from engine.pipeline.models import load_for_method

    return load_for_method("ikc", 4, models_dir=tiny_models_dir, device="cpu")


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    """Delete the widgets a test closed now: pytest-qt calls ``deleteLater`` on them, but outside an
    event loop Qt only runs that deletion during a later test, so each test's window outlived it."""
    import sys

    if "PySide6.QtCore" not in sys.modules:
        return
    from PySide6 import QtCore

    if QtCore.QCoreApplication.instance() is not None:
        QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.Type.DeferredDelete.value)
