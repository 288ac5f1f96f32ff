"""Benchmark evaluation of the blind SR methods (``kernelscope-cli evaluate``).

Methods (``METHODS``), scored on the cases of :func:`engine.data.iter_test_set`:

- ``bicubic`` — MATLAB bicubic upsampling of the LR image (the baseline).
- ``manet`` — blind MANet + RRDB-SFT (one kernel per LR pixel). Also scored as a kernel estimator
  on the MANet-convention protocols: LR-PSNR (the HR image re-degraded with the estimated kernels
  vs the LR image, Y, ``scale`` LR px shaved) and kernel error (mean L1 / PSNR against the truth).
- ``manet_oracle`` — RRDB-SFT fed the PCA codes of the *true* kernels (the upper bound of ``manet``);
  MANet-convention protocols only (``manet9``, ``variant1..5``).
- ``ikc`` — predictor → SFTMD → (corrector → SFTMD) × ``ikc_steps``. Every iteration is scored; the
  reported number is at ONE fixed iteration chosen on Set5 Gaussian8 only (:func:`choose_ikc_step`),
  never per image and never on Set14/BSD100. The per-case best iteration ("oracle, best of t per
  image, uses ground truth") is reported separately, labelled as such.
- ``sftmd_oracle`` — SFTMD fed the true σ's IKC-basis code; Gaussian8 only (IKC convention).
- ``manet_previous``, ``ikc_previous`` (:data:`PREVIOUS_METHODS`) — ``manet`` and ``ikc`` run with the
  networks of another models folder (``EvalConfig.previous_models_dir``: the models a retraining
  replaces), on the same LR images, so one table compares the old and the new weights.

Protocols are the clean ones of :data:`engine.data.PROTOCOLS` and the photo-like ones of
:data:`engine.data.PHOTO_PROTOCOLS` (a clean protocol's blur plus noise and/or JPEG). Under a
photo-like protocol MANet's LR-PSNR compares the re-degraded HR image with the *noise-free* LR image
(as the MANet paper does): against the noisy one it would measure the noise (σ 15/255 caps it near 30 dB).

All SR scores are PSNR-Y / SSIM-Y with ``scale`` pixels shaved (:mod:`engine.metrics`). Images are
``rgb_f32`` (H×W×3 float32 RGB in [0, 1]). Cells that a method cannot fill (an oracle under the
other convention, a kernel error where the conventions differ) are recorded with a reason, never
left out silently.

Layout: :func:`run_evaluation` runs the cases and returns the JSON-ready result dict (built by
:func:`aggregate` from per-case records); :func:`render_markdown` writes the tables;
:func:`card_metrics` gives the block recorded in each model card.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import math
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.data import (
    ALL_PROTOCOLS,
    BENCHMARKS,
    GAUSSIAN8_SIGMAS_BY_SCALE,
    PHOTO_PROTOCOLS,
    TestCase,
    base_protocol,
    benchmark_paths,
    iter_test_set,
)
from engine.progress import NULL_PROGRESS, Progress

__all__ = [
    "FORMAT",
    "METHODS",
    "PREVIOUS_METHODS",
    "ALL_METHODS",
    "base_method",
    "METHOD_LABELS",
    "METHOD_NETWORKS",
    "QUALITY_BARS",
    "EvalConfig",
    "not_applicable",
    "cases_per_image",
    "count_cases",
    "evaluate_case",
    "choose_ikc_step",
    "aggregate",
    "run_evaluation",
    "render_markdown",
    "card_metrics",
]

FORMAT = "kernelscope-results/1"
"""Value of the ``format`` entry of the results JSON."""

METHODS: tuple[str, ...] = ("bicubic", "manet", "manet_oracle", "ikc", "sftmd_oracle")

PREVIOUS_METHODS: dict[str, str] = {"manet_previous": "manet", "ikc_previous": "ikc"}
"""Methods run with the networks of ``EvalConfig.previous_models_dir``: name → the method they repeat."""

ALL_METHODS: tuple[str, ...] = METHODS + tuple(PREVIOUS_METHODS)

METHOD_LABELS: dict[str, str] = {
    "bicubic": "Bicubic",
    "manet": "MANet + RRDB-SFT (blind)",
    "manet_oracle": "RRDB-SFT oracle (true kernels)",
    "ikc": "IKC (blind, fixed t)",
    "ikc_oracle_best": "IKC oracle (best of t per image, uses ground truth)",
    "sftmd_oracle": "SFTMD oracle (true σ)",
    "manet_previous": "MANet + RRDB-SFT (blind), previous models",
    "ikc_previous": "IKC (blind, fixed t), previous models",
}

METHOD_NETWORKS: dict[str, tuple[str, ...]] = {
    "bicubic": (),
    "manet": ("manet", "rrdb_sft"),
    "manet_oracle": ("rrdb_sft",),
    "ikc": ("ikc_predictor", "sftmd", "ikc_corrector"),
    "sftmd_oracle": ("sftmd",),
    "manet_previous": ("manet", "rrdb_sft"),
    "ikc_previous": ("ikc_predictor", "sftmd", "ikc_corrector"),
}
"""Networks (model-card ``network`` names) each method loads (the ``*_previous`` ones from the previous folder)."""


def base_method(method: str) -> str:
    """The method ``method`` repeats (``ikc_previous`` → ``ikc``), or itself."""
    return PREVIOUS_METHODS.get(method, method)

STEP_RULE_BENCHMARK = "Set5"
STEP_RULE_PROTOCOL = "gaussian8"

QUALITY_BARS: tuple[dict[str, Any], ...] = (
    {"id": "ikc_set5", "issue": 4, "text": "Blind IKC on Gaussian8, Set5 ≥ 29.5 dB"},
    {"id": "ikc_bsd100", "issue": 4, "text": "Blind IKC on Gaussian8, BSD100 ≥ 26.5 dB"},
    {"id": "manet_vs_bicubic", "issue": 4,
     "text": "MANet + RRDB-SFT on the variant modes (BSD100) ≥ bicubic + 1.5 dB"},
    {"id": "manet_vs_oracle", "issue": 4,
     "text": "MANet + RRDB-SFT on the variant modes (BSD100) within 0.5 dB of the oracle"},
    {"id": "manet_vs_ikc", "issue": 4, "text": "MANet + RRDB-SFT on the variant modes (BSD100) better than IKC"},
    {"id": "lr_psnr", "issue": 4, "text": "MANet LR-PSNR ≥ 40 dB on nine-kernel BSD100"},
    {"id": "noise_vs_bicubic", "issue": 15,
     "text": "MANet + RRDB-SFT on Gaussian8 + noise σ 15 (BSD100) ≥ bicubic + 1.5 dB"},
    {"id": "noise_vs_previous", "issue": 15,
     "text": "MANet + RRDB-SFT on Gaussian8 + noise σ 15 (BSD100) ≥ the previous models + 1.0 dB"},
    {"id": "clean_manet_gaussian8", "issue": 15,
     "text": "MANet + RRDB-SFT on clean Gaussian8 (BSD100) within 0.3 dB of the previous models (or above)"},
    {"id": "clean_manet_variant", "issue": 15,
     "text": "MANet + RRDB-SFT on the clean variant modes (BSD100) within 0.3 dB of the previous models (or above)"},
    {"id": "clean_ikc_gaussian8", "issue": 15,
     "text": "IKC on clean Gaussian8 (BSD100) within 0.3 dB of the previous models (or above)"},
    {"id": "lr_psnr_noise", "issue": 15, "text": "MANet LR-PSNR ≥ 40 dB on nine-kernel BSD100 + noise σ 15"},
    {"id": "ikc_t7_set5", "issue": 15, "text": "IKC at t = 7 ≥ IKC at t = 1 − 0.02 dB on Set5 Gaussian8"},
    {"id": "ikc_t7_bsd100", "issue": 15, "text": "IKC at t = 7 ≥ IKC at t = 1 − 0.02 dB on BSD100 Gaussian8"},
)
"""The quality bars of issues 4 and 15 (×4), checked by :func:`check_bars` (issue 15's only when a
photo-like protocol or the previous models were evaluated)."""

_INVARIANT_KERNEL_COUNT = {"manet9": 9}


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate.

    Args:
        benchmarks: names from :data:`engine.data.BENCHMARKS`.
        protocols: names from :data:`engine.data.ALL_PROTOCOLS` (clean and photo-like).
        methods: names from :data:`ALL_METHODS` (the ``*_previous`` ones need ``previous_models_dir``).
        scale: SR factor (the shipped models are ×4).
        ikc_steps: IKC corrections after the prediction (t = 0 … ikc_steps, so ikc_steps + 1 SR images).
        ikc_fixed_step: the IKC iteration reported; ``None`` chooses it on Set5 Gaussian8
            (:func:`choose_ikc_step`).
        max_images: per benchmark, use only its first N images (absent: all of them).
        skip: ``(method, protocol, benchmark)`` patterns not to run (to fit a time budget); protocol
            and benchmark are shell-style patterns (``variant*``, ``*``). Their cells say "not run".
        seed: evaluation seed of the test sets.
        device, backend, threads, tile, models_dir: how the networks run (see
            :func:`engine.pipeline.models.load_models` and :mod:`engine.pipeline.blind`).
        previous_models_dir: the models folder the ``*_previous`` methods load (e.g. the shipped
            models before a retraining, extracted with ``git show``).
        previous_results_path: an earlier results JSON of the previous models (same seed, scale and
            IKC steps): its ``manet`` / ``ikc`` case records become the ``*_previous`` records of every
            cell it covers (same LR images, so nothing is run twice); other cells need
            ``previous_models_dir``. See :func:`load_previous_results`.
        command: the command line recorded in the results (for reproduction).
    """

    benchmarks: tuple[str, ...] = BENCHMARKS
    protocols: tuple[str, ...] = ALL_PROTOCOLS
    methods: tuple[str, ...] = METHODS
    scale: int = 4
    ikc_steps: int = 7
    ikc_fixed_step: int | None = None
    max_images: Mapping[str, int] = field(default_factory=dict)
    skip: frozenset[tuple[str, str, str]] = frozenset()
    seed: int = 0
    device: str = "auto"
    backend: str = "auto"
    threads: int | None = None
    tile: int | None = None
    models_dir: str | Path | None = None
    previous_models_dir: str | Path | None = None
    previous_results_path: str | Path | None = None
    command: str = ""

    def validate(self) -> None:
        """Raise ``ValueError`` for unknown names, empty lists, or a fixed-step rule that cannot hold."""
        for what, given, known in (
            ("benchmark", self.benchmarks, BENCHMARKS),
            ("protocol", self.protocols, ALL_PROTOCOLS),
            ("method", self.methods, ALL_METHODS),
        ):
            if not given:
                raise ValueError(f"no {what} given")
            unknown = [g for g in given if g not in known]
            if unknown:
                raise ValueError(f"unknown {what}(s) {', '.join(unknown)}; choose from {', '.join(known)}")
            if len(set(given)) != len(given):
                raise ValueError(f"a {what} is listed twice: {', '.join(given)}")
        if self.scale not in (2, 3, 4):
            raise ValueError(f"scale must be 2, 3 or 4, got {self.scale}")
        if self.ikc_steps < 0:
            raise ValueError(f"ikc_steps must be ≥ 0, got {self.ikc_steps}")
        for name, n in self.max_images.items():
            if name not in BENCHMARKS:
                raise ValueError(f"max_images names an unknown benchmark {name!r}")
            if int(n) < 1:
                raise ValueError(f"max_images for {name} must be ≥ 1, got {n}")
        previous = [m for m in self.methods if m in PREVIOUS_METHODS]
        if previous and self.previous_models_dir is None and self.previous_results_path is None:
            raise ValueError(f"{', '.join(previous)} need the previous models folder (--previous-models DIR) "
                             "or their earlier results (--previous-results JSON)")
        if self.previous_models_dir is not None and not Path(self.previous_models_dir).is_dir():
            raise ValueError(f"previous models folder not found: {self.previous_models_dir}")
        for method, protocol, bench in self.skip:
            if (method not in ALL_METHODS or not fnmatch.filter(ALL_PROTOCOLS, protocol)
                    or not fnmatch.filter(BENCHMARKS, bench)):
                raise ValueError(f"cannot skip {method}@{protocol}@{bench}: it names no known method, "
                                 "protocol or benchmark")
        for ikc in [m for m in self.methods if base_method(m) == "ikc"]:
            if self.ikc_fixed_step is None:
                if (STEP_RULE_BENCHMARK not in self.benchmarks or STEP_RULE_PROTOCOL not in self.protocols
                        or self.is_skipped(ikc, STEP_RULE_PROTOCOL, STEP_RULE_BENCHMARK)):
                    raise ValueError(
                        "the automatic IKC iteration is chosen on Set5 gaussian8 only: include Set5 in the "
                        "benchmarks and gaussian8 in the protocols, or give a fixed step (--ikc-fixed-step N)"
                    )
            elif not 0 <= self.ikc_fixed_step <= self.ikc_steps:
                raise ValueError(f"ikc_fixed_step must be in 0 … {self.ikc_steps}, got {self.ikc_fixed_step}")

    def images_for(self, benchmark: str) -> int | None:
        """The ``max_images`` limit for one benchmark (``None``: all)."""
        n = self.max_images.get(benchmark)
        return None if n is None else int(n)

    def is_skipped(self, method: str, protocol: str, benchmark: str) -> bool:
        """True when a ``skip`` pattern covers this cell."""
        return any(method == m and fnmatch.fnmatchcase(protocol, p) and fnmatch.fnmatchcase(benchmark, b)
                   for m, p, b in self.skip)

    def methods_for(self, protocol: str, benchmark: str) -> tuple[str, ...]:
        """The requested methods that apply to ``protocol`` and are not skipped on ``benchmark``."""
        return tuple(m for m in self.methods
                     if not self.is_skipped(m, protocol, benchmark) and not_applicable(m, protocol) is None)

    def networks(self, previous: bool = False) -> tuple[str, ...]:
        """The networks the requested methods need (``previous``: the ``*_previous`` methods'), each once."""
        out: list[str] = []
        for m in self.methods:
            if (m in PREVIOUS_METHODS) != previous:
                continue
            for n in METHOD_NETWORKS[m]:
                if n not in out:
                    out.append(n)
        return tuple(out)


