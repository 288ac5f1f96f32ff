"""ONNX export: parity with torch at two sizes, self-contained graphs, cards, CLI, fallback, and the
shipped artifacts in ``models/``."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from engine import export  # noqa: E402
from engine.archs import NETWORKS, build_network, count_parameters  # noqa: E402
from engine.commands import export as export_cmd  # noqa: E402
from engine.errors import ModelError  # noqa: E402
from engine.modelcards import find_cards, load_card, sha256_file  # noqa: E402
from engine.paths import models_dir  # noqa: E402

# scales chosen so that PixelShuffle(3), two PixelShuffle(2) and ConvTranspose all get exported
TINY = {"manet": 4, "rrdb_sft": 3, "sftmd": 4, "ikc_predictor": 4, "ikc_corrector": 4}
SIZES = [(1, 24, 32), (2, 40, 48)]  # (batch, height, width): multiples of 8 for MANet


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory, one_torch_thread) -> Path:
    """A models folder with seeded tiny networks, their cards and dynamo-exported graphs."""
    folder = tmp_path_factory.mktemp("models")
    for network, scale in TINY.items():
        export.init_untrained(network, "tiny", scale, seed=0, models_folder=folder)
    return folder


def _card(folder: Path, network: str):
    return load_card(folder / f"{export.card_id(network, 'tiny', TINY[network])}.json")


@pytest.mark.parametrize("network", list(NETWORKS))
def test_onnx_matches_torch_at_two_sizes(tiny_models: Path, network: str) -> None:
    card = _card(tiny_models, network)
    model = export.load_weights(card)
    for i, size in enumerate(SIZES):
        diff = export.parity(card.graph_path, model, network, "tiny", card.scale, size, torch.Generator().manual_seed(i))
        assert diff < 1e-4, f"{network} at {size}: max abs diff {diff}"


@pytest.mark.parametrize("network", list(NETWORKS))
def test_graph_is_self_contained_with_dynamic_axes(tiny_models: Path, network: str) -> None:
    card = _card(tiny_models, network)
    model = onnx.load(str(card.graph_path), load_external_data=False)
    onnx.checker.check_model(model, full_check=True)
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert {op.version for op in model.opset_import if op.domain in ("", "ai.onnx")} == {18}
    assert [i.name for i in model.graph.input] == card.input_names
    assert [o.name for o in model.graph.output] == card.output_names
    for value, spec in zip(list(model.graph.input) + list(model.graph.output), card.inputs + card.outputs):
        dims = value.type.tensor_type.shape.dim
        assert len(dims) == len(spec.shape)
        for dim, want in zip(dims, spec.shape):
            if isinstance(want, str):
                assert dim.dim_param and not dim.dim_value, f"{value.name}: axis {want} is fixed"
            else:
                assert dim.dim_value == want
    # nothing beside the graph, weights and card
    stem = card.id
    assert {p.name for p in tiny_models.glob(f"{stem}*")} == {f"{stem}.json", f"{stem}.onnx", f"{stem}.pt"}


@pytest.mark.parametrize("network", list(NETWORKS))
def test_card_describes_what_was_written(tiny_models: Path, network: str) -> None:
    card = _card(tiny_models, network)
    assert card.network == network and card.preset == "tiny" and card.scale == TINY[network]
    assert card.graph_sha256 == sha256_file(card.graph_path)
    assert card.weights_sha256 == sha256_file(card.weights_path)
    assert card.parameters == count_parameters(build_network(network, "tiny", card.scale))
    assert card.opset == 18
    assert card.extra["exporter"] == "dynamo"
    assert card.training["steps"] == 0
    assert card.pca == {"manet": None, "rrdb_sft": "pca_manet_x3.npz"}.get(network, "pca_ikc_x4.npz")
    policy = card.tiling["policy"]
    assert policy == {"manet": "exact", "rrdb_sft": "overlap_blend", "sftmd": "overlap_blend"}.get(network, "whole_image")
    if network == "manet":
        assert card.tiling["context_lr_px"] == 12 and card.tiling["multiple_of"] == 8
        assert card.outputs[0].shape == ["N", 441, "H", "W"]
    if policy == "overlap_blend":
        assert card.tiling["overlap_lr_px"] > 0


def test_weights_load_strictly_and_are_the_seeded_ones(tiny_models: Path) -> None:
    card = _card(tiny_models, "sftmd")
    state = torch.load(card.weights_path, weights_only=True)
    seeded = build_network("sftmd", "tiny", 4, generator=torch.Generator().manual_seed(0)).state_dict()
    assert state.keys() == seeded.keys()
    assert all(torch.equal(state[k], seeded[k]) for k in state)
    state["tail.bias"] = torch.zeros(4)  # wrong shape
    broken = tiny_models / "broken.pt"
    torch.save(state, broken)
    card.weights, card.weights_sha256 = broken.name, sha256_file(broken)
    with pytest.raises(ModelError, match="do not fit"):
        export.load_weights(card)


def test_cli_reexport_is_deterministic(tiny_models: Path, capsys) -> None:
    ident = export.card_id("ikc_predictor", "tiny", 4)
    before = load_card(tiny_models / f"{ident}.json")
    rc = export_cmd.main(["--card", ident, "--models-dir", str(tiny_models)])
    assert rc == 0
    after = load_card(tiny_models / f"{ident}.json")
    assert after.graph_sha256 == before.graph_sha256 == sha256_file(after.graph_path)
    assert ident in capsys.readouterr().out


def test_cli_reports_bad_requests(tiny_models: Path, capsys) -> None:
    assert export_cmd.main(["--card", "nope_tiny_x4", "--models-dir", str(tiny_models)]) == 1
    assert "no model card with id nope_tiny_x4" in capsys.readouterr().err
    assert export_cmd.main(["--init-untrained", "not-an-id", "--models-dir", str(tiny_models)]) == 2
    existing = export.card_id("manet", "tiny", 4)
    sha = sha256_file(tiny_models / f"{existing}.onnx")
    assert export_cmd.main(["--init-untrained", existing, "--models-dir", str(tiny_models)]) == 0
    assert "left alone" in capsys.readouterr().out
    assert sha256_file(tiny_models / f"{existing}.onnx") == sha
    with pytest.raises(SystemExit):
        export_cmd.main(["--all", "--card", existing])  # mutually exclusive
    assert export_cmd.parse_card_id("ikc_corrector_small_x3") == ("ikc_corrector", "small", 3)


def test_falls_back_to_torchscript_and_records_it(tiny_models: Path, tmp_path: Path, monkeypatch) -> None:
    ident = export.card_id("ikc_corrector", "tiny", 4)
    for suffix in (".json", ".pt"):
        shutil.copy(tiny_models / f"{ident}{suffix}", tmp_path / f"{ident}{suffix}")

    def broken_dynamo(*args, **kwargs):
        raise RuntimeError("simulated dynamo failure")

    monkeypatch.setattr(export, "_export_dynamo", broken_dynamo)
    card = export.export_card(load_card(tmp_path / f"{ident}.json"))
    assert card.extra["exporter"] == "torchscript"
    saved = load_card(tmp_path / f"{ident}.json")
    assert saved.extra["exporter"] == "torchscript" and saved.graph_sha256 == sha256_file(saved.graph_path)
    model = export.load_weights(saved)
    for i, size in enumerate(SIZES):
        assert export.parity(saved.graph_path, model, "ikc_corrector", "tiny", 4, size, torch.Generator().manual_seed(i)) < 1e-4


def test_failed_export_keeps_the_old_graph(tiny_models: Path, monkeypatch) -> None:
    card = _card(tiny_models, "ikc_predictor")
    sha = sha256_file(card.graph_path)

    def broken(*args, **kwargs):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(export, "_export_dynamo", broken)
    monkeypatch.setattr(export, "_export_torchscript", broken)
    with pytest.raises(ModelError, match="dynamo: RuntimeError: simulated failure; torchscript"):
        export.export_onnx(export.load_weights(card), "ikc_predictor", "tiny", 4, card.graph_path)
    assert sha256_file(card.graph_path) == sha
    assert not list(tiny_models.glob(".*.tmp"))


def test_parity_detects_a_mismatched_graph(tiny_models: Path) -> None:
    card = _card(tiny_models, "rrdb_sft")
    model = export.load_weights(card)
    with torch.no_grad():
        model.head.bias.add_(0.05)
    assert export.parity(card.graph_path, model, "rrdb_sft", "tiny", 3, SIZES[0], torch.Generator().manual_seed(0)) > 1e-3


@pytest.mark.parametrize("card_id", sorted(c.id for c in find_cards(models_dir())))
def test_shipped_artifacts_are_consistent(card_id: str) -> None:
    """Every graph in models/ matches its card and the weights the card names."""
    card = load_card(models_dir() / f"{card_id}.json")
    network, preset, scale = card.network, card.preset, card.scale
    assert card.id == export.card_id(network, preset, scale)
    assert sha256_file(card.graph_path) == card.graph_sha256
    assert sha256_file(card.weights_path) == card.weights_sha256
    assert card.opset >= 17 and card.extra.get("exporter") in ("dynamo", "torchscript")
    assert card.pca is None or (models_dir() / card.pca).name == card.pca
    model = export.load_weights(card)
    assert card.parameters == count_parameters(model)
    diff = export.parity(card.graph_path, model, network, preset, scale, (1, 16, 24), torch.Generator().manual_seed(0))
    assert diff < 1e-4
