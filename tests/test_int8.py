"""int8 graphs (issue 18): quantized with ``engine.quantize``, listed in the card with their sha256 and
the fp32 graph they came from, chosen on the CPU by ``precision="auto"``, never on a GPU, and named in
the device line the CLI prints."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import onnxruntime as ort
import pytest

import engine.backends.cuda as cuda_env
from engine.backends.onnx_backend import OnnxBackend
from engine.cli import main
from engine.errors import DeviceUnavailable, ModelError
from engine.imageio import Image, read_image, write_image
from engine.modelcards import find_card, find_cards, load_card, sha256_file
from engine.paths import models_dir, resources_dir
from engine.pipeline.models import load_for_method
from engine.quantize import quantize_graph, record_int8
from tests.backend_env import GPU_DRIVER, fresh_backend_state  # noqa: F401 (autouse fixture: empty caches, no driver)

CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"
RealSession = ort.InferenceSession

# |int8 − fp32| accepted for a shipped int8 graph on the 64×64 crop of the bundled sample (inputs as the
# fp32 pipeline feeds them), per network: 1.5× the largest and 2× the mean |diff| measured there —
# rrdb_sft (the shipped graph, re-made for the 136367-step network with the noise input: 0.0294 / 0.00202,
# SR pixels in [0, 1]; the 112367-step network's was 0.0348 / 0.00202; PSNR-Y loss, bench/bench_int8.py, in
# docs/PERFORMANCE.md); the unshipped candidates of
# docs/PERFORMANCE.md ("int8"): manet 0.021 / 1.4e-4 (kernel taps up to 0.116), ikc_predictor
# 0.0075 / 0.0016 (codes up to 0.37), sftmd 0.032 / 0.0048, ikc_corrector 0.0136 / 0.0019 (code
# deltas up to 0.018).
MAX_ABS_DIFF = {"manet": 0.032, "rrdb_sft": 0.044, "ikc_predictor": 0.011, "sftmd": 0.048, "ikc_corrector": 0.020}
MAX_MEAN_ABS_DIFF = {"manet": 2.8e-4, "rrdb_sft": 0.0040, "ikc_predictor": 0.0032, "sftmd": 0.0096,
                     "ikc_corrector": 0.0038}
# The tiny random-weight MANet of the tests, int8 against fp32 on a 32×32 input (measured: max |diff|
# 1.2e-4 = 1.1 % of the largest tap, mean 9.6e-6 = 0.09 %, kernel sums off by 1e-6).
TINY_MAX_REL, TINY_MEAN_REL, TINY_SUM_ATOL = 0.03, 0.0025, 1e-4


@pytest.fixture(scope="module")
def int8_models_dir(tiny_models_dir, tmp_path_factory):
    """The tiny ×4 models with an int8 MANet made by engine.quantize (random calibration inputs)."""
    folder = tmp_path_factory.mktemp("tiny_int8")
    shutil.copytree(tiny_models_dir, folder, dirs_exist_ok=True)
    card = find_card("manet", 4, models_dir=folder)
    rng = np.random.default_rng(0)
    feeds = [{"lr_rgb": rng.random((1, 3, 32, 40), dtype=np.float32)} for _ in range(4)]
    target = folder / f"{card.id}_int8.onnx"
    settings = quantize_graph(card, feeds, target)
    record_int8(card, target, settings, {"images": 4, "source": "random"}, "test")
    return folder


@pytest.fixture
def int8_models(int8_models_dir, tmp_path, monkeypatch):
    """A fresh copy of the int8 models folder (tests may edit it), set as the models folder."""
    folder = tmp_path / "models"
    shutil.copytree(int8_models_dir, folder)
    monkeypatch.setenv("KERNELSCOPE_MODELS", str(folder))
    return folder


def _image(tmp_path):
    src = tmp_path / "in.png"
    write_image(src, Image(rgb_f32=np.random.default_rng(0).random((16, 16, 3), dtype=np.float32)))
    return src


# the card ------------------------------------------------------------------------------------
def test_quantize_records_graph_sha_and_source(int8_models):
    card = find_card("manet", 4)
    entry = card.extra["precisions"]["int8"]
    assert card.precisions == ("fp32", "int8")
    assert entry["graph"] == f"{card.id}_int8.onnx"
    assert entry["graph_sha256"] == sha256_file(int8_models / entry["graph"])
    assert entry["source_graph_sha256"] == card.graph_sha256
    assert entry["quantization"]["format"] == "QDQ" and "per output channel" in entry["quantization"]["weights"]
    int8 = card.at_precision("int8")
    assert int8.id == card.id and int8.precision == "int8" and int8.graph_path == int8_models / entry["graph"]
    assert find_card("rrdb_sft", 4).precisions == ("fp32",)


# choice of graph -----------------------------------------------------------------------------
def test_cpu_auto_runs_int8_and_fp32_on_request(int8_models):
    card = find_card("manet", 4)
    auto = OnnxBackend("cpu", threads=1).load(card)
    fp32 = OnnxBackend("cpu", threads=1, precision="fp32").load(card)
    assert auto.precision == "int8" and auto.card.graph == "manet_tiny_x4_int8.onnx"
    assert fp32.precision == "fp32" and fp32.card.graph == "manet_tiny_x4.onnx"
    x = np.random.default_rng(1).random((1, 3, 32, 32), dtype=np.float32)
    a, b = auto.run({"lr_rgb": x})["kernels"], fp32.run({"lr_rgb": x})["kernels"]
    assert a.shape == b.shape and not np.array_equal(a, b)
    diff = np.abs(a - b)
    assert diff.max() <= TINY_MAX_REL * b.max() and diff.mean() <= TINY_MEAN_REL * b.max()
    np.testing.assert_allclose(a.sum(axis=1), 1.0, atol=TINY_SUM_ATOL)  # the softmax head stays fp32


def test_edited_int8_graph_is_refused_naming_file_and_command(int8_models):
    graph = int8_models / "manet_tiny_x4_int8.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="sha256") as info:
        OnnxBackend("cpu", threads=1).load(find_card("manet", 4))
    assert "manet_tiny_x4_int8.onnx" in str(info.value)
    assert "python -m engine.quantize --card manet_tiny_x4 --ship" in str(info.value)
    assert OnnxBackend("cpu", threads=1, precision="fp32").load(find_card("manet", 4)).precision == "fp32"


def test_int8_graph_of_another_fp32_graph_is_not_run(int8_models, caplog):
    """A retrained or re-exported network keeps its card's ``precisions`` entry: the stale int8 graph
    must not run. ``auto`` says so once and runs fp32; ``int8`` refuses."""
    path = int8_models / "manet_tiny_x4.json"
    data = json.loads(path.read_text())
    data["precisions"]["int8"]["source_graph_sha256"] = "0" * 64
    path.write_text(json.dumps(data))
    card = load_card(path)
    with caplog.at_level(logging.WARNING):
        runner = OnnxBackend("cpu", threads=1).load(card)
    assert runner.precision == "fp32"
    [warning] = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "made from another fp32 graph" in warning and "running manet_tiny_x4 in fp32" in warning
    with pytest.raises(ModelError, match="made from another fp32 graph"):
        OnnxBackend("cpu", threads=1, precision="int8").load(card)


def test_missing_int8_graph_falls_back_to_fp32_under_auto(int8_models, caplog):
    (int8_models / "manet_tiny_x4_int8.onnx").unlink()
    with caplog.at_level(logging.WARNING):
        assert OnnxBackend("cpu", threads=1).load(find_card("manet", 4)).precision == "fp32"
    assert any("is missing" in r.getMessage() for r in caplog.records)
    with pytest.raises(ModelError, match="missing"):
        OnnxBackend("cpu", threads=1, precision="int8").load(find_card("manet", 4))


# CUDA keeps fp32 -------------------------------------------------------------------------------
@pytest.fixture
def gpu_build(monkeypatch):
    """onnxruntime that lists CUDA; sessions really run on the CPU and report ``outcome["provider"]``
    when CUDA was asked for. ``opened`` records the graph files sessions were made for."""
    opened: list[str] = []
    outcome = {"provider": CUDA}

    class Session(RealSession):
        def __init__(self, path, sess_options=None, providers=None, **kwargs):
            opened.append(str(path).rsplit("/", 1)[-1])
            self.asked_cuda = any((p[0] if isinstance(p, tuple) else p) == CUDA for p in providers)
            super().__init__(path, sess_options, providers=[CPU], **kwargs)

        def get_providers(self):
            return [outcome["provider"], CPU] if self.asked_cuda and outcome["provider"] != CPU else [CPU]

    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(ort, "preload_dlls", lambda **kw: None, raising=False)
    monkeypatch.setattr(ort, "InferenceSession", Session)
    monkeypatch.setattr(cuda_env, "driver_info", lambda: GPU_DRIVER)
    return opened, outcome


def test_cuda_keeps_fp32(int8_models, gpu_build):
    opened, _ = gpu_build
    models = load_for_method("estimate", 4)
    runner = models.runner("manet")
    assert runner.provider == CUDA and runner.precision == "fp32"
    assert opened == ["manet_tiny_x4.onnx"]
    assert models.execution == "NVIDIA Test GPU (GPU 0) · CUDAExecutionProvider · fp32"
    with pytest.raises(DeviceUnavailable, match="CPU only"):
        load_for_method("estimate", 4, device="cuda", precision="int8")


def test_cuda_that_does_not_start_falls_back_to_the_cpu_default(int8_models, gpu_build, caplog):
    opened, outcome = gpu_build
    outcome["provider"] = CPU
    with caplog.at_level(logging.WARNING):
        runner = load_for_method("estimate", 4).runner("manet")
    assert runner.provider == CPU and runner.precision == "int8"
    assert opened == ["manet_tiny_x4.onnx", "manet_tiny_x4_int8.onnx"]


# the command line ------------------------------------------------------------------------------
def test_cli_prints_the_precision_and_precision_fp32_selects_fp32(int8_models, tmp_path, capsys):
    src = _image(tmp_path)
    assert main(["upscale", str(src), "--out", str(tmp_path / "a"), "--no-progress"]) == 0
    assert "manet ×4 on CPU · CPUExecutionProvider · fp32+int8" in capsys.readouterr().err  # MANet int8
    assert main(["upscale", str(src), "--out", str(tmp_path / "b"), "--no-progress", "--precision", "fp32"]) == 0
    assert "manet ×4 on CPU · CPUExecutionProvider · fp32\n" in capsys.readouterr().err
    assert load_for_method("manet", 4, precision="fp32").runner("manet").card.graph == "manet_tiny_x4.onnx"


def test_cli_int8_with_cuda_is_a_usage_error(int8_models, tmp_path, capsys):
    code = main(["upscale", str(_image(tmp_path)), "--precision", "int8", "--provider", "cuda",
                 "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--precision int8 runs on the CPU only" in err[0]
    assert not (tmp_path / "o").exists()


# the shipped int8 graphs -------------------------------------------------------------------------
SHIPPED = [c.id for c in find_cards(models_dir()) if "int8" in c.precisions]


@pytest.mark.parametrize("card_id", SHIPPED)
def test_shipped_int8_graph_is_verified_and_close_to_fp32(card_id):
    from engine.pipeline.blind import run_manet
    from engine.pipeline.ikc import run_ikc
    from engine.quantize import METHOD_OF_NETWORK, RecordingRunner

    card = next(c for c in find_cards(models_dir()) if c.id == card_id)
    int8 = OnnxBackend("cpu", threads=1, precision="int8").load(card)
    fp32 = OnnxBackend("cpu", threads=1, precision="fp32").load(card)
    assert int8.precision == "int8" and int8.card.graph == f"{card_id}_int8.onnx"
    assert sha256_file(int8.card.graph_path) == card.extra["precisions"]["int8"]["graph_sha256"]
    lr = np.ascontiguousarray(read_image(resources_dir() / "sample_lr.png").rgb_f32[:64, :64])
    method = METHOD_OF_NETWORK[card.network]
    models = load_for_method(method, 4, device="cpu", precision="fp32", threads=1)
    feeds: list = []
    models.runners[card.network] = RecordingRunner(models.runners[card.network], feeds)
    run_manet(lr, models) if method == "manet" else run_ikc(lr, models)
    (name,) = card.output_names
    diff = np.abs(int8.run(feeds[0])[name] - fp32.run(feeds[0])[name])
    assert diff.max() <= MAX_ABS_DIFF[card.network], diff.max()
    assert diff.mean() <= MAX_MEAN_ABS_DIFF[card.network], diff.mean()


def test_recording_runner_keeps_the_runner_contract():
    """Calibration wraps every network's runner, MANet's included, which the pipeline runs with
    ``keep_memory=True``: the wrapper records the feed and passes the flag on."""
    from engine.quantize import RecordingRunner

    calls = []

    class Runner:
        precision = "fp32"

        def run(self, inputs, *, keep_memory=False):
            calls.append(keep_memory)
            return {"y": inputs["x"] * 2}

    feeds: list = []
    rec = RecordingRunner(Runner(), feeds)
    x = np.ones((1, 2), np.float32)
    assert rec.run({"x": x}, keep_memory=True)["y"].sum() == 4 and rec.run({"x": x})["y"].sum() == 4
    assert calls == [True, False] and len(feeds) == 2 and rec.precision == "fp32"
    feeds[0]["x"][0, 0] = 5  # a copy, not the caller's array
    assert x[0, 0] == 1
