"""Training framework: stages, exact resume, logs and curve, configs, codec, batches, shipping.

Everything runs tiny presets on 32-px patches for 2–4 steps with a pool of 3 images and 1-image
validation, so the whole file stays within a few tens of seconds on one core.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from engine import degradation as deg
from engine.archs import build_network
from engine.data import TrainPool, train_paths
from engine.degradation.kernels import kernel_centroid
from engine.modelcards import ModelCard, load_card, save_card, sha256_file
from engine.paths import models_dir
from engine.training.batches import Augment, IkcBatchMaker, ManetBatchMaker, MixedBatchMaker, make_batch_maker
from engine.training.codes import codec_from_projector, load_codec
from engine.training.config import ConfigError, TrainConfig, config_from_dict, load_yaml_config
from engine.training.noise_level import noise_condition
from engine.training.plot import plot_curves
from engine.training.ship import ship
from engine.training.trainer import CKPT_NAME, CURVE_NAME, LOG_NAME, train

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def models_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder with the shipped PCA bases and tiny frozen networks (manet, sftmd, predictor)."""
    from engine.export import tensor_specs

    folder = tmp_path_factory.mktemp("models")
    for name in ("pca_manet_x4.npz", "pca_ikc_x4.npz"):
        shutil.copy(models_dir() / name, folder / name)
    for i, network in enumerate(("manet", "sftmd", "ikc_predictor")):
        model = build_network(network, "tiny", 4, generator=torch.Generator().manual_seed(100 + i))
        weights = folder / f"{network}_tiny_x4.pt"
        torch.save(model.state_dict(), weights)
        inputs, outputs = tensor_specs(network, "tiny", 4)
        card = ModelCard(id=f"{network}_tiny_x4", network=network, preset="tiny", scale=4,
                         graph=f"{network}_tiny_x4.onnx", graph_sha256="", inputs=inputs, outputs=outputs,
                         weights=weights.name, weights_sha256=sha256_file(weights))
        save_card(card, folder / f"{card.id}.json")
    return folder


def tiny_config(tmp_path: Path, models: Path, **kw) -> TrainConfig:
    base = dict(name="t", stage="manet", preset="tiny", scale=4, steps=2, batch_size=2, patch_size=32,
                max_images=3, val_images=1, val_every=0, log_every=1, ckpt_every=1, threads=1,
                progress_bar=False, runs_dir=str(tmp_path / "runs"), models_dir=str(models), device="cpu")
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize(
    "stage", ["manet", "rrdb_sft", "rrdb_sft_blind", "sftmd", "ikc_predictor", "ikc_corrector"]
)
def test_every_stage_trains_with_finite_loss_and_changes_weights(stage, tmp_path, models_tmp):
    cfg = tiny_config(tmp_path, models_tmp, stage=stage, name=f"s_{stage}")
    result = train(cfg)
    assert result.step == 2
    assert math.isfinite(result.loss) and result.loss > 0
    assert result.val is not None and math.isfinite(result.val)
    network = {"rrdb_sft_blind": "rrdb_sft"}.get(stage, stage)
    initial = build_network(network, "tiny", 4, generator=torch.Generator().manual_seed(cfg.seed)).state_dict()
    changed = [k for k, v in result.state.items() if not torch.equal(v, initial[k])]
    assert changed, "two optimiser steps left every weight unchanged"


def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(tmp_path, models_tmp):
    common = dict(stage="manet", milestones=[3], seed=5)
    straight = train(tiny_config(tmp_path, models_tmp, name="straight", steps=4, **common))
    first = tiny_config(tmp_path, models_tmp, name="split", steps=2, **common)
    train(first)
    assert (tmp_path / "runs" / "split" / CKPT_NAME).is_file()
    with pytest.raises(FileExistsError):
        train(first)  # a checkpoint exists: must ask for --resume
    resumed = train(tiny_config(tmp_path, models_tmp, name="split", steps=4, **common), resume=True)
    assert resumed.step == 4
    for key, value in straight.state.items():
        assert torch.equal(value, resumed.state[key]), key
    rows = (tmp_path / "runs" / "split" / LOG_NAME).read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]