def not_applicable(method: str, protocol: str) -> str | None:
    """Why ``method`` has no score under ``protocol`` (``None`` when it has one)."""
    method, protocol = base_method(method), base_protocol(protocol)
    if method == "manet_oracle" and protocol == "gaussian8":
        return ("RRDB-SFT is conditioned on MANet-convention kernels (direct subsampling); Gaussian8 "
                "uses bicubic downsampling, so no true MANet kernel exists — see the SFTMD oracle")
    if method == "sftmd_oracle" and protocol != "gaussian8":
        return ("SFTMD is conditioned on one isotropic IKC-convention kernel per image; this protocol's "
                "kernels are anisotropic (MANet convention), so no true SFTMD code exists")
    return None


def cases_per_image(protocol: str, scale: int) -> int:
    """How many test cases one image gives under ``protocol`` (Gaussian8: 8, nine kernels: 9, variant: 1)."""
    protocol = base_protocol(protocol)
    if protocol == "gaussian8":
        return len(GAUSSIAN8_SIGMAS_BY_SCALE[scale])
    return _INVARIANT_KERNEL_COUNT.get(protocol, 1)


def _images_used(config: EvalConfig) -> dict[str, dict[str, int]]:
    out = {}
    for b in config.benchmarks:
        total = len(benchmark_paths(b))
        limit = config.images_for(b)
        out[b] = {"used": total if limit is None else min(total, limit), "total": total}
    return out


def count_cases(config: EvalConfig) -> int:
    """The number of test cases :func:`run_evaluation` will run (for progress bars and ETAs)."""
    used = _images_used(config)
    return sum(used[b]["used"] * cases_per_image(p, config.scale) for p in config.protocols for b in config.benchmarks)


# --------------------------------------------------------------------------------------------
# one case
# --------------------------------------------------------------------------------------------
def _finite(x: float) -> float | None:
    """JSON has no infinity: identical images (infinite PSNR) are recorded as ``None``."""
    return float(x) if math.isfinite(x) else None


def _score(sr_rgb_f32: np.ndarray, hr_rgb_f32: np.ndarray, scale: int) -> dict[str, float | None]:
    from engine.metrics import psnr, ssim

    return {
        "psnr": _finite(psnr(sr_rgb_f32, hr_rgb_f32, crop_border=scale, test_y_channel=True)),
        "ssim": float(ssim(sr_rgb_f32, hr_rgb_f32, crop_border=scale, test_y_channel=True)),
    }


def _case_meta(case: TestCase) -> dict[str, Any]:
    info = case.kernel_info
    meta: dict[str, Any] = {"name": case.name, "image": info["image"]}
    for key in ("sigma", "kernel_index", "mode"):
        if key in info:
            meta[key] = info[key]
    return meta


