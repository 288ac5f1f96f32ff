"""Ship a finished run into ``models/``: weights, re-exported ONNX graph, updated card.

The card's ``training`` block records what produced the weights: cumulative ``steps`` (the card's
previous count is kept adding up when the run started from the shipped weights), this run's patch
and batch sizes, the training sets, cumulative wall time, device, date, the command, the final
training loss and the last Set5 validation number (monitoring only), plus a ``runs`` history with
one entry per shipped run, and ``note`` (``TrainConfig.note``, or the previous note of a continued
card). The ``metrics`` block (benchmark results) is left to the evaluation.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

from engine.export import card_id, export_card, init_untrained
from engine.modelcards import ModelError, find_card, sha256_file
from engine.training.checkpoint import save_torch_atomic
from engine.training.config import TrainConfig
from engine.training.runlog import last_logged
from engine.training.stage_table import get_stage
from engine.training.trainer import TrainResult


def _round(v: float | None, digits: int = 5) -> float | None:
    return None if v is None else float(f"{v:.{digits}g}")


def ship(cfg: TrainConfig, result: TrainResult) -> Path:
    """Copy ``result``'s weights into the card of (network, preset, scale) in ``result.models_dir``,
    re-export the graph, update the card; returns the card path.

    Creates the card (seeded untrained initialisation first) when the folder has none. The card
    records the run's commands joined with `` && `` (one per resume).
    """
    models_dir = result.models_dir
    command = " && ".join(c for c in result.commands if c)
    spec = get_stage(cfg.stage)
    try:
        card = find_card(spec.network, cfg.scale, cfg.preset, models_dir)
        if card.id != card_id(spec.network, cfg.preset, cfg.scale):
            raise ModelError("card id differs")  # another preset's card matched loosely: make ours
    except ModelError:
        card = init_untrained(spec.network, cfg.preset, cfg.scale, models_folder=models_dir, overwrite=True)
    previous = dict(card.training)
    weights = card.weights_path or (card.folder / f"{card.id}.pt")
    if card.weights is None:
        card.weights = weights.name
    save_torch_atomic(result.state, weights)
    card.weights_sha256 = sha256_file(weights)

    loss, val = last_logged(result.run_dir)
    loss = result.loss if result.loss == result.loss else loss  # NaN (no step this session) → log
    val = result.val if result.val is not None else val
    continued = result.base_steps > 0
    wall = result.seconds + (float(previous.get("wall_time_s", 0.0)) if continued else 0.0)
    today = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    run_entry = {
        "run": cfg.name,
        "stage": cfg.stage,
        "steps": result.step,
        "batch_size": cfg.batch_size,
        "patch_size_hr": cfg.patch_size,
        "lr": cfg.lr if cfg.lr is not None else spec.lr,
        "wall_time_s": round(result.seconds, 1),
        "device": result.device,
        "date": today,
        "final_loss": _round(loss),
        "set5_val": _round(val),
        "noise": _noise_settings(cfg),
        "degradation": _degradation_words(cfg, spec.protocol),
        "command": command,
    }
    if cfg.trainable != "all":
        run_entry["trainable"] = ("only the SFT layers' noise-channel weights (output on noise-free input "
                                  "unchanged)" if cfg.trainable == "noise_channel" else cfg.trainable)
    if cfg.init_from_preset is not None and cfg.init_from_preset != cfg.preset:
        run_entry["init_from"] = (f"{card_id(spec.network, cfg.init_from_preset, cfg.scale)} weights, grown to "
                                  "this preset with the same output (added channels or residual blocks start "
                                  "contributing nothing)")
    if cfg.init_from_scale is not None and cfg.init_from_scale != cfg.scale:
        run_entry["init_from"] = (f"{card_id(spec.network, cfg.preset, cfg.init_from_scale)} weights "
                                  "(every tensor whose name and shape match; any other initialised afresh)")
    runs = list(previous.get("runs", [])) if continued else []
    runs.append(run_entry)
    card.training = {
        "steps": result.base_steps + result.step,
        "stage": cfg.stage,
        "patch_size_hr": cfg.patch_size,
        "patch_size_lr": cfg.patch_size // cfg.scale,
        "batch_size": cfg.batch_size,
        "optimizer": f"Adam lr {run_entry['lr']:g}, betas {tuple(cfg.betas or spec.betas)}, "
                     f"halved at steps {cfg.resolved_milestones()}",
        "loss": _loss_words(cfg, spec.network),
        "datasets": [*cfg.train_sets, *([f"first {cfg.max_images} images only"] if cfg.max_images is not None else []),
                     *([f"every {cfg.holdout_every}th image held out"] if cfg.holdout_every else [])],
        "degradation": _degradation_words(cfg, spec.protocol),
        "noise": _noise_settings(cfg),
        "wall_time_s": round(wall, 1),
        "device": result.device,
        "date": today,
        "command": command,
        "final_loss": _round(loss),
        "validation": {
            "set": "Set5",
            "protocol": spec.val_protocol,
            "cases": f"{cfg.val_images} (one kernel per image, fixed rule)",
            "metric": spec.val_metric,
            "value": _round(val),
            "note": "monitoring only; nothing was selected by it",
        },
        "runs": runs,
    }
    if spec.frozen:
        card.training["frozen"] = list(spec.frozen)
    if cfg.note:
        run_entry["note"] = cfg.note
        card.training["note"] = cfg.note
    elif continued and previous.get("note"):
        card.training["note"] = previous["note"]
    card = export_card(card)
    assert card.path is not None
    return card.path


def _degradation_words(cfg: TrainConfig, protocol: str) -> str:
    """The blur and downsampling a run's patches were made with, for the card."""
    manet = "MANet anisotropic Gaussian, blur + direct subsampling, 8-bit"
    ikc = "IKC isotropic Gaussian, blur + MATLAB bicubic, 8-bit"
    if protocol != "manet":
        return ikc
    if cfg.ikc_convention_share > 0:
        share = cfg.ikc_convention_share
        return f"{1 - share:.0%} of patches {manet}; {share:.0%} {ikc}"
    return manet


def _loss_words(cfg: TrainConfig, network: str) -> str:
    """The training loss in words, for the card."""
    words = {"manet": "L1 per-pixel kernels", "ikc_predictor": "L2 code", "ikc_corrector": "L2 code delta"}.get(
        network, "L1 image")
    if network == "ikc_corrector" and cfg.corrector_unroll > 0:
        words += f" after 0..{cfg.corrector_unroll} of its own curve-projected steps"
        if cfg.corrector_unroll_step != "full":
            words += f" ({cfg.corrector_unroll_step}: 1/k of the k-th)"
    if network == "ikc_corrector" and cfg.corrector_image_loss > 0:
        words += f" + {cfg.corrector_image_loss:g} x L1(SFTMD SR with the corrected code, HR)"
    return words


def _noise_settings(cfg: TrainConfig) -> dict[str, object]:
    """The photo-like corruptions a run trained with (noise after downsampling, then JPEG)."""
    return {"prob": cfg.noise_prob, "max_sigma_255": cfg.noise_max_255,
            "per_channel_prob": cfg.noise_per_channel_prob,
            "jpeg_prob": cfg.jpeg_prob, "jpeg_q": [cfg.jpeg_min, cfg.jpeg_max], "jpeg_chroma": "4:2:0"}
