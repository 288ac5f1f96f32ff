"""evaluate --merge: results files of separate runs joined case by case and re-aggregated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.evaluation.merge import MergeSource, merge_results, parse_merge_source

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results_photo.json"


@pytest.fixture(scope="module")
def photo() -> dict:
    return json.loads(RESULTS.read_text(encoding="utf-8"))


def _measured(cells: dict) -> dict:
    """Only the cells that hold a measurement (n > 0)."""
    return {(b, p, m): c for b, by_p in cells.items() for p, by_m in by_p.items() for m, c in by_m.items()
            if c.get("n")}


def test_merging_one_file_gives_back_its_cells_and_bars(photo):
    merged = merge_results([(MergeSource(RESULTS), photo)], command="merge")
    assert _measured(merged["cells"]) == _measured(photo["cells"])
    assert merged["kernel_estimation"] == photo["kernel_estimation"]
    assert [b["met"] for b in merged["bars"]] == [b["met"] for b in photo["bars"]]
    assert merged["merged_from"][0]["path"] == str(RESULTS) and merged["command"] == "merge"


def test_a_later_file_replaces_a_method_and_a_rename_makes_the_previous_row(photo):
    """Taking manet as manet_previous from a second file gives manet_previous the manet numbers;
    the first file's other methods stay."""
    second = json.loads(json.dumps(photo))
    merged = merge_results([(MergeSource(RESULTS), photo),
                            (parse_merge_source(f"{RESULTS}:manet=manet_previous"), second)], command="merge")
    cell = merged["cells"]["BSD100"]["gaussian8_n15"]
    assert cell["manet_previous"]["psnr"] == pytest.approx(photo["cells"]["BSD100"]["gaussian8_n15"]["manet"]["psnr"])
    assert cell["bicubic"] == photo["cells"]["BSD100"]["gaussian8_n15"]["bicubic"]
    assert cell["manet"] == photo["cells"]["BSD100"]["gaussian8_n15"]["manet"]
    # the report names the file the renamed rows came from, after the first file's own previous models
    assert merged["previous_models_dir"].split("; ")[-1] == str(RESULTS)


def test_sources_must_match_and_name_known_methods(photo, tmp_path):
    other = dict(photo, seed=1)
    with pytest.raises(ValueError, match="seed 1"):
        merge_results([(MergeSource(RESULTS), photo), (MergeSource(tmp_path / "b.json"), other)], command="m")
    with pytest.raises(ValueError, match="unknown method 'bogus'"):
        parse_merge_source(f"{RESULTS}:bogus")
    assert parse_merge_source(f"{RESULTS}:manet,bicubic").take == {"manet": "manet", "bicubic": "bicubic"}
    assert parse_merge_source(str(RESULTS)).take == {}
    partial = {k: v for k, v in photo.items() if k != "cases"}
    partial["cases"] = {"Set5": {"gaussian8_n15": photo["cases"]["Set5"]["gaussian8_n15"][:3]}}
    with pytest.raises(ValueError, match="3 of the 40"):
        merge_results([(parse_merge_source(f"{RESULTS}:manet"), photo), (parse_merge_source(f"{RESULTS}:bicubic"), partial)],
                      command="m")


def test_cli_merge_never_writes_over_a_source(tmp_path, capsys):
    from engine.cli import main

    src = tmp_path / "a.json"
    src.write_text(RESULTS.read_text(encoding="utf-8"), encoding="utf-8")
    before = src.read_bytes()
    rc = main(["evaluate", "--merge", str(src), "--out", str(tmp_path / "r.md"), "--json", str(src)])
    assert rc != 0 and src.read_bytes() == before
    rc = main(["evaluate", "--merge", str(src), "--out", str(tmp_path / "r.md"), "--json", str(tmp_path / "r.json")])
    assert rc == 0 and "Merged (`--merge`" in (tmp_path / "r.md").read_text(encoding="utf-8")


def test_card_metrics_name_the_report_they_come_from(photo):
    from engine.evaluation import card_metrics

    block = card_metrics(photo, "rrdb_sft", "docs/RESULTS_PHOTO.md, docs/results_photo.json")
    assert block["source"] == "kernelscope-cli evaluate (docs/RESULTS_PHOTO.md, docs/results_photo.json)"
    assert "results.json" in card_metrics(photo, "rrdb_sft")["source"]


def test_the_model_table_lists_the_cards_of_the_taken_methods_only(photo):
    """A file taken for MANet only does not bring its IKC cards: after a retrained SFTMD (a new card id),
    the report lists the new card, not the stale one the older file also names."""
    retrained = json.loads(json.dumps(photo))
    for card in retrained["models"]:
        if card["network"] == "sftmd":
            card["id"] = "sftmd_retrained_x4"
    merged = merge_results([(parse_merge_source(f"{RESULTS}:bicubic,manet"), photo),
                            (parse_merge_source(f"{RESULTS}:ikc,sftmd_oracle"), retrained)], command="merge")
    ids = {m["id"]: m["network"] for m in merged["models"]}
    assert "sftmd_retrained_x4" in ids and ids["sftmd_retrained_x4"] == "sftmd"
    assert not any(i != "sftmd_retrained_x4" and n == "sftmd" for i, n in ids.items())
    assert {"manet", "rrdb_sft", "ikc_predictor", "ikc_corrector"} <= set(ids.values())
