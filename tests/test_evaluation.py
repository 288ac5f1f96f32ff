"""``kernelscope-cli evaluate`` and engine.evaluation: cells, IKC step rule, oracle-best, Markdown, cards."""

import json
import math
import shutil

import numpy as np
import pytest

from engine.cli import main
from engine.evaluation import (
    METHODS,
    EvalConfig,
    aggregate,
    card_metrics,
    choose_ikc_step,
    count_cases,
    evaluate_case,
    not_applicable,
    render_markdown,
    run_evaluation,
)


# --- synthetic per-case records ---------------------------------------------------------------
def _record(name, base, ikc_psnrs, *, kernels=False):
    """A record like evaluate_case's: every method at ``base`` dB (bicubic 2 dB lower), IKC as given."""
    rec = {
        "name": name,
        "image": name,
        "bicubic": {"psnr": base - 2.0, "ssim": 0.70},
        "manet": {"psnr": base, "ssim": 0.80},
        "manet_oracle": {"psnr": base + 0.3, "ssim": 0.81},
        "sftmd_oracle": {"psnr": base + 0.2, "ssim": 0.82},
        "ikc": {"psnr": list(ikc_psnrs), "ssim": [0.5 + 0.01 * t for t in range(len(ikc_psnrs))]},
        "seconds": {"bicubic": 0.01},
    }
    if kernels:
        rec["manet"].update(lr_psnr=base + 10.0, kernel_l1=1e-3, kernel_psnr=30.0)
    return rec


def _drop_na(records, protocol):
    """Remove the blocks a method cannot have under ``protocol`` (as evaluate_case would)."""
    out = []
    for r in records:
        r = dict(r)
        for m in METHODS:
            if not_applicable(m, protocol) is not None:
                r.pop(m, None)
        out.append(r)
    return out


def _config(benchmarks, protocols, **kw):
    return EvalConfig(benchmarks=tuple(benchmarks), protocols=tuple(protocols), **kw)


def _cases(set5_g8, set14_g8, set5_v1=None):
    cases = {"Set5": {"gaussian8": _drop_na(set5_g8, "gaussian8")}, "Set14": {"gaussian8": _drop_na(set14_g8, "gaussian8")}}
    if set5_v1 is not None:
        cases["Set5"]["variant1"] = _drop_na(set5_v1, "variant1")
    return cases


# --- the IKC step rule ------------------------------------------------------------------------
def test_auto_step_needs_set5_and_gaussian8():
    with pytest.raises(ValueError, match="Set5"):
        _config(["Set14", "BSD100"], ["gaussian8"], methods=("ikc",)).validate()
    with pytest.raises(ValueError, match="gaussian8"):
        _config(["Set5"], ["variant1"], methods=("ikc",)).validate()
    # a fixed step, or no IKC at all, needs neither
    _config(["Set14"], ["variant1"], methods=("ikc",), ikc_fixed_step=3).validate()
    _config(["Set14"], ["variant1"], methods=("bicubic",)).validate()
    with pytest.raises(ValueError, match="0 … 7"):
        _config(["Set14"], ["variant1"], methods=("ikc",), ikc_fixed_step=8).validate()
    with pytest.raises(ValueError):
        choose_ikc_step({"Set14": {"gaussian8": [_record("a", 25, [20, 21])]}})


def test_cli_refuses_auto_step_without_set5(capsys, tmp_path):
    code = main(["evaluate", "--benchmarks", "Set14", "--protocols", "gaussian8", "--methods", "ikc",
                 "--out", str(tmp_path / "R.md"), "--json", str(tmp_path / "r.json"), "--no-progress"])
    assert code == 1
    assert "Set5" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_step_is_chosen_on_set5_gaussian8_only():
    set5 = [_record("a", 26, [25.0, 26.0, 27.0, 26.5]), _record("b", 26, [24.0, 25.5, 26.2, 26.1])]
    set14 = [_record("c", 24, [23.0, 23.5, 23.6, 24.9])]  # Set14 alone would pick t = 3
    variant = [_record("d", 26, [29.0, 20.0, 20.0, 20.0])]  # Set5 variant1 alone would pick t = 0
    chosen = choose_ikc_step(_cases(set5, set14, variant))
    assert chosen["step"] == 2
    assert chosen["set5_gaussian8_psnr_per_iteration"] == pytest.approx([24.5, 25.75, 26.6, 26.3])

    # other benchmarks and protocols never move it ...
    set14_changed = [_record("c", 24, [30.0, 10.0, 10.0, 10.0])]
    assert choose_ikc_step(_cases(set5, set14_changed, [_record("d", 26, [1, 1, 1, 40])]))["step"] == 2
    # ... Set5 Gaussian8 does
    set5_changed = [_record("a", 26, [25.0, 28.0, 27.0, 26.5]), _record("b", 26, [24.0, 25.5, 26.2, 26.1])]
    assert choose_ikc_step(_cases(set5_changed, set14))["step"] == 1
    # ties go to the earliest iteration; a fixed step overrides the rule
    assert choose_ikc_step(_cases([_record("a", 26, [25.0, 26.0, 26.0])], set14))["step"] == 1
    assert choose_ikc_step(_cases(set5, set14), fixed_step=0)["step"] == 0


