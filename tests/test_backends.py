"""Backends: provider choice and CUDA fallback, real ONNX Runtime runs vs torch, caching, errors, OOM."""

from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

import engine.backends.cuda as cuda_env
import engine.backends.torch_backend as torch_backend
from engine.backends import get_backend, load_runner, validate_inputs
from engine.backends.onnx_backend import OnnxBackend, OnnxRunner, choose_providers, clear_session_cache
from engine.backends.torch_backend import TorchBackend, TorchRunner
from engine.errors import DeviceOutOfMemory, DeviceUnavailable, ModelError, classify_device_error, is_out_of_memory
from engine.modelcards import ModelCard, TensorSpec, save_card
from tests.backend_env import GPU_DRIVER, fresh_backend_state  # noqa: F401 (autouse fixture)

CPU, CUDA, TRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"


class TinyNet(torch.nn.Module):
    """3 → 4 channels: a 3×3 conv and a sigmoid; stands in for a network from engine.archs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, lr_rgb: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(lr_rgb))


def _tiny_builder(card: ModelCard) -> torch.nn.Module:
    return TinyNet()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_card(folder: Path, card_id: str = "tiny_small_x4", graph: str = "tiny.onnx", **kw) -> ModelCard:
    """A card for TinyNet whose files live in ``folder`` (sha256 filled from the files present)."""
    card = ModelCard(
        id=card_id,
        network="manet",
        preset="small",
        scale=4,
        graph=graph,
        graph_sha256=_sha(folder / graph) if (folder / graph).is_file() else "0" * 64,
        weights="tiny.pt",
        weights_sha256=_sha(folder / "tiny.pt") if (folder / "tiny.pt").is_file() else None,
        inputs=[TensorSpec("lr_rgb", ["N", 3, "H", "W"], "float32", [0, 1], "NCHW, RGB")],
        outputs=[TensorSpec("out", ["N", 4, "H", "W"], "float32", [0, 1], "NCHW")],
        tiling={"policy": "exact", "context_lr_px": 1, "multiple_of": 8},
        **kw,
    )
    card.path = save_card(card, folder / f"{card_id}.json")
    return card


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory) -> tuple[Path, TinyNet]:
    """TinyNet exported once to ONNX (dynamic N, H, W) plus its state_dict, in a module tmp folder."""
    folder = tmp_path_factory.mktemp("tiny_model")
    net = TinyNet().eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    torch.save(net.state_dict(), folder / "tiny.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            net,
            (torch.rand(1, 3, 8, 8),),
            str(folder / "tiny.onnx"),
            input_names=["lr_rgb"],
            output_names=["out"],
            dynamic_axes={"lr_rgb": {0: "N", 2: "H", 3: "W"}, "out": {0: "N", 2: "H", 3: "W"}},
            opset_version=18,
            dynamo=False,
        )
    return folder, net


@pytest.fixture()
def tiny_card(tiny_files, tmp_path) -> ModelCard:
    """A fresh copy of the tiny model's files and card in this test's tmp folder."""
    folder, _ = tiny_files
    for name in ("tiny.onnx", "tiny.pt"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    return make_card(tmp_path)


def lr_batch(seed: int, n: int = 2, h: int = 16, w: int = 24) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 3, h, w), dtype=np.float32)


# provider choice -----------------------------------------------------------------------------
def _names(providers):
    return [p[0] if isinstance(p, tuple) else p for p in providers]


def test_choose_providers_only_requests_available_ones():
    assert _names(choose_providers("auto", [CPU])) == [CPU]
    assert _names(choose_providers("cuda", [CPU])) == [CPU]
    assert _names(choose_providers("auto", [TRT, CUDA, CPU])) == [CUDA, CPU]  # TensorRT off by default
    assert _names(choose_providers("auto", [TRT, CUDA, CPU], tensorrt=True)) == [TRT, CUDA, CPU]
    assert _names(choose_providers("cuda", [CUDA, CPU])) == [CUDA, CPU]
    assert _names(choose_providers("cpu", [TRT, CUDA, CPU])) == [CPU]
    assert choose_providers("cuda", [CUDA, CPU], device_id=1)[0] == (CUDA, {"device_id": 1})
    with pytest.raises(ValueError, match="unknown device"):
        choose_providers("gpu", [CPU])


class FakeSession:
    """Stands in for ``ort.InferenceSession`` on a machine where CUDA is listed but unusable."""

    created: list[dict] = []

    def __init__(self, path, sess_options=None, providers=None, **kwargs):
        FakeSession.created.append({"path": path, "options": sess_options, "providers": _names(providers)})

    def get_providers(self):
        return [CPU]

    def get_inputs(self):
        return [type("I", (), {"name": "lr_rgb"})()]

    def get_outputs(self):
        return [type("O", (), {"name": "out"})()]


@pytest.fixture()
def fake_gpu_build(monkeypatch):
    """onnxruntime that lists CUDA (like onnxruntime-gpu) but whose sessions end up on the CPU."""
    FakeSession.created = []
    severities = []
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(ort, "InferenceSession", FakeSession)
    monkeypatch.setattr(ort, "set_default_logger_severity", severities.append)
    return severities


def test_cuda_fallback_warns_once_across_sessions(tiny_card, tmp_path, fake_gpu_build, caplog):
    other = make_card(tmp_path, card_id="tiny_other")  # a second card: a second session
    with caplog.at_level(logging.DEBUG, logger="engine.backends"):
        r1 = OnnxBackend("auto", threads=1).load(tiny_card)
        r2 = OnnxBackend("auto", threads=2).load(other)
    assert len(FakeSession.created) == 2
    assert all(c["providers"] == [CUDA, CPU] for c in FakeSession.created)
    assert r1.provider == CPU and r2.provider == CPU  # the provider actually obtained
    warnings_logged = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings_logged) == 1
    assert "CUDA not used (no NVIDIA driver found" in warnings_logged[0].getMessage()
    assert "running on the CPU" in warnings_logged[0].getMessage()
    # onnxruntime's own C++ log is silenced (errors included) for these sessions
    assert fake_gpu_build and min(fake_gpu_build) >= 3
    assert all(c["options"].log_severity_level >= 3 for c in FakeSession.created)
    opts = FakeSession.created[0]["options"]
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert opts.intra_op_num_threads == 1 and FakeSession.created[1]["options"].intra_op_num_threads == 2


def test_cpu_request_never_asks_for_cuda(tiny_card, fake_gpu_build, caplog):
    with caplog.at_level(logging.WARNING):
        runner = OnnxBackend("cpu").load(tiny_card)
    assert FakeSession.created[0]["providers"] == [CPU]
    assert runner.provider == CPU and not runner.on_gpu
    assert not [r for r in caplog.records if "CUDA" in r.getMessage()]


def test_failing_cuda_session_is_retried_on_cpu_for_auto(tiny_card, monkeypatch, caplog):
    calls = []

    class FailingCuda(FakeSession):
        def __init__(self, path, sess_options=None, providers=None, **kwargs):
            calls.append(_names(providers))
            assert kwargs.get("enable_fallback") == 0  # no "EP Error" banner from onnxruntime
            if CUDA in _names(providers):
                raise RuntimeError("CUDA driver version is insufficient for CUDA runtime version")

    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(ort, "InferenceSession", FailingCuda)
    monkeypatch.setattr(cuda_env, "driver_info", lambda: GPU_DRIVER)
    with caplog.at_level(logging.WARNING):
        runner = OnnxBackend("auto").load(tiny_card)
    assert calls == [[CUDA, CPU], [CPU]]
    assert runner.provider == CPU
    msgs = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(msgs) == 1 and "driver version is insufficient" in msgs[0]
    # asked for by name, the same failure is an error with that reason, not a CPU runner
    with pytest.raises(DeviceUnavailable, match="driver version is insufficient"):
        OnnxBackend("cuda").load(tiny_card)


def test_graph_failing_on_every_provider_is_a_model_error_not_a_cuda_warning(tiny_card, monkeypatch, caplog):
    calls = []

    class AlwaysFails(FakeSession):
        def __init__(self, path, sess_options=None, providers=None, **kwargs):
            calls.append(_names(providers))
            raise ort_state.Fail("Load model from tiny.onnx failed: Node (Conv_0) has input size 5 not in range")

    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    monkeypatch.setattr(ort, "InferenceSession", AlwaysFails)
    with caplog.at_level(logging.WARNING), pytest.raises(ModelError) as info:
        OnnxBackend("auto").load(tiny_card)
    assert calls == [[CUDA, CPU], [CPU]]
    assert "kernelscope-cli export --card tiny_small_x4" in str(info.value)
    assert not [r for r in caplog.records if "CUDA requested" in r.getMessage()]


def test_cuda_on_cpu_only_build_is_refused_with_the_reason(tiny_card, caplog):
    # the real CPU build of onnxruntime in the dev environment lists no CUDA provider
    assert CUDA not in ort.get_available_providers()
    with pytest.raises(DeviceUnavailable) as info:
        OnnxBackend("cuda").load(tiny_card)
    assert info.value.device == "cuda"
    assert "CPU build" in info.value.reason and "kernelscope[gpu]" in info.value.reason
    assert "\n" not in str(info.value)


def test_auto_on_cpu_only_build_is_quiet_without_a_gpu_and_says_so_with_one(tiny_card, monkeypatch, caplog):
    with caplog.at_level(logging.WARNING):
        a = OnnxBackend("auto").load(tiny_card)
    assert a.provider == CPU and not [r for r in caplog.records if r.levelno >= logging.WARNING]
    monkeypatch.setattr(cuda_env, "driver_info", lambda: GPU_DRIVER)
    with caplog.at_level(logging.WARNING):
        b = OnnxBackend("auto").load(tiny_card)
        OnnxBackend("auto").load(tiny_card)
    msgs = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert b.provider == CPU
    assert len(msgs) == 1 and "an NVIDIA GPU is present" in msgs[0] and "kernelscope[gpu]" in msgs[0]


# real sessions -------------------------------------------------------------------------------
def test_onnx_runner_agrees_with_torch(tiny_files, tiny_card):
    _, net = tiny_files
    runner = OnnxBackend("cpu", threads=1).load(tiny_card)
    assert isinstance(runner, OnnxRunner) and runner.provider == CPU
    assert runner.input_names == ["lr_rgb"] and runner.output_names == ["out"]
    x = lr_batch(1)
    got = runner.run({"lr_rgb": x})
    with torch.inference_mode():
        want = net(torch.from_numpy(x)).numpy()
    assert set(got) == {"out"}
    assert got["out"].shape == (2, 4, 16, 24) and got["out"].dtype == np.float32
    np.testing.assert_allclose(got["out"], want, atol=1e-5)


def test_sessions_are_cached_per_graph_provider_and_threads(tiny_card, tmp_path):
    a = OnnxBackend("cpu", threads=1).load(tiny_card)
    b = OnnxBackend("auto", threads=1).load(tiny_card)  # auto on this machine also means [CPU]
    c = OnnxBackend("cpu", threads=2).load(tiny_card)
    assert a.session is b.session
    assert c.session is not a.session
    # the same graph bytes behind another card file: keyed by path, so a new session
    (tmp_path / "copy.onnx").write_bytes(tiny_card.graph_path.read_bytes())
    d = OnnxBackend("cpu", threads=1).load(make_card(tmp_path, card_id="copy", graph="copy.onnx"))
    assert d.session is not a.session
    clear_session_cache()
    assert OnnxBackend("cpu", threads=1).load(tiny_card).session is not a.session


def test_missing_graph_says_how_to_regenerate(tiny_card):
    tiny_card.graph_path.unlink()
    with pytest.raises(ModelError) as info:
        OnnxBackend("cpu").load(tiny_card)
    msg = str(info.value)
    assert str(tiny_card.graph_path) in msg and "kernelscope-cli export --card tiny_small_x4" in msg


@pytest.mark.parametrize("kind", ["text", "truncated"])
def test_corrupt_graph_is_a_model_error(tiny_card, kind):
    data = tiny_card.graph_path.read_bytes()
    bad = b"this is not an onnx graph\n" if kind == "text" else data[: len(data) // 2]
    tiny_card.graph_path.write_bytes(bad)
    tiny_card.graph_sha256 = hashlib.sha256(bad).hexdigest()  # a card that matches the broken file
    with pytest.raises(ModelError) as info:
        OnnxBackend("cpu").load(tiny_card)
    msg = str(info.value)
    assert str(tiny_card.graph_path) in msg
    assert "kernelscope-cli export --card tiny_small_x4" in msg


def test_graph_that_does_not_match_card_sha(tiny_card):
    tiny_card.graph_path.write_bytes(tiny_card.graph_path.read_bytes() + b"\0")
    with pytest.raises(ModelError) as info:
        OnnxBackend("cpu").load(tiny_card)
    msg = str(info.value)
    assert "does not match its model card" in msg and str(tiny_card.graph_path) in msg
    assert "kernelscope-cli export --card tiny_small_x4" in msg


def test_card_whose_io_names_differ_from_the_graph(tiny_card):
    tiny_card.inputs[0].name = "image"
    with pytest.raises(ModelError, match="does not fit its model card"):
        OnnxBackend("cpu").load(tiny_card)


# input validation ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "array, pattern",
    [
        (np.zeros((3, 16, 16), np.float32), r"tiny_small_x4.*lr_rgb.*rank 4"),
        (np.zeros((1, 1, 3, 16, 16), np.float32), r"tiny_small_x4.*lr_rgb.*rank 4"),
        (np.zeros((1, 4, 16, 16), np.float32), r"tiny_small_x4.*lr_rgb.*3 channels"),
        (np.zeros((1, 16, 16, 3), np.float32), r"tiny_small_x4.*lr_rgb.*3 channels"),  # HWC by mistake
        (np.zeros((1, 3, 16, 16), np.float64), r"tiny_small_x4.*lr_rgb.*float32"),
        (np.zeros((1, 3, 12, 16), np.float32), r"tiny_small_x4.*lr_rgb.*multiples of 8"),
        (np.zeros((0, 3, 16, 16), np.float32), r"tiny_small_x4.*lr_rgb.*empty"),
    ],
)
def test_bad_inputs_are_model_errors_naming_model_and_input(tiny_card, array, pattern):
    runner = OnnxBackend("cpu", threads=1).load(tiny_card)
    with pytest.raises(ModelError, match=pattern):
        runner.run({"lr_rgb": array})


def test_wrong_input_names(tiny_card):
    runner = OnnxBackend("cpu", threads=1).load(tiny_card)
    with pytest.raises(ModelError, match=r"missing input\(s\) lr_rgb.*unknown input\(s\) image"):
        runner.run({"image": lr_batch(0)})


def test_symbolic_dimensions_must_agree_across_inputs(tmp_path):
    card = ModelCard(
        id="rrdb_sft_small_x4", network="rrdb_sft", preset="small", scale=4, graph="g.onnx",
        graph_sha256="0" * 64,
        inputs=[TensorSpec("lr_rgb", ["N", 3, "H", "W"]), TensorSpec("kernel_code", ["N", 15, "H", "W"])],
        outputs=[TensorSpec("sr_rgb", ["N", 3, "4*H", "4*W"])],
    )
    ok = validate_inputs(card, {
        "lr_rgb": np.zeros((1, 3, 5, 7), np.float32), "kernel_code": np.zeros((1, 15, 5, 7), np.float32),
    })
    assert all(a.flags.c_contiguous for a in ok.values())
    with pytest.raises(ModelError, match=r"kernel_code has W=6 but lr_rgb has W=7"):
        validate_inputs(card, {
            "lr_rgb": np.zeros((1, 3, 5, 7), np.float32), "kernel_code": np.zeros((1, 15, 5, 6), np.float32),
        })
    with pytest.raises(ModelError, match=r"kernel_code must have 15 channels"):
        validate_inputs(card, {
            "lr_rgb": np.zeros((1, 3, 5, 7), np.float32), "kernel_code": np.zeros((1, 10, 5, 7), np.float32),
        })
    # non-contiguous views are accepted and made contiguous
    view = np.zeros((1, 3, 7, 5), np.float32).transpose(0, 1, 3, 2)
    fed = validate_inputs(card, {"lr_rgb": view, "kernel_code": np.zeros((1, 15, 5, 7), np.float32)})
    assert fed["lr_rgb"].flags.c_contiguous


# out-of-memory classification ----------------------------------------------------------------
OOM_CASES = {
    "torch.cuda.OutOfMemoryError": lambda: torch.cuda.OutOfMemoryError(
        "CUDA out of memory. Tried to allocate 1.85 GiB (GPU 0; 7.79 GiB total capacity)"),
    "torch RuntimeError CUDA": lambda: RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB"),
    "ort RuntimeException": lambda: ort_state.RuntimeException(
        "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Non-zero status code returned while running Conv node. "
        "Name:'/conv/Conv' Status Message: Failed to allocate memory for requested buffer of size 1073741824"),
    "ort Fail BFCArena": lambda: ort_state.Fail(
        "[ONNXRuntimeError] : 1 : FAIL : bfc_arena.cc:376 AllocateRawInternal BFCArena::AllocateRawInternal "
        "Available memory of 0 is smaller than requested bytes of 4194304"),
    "ort CUDA failure 2": lambda: ort_state.RuntimeException(
        "CUDA failure 2: out of memory ; GPU=0 ; hostname=x ; expr=cudaMalloc((void**)&p, size);"),
    "ort EPFail oom": lambda: ort_state.EPFail("CUDA error cudaErrorMemoryAllocation: out of memory"),
    "MemoryError": lambda: MemoryError(),
}


@pytest.mark.parametrize("name", list(OOM_CASES))
def test_out_of_memory_errors_are_classified(name):
    exc = OOM_CASES[name]()
    assert is_out_of_memory(exc)
    err = classify_device_error(exc, device="torch-cuda")
    assert isinstance(err, DeviceOutOfMemory)
    assert err.device == "torch-cuda" and err.__cause__ is exc
    assert "torch-cuda" in str(err)


def test_real_allocation_failures_are_classified():
    with pytest.raises(RuntimeError) as torch_info:
        torch.empty(2**50)  # 4 PiB: torch's "DefaultCPUAllocator: can't allocate memory"
    assert "DefaultCPUAllocator" in str(torch_info.value)
    assert isinstance(classify_device_error(torch_info.value), DeviceOutOfMemory)
    with pytest.raises(MemoryError) as np_info:
        np.empty(2**44)  # 128 TiB: numpy's MemoryError subclass
    assert isinstance(classify_device_error(np_info.value), DeviceOutOfMemory)


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError("CUDA failure 20: the launch timed out"),
        RuntimeError("Given groups=1, weight of size [4, 3, 3, 3], expected input to have 3 channels"),
        ValueError("out of memory"),  # only runtime errors carry OOM messages
        ModelError("graph missing"),
        ort_state.InvalidArgument("Got invalid dimensions for input"),
        ort_state.Fail("Load model from x failed: Protobuf parsing failed"),
    ],
)
def test_other_errors_are_left_alone(exc):
    assert not is_out_of_memory(exc)
    assert classify_device_error(exc) is exc


def test_onnx_runner_turns_oom_into_device_out_of_memory(tiny_card):
    class OomSession:
        def run(self, names, feed, run_options=None):
            raise OOM_CASES["ort RuntimeException"]()

    runner = OnnxRunner(tiny_card, OomSession(), CPU)
    with pytest.raises(DeviceOutOfMemory) as info:
        runner.run({"lr_rgb": lr_batch(0)})
    assert info.value.device == CPU
    assert isinstance(info.value.__cause__, ort_state.RuntimeException)


def test_torch_runner_turns_oom_into_device_out_of_memory(tiny_card):
    class Oom(torch.nn.Module):
        def forward(self, x):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    runner = TorchRunner(tiny_card, Oom(), "cpu")
    with pytest.raises(DeviceOutOfMemory) as info:
        runner.run({"lr_rgb": lr_batch(0)})
    assert info.value.device == "torch-cpu"


def test_non_oom_runtime_errors_pass_through(tiny_card):
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("shape mismatch somewhere")

    with pytest.raises(RuntimeError, match="shape mismatch") as info:
        TorchRunner(tiny_card, Broken(), "cpu").run({"lr_rgb": lr_batch(0)})
    assert not isinstance(info.value, DeviceOutOfMemory)


# torch backend and the automatic choice -------------------------------------------------------
def test_torch_backend_matches_onnx(tiny_card):
    onnx_out = OnnxBackend("cpu", threads=1).load(tiny_card).run({"lr_rgb": lr_batch(3)})["out"]
    runner = TorchBackend("cpu", builder=_tiny_builder).load(tiny_card)
    assert runner.provider == "torch-cpu"
    np.testing.assert_allclose(runner.run({"lr_rgb": lr_batch(3)})["out"], onnx_out, atol=1e-5)
    cl = TorchBackend("cpu", channels_last=True, builder=_tiny_builder).load(tiny_card)
    np.testing.assert_allclose(cl.run({"lr_rgb": lr_batch(3)})["out"], onnx_out, atol=1e-5)


def test_auto_falls_back_to_torch_when_graph_is_missing(tiny_files, tiny_card, monkeypatch, caplog):
    _, net = tiny_files
    assert isinstance(get_backend("auto", tiny_card), OnnxBackend)
    tiny_card.graph_path.unlink()
    monkeypatch.setattr(torch_backend, "build_module", _tiny_builder)
    with caplog.at_level(logging.INFO, logger="engine.backends"):
        backend = get_backend("auto", tiny_card)
        runner = load_runner(tiny_card, device="cpu")
    assert isinstance(backend, TorchBackend) and isinstance(runner, TorchRunner)
    assert any("PyTorch" in r.getMessage() and "missing" in r.getMessage() for r in caplog.records)
    x = lr_batch(4)
    with torch.inference_mode():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(runner.run({"lr_rgb": x})["out"], want, atol=1e-6)


def test_torch_backend_checks_its_weights(tiny_card):
    tiny_card.weights_path.write_bytes(b"garbage")
    with pytest.raises(ModelError, match="does not match its model card"):
        TorchBackend("cpu", builder=_tiny_builder).load(tiny_card)
    tiny_card.weights_sha256 = hashlib.sha256(b"garbage").hexdigest()
    with pytest.raises(ModelError, match=r"tiny\.pt.*cannot be read"):
        TorchBackend("cpu", builder=_tiny_builder).load(tiny_card)


def test_torch_backend_loads_strictly(tiny_card):
    class Wider(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.extra = torch.nn.Conv2d(4, 4, 1)

    with pytest.raises(ModelError, match="do not fit"):
        TorchBackend("cpu", builder=lambda card: Wider()).load(tiny_card)


def test_get_backend_rejects_unknown_kinds():
    with pytest.raises(ValueError, match="unknown backend"):
        get_backend("tensorflow")
    assert isinstance(get_backend("torch"), TorchBackend)
    assert isinstance(get_backend("onnx"), OnnxBackend)


def _inputs_for(card: ModelCard, side: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random inputs shaped by the card: N=1, symbolic spatial sizes = ``side``; images in [0, 1]."""
    feed = {}
    for spec in card.inputs:
        shape = [d if isinstance(d, int) else (1 if i == 0 else side) for i, d in enumerate(spec.shape)]
        is_image = len(shape) == 4 and shape[1] == 3
        feed[spec.name] = (rng.random(shape) if is_image else rng.standard_normal(shape)).astype(np.float32)
    return feed


