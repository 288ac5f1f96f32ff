"""Model cards: loading, saving, finding, and checking the files they name."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import pytest

from engine.errors import ModelError
from engine.modelcards import (
    ModelCard,
    TensorSpec,
    find_card,
    find_cards,
    load_card,
    save_card,
    sha256_file,
    verify,
    verify_weights,
)


def card_json(**overrides) -> dict:
    """A valid card as JSON, with some fields replaced."""
    data = {
        "schema": 1,
        "id": "manet_small_x4",
        "network": "manet",
        "preset": "small",
        "scale": 4,
        "graph": "manet_small_x4.onnx",
        "graph_sha256": "0" * 64,
        "weights": "manet_small_x4.pt",
        "weights_sha256": "1" * 64,
        "pca": None,
        "parameters": 123456,
        "opset": 18,
        "inputs": [
            {"name": "lr_rgb", "shape": ["N", 3, "H", "W"], "dtype": "float32", "range": [0, 1], "layout": "NCHW, RGB"}
        ],
        "outputs": [
            {"name": "kernels", "shape": ["N", 441, "H", "W"], "dtype": "float32", "range": [0, 1], "layout": "NCHW"}
        ],
        "tiling": {"policy": "exact", "context_lr_px": 12, "multiple_of": 8},
        "training": {"steps": 0, "note": "untrained initialisation (seed 0)"},
        "metrics": {},
    }
    data.update(overrides)
    return data


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_load_card_reads_every_field(tmp_path):
    path = write_json(tmp_path / "manet_small_x4.json", card_json(pca="pca_manet_x4.npz"))
    card = load_card(path)
    assert card.id == "manet_small_x4" and card.network == "manet" and card.scale == 4
    assert card.inputs == [TensorSpec("lr_rgb", ["N", 3, "H", "W"], "float32", [0.0, 1.0], "NCHW, RGB")]
    assert card.output_names == ["kernels"]
    assert card.tiling["context_lr_px"] == 12
    # file names resolve against the card's folder, not the working directory
    assert card.graph_path == tmp_path.resolve() / "manet_small_x4.onnx"
    assert card.weights_path == tmp_path.resolve() / "manet_small_x4.pt"
    assert card.pca_path == tmp_path.resolve() / "pca_manet_x4.npz"


def test_save_then_load_round_trips_and_keeps_unknown_keys(tmp_path):
    original = load_card(write_json(tmp_path / "a.json", card_json(future_field={"x": 1})))
    original.metrics["lr_psnr_db"] = 41.5
    out = save_card(original, tmp_path / "sub" / "b.json")
    again = load_card(out)
    assert again == original  # path is excluded from comparison
    assert json.loads(out.read_text())["future_field"] == {"x": 1}
    # atomic write: no temporary files left behind
    assert sorted(p.name for p in out.parent.iterdir()) == ["b.json"]


def test_save_card_replaces_existing_file(tmp_path):
    path = write_json(tmp_path / "c.json", card_json())
    card = load_card(path)
    card.training = {"steps": 500}
    save_card(card)  # defaults to the card's own path
    assert load_card(path).training == {"steps": 500}


def test_missing_card_names_the_file(tmp_path):
    with pytest.raises(ModelError, match="nope.json"):
        load_card(tmp_path / "nope.json")


def test_invalid_json_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"schema": 1, "id": ', encoding="utf-8")
    with pytest.raises(ModelError, match=r"broken\.json.*not valid JSON"):
        load_card(path)


@pytest.mark.parametrize("field", ["id", "network", "graph", "graph_sha256", "inputs", "scale"])
def test_missing_field_is_named(tmp_path, field):
    data = card_json()
    del data[field]
    path = write_json(tmp_path / "card.json", data)
    with pytest.raises(ModelError) as info:
        load_card(path)
    assert "card.json" in str(info.value) and field in str(info.value)


def test_unknown_network_and_schema_are_rejected(tmp_path):
    with pytest.raises(ModelError, match="unknown network 'esrgan'"):
        load_card(write_json(tmp_path / "n.json", card_json(network="esrgan")))
    with pytest.raises(ModelError, match="schema 2"):
        load_card(write_json(tmp_path / "s.json", card_json(schema=2)))
    with pytest.raises(ModelError, match="shape"):
        load_card(write_json(tmp_path / "t.json", card_json(inputs=[{"name": "x", "shape": "NCHW"}])))


def test_find_cards_skips_pca_cards_and_other_json(tmp_path, caplog):
    write_json(tmp_path / "manet_small_x4.json", card_json())
    write_json(tmp_path / "rrdb_sft_small_x4.json", card_json(id="rrdb_sft_small_x4", network="rrdb_sft"))
    write_json(tmp_path / "pca_manet_x4.json", {"kind": "pca", "network": "manet", "file": "pca_manet_x4.npz"})
    write_json(tmp_path / "settings.json", {"theme": "dark"})
    (tmp_path / "garbage.json").write_text("not json", encoding="utf-8")
    write_json(tmp_path / "half.json", {"network": "manet", "id": "half"})  # a card missing fields
    with caplog.at_level(logging.WARNING, logger="engine.modelcards"):
        cards = find_cards(tmp_path)
    assert [c.id for c in cards] == ["manet_small_x4", "rrdb_sft_small_x4"]
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "garbage.json" in warned and "half.json" in warned


def test_find_cards_on_missing_folder_is_empty(tmp_path):
    assert find_cards(tmp_path / "absent") == []


def test_find_card_picks_by_network_scale_and_preset(tmp_path):
    write_json(tmp_path / "m4s.json", card_json(id="manet_small_x4", graph="m4s.onnx"))
    write_json(tmp_path / "m2s.json", card_json(id="manet_small_x2", scale=2, graph="m2s.onnx"))
    write_json(tmp_path / "m4p.json", card_json(id="manet_paper_x4", preset="paper", graph="m4p.onnx"))
    assert find_card("manet", 2, models_dir=tmp_path).id == "manet_small_x2"
    assert find_card("manet", 4, "paper", models_dir=tmp_path).id == "manet_paper_x4"
    assert find_card("manet", 4, "small", models_dir=tmp_path).id == "manet_small_x4"
    # no preset: the card whose graph file exists wins
    (tmp_path / "m4s.onnx").write_bytes(b"graph")
    assert find_card("manet", 4, models_dir=tmp_path).id == "manet_small_x4"
    # with both graphs present, the more trained model wins
    (tmp_path / "m4p.onnx").write_bytes(b"graph")
    card = load_card(tmp_path / "m4p.json")
    card.training = {"steps": 1000}
    save_card(card)
    assert find_card("manet", 4, models_dir=tmp_path).id == "manet_paper_x4"


def test_find_card_without_match_lists_what_exists(tmp_path):
    write_json(tmp_path / "m.json", card_json())
    with pytest.raises(ModelError) as info:
        find_card("sftmd", 4, models_dir=tmp_path)
    msg = str(info.value)
    assert "sftmd" in msg and "manet_small_x4" in msg


def test_sha256_file_matches_hashlib_across_chunks(tmp_path):
    data = os.urandom(3 * (1 << 20) + 17)  # spans several 1 MiB chunks
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def _card_with_graph(tmp_path: Path, content: bytes) -> ModelCard:
    (tmp_path / "g.onnx").write_bytes(content)
    path = write_json(
        tmp_path / "g.json",
        card_json(id="g_card", graph="g.onnx", graph_sha256=hashlib.sha256(content).hexdigest()),
    )
    return load_card(path)


def test_verify_accepts_matching_graph(tmp_path):
    verify(_card_with_graph(tmp_path, b"some graph bytes"))


def test_verify_missing_graph_says_how_to_regenerate(tmp_path):
    card = _card_with_graph(tmp_path, b"x")
    card.graph_path.unlink()
    with pytest.raises(ModelError) as info:
        verify(card)
    msg = str(info.value)
    assert str(card.graph_path) in msg and "missing" in msg
    assert "kernelscope-cli export --card g_card" in msg


def test_verify_detects_changed_graph(tmp_path):
    card = _card_with_graph(tmp_path, b"original bytes")
    verify(card)  # fills the hash cache
    card.graph_path.write_bytes(b"tampered bytes")  # same size: the cache must still notice
    st = card.graph_path.stat()
    os.utime(card.graph_path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with pytest.raises(ModelError) as info:
        verify(card)
    msg = str(info.value)
    assert "does not match its model card" in msg and str(card.graph_path) in msg
    assert hashlib.sha256(b"tampered bytes").hexdigest()[:12] in msg
    assert "kernelscope-cli export --card g_card" in msg


def test_verify_weights(tmp_path):
    card = _card_with_graph(tmp_path, b"g")
    with pytest.raises(ModelError, match="missing"):
        verify_weights(card)
    card.weights_path.write_bytes(b"w")
    with pytest.raises(ModelError, match="does not match"):
        verify_weights(card)
    card.weights_sha256 = hashlib.sha256(b"w").hexdigest()
    verify_weights(card)


def test_shipped_cards_are_valid_and_match_their_files():
    """Every network card in models/ loads and its graph and weights match their sha256."""
    cards = find_cards()
    if not cards:
        pytest.skip("no model cards shipped yet")
    for card in cards:
        verify(card)
        if card.weights:
            verify_weights(card)
        if card.pca:
            assert card.pca_path.is_file(), f"{card.id}: PCA basis {card.pca_path} missing"