def evaluate_case(
    case: TestCase,
    methods: Sequence[str],
    models: Any,
    *,
    ikc_steps: int = 7,
    tile: int | None = None,
    progress: Progress = NULL_PROGRESS,
    previous_models: Any = None,
) -> dict[str, Any]:
    """Run ``methods`` on one case and score them; a JSON-ready record.

    ``models`` is an :class:`engine.pipeline.models.ModelSet` holding the networks the methods need;
    ``previous_models`` the one the ``*_previous`` methods run with (recorded under their own names).
    Under a photo-like protocol MANet's ``lr_psnr`` is measured against the noise-free LR image.
    The record holds the case's name/image/kernel id, one ``{"psnr", "ssim"}`` block per applicable
    method (``manet`` adds ``lr_psnr``, ``kernel_l1``, ``kernel_psnr`` under the MANet convention;
    ``ikc`` holds lists over its ``ikc_steps + 1`` iterations, plus ``kernel_l1`` per iteration on
    Gaussian8) and ``seconds`` per method (wall time, inference + scoring).
    """
    from engine.metrics import kernel_error, lr_psnr
    from engine.pipeline import blind, ikc

    s = case.scale
    hr, lr = case.hr_rgb_f32, case.lr_rgb_f32
    manet_convention = case.kernel_info.get("convention") == "manet"
    record = _case_meta(case)
    seconds: dict[str, float] = {}
    todo = [m for m in methods if not_applicable(m, case.protocol) is None]
    true_k: np.ndarray | None = None

    def truth() -> np.ndarray:
        nonlocal true_k
        if true_k is None:
            true_k = case.true_kernels()
        return true_k

    for i, method in enumerate(todo):
        progress.check_cancelled()
        sub = progress.sub_progress(i / len(todo), 1.0 / len(todo))
        t0 = time.perf_counter()
        base = base_method(method)
        mset = previous_models if method in PREVIOUS_METHODS else models
        if mset is None:
            raise ValueError(f"{method} needs the previous models (previous_models)")
        if base == "bicubic":
            record[method] = _score(blind.run_bicubic(lr, s), hr, s)
        elif base == "manet":
            result = blind.run_manet(lr, mset, tile=tile, progress=sub)
            block = _score(result.sr_rgb_f32, hr, s)
            if manet_convention:
                est = result.kernel_map.reconstruct_all()  # (h, w, 21, 21)
                block["lr_psnr"] = _finite(lr_psnr(hr, case.noise_free_lr(), est, s, crop_border=s))
                err = kernel_error(est, np.broadcast_to(truth(), est.shape))
                block["kernel_l1"] = err["mean_l1"]
                block["kernel_psnr"] = _finite(err["psnr"])
            record[method] = block
        elif base == "manet_oracle":
            pca = models.pca("rrdb_sft")
            k = truth()
            codes = pca.project(k).astype(np.float32)
            if codes.ndim == 1:
                codes = np.broadcast_to(codes, lr.shape[:2] + codes.shape)
            record[method] = _score(blind.sr_from_codes(lr, codes, models, tile=tile, progress=sub), hr, s)
        elif base == "ikc":
            result = ikc.run_ikc(lr, mset, steps=ikc_steps, tile=tile, progress=sub)
            scores = [_score(it.sr_rgb_f32, hr, s) for it in result.iterations]
            block = {"psnr": [sc["psnr"] for sc in scores], "ssim": [sc["ssim"] for sc in scores]}
            if not manet_convention:  # IKC's own convention: its kernels are comparable with the truth
                block["kernel_l1"] = [kernel_error(it.kernel, truth())["mean_l1"] for it in result.iterations]
            record[method] = block
        elif base == "sftmd_oracle":
            code = models.pca("sftmd").project(truth()).astype(np.float32)
            record[method] = _score(ikc.sftmd_sr(lr, code, models, tile=tile, progress=sub), hr, s)
        else:  # pragma: no cover - validated by EvalConfig
            raise ValueError(f"unknown method {method!r}")
        seconds[method] = round(time.perf_counter() - t0, 3)
    record["seconds"] = seconds
    progress.set_progress(1.0)
    return record


# --------------------------------------------------------------------------------------------
# aggregation
# --------------------------------------------------------------------------------------------
def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _ikc_iteration_means(records: Sequence[Mapping[str, Any]], key: str, method: str = "ikc") -> list[float | None]:
    rows = [r[method][key] for r in records if method in r]
    if not rows:
        return []
    n = min(len(row) for row in rows)
    return [_mean([row[t] for row in rows]) for t in range(n)]


def choose_ikc_step(
    cases: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]],
    fixed_step: int | None = None,
    method: str = "ikc",
) -> dict[str, Any]:
    """The IKC iteration reported everywhere, and why (``method``: ``ikc`` or ``ikc_previous``).

    ``cases`` maps benchmark → protocol → per-case records (as :func:`evaluate_case` returns).
    With ``fixed_step`` given, that step is used. Otherwise (``auto``) the step with the best mean
    PSNR-Y over the Set5 Gaussian8 cases is chosen (the earliest on ties); no other benchmark or
    protocol is looked at. Raises ``ValueError`` when ``auto`` has no Set5 Gaussian8 IKC results.
    """
    if fixed_step is not None:
        return {"step": int(fixed_step), "rule": f"fixed by the command (--ikc-fixed-step {fixed_step})"}
    records = cases.get(STEP_RULE_BENCHMARK, {}).get(STEP_RULE_PROTOCOL, [])
    means = _ikc_iteration_means(records, "psnr", method)
    if not means or all(m is None for m in means):
        raise ValueError(f"the automatic IKC iteration needs {method} results on Set5 gaussian8, and there are none")
    best = max(range(len(means)), key=lambda t: (means[t] if means[t] is not None else -math.inf, -t))
    return {
        "step": int(best),
        "rule": "auto: the iteration with the best mean PSNR-Y on Set5 gaussian8 (chosen there only)",
        "set5_gaussian8_psnr_per_iteration": means,
        "set5_gaussian8_cases": len(records),
    }


def _method_cell(records: Sequence[Mapping[str, Any]], method: str, step: int | None) -> dict[str, Any]:
    rows = [r for r in records if method in r]
    cell: dict[str, Any] = {"n": len(rows)}
    if base_method(method) != "ikc":
        cell["psnr"] = _mean([r[method]["psnr"] for r in rows])
        cell["ssim"] = _mean([r[method]["ssim"] for r in rows])
        return cell
    m = method
    cell["psnr_per_iteration"] = _ikc_iteration_means(rows, "psnr", m)
    cell["ssim_per_iteration"] = _ikc_iteration_means(rows, "ssim", m)
    if rows and "kernel_l1" in rows[0][m]:
        cell["kernel_l1_per_iteration"] = _ikc_iteration_means(rows, "kernel_l1", m)
    cell["fixed_step"] = step
    if step is not None and rows:
        cell["psnr"] = _mean([r[m]["psnr"][step] for r in rows])
        cell["ssim"] = _mean([r[m]["ssim"][step] for r in rows])
    else:
        cell["psnr"] = cell["ssim"] = None
    best_steps = [int(np.argmax([-math.inf if p is None else p for p in r[m]["psnr"]])) for r in rows]
    cell["oracle_best_psnr"] = _mean([r[m]["psnr"][t] for r, t in zip(rows, best_steps)])
    cell["oracle_best_ssim"] = _mean([r[m]["ssim"][t] for r, t in zip(rows, best_steps)])
    cell["oracle_best_note"] = "best of t per image, chosen with the ground truth (not a blind result)"
    return cell


def _kernel_cell(records: Sequence[Mapping[str, Any]], method: str = "manet") -> dict[str, Any] | None:
    rows = [r[method] for r in records if method in r and "lr_psnr" in r[method]]
    if not rows:
        return None
    return {
        "n": len(rows),
        "lr_psnr": _mean([r["lr_psnr"] for r in rows]),
        "kernel_l1": _mean([r["kernel_l1"] for r in rows]),
        "kernel_psnr": _mean([r["kernel_psnr"] for r in rows]),
    }