def test_a_run_resumed_only_to_ship_keeps_the_device_its_steps_ran_on(tmp_path, models_tmp):
    # A GPU burst is shipped on a CPU machine: the result (and so the card) must name the GPU, and a
    # resumed session that does take steps adds its own device.
    cfg = tiny_config(tmp_path, models_tmp, name="moved", steps=2, stage="manet")
    train(cfg)
    ckpt_path = tmp_path / "runs" / "moved" / CKPT_NAME
    ckpt = torch.load(ckpt_path, weights_only=False)
    assert ckpt["devices"] == [ckpt["device"]]
    ckpt["devices"] = ["cuda (NVIDIA H200)"]
    torch.save(ckpt, ckpt_path)
    shipped_only = train(tiny_config(tmp_path, models_tmp, name="moved", steps=2, stage="manet"), resume=True)
    assert shipped_only.device == "cuda (NVIDIA H200)"
    more = train(tiny_config(tmp_path, models_tmp, name="moved", steps=3, stage="manet"), resume=True)
    assert more.device.startswith("cuda (NVIDIA H200); cpu")


def test_csv_log_and_curve_png_are_written(tmp_path, models_tmp):
    cfg = tiny_config(tmp_path, models_tmp, name="logs", steps=3, val_every=2, stage="ikc_predictor")
    train(cfg)
    run = tmp_path / "runs" / "logs"
    lines = (run / LOG_NAME).read_text().strip().splitlines()
    assert lines[0] == "step,loss,lr,seconds,val_code_mse"
    rows = [line.split(",") for line in lines[1:]]
    assert [int(r[0]) for r in rows] == [1, 2, 3]
    assert all(float(r[1]) > 0 for r in rows)
    assert [bool(r[4]) for r in rows] == [False, True, True]  # validated at step 2 and at the end
    assert float(rows[-1][3]) >= float(rows[0][3])
    img = cv2.imread(str(run / CURVE_NAME))
    assert img is not None and img.shape == (420, 1000, 3)
    assert (run / "weights.pt").is_file()


def test_plot_draws_both_curves(tmp_path):
    path = plot_curves(tmp_path / "c.png", [1, 2, 3, 4], [1.0, 0.5, 0.3, 0.2], [2, 4], [20.0, 22.0])
    img = cv2.imread(str(path))
    loss_colour = np.all(img == (200, 90, 20), axis=2)
    val_colour = np.all(img == (30, 30, 200), axis=2)
    assert loss_colour[:, :500].sum() > 20 and loss_colour[:, 500:].sum() == 0
    assert val_colour[:, 500:].sum() > 20 and val_colour[:, :500].sum() == 0


