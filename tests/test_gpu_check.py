"""bench/gpu_check.py without a GPU: a clean exit with the reason, and every check's code path run on
the CPU with the tiny models (the numbers that matter come from a GPU machine)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from engine.backends.onnx_backend import OnnxBackend, OnnxRunner
from engine.errors import DeviceOutOfMemory
from engine.modelcards import find_cards, load_card, sha256_file

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_check.py"


@pytest.fixture(scope="module")
def gc():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="a GPU build is installed")
def test_without_a_gpu_it_exits_3_with_one_line():
    env = {k: v for k, v in os.environ.items() if k != "KERNELSCOPE_MODELS"}
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=120)
    assert proc.returncode == 3
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert lines[0].startswith("gpu_check: no usable CUDA GPU here: onnxruntime")
    assert lines[0].endswith("nothing was checked")


@pytest.fixture(scope="module")
def fp16_dir(gc, tiny_models_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fp16")
    converted = gc.write_fp16_models(tiny_models_dir, folder)
    assert sorted(converted) == sorted(c.id for c in find_cards(tiny_models_dir))
    return folder


def test_fp16_models_are_valid_cards_with_their_own_hashes(fp16_dir):
    import onnx

    for card in find_cards(fp16_dir):
        assert card.extra["precision"] == "fp16" and card.graph_sha256 == sha256_file(card.graph_path)
        model = onnx.load(str(card.graph_path))
        onnx.checker.check_model(model)
        assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # I/O kept float32
        assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)
        assert load_card(card.path).extra["precision"] == "fp16"


def test_graph_and_pipeline_checks_run_end_to_end_on_the_cpu(gc, tiny_models_dir, fp16_dir):
    report = gc.Report()
    gc.check_graphs(report, tiny_models_dir, "fp32", device="cpu", size=16)
    gc.check_graphs(report, fp16_dir, "fp16", device="cpu", size=16, reference=tiny_models_dir)
    gc.check_pipelines(report, {"fp32": tiny_models_dir, "fp16": fp16_dir}, [16], device="cpu")
    assert not report.failed, report.rows
    sessions = [r for r in report.rows if r["section"] == "session"]
    assert len(sessions) == 2 * len(find_cards(tiny_models_dir))
    assert all(r["rel_diff"] == 0.0 for r in sessions if r["name"].endswith("fp32"))
    pipelines = [r for r in report.rows if r["section"] == "pipeline"]
    assert [r["name"] for r in pipelines] == ["manet fp32 16²", "ikc fp32 16²", "manet fp16 16²", "ikc fp16 16²"]
    assert pipelines[2]["execution"] == "CPU · CPUExecutionProvider · fp16"


class TightBackend(OnnxBackend):
    """The CPU backend whose runs fail like a full GPU when an input has more than ``limit`` pixels."""

    def __init__(self, limit: int) -> None:
        super().__init__("cpu", threads=1)
        self.limit = limit

    def load(self, card):
        runner = super().load(card)
        limit = self.limit

        class Tight(OnnxRunner):
            def _run(self, feed, *, keep_memory=False):
                if max(a.shape[-1] * a.shape[-2] for a in feed.values() if a.ndim == 4) > limit:
                    raise DeviceOutOfMemory("out of memory on test", device="test")
                return super()._run(feed)

        return Tight(card, runner.session, runner.provider)


def test_oom_check_sees_the_tiling_split_and_equal_results(gc, tiny_models_dir):
    report = gc.Report()
    gc.check_oom_retry(report, tiny_models_dir, device="cpu", tile=64, capped_backend=TightBackend(56 * 56))
    (row,) = report.rows
    assert row["status"] == "PASS", row
    assert row["splits"] >= 1 and row["rel_diff"] <= 2e-3
    report = gc.Report()
    gc.check_oom_retry(report, tiny_models_dir, device="cpu", tile=64, capped_backend=OnnxBackend("cpu"))
    assert report.rows[0]["status"] == "FAIL" and "no out-of-memory happened" in report.rows[0]["detail"]


def test_training_check_runs_one_step_from_the_stage_config(gc, tmp_path, shared_data):
    report = gc.Report()
    gc.check_training(report, tmp_path / "runs", device="cpu", stages=("manet",),
                      overrides={"preset": "tiny", "batch_size": 2, "patch_size": 32, "max_images": 2,
                                 "init_from_models": False})
    (row,) = report.rows
    assert row["status"] == "PASS", row
    assert np.isfinite(row["loss"])