def aggregate(
    config: EvalConfig,
    cases: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]],
    *,
    environment: Mapping[str, Any] | None = None,
    models: Sequence[Mapping[str, Any]] = (),
    models_previous: Sequence[Mapping[str, Any]] = (),
    complete: bool = True,
    seconds: float | None = None,
) -> dict[str, Any]:
    """Means per benchmark × protocol × method from per-case records: the JSON-ready results.

    ``cells[benchmark][protocol][method]`` is ``{"psnr", "ssim", "n"}`` (IKC adds per-iteration
    means, the fixed step and the oracle-best numbers), or ``{"na": reason}`` when the method does
    not apply, or ``{"pending": true}`` in a partial result. ``kernel_estimation[benchmark][protocol]``
    holds MANet's LR-PSNR and kernel error where the conventions allow it (``kernel_estimation_previous``
    the previous MANet's, ``ikc_fixed_step_previous`` the previous IKC's step, when they were run).
    """
    steps_info: dict[str, dict[str, Any] | None] = {}
    for ikc in [m for m in config.methods if base_method(m) == "ikc"]:
        try:
            steps_info[ikc] = choose_ikc_step(cases, config.ikc_fixed_step, ikc)
        except ValueError:
            if complete:
                raise
            steps_info[ikc] = None  # partial result: Set5 gaussian8 not done yet
    step_info = steps_info.get("ikc")
    step_of = {m: (None if info is None else info["step"]) for m, info in steps_info.items()}

    cells: dict[str, dict[str, dict[str, Any]]] = {}
    kernels: dict[str, dict[str, Any]] = {}
    kernels_previous: dict[str, dict[str, Any]] = {}
    for b in config.benchmarks:
        cells[b], kernels[b], kernels_previous[b] = {}, {}, {}
        for p in config.protocols:
            records = cases.get(b, {}).get(p)
            cells[b][p] = {}
            for m in config.methods:
                reason = not_applicable(m, p)
                if reason is not None:
                    cells[b][p][m] = {"na": reason}
                elif config.is_skipped(m, p, b):
                    cells[b][p][m] = {"skipped": "not run (--skip, to fit the time budget)"}
                elif records is None:
                    cells[b][p][m] = {"pending": True}
                else:
                    cells[b][p][m] = _method_cell(records, m, step_of.get(m))
            for manet, table in (("manet", kernels), ("manet_previous", kernels_previous)):
                if records is not None and manet in config.methods:
                    kcell = _kernel_cell(records, manet)
                    table[b][p] = kcell if kcell is not None else {
                        "na": "LR-PSNR and kernel error use the MANet convention (direct subsampling); "
                              "this protocol uses bicubic downsampling"}

    timing: dict[str, Any] = {}
    per_method: dict[str, list[float]] = {}
    for by_protocol in cases.values():
        for records in by_protocol.values():
            for r in records:
                for m, sec in r.get("seconds", {}).items():
                    per_method.setdefault(m, []).append(sec)
    timing["mean_seconds_per_case"] = {m: round(float(np.mean(v)), 3) for m, v in per_method.items()}
    if seconds is not None:
        timing["total_seconds"] = round(float(seconds), 1)

    used = _images_used(config)
    results: dict[str, Any] = {
        "format": FORMAT,
        "complete": bool(complete),
        "command": config.command,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "scale": config.scale,
        "seed": config.seed,
        "benchmarks": list(config.benchmarks),
        "protocols": list(config.protocols),
        "methods": list(config.methods),
        "ikc_steps": config.ikc_steps,
        "images": used,
        "skipped": sorted(f"{m}@{p}@{b}" for m, p, b in config.skip),
        "metric": f"PSNR-Y (dB) / SSIM-Y, BT.601 luma, {config.scale} px shaved, 8-bit rounded; mean over cases",
        "environment": dict(environment or {}),
        "models": [dict(m) for m in models],
        "ikc_fixed_step": step_info,
        "cells": cells,
        "kernel_estimation": kernels,
        "timing": timing,
        "cases": {b: {p: list(recs) for p, recs in by_p.items()} for b, by_p in cases.items()},
    }
    if "ikc_previous" in config.methods:
        results["ikc_fixed_step_previous"] = steps_info["ikc_previous"]
    if "manet_previous" in config.methods:
        results["kernel_estimation_previous"] = kernels_previous
    if config.previous_models_dir is not None or config.previous_results_path is not None:
        results["previous_models_dir"] = str(config.previous_models_dir or config.previous_results_path)
        results["models_previous"] = [dict(m) for m in models_previous]
    results["bars"] = check_bars(results)
    return results


# --------------------------------------------------------------------------------------------
# quality bars
# --------------------------------------------------------------------------------------------
VARIANTS = tuple(f"variant{m}" for m in range(1, 6))


def _value(results: Mapping[str, Any], bench: str, protocol: str, method: str, key: str = "psnr") -> float | None:
    cell = results["cells"].get(bench, {}).get(protocol, {}).get(method, {})
    v = cell.get(key)
    return None if v is None else float(v)


def _variant_mean(results: Mapping[str, Any], bench: str, method: str,
                  variants: Sequence[str] = VARIANTS) -> tuple[float | None, list[str]]:
    """Mean over the variant modes present (each mode weighs the same), and which modes were present."""
    present = [p for p in variants if p in results["protocols"]]
    vals = [_value(results, bench, p, method) for p in present]
    if not present or any(v is None for v in vals):
        return None, present
    return float(np.mean(vals)), present