# --- aggregation ------------------------------------------------------------------------------
def test_aggregate_means_fixed_step_and_oracle_best():
    rng = np.random.default_rng(3)
    set5 = [_record(f"s{i}", 26 + i, rng.uniform(24, 28, 4)) for i in range(3)]
    set14 = [_record(f"t{i}", 24 + i, rng.uniform(22, 26, 4)) for i in range(2)]
    config = _config(["Set5", "Set14"], ["gaussian8"])
    results = aggregate(config, _cases(set5, set14))
    step = results["ikc_fixed_step"]["step"]
    set5_means = np.mean([r["ikc"]["psnr"] for r in set5], axis=0)
    assert step == int(np.argmax(set5_means))

    for bench, recs in (("Set5", set5), ("Set14", set14)):
        cells = results["cells"][bench]["gaussian8"]
        assert set(cells) == set(METHODS)  # every requested method has a cell
        assert "na" in cells["manet_oracle"]  # MANet-convention oracle has no Gaussian8 truth
        assert cells["bicubic"]["psnr"] == pytest.approx(np.mean([r["bicubic"]["psnr"] for r in recs]))
        ikc = cells["ikc"]
        per_iter = np.mean([r["ikc"]["psnr"] for r in recs], axis=0)
        assert ikc["psnr_per_iteration"] == pytest.approx(per_iter)
        assert ikc["fixed_step"] == step
        assert ikc["psnr"] == pytest.approx(per_iter[step])  # the same step on every benchmark
        best = np.mean([max(r["ikc"]["psnr"]) for r in recs])
        assert ikc["oracle_best_psnr"] == pytest.approx(best)
        assert ikc["oracle_best_psnr"] >= ikc["psnr"]
    assert results["kernel_estimation"]["Set5"]["gaussian8"]["na"]
    json.dumps(results)  # JSON-ready


def test_bars_read_from_measured_cells():
    config = _config(["Set5", "BSD100"], ["gaussian8", "manet9", "variant1", "variant2"])
    g8 = [_record("a", 27, [28.0, 29.8, 29.0])]
    bsd = {p: _drop_na([_record("b", 27, [26.0, 26.2, 27.0], kernels=p != "gaussian8")], p) for p in config.protocols}
    cases = {"Set5": {"gaussian8": _drop_na(g8, "gaussian8")}, "BSD100": bsd}
    results = aggregate(config, cases, complete=False)
    bars = {b["id"]: b for b in results["bars"]}
    assert results["ikc_fixed_step"]["step"] == 1
    assert bars["ikc_set5"]["measured"] == pytest.approx(29.8) and bars["ikc_set5"]["met"] is True
    assert bars["ikc_bsd100"]["measured"] == pytest.approx(26.2) and bars["ikc_bsd100"]["met"] is False
    assert bars["ikc_bsd100"]["gap_db"] == pytest.approx(0.3)
    # variant modes: MANet 27 vs bicubic 25 (+1.5 → 26.5: met), oracle 27.3 (−0.5: met), IKC 26.2 (met)
    assert bars["manet_vs_bicubic"]["met"] is True
    assert bars["manet_vs_oracle"]["met"] is True
    assert bars["manet_vs_ikc"]["met"] is True
    assert bars["lr_psnr"]["measured"] == pytest.approx(37.0) and bars["lr_psnr"]["met"] is False
    # Set5 protocols that were not run are pending, not missing, in a partial result
    assert results["cells"]["Set5"]["variant1"]["manet"] == {"pending": True}
    md = render_markdown(results)
    assert "PRELIMINARY" in md and "(not run yet)" in md
    assert "| MANet LR-PSNR ≥ 40 dB on nine-kernel BSD100 | 37.00 | 40.00 | **no** (gap 3.00 dB) |" in md
    # a bar checked on part of its benchmark says so
    sub = aggregate(_config(["Set5", "BSD100"], config.protocols, max_images={"BSD100": 1}), cases, complete=False)
    assert {b["id"]: b["subsample"] for b in sub["bars"]}["lr_psnr"] == "1/100 BSD100 images"
    assert "**no** (gap 3.00 dB) — on 1/100 BSD100 images only |" in render_markdown(sub)