def test_yaml_config_parses_into_the_dataclass(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\nstage: sftmd\nbatch_size: 8\npatch_size: 80\nmilestones: [10, 20]\nlr: 1e-4\n")
    cfg = load_yaml_config(path, {"steps": 30})
    assert (cfg.name, cfg.stage, cfg.batch_size, cfg.patch_size, cfg.steps) == ("x", "sftmd", 8, 80, 30)
    assert cfg.milestones == [10, 20] and cfg.lr == pytest.approx(1e-4)
    assert cfg.resolved_milestones() == [10, 20]
    assert TrainConfig(steps=100).resolved_milestones() == [50, 75, 90]


def test_config_rejects_unknown_keys_and_bad_values(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("stage: manet\nbatch_sise: 8\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) 'batch_sise' \(did you mean 'batch_size'\?\)"):
        load_yaml_config(path)
    with pytest.raises(ConfigError, match="expects an integer"):
        config_from_dict({"steps": "many"})
    with pytest.raises(ConfigError, match="unknown stage"):
        config_from_dict({"stage": "gan"})
    with pytest.raises(ConfigError, match="not a multiple of the scale"):
        config_from_dict({"patch_size": 30, "scale": 4})


def test_checked_in_configs_parse():
    folder = Path(__file__).resolve().parent.parent / "configs"
    files = sorted(folder.glob("*.yaml"))
    assert files
    for path in files:
        assert load_yaml_config(path).name == path.stem


def test_cli_reports_a_bad_config_with_exit_code_2(tmp_path, capsys):
    from engine.training.__main__ import main

    path = tmp_path / "bad.yaml"
    path.write_text("stage: manet\nwarmup: 3\n")
    assert main(["--config", str(path)]) == 2
    assert "unknown key(s) 'warmup'" in capsys.readouterr().err


def test_codec_matches_the_shipped_pca_projection():
    from engine.pca import KernelPCA

    pca = KernelPCA.load(models_dir() / "pca_manet_x4.npz")
    codec = load_codec(models_dir() / "pca_manet_x4.npz")
    rng = np.random.default_rng(3)
    v1, v2, th = deg.sample_anisotropic_params(rng, 4, 6)
    kernels = deg.anisotropic_gaussian_kernels(v1, v2, th, 4).reshape(6, -1)
    expect = pca.project(kernels)
    got = codec.project(torch.from_numpy(kernels)).numpy()
    np.testing.assert_allclose(got, expect, atol=1e-5)
    kmap = torch.from_numpy(kernels.T.reshape(1, 441, 2, 3).copy())
    np.testing.assert_allclose(codec.project_map(kmap)[0].reshape(codec.code_len, 6).T.numpy(), expect, atol=1e-5)


def test_codec_refuses_a_non_affine_projector():
    with pytest.raises(ValueError, match="not affine"):
        codec_from_projector(lambda k: np.square(k[:, :3]))


def test_batch_makers_follow_the_degradation_protocols():
    pool = TrainPool(train_paths(["t91"]), max_images=3, min_size=48)
    maker = ManetBatchMaker(pool, 2, 48, 4, with_hr=True)
    a = maker(np.random.default_rng(9))
    b = maker(np.random.default_rng(9))
    assert a["lr"].shape == (2, 3, 12, 12) and a["hr"].shape == (2, 3, 48, 48) and a["kernel"].shape == (2, 441)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    np.testing.assert_allclose(a["kernel"].sum(axis=1), 1.0, atol=1e-5)
    hr = a["hr"][0].transpose(1, 2, 0)
    expect = deg.degrade_manet(hr, a["kernel"][0].reshape(21, 21), 4, None)
    np.testing.assert_allclose(a["lr"][0].transpose(1, 2, 0), expect, atol=1e-6)
    assert np.allclose(a["lr"] * 255, np.round(a["lr"] * 255), atol=1e-3)  # 8-bit levels

    ikc = IkcBatchMaker(pool, 2, 48, 4, with_hr=True, code_len=10)(np.random.default_rng(1))
    hr = ikc["hr"][1].transpose(1, 2, 0)
    expect = deg.degrade_ikc(hr, ikc["kernel"][1].reshape(21, 21), 4, None)
    np.testing.assert_allclose(ikc["lr"][1].transpose(1, 2, 0), expect, atol=1e-6)
    assert ikc["code_noise"].shape == (2, 10) and ikc["use_predictor"].shape == (2,) and ikc["unroll_u"].shape == (2,)


def test_mixed_batches_make_each_patch_one_way_or_the_other(tmp_path, models_tmp):
    """The blind RRDB-SFT stage's mixed batches: each patch is a MANet-convention patch (blur + direct
    subsampling with its MANet-centred kernel) or an IKC-convention one (centred isotropic kernel,
    blur + bicubic ↓), both kinds occur, and share 0 keeps the MANet maker and its exact stream."""
    pool = TrainPool(train_paths(["t91"]), max_images=3, min_size=48)
    maker = MixedBatchMaker(pool, 16, 48, 4, with_hr=True, ikc_share=0.5)
    batch = maker(np.random.default_rng(3))
    kinds = []
    for i in range(16):
        hr, kernel = batch["hr"][i].transpose(1, 2, 0), batch["kernel"][i].reshape(21, 21)
        row, col = kernel_centroid(kernel)
        ikc_way = abs(float(row) - 10.0) < 0.05 and abs(float(col) - 10.0) < 0.05
        expect = (deg.degrade_ikc if ikc_way else deg.degrade_manet)(hr, kernel, 4, None)
        np.testing.assert_allclose(batch["lr"][i].transpose(1, 2, 0), expect, atol=1e-6)
        kinds.append(ikc_way)
    assert 3 <= sum(kinds) <= 13

    cfg = tiny_config(tmp_path, models_tmp, stage="rrdb_sft_blind")
    plain = make_batch_maker(cfg, "manet", pool, 4, with_hr=True, code_len=None)
    assert type(plain) is ManetBatchMaker
    reference = ManetBatchMaker(pool, 4, 32, 4, with_hr=True)(np.random.default_rng(5))
    for key, value in plain(np.random.default_rng(5)).items():
        np.testing.assert_array_equal(value, reference[key])
    cfg.ikc_convention_share = 0.25
    mixed = make_batch_maker(cfg, "manet", pool, 4, with_hr=True, code_len=None)
    assert isinstance(mixed, MixedBatchMaker) and mixed.ikc_share == 0.25


def test_ikc_convention_share_is_for_the_blind_rrdb_sft_stage_only(tmp_path, models_tmp):
    with pytest.raises(ConfigError, match="rrdb_sft_blind"):
        tiny_config(tmp_path, models_tmp, stage="manet", ikc_convention_share=0.5)
    with pytest.raises(ConfigError, match="share in"):
        tiny_config(tmp_path, models_tmp, stage="rrdb_sft_blind", ikc_convention_share=1.5)
    from engine.training.ship import _degradation_words

    cfg = tiny_config(tmp_path, models_tmp, stage="rrdb_sft_blind", ikc_convention_share=0.5)
    assert _degradation_words(cfg, "manet") == ("50% of patches MANet anisotropic Gaussian, blur + direct "
                                                "subsampling, 8-bit; 50% IKC isotropic Gaussian, blur + MATLAB bicubic, 8-bit")
    cfg.ikc_convention_share = 0.0
    assert _degradation_words(cfg, "manet") == "MANet anisotropic Gaussian, blur + direct subsampling, 8-bit"


def test_augment_draws_noise_and_jpeg_only_when_asked():
    rng = np.random.default_rng(0)
    off = [Augment().draw(rng) for _ in range(50)]
    assert all(n == 0.0 and q is None and pc for n, q, pc in off)
    on = [Augment(noise_prob=1.0, jpeg_prob=1.0).draw(rng) for _ in range(200)]
    assert all(0 <= n <= 15 and 70 <= q <= 100 for n, q, _ in on)
    assert len({q for _, q, _ in on}) > 5
    # both channel modes occur, about half each at the default probability
    assert 60 < sum(pc for _, _, pc in on) < 140


def test_ship_updates_weights_graph_and_card(tmp_path, models_tmp, monkeypatch):
    import functools

    import engine.export
    import engine.training.ship
    from engine.cli import main

    # the TorchScript exporter is much faster than dynamo on a busy CPU; shipping logic is the same
    monkeypatch.setattr(engine.training.ship, "export_card",
                        functools.partial(engine.export.export_card, exporter="torchscript"))
    folder = tmp_path / "models"
    shutil.copytree(models_tmp, folder)
    card_path = folder / "ikc_predictor_tiny_x4.json"
    before = load_card(card_path)
    before.training = {"steps": 7, "wall_time_s": 10.0, "runs": [{"run": "earlier"}], "note": "earlier note"}
    save_card(before, card_path)
    cfg = tiny_config(tmp_path, folder, name="ship", stage="ikc_predictor", steps=2, init_from_models=True)
    result = train(cfg, command="test ship")
    assert result.base_steps == 7 and ship(cfg, result) == card_path
    card = load_card(card_path)
    assert card.training["steps"] == 9  # the card's count keeps adding up
    assert [r["run"] for r in card.training["runs"]] == ["earlier", "ship"]
    assert card.training["command"] == "test ship" and card.training["wall_time_s"] >= 10.0
    assert card.training["validation"]["metric"] == "code_mse"
    assert card.training["validation"]["value"] == pytest.approx(result.val, rel=1e-4)
    assert card.weights_sha256 == sha256_file(card.weights_path)
    assert card.graph_path.is_file() and card.graph_sha256 == sha256_file(card.graph_path)
    state = torch.load(card.weights_path, weights_only=True)
    assert all(torch.equal(state[k], v) for k, v in result.state.items())
    assert card.training["note"] == "earlier note"  # a continued card keeps its note without --note
    # the command line ships with --ship: the same tiny run, as flags
    flags = ["--name", "ship2", "--stage", "ikc_predictor", "--preset", "tiny", "--scale", "4", "--steps", "1",
             "--batch-size", "2", "--patch-size", "32", "--max-images", "3", "--val-images", "1", "--val-every", "0",
             "--threads", "1", "--device", "cpu", "--no-progress-bar", "--runs-dir", str(tmp_path / "runs"),
             "--models-dir", str(folder), "--init-from-models", "--ship", "--note", "second run: lr 1e-3"]
    assert main(["train", *flags]) == 0
    card = load_card(card_path)
    assert card.training["steps"] == 10 and card.training["note"] == "second run: lr 1e-3"
    assert card.training["runs"][-1]["note"] == "second run: lr 1e-3"


def test_resume_takes_a_new_lr_and_schedule_from_the_config(tmp_path, models_tmp):
    common = dict(stage="manet", kernel_loss="l2", log_every=1)
    first = train(tiny_config(tmp_path, models_tmp, name="relr", steps=2, lr=1e-4, milestones=[10], **common))
    assert math.isfinite(first.loss)
    train(tiny_config(tmp_path, models_tmp, name="relr", steps=3, lr=4e-4, milestones=[3], **common), resume=True)
    ckpt = torch.load(tmp_path / "runs" / "relr" / CKPT_NAME, weights_only=False)
    group = ckpt["optimizer"]["param_groups"][0]
    assert group["initial_lr"] == pytest.approx(4e-4)
    assert group["lr"] == pytest.approx(2e-4)  # halved at the new milestone, step 3
    rows = (tmp_path / "runs" / "relr" / LOG_NAME).read_text().strip().splitlines()
    assert [r.split(",")[2] for r in rows[1:]] == ["0.0001", "0.0001", "0.0002"]
    with pytest.raises(ConfigError, match="kernel_loss"):
        config_from_dict({"kernel_loss": "huber"})


def test_worker_processes_feed_batches(tmp_path, models_tmp):
    result = train(tiny_config(tmp_path, models_tmp, name="workers", stage="ikc_predictor", workers=1))
    assert result.step == 2 and math.isfinite(result.loss)


@pytest.mark.parametrize("unroll_step", ["full", "harmonic"])
def test_corrector_unroll_applies_its_own_steps_per_patch(tmp_path, models_tmp, unroll_step):
    """With ``corrector_unroll`` the trained step starts from the corrector's own iterates (depth per
    patch), every code moved to its nearest isotropic-Gaussian code as ``run_ikc`` does; with the
    ``harmonic`` step schedule the k-th of them moves the code by 1/k of the corrector's change."""
    from engine.pca import KernelPCA
    from engine.pipeline.ikc import IsotropicCodeCurve
    from engine.training.stage_table import get_stage
    from engine.training.stages import _corrector_inputs, build_context, unroll_depths

    ctx = build_context(get_stage("ikc_corrector"), "tiny", 4, torch.device("cpu"), models_tmp, corrector_unroll=2,
                        corrector_unroll_step=unroll_step)
    random_corrector = build_network("ikc_corrector", "tiny", 4, generator=torch.Generator().manual_seed(5)).eval()

    def corrector(sr, code):  # a random net's steps, shrunk to trained size: their targets keep clear nearest codes
        return 0.05 * random_corrector(sr, code)

    gen = torch.Generator().manual_seed(0)
    kernels = np.stack([deg.isotropic_gaussian_kernel(s).reshape(-1) for s in (1.5, 3.0, 2.2)])
    batch = {
        "lr": torch.rand((3, 3, 8, 8), generator=gen),
        "kernel": torch.as_tensor(kernels, dtype=torch.float32),
        "code_noise": torch.randn((3, 10), generator=gen),
        "use_predictor": torch.tensor([0.2, 0.9, 0.4]),
        "unroll_u": torch.tensor([0.1, 0.5, 0.99]),  # depths 0, 1, 2
    }
    assert unroll_depths(ctx, batch).tolist() == [0, 1, 2]
    sr, current, true = _corrector_inputs(ctx, batch, corrector)

    start_sr, start, true0 = _corrector_inputs(ctx, batch)  # no corrector: the starting point
    torch.testing.assert_close(true, true0)
    curve = IsotropicCodeCurve.for_basis(KernelPCA.load(models_tmp / "pca_ikc_x4.npz"), 4)
    for code in start:  # the starting codes lie on the curve
        torch.testing.assert_close(code, torch.as_tensor(curve.nearest(code.numpy())[0]))
    sftmd = ctx.frozen["sftmd"]
    with torch.no_grad():
        for i, depth in enumerate((0, 1, 2)):
            lr, h = batch["lr"][i:i + 1], start[i:i + 1]
            s = sftmd(lr, h, noise_condition(lr)).clamp(0.0, 1.0)
            for k in range(1, depth + 1):
                weight = 1.0 / k if unroll_step == "harmonic" else 1.0
                h = torch.as_tensor(curve.nearest((h + weight * corrector(s, h))[0].numpy())[0])[None]
                s = sftmd(lr, h, noise_condition(lr)).clamp(0.0, 1.0)
            torch.testing.assert_close(current[i:i + 1], h, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(sr[i:i + 1], s, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(current[0], start[0])  # depth 0 is untouched
    assert not torch.allclose(current[2], start[2])  # two steps of a random corrector move the code

    off = build_context(get_stage("ikc_corrector"), "tiny", 4, torch.device("cpu"), models_tmp)
    assert unroll_depths(off, batch).tolist() == [0, 0, 0]
    with pytest.raises(ConfigError, match="corrector_unroll"):
        tiny_config(tmp_path, models_tmp, stage="ikc_corrector", corrector_unroll=-1)
    with pytest.raises(ConfigError, match="corrector_unroll_step"):
        tiny_config(tmp_path, models_tmp, stage="ikc_corrector", corrector_unroll=2, corrector_unroll_step="half")
    result = train(tiny_config(tmp_path, models_tmp, stage="ikc_corrector", name="unroll", corrector_unroll=3,
                               corrector_unroll_step=unroll_step))
    assert result.step == 2 and math.isfinite(result.loss)


def test_corrector_image_loss_adds_the_sr_error_of_the_corrected_code(tmp_path, models_tmp):
    """``corrector_image_loss`` λ: loss = code L2 + λ · L1(SFTMD(LR, current + Δ), HR), with gradients
    reaching the corrector through the frozen SFTMD; batches then carry the HR patch."""
    import torch.nn.functional as F

    from engine.training.stage_table import get_stage
    from engine.training.stages import _corrector_inputs, build_context, compute_loss

    lam = 0.5
    ctx = build_context(get_stage("ikc_corrector"), "tiny", 4, torch.device("cpu"), models_tmp, corrector_image_loss=lam)
    plain = build_context(get_stage("ikc_corrector"), "tiny", 4, torch.device("cpu"), models_tmp)
    corrector = build_network("ikc_corrector", "tiny", 4, generator=torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(1)
    kernels = np.stack([deg.isotropic_gaussian_kernel(s).reshape(-1) for s in (1.5, 3.0)])
    batch = {
        "lr": torch.rand((2, 3, 8, 8), generator=gen),
        "hr": torch.rand((2, 3, 32, 32), generator=gen),
        "kernel": torch.as_tensor(kernels, dtype=torch.float32),
        "code_noise": torch.randn((2, 10), generator=gen),
        "use_predictor": torch.tensor([0.9, 0.9]),
    }
    code_only = compute_loss(corrector, batch, plain)
    both = compute_loss(corrector, batch, ctx)
    sr, current, _ = _corrector_inputs(ctx, batch, corrector)
    with torch.no_grad():
        expect = F.l1_loss(ctx.frozen["sftmd"](batch["lr"], current + corrector(sr, current), noise_condition(batch["lr"])), batch["hr"])
    torch.testing.assert_close(both - code_only, lam * expect, atol=1e-5, rtol=1e-4)
    corrector.zero_grad()
    (both - code_only).backward()  # the image term alone moves the corrector's weights
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in corrector.parameters())

    with pytest.raises(ConfigError, match="corrector_image_loss"):
        tiny_config(tmp_path, models_tmp, stage="ikc_corrector", corrector_image_loss=-1.0)
    result = train(tiny_config(tmp_path, models_tmp, stage="ikc_corrector", name="imgloss", corrector_image_loss=lam))
    assert result.step == 2 and math.isfinite(result.loss)


def test_a_x2_run_starts_from_the_x4_weights_where_shapes_match(tmp_path, models_tmp):
    """``init_from_scale``: every ×4 tensor whose name and shape match is copied into the ×2 network,
    the second upsampling stage is dropped, the rest stays fresh, and the step count starts at 0."""
    from engine.training.trainer import _load_start_weights

    cfg = tiny_config(tmp_path, models_tmp, stage="sftmd", scale=2, init_from_models=True, init_from_scale=4)
    source = torch.load(models_tmp / "sftmd_tiny_x4.pt", weights_only=True)
    model = build_network("sftmd", "tiny", 2, generator=torch.Generator().manual_seed(9))
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    assert _load_start_weights(model, cfg, "sftmd", models_tmp) == 0
    state = model.state_dict()
    copied = [k for k in state if k in source and source[k].shape == state[k].shape]
    assert len(copied) > len(state) // 2
    assert all(torch.equal(state[k], source[k]) for k in copied)
    assert all(torch.equal(state[k], fresh[k]) for k in state if k not in copied)
    assert any(k not in state for k in source)  # the ×4 network's second upsampling stage
    with pytest.raises(ConfigError, match="init_from_scale"):
        tiny_config(tmp_path, models_tmp, stage="sftmd", scale=2, init_from_scale=4)  # without init_from_models


def test_noise_channel_training_keeps_the_noise_free_output(tmp_path, models_tmp):
    """``trainable: noise_channel`` moves only the SFT layers' noise-channel weights: after training on
    noisy patches SFTMD's output with the noise input at 0 is bit-identical to the starting network's,
    and with noise it differs."""
    cfg = tiny_config(tmp_path, models_tmp, stage="sftmd", name="adapter", trainable="noise_channel",
                      init_from_models=True, lr=1e-2, steps=3, noise_prob=1.0, noise_max_255=15.0)
    result = train(cfg)
    start = torch.load(models_tmp / "sftmd_tiny_x4.pt")
    changed = {k for k, v in result.state.items() if not torch.equal(v, start[k])}
    assert changed and all(k.endswith((".scale.0.weight", ".shift.0.weight")) for k in changed), changed
    for key in changed:  # only the last input channel, the noise level, moved
        torch.testing.assert_close(result.state[key][:, :-1], start[key][:, :-1], rtol=0, atol=0)

    before = build_network("sftmd", "tiny", 4).eval()
    before.load_state_dict(start)
    after = build_network("sftmd", "tiny", 4).eval()
    after.load_state_dict(result.state)
    lr, code = torch.rand((1, 3, 12, 12), generator=torch.Generator().manual_seed(3)), torch.zeros((1, 10))
    with torch.no_grad():
        zero = torch.zeros((1, 1, 12, 12))
        assert torch.equal(before(lr, code, zero), after(lr, code, zero))
        noisy = torch.full((1, 1, 12, 12), 15.0)
        assert not torch.allclose(before(lr, code, noisy), after(lr, code, noisy))
    with pytest.raises(ConfigError, match="noise_channel"):
        tiny_config(tmp_path, models_tmp, stage="ikc_predictor", trainable="noise_channel", init_from_models=True)
    with pytest.raises(ConfigError, match="trainable"):
        tiny_config(tmp_path, models_tmp, stage="sftmd", trainable="some")


def _with_small_card(tmp_path: Path, models_tmp: Path, network: str, seed: int) -> tuple[Path, torch.nn.Module]:
    """A copy of ``models_tmp`` with a freshly initialised ``small`` ×4 ``network`` shipped in it
    (weights and card, no graph): the source an ``init_from_preset`` run starts from."""
    from engine.export import tensor_specs

    folder = tmp_path / "models"
    shutil.copytree(models_tmp, folder)
    small = build_network(network, "small", 4, generator=torch.Generator().manual_seed(seed))
    stem = f"{network}_small_x4"
    torch.save(small.state_dict(), folder / f"{stem}.pt")
    inputs, outputs = tensor_specs(network, "small", 4)
    save_card(ModelCard(id=stem, network=network, preset="small", scale=4, graph=f"{stem}.onnx", graph_sha256="",
                        inputs=inputs, outputs=outputs, weights=f"{stem}.pt",
                        weights_sha256=sha256_file(folder / f"{stem}.pt")), folder / f"{stem}.json")
    return folder, small


def test_init_from_preset_starts_a_wider_rrdb_sft_from_the_shipped_narrower_one(tmp_path, models_tmp):
    """``init_from_preset``: a medium RRDB-SFT starts as the small card's network (same output) and counts
    its steps from 0; the blind stage's frozen MANet, which has no medium preset, is the card there is."""
    from engine.archs.rrdb_sft import PRESETS, widen_state

    folder, small = _with_small_card(tmp_path, models_tmp, "rrdb_sft", seed=7)
    with pytest.raises(ConfigError, match="init_from_preset"):
        tiny_config(tmp_path, folder, stage="rrdb_sft", preset="medium", init_from_preset="small")
    cfg = tiny_config(tmp_path, folder, stage="rrdb_sft_blind", preset="medium", name="widen", steps=1, lr=1e-12,
                      init_from_models=True, init_from_preset="small")
    result = train(cfg)
    assert result.base_steps == 0 and result.step == 1
    medium = build_network("rrdb_sft", "medium", 4)
    start = widen_state(small.state_dict(), PRESETS["small"], medium, PRESETS["medium"], 4)
    for key in ("trunk.weight", "groups.0.rdbs.0.convs.4.weight"):  # one step at lr 1e-12: still the widened start
        torch.testing.assert_close(result.state[key][:32, :32], start[key][:32, :32], atol=1e-9, rtol=0)
        assert torch.count_nonzero(start[key][:32, 32:48]) == 0


def test_init_from_preset_starts_a_deeper_sftmd_from_the_shipped_small_one(tmp_path, models_tmp):
    """``init_from_preset`` for SFTMD: the medium network starts as the small card's (its blocks at the
    same indices, the added ones' last convs zero) and counts its steps from 0."""
    folder, small = _with_small_card(tmp_path, models_tmp, "sftmd", seed=8)
    cfg = tiny_config(tmp_path, folder, stage="sftmd", preset="medium", name="deepen", steps=1, lr=1e-12,
                      init_from_models=True, init_from_preset="small")
    result = train(cfg)
    assert result.base_steps == 0 and result.step == 1
    for key in ("head.0.weight", "blocks.5.conv2.weight", "tail.weight"):  # one step at lr 1e-12
        torch.testing.assert_close(result.state[key], small.state_dict()[key], atol=1e-9, rtol=0)
    assert float(result.state["blocks.6.conv2.weight"].abs().max()) < 1e-6