def check_bars(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each quality bar with the measured value, the target and ``met`` (None: not measured).

    Issue 15's bars are listed only when a photo-like protocol or the previous models were evaluated.
    """
    out: list[dict[str, Any]] = []
    images = results.get("images", {})

    def subsample(bench: str) -> str | None:
        u = images.get(bench)
        return None if not u or u["used"] == u["total"] else f"{u['used']}/{u['total']} {bench} images"

    def add(bar_id: str, measured: float | None, target: float | None, detail: str, strict: bool = False,
            bench: str = "BSD100") -> None:
        text = next(b["text"] for b in QUALITY_BARS if b["id"] == bar_id)
        if measured is None or target is None:
            met = None
        else:
            met = bool(measured > target) if strict else bool(measured >= target)
        out.append({"id": bar_id, "bar": text, "measured": measured, "target": target, "met": met,
                    "gap_db": None if met is None else round(target - measured, 2), "detail": detail,
                    "subsample": subsample(bench)})

    ikc_step = (results.get("ikc_fixed_step") or {}).get("step")
    for bar_id, bench, target in (("ikc_set5", "Set5", 29.5), ("ikc_bsd100", "BSD100", 26.5)):
        v = _value(results, bench, "gaussian8", "ikc")
        add(bar_id, v, target, f"IKC at fixed t = {ikc_step}, {bench} Gaussian8 PSNR-Y", bench=bench)

    manet, modes = _variant_mean(results, "BSD100", "manet")
    bic, _ = _variant_mean(results, "BSD100", "bicubic")
    ora, _ = _variant_mean(results, "BSD100", "manet_oracle")
    ikc, _ = _variant_mean(results, "BSD100", "ikc")
    where = f"BSD100, mean over {', '.join(modes) or 'no variant mode'}"
    add("manet_vs_bicubic", manet, None if bic is None else bic + 1.5,
        f"{where}: MANet {_fmt(manet)} dB vs bicubic {_fmt(bic)} dB + 1.5")
    add("manet_vs_oracle", manet, None if ora is None else ora - 0.5,
        f"{where}: MANet {_fmt(manet)} dB vs oracle {_fmt(ora)} dB − 0.5")
    add("manet_vs_ikc", manet, ikc, f"{where}: MANet {_fmt(manet)} dB vs IKC (fixed t = {ikc_step}) {_fmt(ikc)} dB",
        strict=True)
    lr = results["kernel_estimation"].get("BSD100", {}).get("manet9", {}).get("lr_psnr")
    add("lr_psnr", None if lr is None else float(lr), 40.0, "MANet LR-PSNR (Y), BSD100 nine kernels")
    if any(p in PHOTO_PROTOCOLS for p in results["protocols"]) or "models_previous" in results:
        _photo_bars(results, add)
    return out


def _photo_bars(results: Mapping[str, Any], add: Callable[..., None]) -> None:
    """Issue 15's bars (noise robustness; the clean rows kept), appended through ``add``."""
    noisy = "gaussian8_n15"
    manet = _value(results, "BSD100", noisy, "manet")
    bic = _value(results, "BSD100", noisy, "bicubic")
    prev = _value(results, "BSD100", noisy, "manet_previous")
    add("noise_vs_bicubic", manet, None if bic is None else bic + 1.5,
        f"BSD100 Gaussian8 + σ 15: MANet {_fmt(manet)} dB vs bicubic {_fmt(bic)} dB + 1.5")
    add("noise_vs_previous", manet, None if prev is None else prev + 1.0,
        f"BSD100 Gaussian8 + σ 15: MANet {_fmt(manet)} dB vs previous models {_fmt(prev)} dB + 1.0")
    for bar_id, method, (new, prev_v, where) in (
        ("clean_manet_gaussian8", "MANet", (_value(results, "BSD100", "gaussian8", "manet"),
                                            _value(results, "BSD100", "gaussian8", "manet_previous"), "Gaussian8")),
        ("clean_manet_variant", "MANet", (_variant_mean(results, "BSD100", "manet")[0],
                                          _variant_mean(results, "BSD100", "manet_previous")[0], "variant modes")),
        ("clean_ikc_gaussian8", "IKC", (_value(results, "BSD100", "gaussian8", "ikc"),
                                        _value(results, "BSD100", "gaussian8", "ikc_previous"), "Gaussian8")),
    ):
        add(bar_id, new, None if prev_v is None else prev_v - 0.3,
            f"BSD100 clean {where}: {method} {_fmt(new)} dB vs previous models {_fmt(prev_v)} dB − 0.3")
    lr = results["kernel_estimation"].get("BSD100", {}).get("manet9_n15", {}).get("lr_psnr")
    add("lr_psnr_noise", None if lr is None else float(lr), 40.0,
        "MANet LR-PSNR (Y, against the noise-free LR image), BSD100 nine kernels + σ 15")
    for bar_id, bench in (("ikc_t7_set5", "Set5"), ("ikc_t7_bsd100", "BSD100")):
        per = results["cells"].get(bench, {}).get("gaussian8", {}).get("ikc", {}).get("psnr_per_iteration") or []
        t7 = per[7] if len(per) > 7 else None
        t1 = per[1] if len(per) > 1 else None
        add(bar_id, t7, None if t1 is None or t7 is None else t1 - 0.02,
            f"{bench} Gaussian8: IKC t = 7 {_fmt(t7)} dB vs t = 1 {_fmt(t1)} dB − 0.02", bench=bench)


# --------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------
def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_environment(provider: str) -> dict[str, Any]:
    """Where the evaluation ran: the execution provider, CPU, core count, library versions."""
    env: dict[str, Any] = {
        "provider": provider,
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    try:
        import onnxruntime

        env["onnxruntime"] = onnxruntime.__version__
    except ImportError:  # pragma: no cover - a dependency
        pass
    if "cuda" in provider.lower():
        try:
            import torch

            if torch.cuda.is_available():
                env["gpu"] = torch.cuda.get_device_name(0)
        except ImportError:  # pragma: no cover
            pass
    return env


def describe_models(models: Any) -> list[dict[str, Any]]:
    """One entry per loaded card: id, network, preset, parameters, training steps, wall time, device."""
    out = []
    for network, card in models.cards.items():
        tr = card.training or {}
        out.append({
            "id": card.id,
            "network": network,
            "preset": card.preset,
            "parameters": card.parameters,
            "training_steps": card.training_steps,
            "training_wall_time_s": tr.get("wall_time_s"),
            "training_device": tr.get("device"),
            "training_date": tr.get("date"),
            "graph_sha256": card.graph_sha256,
        })
    return out


# Bicubic ×s on the benchmarks without any blur, as the SR literature tabulates it (EDSR, RCAN, ...):
# reproducing these shows the scoring (crop, Y channel, shave, rounding, MATLAB bicubic) is the standard one.
STANDARD_BICUBIC_CLEAN: dict[int, dict[str, float]] = {
    2: {"Set5": 33.66, "Set14": 30.24, "BSD100": 29.56},
    3: {"Set5": 30.39, "Set14": 27.55, "BSD100": 27.21},
    4: {"Set5": 28.42, "Set14": 26.00, "BSD100": 25.96},
}


def protocol_check(config: EvalConfig) -> dict[str, Any]:
    """Mean PSNR-Y of bicubic ↓s then bicubic ↑s with no blur on each benchmark (the images in use).

    A measured sanity check of the scoring path: with every image of a benchmark it should match
    :data:`STANDARD_BICUBIC_CLEAN` to about 0.01 dB.
    """
    from engine.data import load_hr
    from engine.degradation.degrade import quantize_u8
    from engine.degradation.resize import bicubic_upsample, imresize

    out: dict[str, Any] = {}
    for bench in config.benchmarks:
        paths = benchmark_paths(bench)
        n = config.images_for(bench)
        if n is not None:
            paths = paths[:n]
        values = []
        for path in paths:
            hr = load_hr(path, config.scale)
            lr = quantize_u8(imresize(hr, 1.0 / config.scale))
            values.append(_score(bicubic_upsample(lr, config.scale), hr, config.scale)["psnr"])
        out[bench] = {"bicubic_clean_psnr_y": _round(_mean(values), 3), "images": len(paths),
                      "published": STANDARD_BICUBIC_CLEAN.get(config.scale, {}).get(bench)}
    return out


def load_previous_results(config: EvalConfig) -> dict[str, Any]:
    """The results JSON named by ``config.previous_results_path``, checked against ``config``.

    Raises ``ValueError`` (one line naming the file and the reason) when it cannot be read, is not a
    results file, or was made with another scale, seed or number of IKC steps (its LR images or
    iteration lists would not match this run's).
    """
    import json

    path = Path(config.previous_results_path)
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"--previous-results {path}: cannot read it ({exc})") from None
    if not isinstance(old, dict) or old.get("format") != FORMAT:
        raise ValueError(f"--previous-results {path}: not a {FORMAT} results file")
    for key, mine in (("scale", config.scale), ("seed", config.seed), ("ikc_steps", config.ikc_steps)):
        if old.get(key) != mine:
            raise ValueError(f"--previous-results {path}: made with {key} {old.get(key)}, this run uses {mine}")
    return old


def _imported_previous(config: EvalConfig, old: Mapping[str, Any] | None,
                       method: str, protocol: str, bench: str) -> dict[str, Any] | None:
    """name → the earlier run's record of ``method``'s base method, when it covers every image used here."""
    if old is None:
        return None
    records = old.get("cases", {}).get(bench, {}).get(protocol)
    used_before = old.get("images", {}).get(bench, {}).get("used", 0)
    used_now = _images_used(config)[bench]["used"]
    base = PREVIOUS_METHODS[method]
    if not records or used_before < used_now or not all(base in r for r in records):
        return None
    return {r["name"]: r[base] for r in records}


def run_evaluation(
    config: EvalConfig,
    *,
    progress: Progress = NULL_PROGRESS,
    on_case: Callable[[str, Mapping[str, Any]], None] | None = None,
    on_partial: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Evaluate every requested benchmark × protocol × method; the results of :func:`aggregate`.

    Protocols are run in the given order, each over the benchmarks in the given order; after each
    (protocol, benchmark) group ``on_partial`` receives the results so far (``complete`` False), so
    an interrupted run still leaves a labelled preliminary table. ``on_case(name, record)`` is
    called after every case (progress bars). Cancellation is checked between methods and tiles.
    """
    config.validate()
    from engine.pipeline.models import ModelSet, load_models

    old = load_previous_results(config) if config.previous_results_path is not None else None
    imported = {(m, p, b): _imported_previous(config, old, m, p, b)
                for p in config.protocols for b in config.benchmarks for m in config.methods_for(p, b)
                if m in PREVIOUS_METHODS}
    missing = [f"{m}@{p}@{b}" for (m, p, b), recs in imported.items() if recs is None]
    if missing and config.previous_models_dir is None:
        raise ValueError(f"--previous-results {config.previous_results_path} does not cover {', '.join(missing)}: "
                         "give --previous-models DIR to run them, or --skip them")

    def load(previous: bool) -> Any:
        networks = config.networks(previous)
        folder = config.previous_models_dir if previous else config.models_dir
        return (load_models(networks, config.scale, device=config.device, backend=config.backend,
                            threads=config.threads, models_dir=folder, precision="fp32")  # the trained networks
                if networks else ModelSet(scale=config.scale))

    models = load(False)
    previous_models = load(True) if config.previous_models_dir is not None and missing else None
    environment = describe_environment(models.provider)
    model_info = describe_models(models)
    previous_info = (describe_models(previous_models) if previous_models is not None
                     else list(old.get("models", [])) if old is not None else [])
    total = count_cases(config)
    done = 0
    t0 = time.perf_counter()
    cases: dict[str, dict[str, list[dict[str, Any]]]] = {}
    groups = [(p, b) for p in config.protocols for b in config.benchmarks]
    for gi, (protocol, bench) in enumerate(groups):
        records: list[dict[str, Any]] = []
        copy = {m: recs for (m, p, b), recs in imported.items() if p == protocol and b == bench and recs}
        run_here = tuple(m for m in config.methods_for(protocol, bench) if m not in copy)
        for case in iter_test_set(bench, protocol, config.scale, config.seed, max_images=config.images_for(bench)):
            sub = progress.sub_progress(done / max(total, 1), 1.0 / max(total, 1))
            record = evaluate_case(case, run_here, models, ikc_steps=config.ikc_steps,
                                   tile=config.tile, progress=sub, previous_models=previous_models)
            for m, recs in copy.items():
                if case.name not in recs:
                    raise ValueError(f"--previous-results {config.previous_results_path} has no {bench} {protocol} "
                                     f"case {case.name}")
                record[m] = recs[case.name]
            records.append(record)
            done += 1
            progress.set_progress(done / max(total, 1), f"{bench} {case.name}")
            if on_case is not None:
                on_case(f"{bench}/{case.name}", record)
        cases.setdefault(bench, {})[protocol] = records
        if on_partial is not None and gi < len(groups) - 1:
            on_partial(aggregate(config, cases, environment=environment, models=model_info,
                                 models_previous=previous_info, complete=False, seconds=time.perf_counter() - t0))
    results = aggregate(config, cases, environment=environment, models=model_info, models_previous=previous_info,
                        complete=True, seconds=time.perf_counter() - t0)
    results["protocol_check"] = protocol_check(config)
    if old is not None:
        results["previous_results"] = {"path": str(config.previous_results_path), "command": old.get("command"),
                                       "date": old.get("date"),
                                       "cells": sorted(f"{m}@{p}@{b}" for (m, p, b), r in imported.items() if r)}
    return results


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------
_FAMILY_TITLES = {
    "gaussian8": "Gaussian8 (IKC protocol: isotropic σ 1.8 … 3.2, blur + bicubic ↓)",
    "manet9": "MANet's nine anisotropic kernels (blur + direct subsampling)",
    "variant": "MANet's spatially variant modes 1–5 (blur per pixel + direct subsampling)",
}


def _fmt(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _cell_text(cell: Mapping[str, Any], psnr_key: str = "psnr", ssim_key: str = "ssim") -> str:
    if "na" in cell:
        return "n/a"
    if "skipped" in cell:
        return "not run"
    if cell.get("pending"):
        return "(not run yet)"
    return f"{_fmt(cell.get(psnr_key))} / {_fmt(cell.get(ssim_key), 4)}"


def _label(results: Mapping[str, Any], method: str) -> str:
    """A method's row label; IKC rows name their fixed step."""
    if method == "ikc":
        step = (results.get("ikc_fixed_step") or {}).get("step")
        return f"IKC (blind, fixed t = {step if step is not None else '?'})"
    if method == "ikc_previous":
        step = (results.get("ikc_fixed_step_previous") or {}).get("step")
        return f"IKC (blind, fixed t = {step if step is not None else '?'}), previous models"
    return METHOD_LABELS[method]


def _method_rows(results: Mapping[str, Any], protocol: str) -> list[tuple[str, str, str, str]]:
    """(label, method, psnr key, ssim key) rows for one protocol, oracle-best IKC after IKC."""
    rows = []
    for m in results["methods"]:
        if not_applicable(m, protocol) is not None:
            continue
        label = _label(results, m)
        rows.append((label, m, "psnr", "ssim"))
        if m == "ikc":
            rows.append((METHOD_LABELS["ikc_oracle_best"], m, "oracle_best_psnr", "oracle_best_ssim"))
    return rows


def _table(results: Mapping[str, Any], protocol: str, first_col: str = "Method",
           first_value: str | None = None) -> list[str]:
    benches = results["benchmarks"]
    lines = []
    if first_value is None:
        lines.append(f"| {first_col} | " + " | ".join(benches) + " |")
        lines.append("|---|" + "---|" * len(benches))
    for label, m, pk, sk in _method_rows(results, protocol):
        cells = [_cell_text(results["cells"][b][protocol][m], pk, sk) for b in benches]
        lead = f"{first_value} | {label}" if first_value is not None else label
        lines.append(f"| {lead} | " + " | ".join(cells) + " |")
    return lines


def _kernel_rows(results: Mapping[str, Any], protocol: str, lead: str | None = None) -> list[str]:
    benches = results["benchmarks"]
    out = []
    for method, table, who in (("manet", "kernel_estimation", "MANet"),
                               ("manet_previous", "kernel_estimation_previous", "MANet (previous models)")):
        if method not in results["methods"]:
            continue
        ke = results.get(table, {})
        for label, key, digits in (("LR-PSNR (dB)", "lr_psnr", 2), ("kernel error: mean L1", "kernel_l1", 6),
                                   ("kernel error: PSNR (dB)", "kernel_psnr", 2)):
            vals = []
            for b in benches:
                cell = ke.get(b, {}).get(protocol)
                vals.append("(not run yet)" if cell is None else "n/a" if "na" in cell else _fmt(cell.get(key), digits))
            if method == "manet_previous" and all(v == "n/a" for v in vals):
                continue  # the convention has no kernel truth: the new MANet's rows already say so
            first = f"{lead} | {who} {label}" if lead is not None else f"{who} {label}"
            out.append(f"| {first} | " + " | ".join(vals) + " |")
    return out


def _images_line(results: Mapping[str, Any]) -> str:
    parts = []
    for b, u in results["images"].items():
        parts.append(f"{b} {u['used']}/{u['total']}" + ("" if u["used"] == u["total"] else f" (first {u['used']} images)"))
    return ", ".join(parts)


def render_markdown(results: Mapping[str, Any]) -> str:
    """``docs/RESULTS.md``: the command, date, device, models, one table per protocol family, the bars."""
    s = results["scale"]
    lines: list[str] = []
    title = f"# Measured results (×{s})"
    lines.append(title if results.get("complete") else title + " — PRELIMINARY (partial run)")
    lines.append("")
    if not results.get("complete"):
        lines += ["> **Preliminary:** this table was written while the evaluation was still running; cells "
                  "marked “(not run yet)” have no measurement.", ""]
    lines += ["Produced by:", "", "```", results.get("command") or "(command not recorded)", "```", ""]
    env = results.get("environment", {})
    device = env.get("provider", "?")
    if env.get("gpu"):
        device += f" on {env['gpu']}"
    elif env.get("cpu"):
        device += f" on {env['cpu']} ({env.get('cpu_count')} logical CPUs)"
    timing = results.get("timing", {})
    lines += [
        f"- Date: {results['date']}",
        f"- Device / provider: {device}",
        f"- Images (every kernel of each image): {_images_line(results)}; seed {results['seed']}",
        f"- Metric: {results['metric']}. Cells read PSNR-Y / SSIM-Y; n/a: the method does not apply "
        "to the protocol (reason in the JSON).",
    ]
    if results.get("skipped"):
        lines.append(f"- Not run, to fit the time budget (cells read “not run”): {', '.join(results['skipped'])}")
    if "total_seconds" in timing:
        per = ", ".join(f"{m} {v:.2f} s" for m, v in timing.get("mean_seconds_per_case", {}).items())
        lines.append(f"- Wall time: {timing['total_seconds']:.0f} s ({per} per case on average)")
    lines.append("")
    prev_src = results.get("previous_results")
    prev_intro = (f"Rows marked “previous models” ran these networks, from `{results.get('previous_models_dir')}`, "
                  "on the same LR images" + (":" if not prev_src else
                  f"; the cells {', '.join(prev_src['cells'])} are copied from the earlier evaluation "
                  f"`{prev_src['path']}` ({prev_src['date']}; same seed and LR images):"))
    for key, intro in (("models", None), ("models_previous", prev_intro)):
        if not results.get(key):
            continue
        if intro:
            lines += [intro, ""]
        lines += ["| Model card | Network | Preset | Parameters | Training steps | Training wall time | Trained on |",
                  "|---|---|---|---|---|---|---|"]
        for m in results[key]:
            wall = m.get("training_wall_time_s")
            wall_txt = "—" if wall is None else f"{float(wall) / 3600:.2f} h"
            lines.append(f"| `{m['id']}` | {m['network']} | {m['preset']} | {m.get('parameters') or '—'} | "
                         f"{m['training_steps']} | {wall_txt} | {m.get('training_device') or '—'} |")
        lines.append("")

    step_info = results.get("ikc_fixed_step")
    if "ikc" in results["methods"]:
        lines.append("## IKC iteration")
        lines.append("")
        if step_info is None:
            lines.append("Not chosen yet (Set5 Gaussian8 has not been run).")
        else:
            lines.append(f"IKC is reported at **t = {step_info['step']}** — {step_info['rule']}.")
            if "set5_gaussian8_psnr_per_iteration" in step_info:
                per = ", ".join(f"t={t}: {_fmt(v)}" for t, v in enumerate(step_info["set5_gaussian8_psnr_per_iteration"]))
                lines.append(f"Set5 Gaussian8 mean PSNR-Y per iteration: {per}.")
            prev = results.get("ikc_fixed_step_previous")
            if prev is not None:
                lines.append(f"The previous models' IKC is reported at **t = {prev['step']}**, "
                             "chosen by the same rule.")
            lines.append("The row “IKC oracle (best of t per image, uses ground truth)” picks, for each LR image, "
                         "the iteration with the best PSNR against the HR image: it is *not* a blind result "
                         "(the published IKC numbers are of this kind).")
        lines.append("")

    protocols = results["protocols"]
    for protocol in ("gaussian8", "manet9"):
        if protocol not in protocols:
            continue
        lines += [f"## {_FAMILY_TITLES[protocol]}", ""]
        lines += _table(results, protocol)
        lines += _kernel_rows(results, protocol)
        lines.append("")
        if protocol == "gaussian8" and s == 4:
            lines += ["Published anchors for this protocol (not measured here): bicubic Set5 26.42, Set14 24.69, "
                      "BSD100 24.91 dB (issue 4); IKC paper 31.67 / 28.31 / 27.37 dB (best of its iterations per "
                      "image, i.e. like the oracle row); an IKC reimplementation on small data reached Set5 29.43 dB.",
                      ""]
        if protocol == "gaussian8":
            lines += _protocol_check_lines(results)
        if protocol == "gaussian8" and "ikc" in results["methods"]:
            lines += _ikc_iteration_table(results, protocol)
        lines += _photo_section(results, protocol)
    if "gaussian8" not in protocols:
        lines += _photo_section(results, "gaussian8")
    if "manet9" not in protocols:
        lines += _photo_section(results, "manet9")
    variants = [p for p in VARIANTS if p in protocols]
    if variants:
        benches = results["benchmarks"]
        lines += [f"## {_FAMILY_TITLES['variant']}", ""]
        lines.append("| Mode | Method | " + " | ".join(benches) + " |")
        lines.append("|---|---|" + "---|" * len(benches))
        for p in variants:
            lines += _table(results, p, first_value=p.removeprefix("variant"))
            lines += _kernel_rows(results, p, lead=p.removeprefix("variant"))
        if len(variants) > 1:
            lines += _variant_mean_rows(results, variants)
        lines.append("")
        if "ikc" in results["methods"]:
            lines += _ikc_iteration_table(results, variants[0], variants)
    lines += _photo_section(results, "variant")
    lines += _bars_section(results)
    return "\n".join(lines).rstrip() + "\n"


def _photo_section(results: Mapping[str, Any], family: str) -> list[str]:
    """The photo-like protocols built on ``family`` ("gaussian8", "manet9" or "variant"): one table, the
    added degradation in the first column (variant modes: mode and degradation, then the mean of modes)."""
    present = [p for p in results["protocols"] if p in PHOTO_PROTOCOLS
               and base_protocol(p).startswith(family)]
    if not present:
        return []
    benches = results["benchmarks"]
    out = [f"## {_FAMILY_TITLES[family]} — with photo-like noise / JPEG", "",
           "| Protocol | Added after the blur (per-channel noise on the 8-bit scale, fixed per-image seed) |",
           "|---|---|"]
    out += [f"| `{p}` | {PHOTO_PROTOCOLS[p].label} (blur of `{PHOTO_PROTOCOLS[p].base}`) |" for p in present]
    out += ["", "| Added | Method | " + " | ".join(benches) + " |", "|---|---|" + "---|" * len(benches)]
    for p in present:
        photo = PHOTO_PROTOCOLS[p]
        lead = photo.label if family != "variant" else f"mode {photo.base.removeprefix('variant')}, {photo.label}"
        out += _table(results, p, first_value=lead)
        if family != "gaussian8":  # LR-PSNR needs the MANet convention
            out += _kernel_rows(results, p, lead=lead)
    if family == "variant" and len(present) > 1:
        out += _variant_mean_rows(results, present)
    out.append("")
    if family != "gaussian8" and "manet" in results["methods"]:
        out += ["LR-PSNR here compares the HR image re-degraded with the estimated kernels with the *noise-free* LR "
                "image (blur, downsampling, 8-bit rounding), as the MANet paper does; against the noisy input it "
                "would measure the noise.", ""]
    return out


def _protocol_check_lines(results: Mapping[str, Any]) -> list[str]:
    """The measured no-blur bicubic check against the literature's values (see :func:`protocol_check`)."""
    check = results.get("protocol_check")
    if not check:
        return []
    parts = []
    for bench, row in check.items():
        text = f"{bench} {_fmt(row['bicubic_clean_psnr_y'])}"
        if row.get("published") is not None:
            text += f" (published {row['published']:.2f}"
            n_all = len(benchmark_paths(bench))
            text += ")" if row["images"] == n_all else f"; {row['images']}/{n_all} images here)"
        parts.append(text)
    return [f"Scoring check (measured): bicubic ×{results['scale']} of the same HR images *without* blur gives "
            + ", ".join(parts) + " dB — the literature's values, so crop, Y channel, shave, rounding and MATLAB "
            "bicubic are the standard ones. Where the bicubic row above differs from an anchor, the Gaussian8 LR "
            "images differ (σ table, kernel size, downsampler), not the scoring.", ""]


def _variant_mean_rows(results: Mapping[str, Any], variants: Sequence[str]) -> list[str]:
    out = []
    for m in results["methods"]:
        if not_applicable(m, variants[0]) is not None:
            continue
        vals = []
        for b in results["benchmarks"]:
            ps = [_value(results, b, p, m) for p in variants]
            ss = [_value(results, b, p, m, "ssim") for p in variants]
            ok = all(v is not None for v in ps + ss)
            vals.append(f"{_fmt(float(np.mean(ps)))} / {_fmt(float(np.mean(ss)), 4)}" if ok else "—")
        out.append(f"| **mean of modes** | {_label(results, m)} | " + " | ".join(vals) + " |")
    return out


def _ikc_iteration_table(results: Mapping[str, Any], protocol: str, group: Sequence[str] | None = None) -> list[str]:
    """Mean PSNR-Y of every IKC iteration (rows: benchmark, or benchmark × mode)."""
    group = list(group or [protocol])
    rows = []
    width = 0
    for b in results["benchmarks"]:
        for p in group:
            cell = results["cells"][b][p].get("ikc", {})
            per = cell.get("psnr_per_iteration")
            if per:
                width = max(width, len(per))
                rows.append((f"{b} {p}", per))
    if not rows:
        return []
    out = [f"IKC mean PSNR-Y per iteration ({'Gaussian8' if protocol == 'gaussian8' else 'variant modes'}; "
           "every iteration's per-image numbers are in the JSON):", "",
           "| Set | " + " | ".join(f"t={t}" for t in range(width)) + " |", "|---|" + "---|" * width]
    for name, per in rows:
        out.append(f"| {name} | " + " | ".join(_fmt(v) for v in per) + " |")
    out.append("")
    return out


def _bars_section(results: Mapping[str, Any]) -> list[str]:
    issues = sorted({b["issue"] for bar in results.get("bars", []) for b in QUALITY_BARS if b["id"] == bar.get("id")})
    out = [f"## Gap to the quality bars (issue{'s' if len(issues) > 1 else ''} "
           f"{' and '.join(str(i) for i in issues) or 4})", ""]
    out += ["| Bar | Measured | Target | Met? |", "|---|---|---|---|"]
    for bar in results.get("bars", []):
        met = "not measured" if bar["met"] is None else ("yes" if bar["met"] else f"**no** (gap {bar['gap_db']:.2f} dB)")
        if bar["met"] is not None and bar.get("subsample"):
            met += f" — on {bar['subsample']} only"
        out.append(f"| {bar['bar']} | {_fmt(bar['measured'])} | {_fmt(bar['target'])} | {met} |")
    out.append("")
    if any(bar.get("subsample") and bar["met"] is not None for bar in results.get("bars", [])):
        out += ["A bar checked on a subsample of its benchmark is an indication, not a full-benchmark result.", ""]
    for bar in results.get("bars", []):
        out.append(f"- {bar['detail']}.")
    out.append("")
    out += _diagnosis(results)
    return out


def _ikc_corrector_effect(results: Mapping[str, Any], bench: str) -> str:
    """One sentence on what the corrector's iterations do to the kernel error and PSNR on ``bench``.

    Read off the per-iteration means of the Gaussian8 cell (kernel L1 against the true kernel and
    PSNR-Y); empty when there are fewer than two iterations or no kernel errors.
    """
    cell = results.get("cells", {}).get(bench, {}).get("gaussian8", {}).get("ikc", {})
    kl1 = cell.get("kernel_l1_per_iteration") or []
    psnr = cell.get("psnr_per_iteration") or []
    if len(kl1) < 2 or len(psnr) < 2 or None in (kl1[0], kl1[-1], psnr[0], psnr[-1]):
        return ""
    last = len(kl1) - 1
    moves = (f"mean kernel L1 {kl1[0]:.2e} at t = 0 and {kl1[-1]:.2e} at t = {last}, "
             f"PSNR-Y {psnr[0]:.2f} → {psnr[-1]:.2f} dB")
    if kl1[-1] > kl1[0]:
        return (f" The corrector moves the kernel away from the truth ({moves}), so the corrector is the part to fix, "
                "not the number of iterations. It is trained for one step from the predictor's code or a perturbed "
                "true code; a step that adds more error than it removes drifts further when repeated (training it "
                "on its own iterates, as the IKC paper's alternating scheme does, would be the next thing to try).")
    return f" The corrector moves the kernel towards the truth ({moves}): train the predictor and corrector longer."


def _diagnosis(results: Mapping[str, Any]) -> list[str]:
    """What limits each method, read off the oracles (measured numbers only), and what would close it."""
    out = ["### What limits the numbers, and what would close the gap", ""]
    steps = {m["network"]: m["training_steps"] for m in results.get("models", [])}
    presets = {m["network"]: m["preset"] for m in results.get("models", [])}
    bars = {b["id"]: b for b in results.get("bars", [])}

    ikc_bars = [bars[i] for i in ("ikc_set5", "ikc_bsd100") if i in bars and bars[i]["met"] is False]
    for bar in ikc_bars:
        bench = "Set5" if bar["id"] == "ikc_set5" else "BSD100"
        oracle = _value(results, bench, "gaussian8", "sftmd_oracle")
        best = _value(results, bench, "gaussian8", "ikc", "oracle_best_psnr")
        effect = _ikc_corrector_effect(results, bench)
        text = f"- IKC {bench}: {_fmt(bar['measured'])} dB at the fixed t"
        if best is not None:
            text += f", {_fmt(best)} dB with the per-image best t (ground truth)"
        if oracle is not None:
            text += f", and {_fmt(oracle)} dB for SFTMD given the true σ. "
            if oracle < bar["target"]:
                text += (f"Even the oracle is below {bar['target']:.1f} dB, so the non-blind SR network itself "
                         f"(SFTMD, {presets.get('sftmd', '?')} preset, {steps.get('sftmd', '?')} steps) is the limit: "
                         "it needs many more training steps (the paper trains for hundreds of thousands) and the "
                         "paper-size preset, i.e. GPU time.")
            else:
                text += ("The oracle clears the bar, so the kernel estimate (predictor/corrector, "
                         f"{steps.get('ikc_predictor', '?')}/{steps.get('ikc_corrector', '?')} steps) is the limit"
                         + ("." if effect else ": train P and C longer."))
        else:
            text += "."
        out.append(text + effect)
    b = bars.get("manet_vs_oracle")
    if b is not None and b["measured"] is not None:
        _, modes = _variant_mean(results, "BSD100", "manet")
        ora, _ = _variant_mean(results, "BSD100", "manet_oracle")
        bic, _ = _variant_mean(results, "BSD100", "bicubic")
        if ora is not None:
            gap = ora - b["measured"]
            out.append(f"- MANet + RRDB-SFT, BSD100 variant modes: {gap:.2f} dB below its oracle (the same RRDB-SFT "
                       "fed the true kernels), which is the cost of the kernel estimate "
                       f"(MANet, {presets.get('manet', '?')} preset, {steps.get('manet', '?')} steps); "
                       + ("within the 0.5 dB bar." if gap <= 0.5 else
                          "more MANet training (kernel L1) and blind fine-tuning of RRDB-SFT on MANet's codes would close it."))
            if bic is not None:
                out[-1] += (f" The oracle itself is only {ora - bic:.2f} dB above bicubic, so a small gap also says "
                            "how little this RRDB-SFT gains from any kernel yet: the oracle bar is only meaningful "
                            "once the SR network is strong.")
    b = bars.get("manet_vs_bicubic")
    if b is not None and b["met"] is False:
        out.append(f"- MANet + RRDB-SFT is {b['gap_db']:.2f} dB short of bicubic + 1.5 dB on BSD100's variant modes; "
                   f"RRDB-SFT ({presets.get('rrdb_sft', '?')} preset, {steps.get('rrdb_sft', '?')} steps) needs far "
                   "longer training (paper: 480k + 250k iterations) and the paper-size preset.")
    b = bars.get("manet_vs_ikc")
    if b is not None and b["met"] is False:
        out.append(f"- IKC is {-b['gap_db']:.2f} dB ahead of MANet + RRDB-SFT on BSD100's variant modes"
                   if b["gap_db"] < 0 else
                   f"- MANet + RRDB-SFT does not beat IKC on BSD100's variant modes ({b['detail']})")
        out[-1] += ("; per-pixel kernels only pay off once MANet's estimates and RRDB-SFT's use of them are "
                    "trained well enough to beat one good kernel per image (see the oracle gap above).")
    b = bars.get("lr_psnr")
    if b is not None and b["met"] is False:
        out.append(f"- MANet LR-PSNR on nine-kernel BSD100 is {b['gap_db']:.2f} dB below 40 dB: its kernels do not yet "
                   "explain the LR images; more MANet steps (paper: 300k at batch 16) would close it.")
    issue15 = {b["id"] for b in QUALITY_BARS if b["issue"] == 15}
    for bar in results.get("bars", []):  # issue 15's bars: measured, no diagnosis of their own yet
        if bar.get("id") in issue15 and bar["met"] is False:
            out.append(f"- Not met: {bar['bar']} ({bar['detail']}).")
    if len(out) == 2:
        out.append("- Every measured bar is met.")
    out.append("")
    return out


# --------------------------------------------------------------------------------------------
# model cards
# --------------------------------------------------------------------------------------------
_CARD_METHODS = {
    "manet": ("manet",),
    "rrdb_sft": ("manet", "manet_oracle"),
    "sftmd": ("ikc", "sftmd_oracle"),
    "ikc_predictor": ("ikc",),
    "ikc_corrector": ("ikc",),
}


def card_metrics(results: Mapping[str, Any], network: str) -> dict[str, Any]:
    """The measured numbers that concern one network, for its model card's ``metrics`` block."""
    block: dict[str, Any] = {
        "source": "kernelscope-cli evaluate (docs/RESULTS.md, docs/results.json)",
        "command": results.get("command"),
        "date": results.get("date"),
        "complete": results.get("complete"),
        "images": {b: f"{u['used']}/{u['total']}" for b, u in results["images"].items()},
        "metric": "mean PSNR-Y (dB) / SSIM-Y per benchmark and protocol",
    }
    for m in _CARD_METHODS.get(network, ()):
        if m not in results["methods"]:
            continue
        table: dict[str, dict[str, Any]] = {}
        for b, by_p in results["cells"].items():
            for p, by_m in by_p.items():
                cell = by_m.get(m, {})
                if cell.get("psnr") is None:
                    continue
                entry = {"psnr_y": round(cell["psnr"], 3), "ssim_y": round(cell["ssim"], 4)}
                if m == "ikc":
                    entry["fixed_step"] = cell.get("fixed_step")
                    entry["oracle_best_psnr_y"] = _round(cell.get("oracle_best_psnr"), 3)
                table.setdefault(p, {})[b] = entry
        block[m] = table
    if "ikc" in _CARD_METHODS.get(network, ()) and results.get("ikc_fixed_step") is not None:
        block["ikc_fixed_step"] = dict(results["ikc_fixed_step"])  # the default number of IKC steps
    if network == "manet":
        ke = {}
        for b, by_p in results["kernel_estimation"].items():
            for p, cell in by_p.items():
                if "lr_psnr" in cell:
                    ke.setdefault(p, {})[b] = {"lr_psnr": _round(cell["lr_psnr"], 3),
                                               "kernel_l1": _round(cell["kernel_l1"], 7),
                                               "kernel_psnr": _round(cell["kernel_psnr"], 3)}
        block["kernel_estimation"] = ke
    return block


def _round(v: float | None, digits: int) -> float | None:
    return None if v is None else round(float(v), digits)