def test_card_metrics_hold_each_networks_numbers():
    config = _config(["Set5"], ["gaussian8", "manet9"])
    cases = {"Set5": {"gaussian8": _drop_na([_record("a", 27, [28.0, 29.0])], "gaussian8"),
                      "manet9": _drop_na([_record("a", 25, [24.0, 24.5], kernels=True)], "manet9")}}
    results = aggregate(config, cases)
    manet = card_metrics(results, "manet")
    assert manet["manet"]["manet9"]["Set5"]["psnr_y"] == pytest.approx(25.0)
    assert manet["kernel_estimation"]["manet9"]["Set5"]["lr_psnr"] == pytest.approx(35.0)
    sftmd = card_metrics(results, "sftmd")
    assert sftmd["sftmd_oracle"]["gaussian8"]["Set5"]["psnr_y"] == pytest.approx(27.2)
    assert sftmd["ikc"]["gaussian8"]["Set5"]["fixed_step"] == 1
    assert "manet9" not in sftmd["sftmd_oracle"]  # n/a there


# --- real images ------------------------------------------------------------------------------
def test_bicubic_on_set5_gaussian8_is_plausible(shared_data):
    config = _config(["Set5"], ["gaussian8"], methods=("bicubic",), max_images={"Set5": 1})
    assert count_cases(config) == 8
    results = run_evaluation(config)
    cell = results["cells"]["Set5"]["gaussian8"]["bicubic"]
    assert cell["n"] == 8
    assert 20.0 < cell["psnr"] < 35.0 and 0.4 < cell["ssim"] < 1.0
    psnrs = [r["bicubic"]["psnr"] for r in results["cases"]["Set5"]["gaussian8"]]
    assert psnrs == sorted(psnrs, reverse=True)  # wider blur, lower PSNR
    assert results["images"]["Set5"] == {"used": 1, "total": 5}
    assert results["models"] == []


def test_scoring_check_reproduces_the_published_clean_bicubic_on_set5(shared_data):
    from engine.evaluation import STANDARD_BICUBIC_CLEAN, protocol_check

    check = protocol_check(_config(["Set5"], ["gaussian8"], methods=("bicubic",)))
    row = check["Set5"]
    assert row["images"] == 5 and row["published"] == STANDARD_BICUBIC_CLEAN[4]["Set5"] == 28.42
    assert row["bicubic_clean_psnr_y"] == pytest.approx(28.42, abs=0.02)
    md = render_markdown(dict(run_evaluation(_config(["Set5"], ["gaussian8"], methods=("bicubic",),
                                                     max_images={"Set5": 1})), protocol_check=check))
    assert "Set5 28.4" in md and "(published 28.42)" in md


def test_evaluate_case_gaussian8_oracle_and_ikc(shared_data, tiny_models_dir):
    from engine.data import TestCase, iter_test_set
    from engine.pipeline.models import load_models

    models = load_models(("sftmd", "ikc_predictor", "ikc_corrector", "manet", "rrdb_sft"), 4,
                         models_dir=tiny_models_dir, device="cpu")
    full = next(iter_test_set("Set5", "gaussian8", 4, max_images=1))
    # a 48×48 LR crop (and its HR) keeps the test fast; the kernel is spatially invariant
    case = TestCase(full.name, full.hr_rgb_f32[:192, :192], full.lr_rgb_f32[:48, :48], full.protocol, full.kernel_info)
    rec = evaluate_case(case, METHODS, models, ikc_steps=2)
    assert rec["sigma"] == pytest.approx(1.8)
    assert "manet_oracle" not in rec and "lr_psnr" not in rec["manet"]
    assert len(rec["ikc"]["psnr"]) == len(rec["ikc"]["ssim"]) == len(rec["ikc"]["kernel_l1"]) == 3
    for m in ("bicubic", "manet", "sftmd_oracle"):
        assert math.isfinite(rec[m]["psnr"]) and 0 <= rec[m]["ssim"] <= 1
    assert set(rec["seconds"]) == {"bicubic", "manet", "ikc", "sftmd_oracle"}