def _resolve(dim: int | str, sizes: dict[str, int]) -> int:
    """A card dimension (``441``, ``"H"`` or ``"4*H"``) for the given symbol sizes."""
    if isinstance(dim, int):
        return dim
    factor, _, symbol = dim.rpartition("*")
    return int(factor or 1) * sizes[symbol]


def test_shipped_graphs_run_and_agree_with_torch():
    """Every shipped graph runs in ONNX Runtime with the output shapes its card promises; the
    cheaper networks also match PyTorch eager (torch's first runs are slow, so not all of them:
    the exporter checks parity for each graph when it writes it)."""
    from engine.modelcards import find_cards

    cards = [c for c in find_cards() if c.graph_path.is_file()]
    if not cards:
        pytest.skip("no shipped graphs yet")
    rng = np.random.default_rng(0)
    for card in cards:
        side = 32 if card.network == "ikc_corrector" else 16
        feed = _inputs_for(card, side, rng)
        got = OnnxBackend("cpu").load(card).run(feed)
        sizes = {"N": 1, "H": side, "W": side}
        for spec in card.outputs:
            assert got[spec.name].shape == tuple(_resolve(d, sizes) for d in spec.shape), card.id
            assert np.isfinite(got[spec.name]).all(), card.id
        if card.network in ("manet", "ikc_predictor") and card.weights_path and card.weights_path.is_file():
            want = TorchBackend("cpu").load(card).run(feed)
            for name in card.output_names:
                scale = max(1.0, float(np.abs(want[name]).max()))
                np.testing.assert_allclose(got[name], want[name], atol=1e-4 * scale, err_msg=f"{card.id}: {name}")


def test_onnx_sessions_share_one_cpu_arena_and_runs_give_memory_back_unless_kept(tiny_card):
    """Every session uses the process's registered CPU arena (so RRDB-SFT reuses the pages MANet's
    run touched); a run gives the arena back unless the caller keeps it for the next network."""
    backend = OnnxBackend("cpu", threads=1)
    options = backend._session_options(ort)
    assert options.get_session_config_entry("session.use_env_allocators") == "1"
    seen = []

    class Session:
        def run(self, names, feed, run_options=None):
            try:
                seen.append(run_options.get_run_config_entry("memory.enable_memory_arena_shrinkage"))
            except RuntimeError:  # no such entry: the arena is kept
                seen.append(None)
            return [feed["lr_rgb"]]

    runner = OnnxRunner(tiny_card, Session(), "CPUExecutionProvider")
    runner.run({"lr_rgb": lr_batch(0)})
    runner.run({"lr_rgb": lr_batch(0)}, keep_memory=True)
    assert seen == ["cpu:0", None]
    # a real session built with the shared arena gives the tiny model's result
    real = backend.load(tiny_card)
    out = real.run({"lr_rgb": lr_batch(0)}, keep_memory=True)
    assert all(np.isfinite(v).all() for v in out.values())
