"""Benchmark evaluation of the blind SR methods (``kernelscope-cli evaluate``).

Methods (``METHODS``, the ``evaluate`` rows of :data:`engine.methods.METHOD_TABLE`), scored on the
cases of :func:`engine.data.iter_test_set`:

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

Modules, in dependency order (no cycles):

- :mod:`~engine.evaluation.values` — reading and formatting numbers of a results dict;
- :mod:`~engine.evaluation.config` — :class:`EvalConfig`, the method lists, which cells apply;
- :mod:`~engine.evaluation.cases` — :func:`evaluate_case`: run and score one case;
- :mod:`~engine.evaluation.bars` — :data:`QUALITY_BARS` (one row per bar: text and check) and :func:`check_bars`;
- :mod:`~engine.evaluation.aggregate` — :func:`aggregate` (per-case records → the JSON-ready results),
  :func:`choose_ikc_step`;
- :mod:`~engine.evaluation.environment` — where it ran, which models;
- :mod:`~engine.evaluation.run` — :func:`run_evaluation`, earlier results, the scoring check;
- :mod:`~engine.evaluation.diagnosis`, :mod:`~engine.evaluation.report` — :func:`render_markdown`;
- :mod:`~engine.evaluation.cards` — :func:`card_metrics`, the block recorded in each model card.
"""

from __future__ import annotations

from engine.evaluation.aggregate import aggregate, choose_ikc_step
from engine.evaluation.bars import QUALITY_BARS, check_bars
from engine.evaluation.cards import card_metrics
from engine.evaluation.cases import evaluate_case
from engine.evaluation.config import (
    ALL_METHODS,
    FORMAT,
    METHODS,
    PREVIOUS_METHODS,
    STEP_RULE_BENCHMARK,
    STEP_RULE_PROTOCOL,
    EvalConfig,
    base_method,
    cases_per_image,
    count_cases,
    not_applicable,
)
from engine.evaluation.environment import describe_environment, describe_models
from engine.evaluation.report import render_markdown
from engine.evaluation.run import STANDARD_BICUBIC_CLEAN, load_previous_results, protocol_check, run_evaluation
from engine.evaluation.values import VARIANTS

__all__ = [
    "FORMAT",
    "METHODS",
    "PREVIOUS_METHODS",
    "ALL_METHODS",
    "STEP_RULE_BENCHMARK",
    "STEP_RULE_PROTOCOL",
    "VARIANTS",
    "base_method",
    "QUALITY_BARS",
    "EvalConfig",
    "not_applicable",
    "cases_per_image",
    "count_cases",
    "evaluate_case",
    "choose_ikc_step",
    "aggregate",
    "check_bars",
    "describe_environment",
    "describe_models",
    "STANDARD_BICUBIC_CLEAN",
    "protocol_check",
    "load_previous_results",
    "run_evaluation",
    "render_markdown",
    "card_metrics",
]