def test_cli_end_to_end_on_tiny_models(shared_data, tiny_models_dir, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(tiny_models_dir, models)
    out, js = tmp_path / "docs" / "RESULTS.md", tmp_path / "docs" / "results.json"
    argv = ["evaluate", "--benchmarks", "Set5", "Set14", "--protocols", "variant1", "--methods", *METHODS,
            "--ikc-steps", "2", "--ikc-fixed-step", "1", "--max-images", "1", "--device", "cpu",
            "--models-dir", str(models), "--out", str(out), "--json", str(js), "--update-cards", "--no-progress"]
    assert main(argv) == 0
    results = json.loads(js.read_text())
    assert results["complete"] is True
    for bench in ("Set5", "Set14"):
        cells = results["cells"][bench]["variant1"]
        assert set(cells) == set(METHODS)
        assert "na" in cells["sftmd_oracle"]
        for m in ("bicubic", "manet", "manet_oracle", "ikc"):
            assert math.isfinite(cells[m]["psnr"]) and cells[m]["n"] == 1
        assert len(cells["ikc"]["psnr_per_iteration"]) == 3
        assert cells["ikc"]["psnr"] == pytest.approx(cells["ikc"]["psnr_per_iteration"][1])
        (case,) = results["cases"][bench]["variant1"]
        assert len(case["ikc"]["psnr"]) == 3  # steps + 1
        assert case["mode"] == 1
        ke = results["kernel_estimation"][bench]["variant1"]
        assert math.isfinite(ke["lr_psnr"]) and ke["kernel_l1"] > 0
    assert results["ikc_fixed_step"]["step"] == 1
    assert {m["id"] for m in results["models"]} == {f"{n}_tiny_x4" for n in
                                                   ("manet", "rrdb_sft", "sftmd", "ikc_predictor", "ikc_corrector")}

    md = out.read_text()
    assert results["command"] in md
    assert results["command"].startswith("kernelscope-cli evaluate --benchmarks Set5 Set14 --protocols variant1")
    assert "--max-images 1" in results["command"]
    assert "| Mode | Method | Set5 | Set14 |" in md
    assert "| 1 | Bicubic |" in md and "IKC oracle (best of t per image, uses ground truth)" in md
    assert "Set5 1/5 (first 1 images)" in md
    assert "PRELIMINARY" not in md

    card = json.loads((models / "manet_tiny_x4.json").read_text())
    assert card["metrics"]["manet"]["variant1"]["Set5"]["psnr_y"] == pytest.approx(
        round(results["cells"]["Set5"]["variant1"]["manet"]["psnr"], 3))
    assert "lr_psnr" in card["metrics"]["kernel_estimation"]["variant1"]["Set14"]


def test_skipped_cells_are_labelled_and_never_run():
    from engine.commands.evaluate import parse_skip

    skip = parse_skip(["ikc@manet9", "manet_oracle@manet9", "ikc@variant*@Set14"])
    assert skip == {("ikc", "manet9", "*"), ("manet_oracle", "manet9", "*"), ("ikc", "variant*", "Set14")}
    for bad in (["ikc"], ["ikc@@Set5"], ["a@b@c@d"]):
        with pytest.raises(ValueError):
            parse_skip(bad)
    config = _config(["Set5"], ["gaussian8", "manet9"], skip=skip)
    config.validate()
    assert config.methods_for("manet9", "Set5") == ("bicubic", "manet")
    assert config.methods_for("gaussian8", "Set5") == ("bicubic", "manet", "ikc", "sftmd_oracle")
    assert "ikc" not in config.methods_for("variant3", "Set14") and "ikc" in config.methods_for("variant3", "Set5")
    with pytest.raises(ValueError, match="Set5 gaussian8"):
        _config(["Set5"], ["gaussian8"], skip=parse_skip(["ikc@gauss*@Set*"])).validate()
    with pytest.raises(ValueError, match="no known"):
        _config(["Set5"], ["gaussian8"], skip=parse_skip(["ikc@manet10"])).validate()
    recs = [{k: v for k, v in _record("a", 25, [24.0, 24.5], kernels=True).items() if k not in ("ikc", "manet_oracle")}]
    cases = {"Set5": {"gaussian8": _drop_na([_record("a", 27, [28.0, 29.0])], "gaussian8"),
                      "manet9": _drop_na(recs, "manet9")}}
    results = aggregate(config, cases)
    assert "skipped" in results["cells"]["Set5"]["manet9"]["ikc"]
    assert results["cells"]["Set5"]["manet9"]["manet"]["psnr"] == pytest.approx(25.0)
    md = render_markdown(results)
    assert "| RRDB-SFT oracle (true kernels) | not run |" in md
    assert "ikc@manet9@*" in md


def test_diagnosis_says_whether_the_corrector_drifts_the_kernel():
    config = _config(["Set5", "BSD100"], ["gaussian8"])

    def cases(kl1):
        recs = []
        for name, base in (("a", 27), ("b", 26)):
            r = _drop_na([_record(name, base, [28.0, 27.5, 27.0])], "gaussian8")[0]
            r["ikc"]["kernel_l1"] = list(kl1)
            recs.append(r)
        return {"Set5": {"gaussian8": recs}, "BSD100": {"gaussian8": recs}}

    drifting = render_markdown(aggregate(config, cases([3e-4, 4e-4, 5e-4])))
    assert "The corrector moves the kernel away from the truth (mean kernel L1 3.00e-04 at t = 0 and 5.00e-04 at t = 2" in drifting
    assert "PSNR-Y 28.00 → 27.00 dB" in drifting
    helping = render_markdown(aggregate(config, cases([5e-4, 4e-4, 3e-4])))
    assert "away from the truth" not in helping
    assert "The corrector moves the kernel towards the truth (mean kernel L1 5.00e-04 at t = 0" in helping


# --- photo-like protocols and the previous models (issue 15) -------------------------------------
def test_cli_photo_protocols_with_previous_models(shared_data, tiny_models_dir, tmp_path):
    """The previous models run on the same LR images as the new ones; their rows, steps and kernel rows
    reach the JSON and the Markdown; the photo-like protocols get their own tables."""
    new, previous = tmp_path / "models", tmp_path / "models_prev"
    shutil.copytree(tiny_models_dir, new)
    shutil.copytree(tiny_models_dir, previous)
    out, js = tmp_path / "RESULTS.md", tmp_path / "results.json"
    argv = ["evaluate", "--benchmarks", "Set5", "--protocols", "variant1", "variant1_n5j85",
            "--methods", "bicubic", "manet", "manet_oracle", "ikc", "--ikc-steps", "1", "--ikc-fixed-step", "1",
            "--max-images", "1", "--device", "cpu", "--models-dir", str(new), "--previous-models", str(previous),
            "--out", str(out), "--json", str(js), "--no-progress"]
    assert main(argv) == 0
    results = json.loads(js.read_text())
    assert results["methods"] == ["bicubic", "manet", "manet_oracle", "ikc", "manet_previous", "ikc_previous"]
    assert "--previous-models" in results["command"]
    for protocol in ("variant1", "variant1_n5j85"):
        cells = results["cells"]["Set5"][protocol]
        # identical networks in both folders and identical LR images: identical scores
        assert cells["manet_previous"]["psnr"] == pytest.approx(cells["manet"]["psnr"])
        assert cells["ikc_previous"]["psnr_per_iteration"] == pytest.approx(cells["ikc"]["psnr_per_iteration"])
        prev_ke = results["kernel_estimation_previous"]["Set5"][protocol]
        assert prev_ke["lr_psnr"] == pytest.approx(results["kernel_estimation"]["Set5"][protocol]["lr_psnr"])
    clean, noisy = (results["cells"]["Set5"][p]["bicubic"]["psnr"] for p in ("variant1", "variant1_n5j85"))
    assert noisy < clean  # the noise and JPEG were applied
    assert results["ikc_fixed_step_previous"]["step"] == 1
    assert {m["network"] for m in results["models_previous"]} == {"manet", "rrdb_sft", "sftmd", "ikc_predictor",
                                                                    "ikc_corrector"}
    assert {b["id"] for b in results["bars"]} >= {"noise_vs_previous", "lr_psnr_noise", "ikc_t7_set5"}
    md = out.read_text()
    assert "— with photo-like noise / JPEG" in md
    assert "| `variant1_n5j85` | noise σ 5/255 + JPEG q 85 (blur of `variant1`) |" in md
    assert "| mode 1, noise σ 5/255 + JPEG q 85 | MANet + RRDB-SFT (blind), previous models |" in md
    assert "| mode 1, noise σ 5/255 + JPEG q 85 | MANet (previous models) LR-PSNR (dB) |" in md
    assert "IKC (blind, fixed t = 1), previous models" in md
    assert str(previous) in md and "issues 4 and 15" in md


def test_previous_methods_need_a_folder_and_photo_tables_render():
    with pytest.raises(ValueError, match="--previous-models"):
        _config(["Set5"], ["gaussian8"], methods=("bicubic", "manet_previous")).validate()
    with pytest.raises(ValueError, match="unknown protocol"):
        _config(["Set5"], ["gaussian8_n7"], methods=("bicubic",)).validate()
    config = _config(["Set5", "BSD100"], ["gaussian8", "gaussian8_n15", "manet9_n15"],
                     methods=("bicubic", "manet", "manet_previous"), previous_models_dir=".")
    config.validate()
    assert count_cases(config) == (5 + 100) * (8 + 8 + 9)

    def recs(protocol, base):
        out = []
        for name in ("a", "b"):
            r = {"name": name, "image": name, "bicubic": {"psnr": base - 2.0, "ssim": 0.7},
                 "manet": {"psnr": base, "ssim": 0.8}, "manet_previous": {"psnr": base - 1.2, "ssim": 0.75}}
            if protocol == "manet9_n15":
                r["manet"].update(lr_psnr=41.0, kernel_l1=1e-3, kernel_psnr=30.0)
                r["manet_previous"].update(lr_psnr=35.0, kernel_l1=2e-3, kernel_psnr=25.0)
            out.append(r)
        return out

    cases = {b: {"gaussian8": recs("gaussian8", 27.0), "gaussian8_n15": recs("gaussian8_n15", 25.0),
                 "manet9_n15": recs("manet9_n15", 24.0)} for b in ("Set5", "BSD100")}
    results = aggregate(config, cases, models_previous=[{"id": "manet_old", "network": "manet", "preset": "small",
                                                          "parameters": 1, "training_steps": 5}])
    bars = {b["id"]: b for b in results["bars"]}
    assert bars["noise_vs_bicubic"]["met"] is True  # 25.0 vs 23.0 + 1.5
    assert bars["noise_vs_previous"]["met"] is True  # 25.0 vs 23.8 + 1.0
    assert bars["clean_manet_gaussian8"]["met"] is True
    assert bars["lr_psnr_noise"]["measured"] == pytest.approx(41.0) and bars["lr_psnr_noise"]["met"] is True
    assert bars["clean_ikc_gaussian8"]["met"] is None  # IKC not run
    assert results["kernel_estimation_previous"]["BSD100"]["manet9_n15"]["lr_psnr"] == pytest.approx(35.0)
    md = render_markdown(results)
    assert "| noise σ 15/255 | MANet + RRDB-SFT (blind) | 25.00 / 0.8000 | 25.00 / 0.8000 |" in md
    assert "| noise σ 15/255 | MANet (previous models) LR-PSNR (dB) | 35.00 | 35.00 |" in md
    assert "*noise-free* LR" in md and "`manet_old`" in md
    # the Gaussian8 photo table comes right after the clean Gaussian8 section, before the nine-kernel one
    assert md.index("Gaussian8 (IKC protocol") < md.index("`gaussian8_n15`") < md.index("`manet9_n15`")
    assert "Not met:" not in md and "Every measured bar is met." in md
    cases["BSD100"]["gaussian8_n15"] = [dict(r, manet_previous={"psnr": 24.5, "ssim": 0.7}) for r in recs("", 25.0)]
    md = render_markdown(aggregate(config, cases))
    assert "- Not met: MANet + RRDB-SFT on Gaussian8 + noise σ 15 (BSD100) ≥ the previous models + 1.0 dB" in md


def test_previous_results_are_copied_where_they_cover_the_run(shared_data, tiny_models_dir, tmp_path, capsys):
    """An earlier evaluation of the previous models fills their rows for the cells it covers (same LR
    images); only the rest is run with --previous-models, and a run it cannot complete is refused."""
    common = ["--benchmarks", "Set5", "--methods", "bicubic", "manet", "ikc", "--ikc-steps", "1",
              "--ikc-fixed-step", "1", "--max-images", "1", "--device", "cpu", "--models-dir", str(tiny_models_dir),
              "--no-progress"]
    before = tmp_path / "before.json"
    assert main(["evaluate", "--protocols", "variant1", *common, "--out", str(tmp_path / "before.md"),
                 "--json", str(before)]) == 0
    old = json.loads(before.read_text())
    old["cases"]["Set5"]["variant1"][0]["manet"]["psnr"] = 99.0  # marks a copied record
    before.write_text(json.dumps(old))

    out, js = tmp_path / "RESULTS.md", tmp_path / "results.json"
    both = ["--protocols", "variant1", "variant1_n5j85", *common, "--out", str(out), "--json", str(js)]
    assert main(["evaluate", *both, "--previous-results", str(before)]) == 1  # variant1_n5j85 is not covered
    assert "does not cover manet_previous@variant1_n5j85@Set5" in capsys.readouterr().err
    assert main(["evaluate", *both, "--previous-results", str(before), "--previous-models", str(tiny_models_dir)]) == 0
    results = json.loads(js.read_text())
    cells = results["cells"]["Set5"]
    assert cells["variant1"]["manet_previous"]["psnr"] == pytest.approx(99.0)  # copied, not run
    assert cells["variant1"]["ikc_previous"]["psnr"] == pytest.approx(old["cells"]["Set5"]["variant1"]["ikc"]["psnr"])
    assert cells["variant1_n5j85"]["manet_previous"]["psnr"] == pytest.approx(cells["variant1_n5j85"]["manet"]["psnr"])
    assert results["previous_results"]["cells"] == ["ikc_previous@variant1@Set5", "manet_previous@variant1@Set5"]
    assert "copied from the earlier evaluation" in out.read_text()
    bad = [a if a != "1" else "2" for a in both]  # --ikc-steps 2 (and --max-images 2, fixed step 2)
    assert main(["evaluate", *bad, "--previous-results", str(before), "--previous-models", str(tiny_models_dir)]) == 1
    assert "made with ikc_steps 1, this run uses 2" in capsys.readouterr().err


def test_an_unmet_ikc_step_bar_says_which_images_make_the_fall():
    """The diagnosis line of an unmet 'IKC at t = 7 ≥ t = 1 − 0.02' bar lists the images by their mean
    change from t = 1 to t = 7 (per-case records), most negative first."""
    from engine.evaluation.bars import check_bars
    from engine.evaluation.diagnosis import diagnosis, ikc_change_by_image

    def record(image, t1, t7):
        return {"image": image, "ikc": {"psnr": [t1 - 0.1, t1, t1, t1, t1, t1, t1, t7]}}

    curve = [29.9, 30.0, 30.0, 30.0, 30.0, 30.0, 30.0, 29.9]
    results = {
        "scale": 4,
        "protocols": ["gaussian8", "gaussian8_n15"],
        "cells": {"Set5": {"gaussian8": {"ikc": {"psnr_per_iteration": curve}}}},
        "cases": {"Set5": {"gaussian8": [record("calm", 30.0, 30.0), record("soft", 31.0, 30.6),
                                         record("soft", 31.0, 30.8), record("busy", 29.0, 29.05)]}},
    }
    assert ikc_change_by_image(results, "Set5", 1, 7) == (
        " Mean PSNR-Y change t = 1 → 7 per image (over its kernels), most negative first: "
        "soft -0.300, calm +0.000, busy +0.050 dB.")
    assert "the 1 most negative of 3: soft -0.300 dB; together 120% of the set's total change" in \
        ikc_change_by_image(results, "Set5", 1, 7, worst=1)
    assert ikc_change_by_image(results, "BSD100", 1, 7) == ""
    results["bars"] = check_bars(results)
    line = next(x for x in diagnosis(results) if x.startswith("- Not met: IKC at t = 7"))
    assert line.endswith("soft -0.300, calm +0.000, busy +0.050 dB.")
