"""Training stages: which network, which batches, which loss, which validation.

======================  =============  =====================================================  ==========
stage                   network        loss                                                   protocol
======================  =============  =====================================================  ==========
``manet``               manet          L1(estimated per-pixel kernels, true kernel) [#]_       MANet
``rrdb_sft``            rrdb_sft       L1(SR, HR), true kernel's PCA code spread over LR grid MANet
``rrdb_sft_blind``      rrdb_sft       L1(SR, HR), codes of the frozen MANet's kernels        MANet
``sftmd``               sftmd          L1(SR, HR), true kernel's 10-d PCA code                IKC
``ikc_predictor``       ikc_predictor  L2(predicted code, true code)                          IKC
``ikc_corrector``       ikc_corrector  L2(Δ, true − current) on the frozen SFTMD's SR [#]_    IKC
======================  =============  =====================================================  ==========

RRDB-SFT also sees each LR patch's estimated noise level (``engine.training.noise_level``).

.. [#] summed over the 441 taps of each kernel, averaged over LR pixels and the batch.
.. [#] plus, with ``corrector_image_loss`` λ > 0, λ · L1(SFTMD(LR, current + Δ), HR).

Validation (monitoring only, on a fixed degraded Set5 from ``engine.data.build_test_set``; never
used to select anything): one case per image, the kernel chosen by a fixed rule
(:func:`pick_val_cases`). Metrics: ``kernel_l1_sum`` (L1 distance between estimated and true kernel,
summed over the 441 taps, in [0, 2], averaged over LR pixels), ``psnr_y`` (dB, BT.601 Y, ``scale`` px shaved) or ``code_mse``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine import degradation as deg
from engine.archs import build_network, get_spec
from engine.archs.manet import estimate_kernels
from engine.archs.weights import load_card_weights
from engine.data import build_test_set
from engine.metrics import psnr
from engine.modelcards import find_card
from engine.pca import KernelPCA
from engine.pipeline.ikc import IsotropicCodeCurve
from engine.training.codes import KernelCodec, load_codec, pca_file_name
from engine.training.noise_level import noise_condition
from engine.training.stage_table import StageSpec


@dataclass
class ValCase:
    """One validation case on the device: LR (1, 3, h, w), HR ``rgb_f32`` HWC, true kernel (1, 441)."""

    name: str
    lr: torch.Tensor
    hr_rgb_f32: np.ndarray
    kernel: torch.Tensor


@dataclass
class StageContext:
    """Run-time things a stage needs besides the trained model.

    Attributes:
        spec: the stage.
        scale: SR factor.
        device: training device.
        codec: PCA codec on the device (stages with ``spec.pca``).
        frozen: frozen networks by network name (eval mode, no gradients).
        code_std: per-component spread of the true codes over the training kernels (corrector).
        code_noise: corrector perturbation, in units of ``code_std``.
        predictor_prob: corrector: probability of starting from the predictor's code.
        corrector_unroll: corrector: largest number of its own (gradient-free) steps applied to the
            starting code before the trained step (see ``TrainConfig.corrector_unroll``).
        corrector_unroll_step: corrector: how much of each unrolled step is applied, as the IKC loop
            does (one of :data:`engine.modelcards.IKC_CORRECTION_STEPS`: ``full``, or ``harmonic``: 1/k
            of the corrector's change at its k-th step).
        kernel_loss: MANet: ``l1`` or ``l2`` (see ``TrainConfig.kernel_loss``).
        corrector_image_loss: corrector: weight of the image term (see ``TrainConfig.corrector_image_loss``).
        curve_codes: corrector with unrolling: (M, d) codes of isotropic Gaussians over the scale's σ
            range (``IsotropicCodeCurve``); the current codes are moved to their nearest point, as
            ``run_ikc`` does with every code at inference.
        val_cases: cached validation cases.
    """

    spec: StageSpec
    scale: int
    device: torch.device
    codec: KernelCodec | None = None
    frozen: dict[str, nn.Module] = field(default_factory=dict)
    code_std: torch.Tensor | None = None
    code_noise: float = 0.5
    predictor_prob: float = 0.5
    corrector_unroll: int = 0
    corrector_unroll_step: str = "full"
    kernel_loss: str = "l1"
    corrector_image_loss: float = 0.0
    curve_codes: torch.Tensor | None = None
    val_cases: list[ValCase] | None = None


# --- building ---------------------------------------------------------------------------------
def _codes_spread(codec: KernelCodec, scale: int, convention: str, n: int = 4096) -> torch.Tensor:
    """Standard deviation of each code component over ``n`` random training kernels (fixed seed)."""
    rng = np.random.default_rng([20240, scale, 1 if convention == "ikc" else 0])
    if convention == "ikc":
        sig = deg.sample_isotropic_sigma(rng, scale, n)
        kernels = np.stack([deg.isotropic_gaussian_kernel(float(s)) for s in sig])
    else:
        v1, v2, th = deg.sample_anisotropic_params(rng, scale, n)
        kernels = deg.anisotropic_gaussian_kernels(v1, v2, th, scale)
    flat = torch.as_tensor(kernels.reshape(n, -1), dtype=torch.float32, device=codec.weight.device)
    return codec.project(flat).std(dim=0).clamp_min(1e-6)


def load_frozen(network: str, preset: str, scale: int, models_dir: Path | None, device: torch.device) -> nn.Module:
    """The shipped weights of ``network`` (card of this scale and of ``preset`` where ``network`` has such
    a preset; otherwise the card :func:`find_card` prefers, e.g. MANet beside a ``medium`` RRDB-SFT),
    frozen, in eval mode."""
    card = find_card(network, scale, preset if preset in get_spec(network).presets else None, models_dir)
    model = load_card_weights(card, build_network(network, card.preset, scale))
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def build_context(
    spec: StageSpec,
    preset: str,
    scale: int,
    device: torch.device,
    models_dir: Path,
    *,
    code_noise: float = 0.5,
    predictor_prob: float = 0.5,
    corrector_unroll: int = 0,
    corrector_unroll_step: str = "full",
    kernel_loss: str = "l1",
    corrector_image_loss: float = 0.0,
) -> StageContext:
    """Load the PCA codec and the frozen networks a stage needs (see :class:`StageContext` for the rest)."""
    ctx = StageContext(spec, scale, device, code_noise=code_noise, predictor_prob=predictor_prob,
                       corrector_unroll=corrector_unroll, corrector_unroll_step=corrector_unroll_step,
                       kernel_loss=kernel_loss,
                       corrector_image_loss=corrector_image_loss)
    if spec.pca is not None:
        ctx.codec = load_codec(models_dir / pca_file_name(spec.pca, scale)).to(device)
        ctx.code_std = _codes_spread(ctx.codec, scale, spec.pca)
    if spec.name == "ikc_corrector" and corrector_unroll > 0:
        basis = KernelPCA.load(models_dir / pca_file_name("ikc", scale))
        ctx.curve_codes = torch.as_tensor(IsotropicCodeCurve.for_basis(basis, scale).codes, device=device)
    for network in spec.frozen:
        try:
            ctx.frozen[network] = load_frozen(network, preset, scale, models_dir, device)
        except Exception:
            if spec.name == "ikc_corrector" and network == "ikc_predictor":
                continue  # optional: without a predictor the corrector starts from perturbed true codes
            raise
    return ctx


# --- losses -----------------------------------------------------------------------------------
def _sr_input_code(ctx: StageContext, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The condition passed to an SR network for a batch (map for RRDB-SFT, vector for SFTMD)."""
    assert ctx.codec is not None
    lr = batch["lr"]
    if ctx.spec.name == "rrdb_sft_blind":
        with torch.no_grad():
            kernels = estimate_kernels(ctx.frozen["manet"], lr)
            return ctx.codec.project_map(kernels)
    codes = ctx.codec.project(batch["kernel"])
    if ctx.spec.network == "rrdb_sft":
        return KernelCodec.spread(codes, lr.shape[-2], lr.shape[-1])
    return codes


def _sr(model: nn.Module, ctx: StageContext, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """An SR network's output for a batch: SFTMD on the code, RRDB-SFT on the code map, each with the
    LR patches' estimated noise level (:func:`noise_condition`)."""
    return model(batch["lr"], _sr_input_code(ctx, batch), noise_condition(batch["lr"]))


def _sftmd(sftmd: nn.Module, lr: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """SFTMD (frozen, or being trained) on LR patches, one code each, and their estimated noise level."""
    return sftmd(lr, code, noise_condition(lr))


def unroll_depths(ctx: StageContext, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per patch, how many of the corrector's own steps precede the trained one: (B,) int64 in 0..N."""
    n = ctx.corrector_unroll
    if n <= 0 or "unroll_u" not in batch:
        return torch.zeros(batch["lr"].shape[0], dtype=torch.int64, device=batch["lr"].device)
    return (batch["unroll_u"] * (n + 1)).long().clamp(0, n)


def _on_curve(ctx: StageContext, codes: torch.Tensor) -> torch.Tensor:
    """(B, d) codes → the nearest isotropic-Gaussian code of each (unchanged without a curve)."""
    if ctx.curve_codes is None:
        return codes
    return ctx.curve_codes[torch.cdist(codes.float(), ctx.curve_codes).argmin(dim=1)]


def _corrector_inputs(
    ctx: StageContext, batch: dict[str, torch.Tensor], corrector: nn.Module | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(SR image, current code, true code) for a corrector step; all without gradients.

    The starting code is the predictor's or a perturbed true code; with ``ctx.corrector_unroll``
    and the ``corrector`` being trained given, each patch's code then takes its unroll depth
    (:func:`unroll_depths`) of that corrector's steps, the IKC loop of inference (the k-th step
    applied whole or, with ``ctx.corrector_unroll_step`` ``harmonic``, 1/k of it), every code moved
    onto the isotropic curve as inference does (:func:`_on_curve`).
    """
    assert ctx.codec is not None and ctx.code_std is not None
    true = ctx.codec.project(batch["kernel"])
    sftmd = ctx.frozen["sftmd"]
    with torch.no_grad():
        current = true + batch["code_noise"] * ctx.code_std * ctx.code_noise
        predictor = ctx.frozen.get("ikc_predictor")
        if predictor is not None:
            use = (batch["use_predictor"] < ctx.predictor_prob).unsqueeze(1)
            current = torch.where(use, predictor(batch["lr"]).float(), current)
        current = _on_curve(ctx, current)
        sr = _sftmd(sftmd, batch["lr"], current).clamp(0.0, 1.0)
        depths = unroll_depths(ctx, batch)
        for i in range(int(depths.max()) if corrector is not None else 0):
            moving = (depths > i).unsqueeze(1)
            weight = 1.0 / (i + 1) if ctx.corrector_unroll_step == "harmonic" else 1.0
            current = torch.where(moving, _on_curve(ctx, current + weight * corrector(sr, current).float()), current)
            sr = torch.where(moving[:, :, None, None], _sftmd(sftmd, batch["lr"], current).clamp(0.0, 1.0), sr)
    return sr, current, true


def compute_loss(model: nn.Module, batch: dict[str, torch.Tensor], ctx: StageContext) -> torch.Tensor:
    """The training loss of one batch (tensors already on the device)."""
    name = ctx.spec.name
    lr = batch["lr"]
    if name == "manet":
        est = estimate_kernels(model, lr)
        target = batch["kernel"][:, :, None, None].expand_as(est)
        # L1 distance per kernel (sum over the 441 taps), averaged over LR pixels. The mean over
        # taps has the same optimum but ~1e-9 gradients in the early layers, which Adam's ε (1e-8)
        # damps: training then sits on the mean kernel.
        diff = est.float() - target
        if ctx.kernel_loss == "l2":  # squared L2 distance per kernel (×441 keeps it O(1e-1))
            return diff.square().sum(dim=1).mean() * diff.shape[1]
        return diff.abs().sum(dim=1).mean()
    if name in ("rrdb_sft", "rrdb_sft_blind", "sftmd"):
        return F.l1_loss(_sr(model, ctx, batch).float(), batch["hr"])
    if name == "ikc_predictor":
        assert ctx.codec is not None
        return F.mse_loss(model(lr).float(), ctx.codec.project(batch["kernel"]))
    if name == "ikc_corrector":
        sr, current, true = _corrector_inputs(ctx, batch, model)
        step = model(sr, current).float()
        loss = F.mse_loss(step, true - current)
        if ctx.corrector_image_loss > 0:  # judge the step also by the image it leads to
            corrected_sr = _sftmd(ctx.frozen["sftmd"], lr, current + step)
            loss = loss + ctx.corrector_image_loss * F.l1_loss(corrected_sr.float(), batch["hr"])
        return loss
    raise KeyError(name)


# --- validation -------------------------------------------------------------------------------
def pick_val_cases(cases: list[Any], images: int) -> list[Any]:
    """One case per image: for image ``i`` (of ``n`` kernels) the case ``(3·i + 1) mod n``.

    Spreads the chosen kernels over the set without looking at any result.
    """
    by_image: dict[int, list[Any]] = {}
    for case in cases:
        by_image.setdefault(int(case.kernel_info["image_index"]), []).append(case)
    out = []
    for index in sorted(by_image)[:images]:
        group = by_image[index]
        out.append(group[(3 * index + 1) % len(group)])
    return out


def val_cases(ctx: StageContext, images: int) -> list[ValCase]:
    """The stage's fixed validation cases (built once, cached in ``ctx``)."""
    if ctx.val_cases is None:
        cases = pick_val_cases(build_test_set("Set5", ctx.spec.val_protocol, ctx.scale, seed=0, max_images=images),
                               images)
        ctx.val_cases = [
            ValCase(
                c.name,
                torch.from_numpy(np.ascontiguousarray(c.lr_rgb_f32.transpose(2, 0, 1)))[None].to(ctx.device),
                np.asarray(c.hr_rgb_f32),
                torch.as_tensor(np.asarray(c.kernel_info["kernel"], dtype=np.float32).reshape(1, -1), device=ctx.device),
            )
            for c in cases
        ]
    return ctx.val_cases


def _to_hwc(sr: torch.Tensor) -> np.ndarray:
    return sr[0].float().clamp(0.0, 1.0).permute(1, 2, 0).cpu().numpy()


@torch.no_grad()
def validate(model: nn.Module, ctx: StageContext, images: int = 5) -> float:
    """The stage's validation number on Set5 (see the module docstring); model left in eval mode."""
    model.eval()
    name = ctx.spec.name
    values: list[float] = []
    for case in val_cases(ctx, images):
        batch = {"lr": case.lr, "kernel": case.kernel}
        if name == "manet":
            est = estimate_kernels(model, case.lr)
            # L1 distance between kernels (sum over the 441 taps), averaged over LR pixels
            values.append(float((est - case.kernel[:, :, None, None]).abs().sum(dim=1).mean()))
        elif name in ("rrdb_sft", "rrdb_sft_blind", "sftmd"):
            sr = _sr(model, ctx, batch)
            values.append(psnr(_to_hwc(sr), case.hr_rgb_f32, crop_border=ctx.scale, test_y_channel=True))
        elif name == "ikc_predictor":
            assert ctx.codec is not None
            values.append(float(F.mse_loss(model(case.lr), ctx.codec.project(case.kernel))))
        elif name == "ikc_corrector":
            assert ctx.codec is not None
            true = ctx.codec.project(case.kernel)
            predictor = ctx.frozen.get("ikc_predictor")
            if predictor is not None:
                current = predictor(case.lr)
            else:  # a fixed perturbation of the true code
                gen = torch.Generator().manual_seed(7)
                current = true + torch.randn(true.shape, generator=gen).to(true.device) * ctx.code_std * ctx.code_noise
            sr = _sftmd(ctx.frozen["sftmd"], case.lr, current).clamp(0.0, 1.0)
            corrected = current + model(sr, current)
            values.append(float(F.mse_loss(corrected, true)))
        else:
            raise KeyError(name)
    return float(np.mean(values))
