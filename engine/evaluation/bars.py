"""The quality bars of issues 4 and 15 (×4) and 20 (×2, ×3): one row per bar gives its text, what it
reads, its check and the scales it applies at.

A :class:`QualityBar` names the measured quantity, the threshold (a target in dB, or dB added to a
reference quantity) and whether it must be beaten strictly; :func:`check_bars` reads each row off a
results dict, and the report prints the same row's text. Each threshold is written once, in
:data:`QUALITY_BARS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from engine.data import PHOTO_PROTOCOLS
from engine.evaluation.values import VARIANTS, fmt, results_key, value, variant_mean

PHOTO_ISSUE = 15
"""The issue whose bars (noise robustness, the previous models) are listed only when a photo-like
protocol or the previous models were evaluated."""
SCALES_ISSUE = 20
"""The issue whose bars hold at ×2 and ×3 (IKC's gain over bicubic, MANet against bicubic and IKC)."""


@dataclass(frozen=True)
class Quantity:
    """A number a bar reads off a results dict (``read_at(results, bench)``), named for the detail line."""

    name: str
    bench: str
    read_at: Callable[[Mapping[str, Any], str], float | None]
    ikc_step: int | None = None  # the IKC iteration it reads (None: not an IKC iteration)

    def read(self, results: Mapping[str, Any]) -> float | None:
        """A results dict → this quantity on :attr:`bench` (None: not measured)."""
        return self.read_at(results, self.bench)


def psnr(name: str, method: str, protocol: str, bench: str = "BSD100") -> Quantity:
    """Mean PSNR-Y of ``method`` on ``bench`` under ``protocol`` (IKC: at its fixed step)."""
    return Quantity(name, bench, lambda results, b: value(results, b, protocol, method))


def variant_psnr(name: str, method: str, bench: str = "BSD100") -> Quantity:
    """Mean PSNR-Y of ``method`` on ``bench`` over the variant modes present (each mode weighs the same)."""
    return Quantity(name, bench, lambda results, b: variant_mean(results, b, method)[0])


def lr_psnr(name: str, protocol: str, method: str = "manet", bench: str = "BSD100") -> Quantity:
    """``method``'s mean LR-PSNR (its kernels re-degrading the HR image) on ``bench`` under ``protocol``."""
    def read_at(results: Mapping[str, Any], b: str) -> float | None:
        v = results.get(results_key("kernel_estimation", method), {}).get(b, {}).get(protocol, {}).get("lr_psnr")
        return None if v is None else float(v)

    return Quantity(name, bench, read_at)


def ikc_iteration(name: str, step: int, bench: str = "BSD100") -> Quantity:
    """IKC's mean PSNR-Y at iteration ``step`` on ``bench`` Gaussian8 (None: not run that far)."""
    def read_at(results: Mapping[str, Any], b: str) -> float | None:
        per = results["cells"].get(b, {}).get("gaussian8", {}).get("ikc", {}).get("psnr_per_iteration") or []
        return per[step] if len(per) > step else None

    return Quantity(name, bench, read_at, ikc_step=step)


@dataclass(frozen=True)
class QualityBar:
    """One quality bar.

    Args:
        id: stable name (``results["bars"][i]["id"]``).
        issue: the issue that set it.
        text: the bar as the report states it; ``{threshold}`` is replaced by ``abs(threshold)``.
        measured: what is measured.
        threshold: dB; without ``reference`` the target itself, else added to the reference
            (negative: allowed below it).
        reference: what the measured value is compared with (``None``: the threshold alone).
        strict: met only when the measured value is above the target (not equal).
        where: the detail line's context; ``{modes}``: the variant modes present, ``{ikc_step}``:
            IKC's fixed step (a bar without reference: the whole detail line).
        paired: measured and reference come from one curve: no target without the measured value.
        scales: the SR factors the bar holds at (a report at another scale does not list it).
    """

    id: str
    issue: int
    text: str
    measured: Quantity
    threshold: float
    reference: Quantity | None = None
    strict: bool = False
    where: str = ""
    paired: bool = False
    scales: tuple[int, ...] = (4,)

    @property
    def statement(self) -> str:
        """The bar as one line of the report, its threshold filled in."""
        return self.text.format(threshold=abs(self.threshold))

    def check(self, results: Mapping[str, Any], subsample: str | None = None) -> dict[str, Any]:
        """A results dict → this bar's entry: measured, target, ``met`` (None: not measured), gap, detail."""
        measured = self.measured.read(results)
        ref = None if self.reference is None else self.reference.read(results)
        if self.reference is None:
            target = float(self.threshold)
        else:
            target = None if ref is None or (self.paired and measured is None) else ref + self.threshold
        if measured is None or target is None:
            met = None
        else:
            met = bool(measured > target) if self.strict else bool(measured >= target)
        ikc_step = (results.get("ikc_fixed_step") or {}).get("step")
        modes = [p for p in VARIANTS if p in results["protocols"]]
        where = self.where.format(modes=", ".join(modes) or "no variant mode", ikc_step=ikc_step)
        if self.reference is None:
            detail = where
        else:
            margin = "" if self.threshold == 0 else f" {'+' if self.threshold > 0 else '−'} {abs(self.threshold)}"
            detail = (f"{where}: {self.measured.name} {fmt(measured)} dB vs "
                      f"{self.reference.name.format(ikc_step=ikc_step)} {fmt(ref)} dB{margin}")
        return {"id": self.id, "bar": self.statement, "measured": measured, "target": target, "met": met,
                "gap_db": None if met is None else round(target - measured, 2), "detail": detail,
                "subsample": subsample}


_VARIANTS_BSD100 = "BSD100, mean over {modes}"
_MANET_VARIANTS = variant_psnr("MANet", "manet")
_MANET_NOISY = psnr("MANet", "manet", "gaussian8_n15")
_MANET_VS_BICUBIC = QualityBar(
    "manet_vs_bicubic", 4, "MANet + RRDB-SFT on the variant modes (BSD100) ≥ bicubic + {threshold} dB",
    _MANET_VARIANTS, 1.5, variant_psnr("bicubic", "bicubic"), where=_VARIANTS_BSD100)
_MANET_VS_IKC = QualityBar(
    "manet_vs_ikc", 4, "MANet + RRDB-SFT on the variant modes (BSD100) better than IKC",
    _MANET_VARIANTS, 0.0, variant_psnr("IKC (fixed t = {ikc_step})", "ikc"), strict=True, where=_VARIANTS_BSD100)
_IKC_VS_BICUBIC_X2 = QualityBar(
    "ikc_vs_bicubic_x2", SCALES_ISSUE, "Blind IKC on Gaussian8 (BSD100) ≥ bicubic + {threshold} dB",
    psnr("IKC", "ikc", "gaussian8"), 2.5, psnr("bicubic", "bicubic", "gaussian8"),
    where="BSD100 Gaussian8, IKC at fixed t = {ikc_step}", scales=(2,))

QUALITY_BARS: tuple[QualityBar, ...] = (
    QualityBar("ikc_set5", 4, "Blind IKC on Gaussian8, Set5 ≥ {threshold} dB",
               psnr("IKC", "ikc", "gaussian8", "Set5"), 29.5,
               where="IKC at fixed t = {ikc_step}, Set5 Gaussian8 PSNR-Y"),
    QualityBar("ikc_bsd100", 4, "Blind IKC on Gaussian8, BSD100 ≥ {threshold} dB",
               psnr("IKC", "ikc", "gaussian8"), 26.5, where="IKC at fixed t = {ikc_step}, BSD100 Gaussian8 PSNR-Y"),
    _MANET_VS_BICUBIC,
    QualityBar("manet_vs_oracle", 4,
               "MANet + RRDB-SFT on the variant modes (BSD100) within {threshold} dB of the oracle",
               _MANET_VARIANTS, -0.5, variant_psnr("oracle", "manet_oracle"), where=_VARIANTS_BSD100),
    _MANET_VS_IKC,
    QualityBar("lr_psnr", 4, "MANet LR-PSNR ≥ {threshold} dB on nine-kernel BSD100",
               lr_psnr("MANet LR-PSNR", "manet9"), 40, where="MANet LR-PSNR (Y), BSD100 nine kernels"),
    QualityBar("noise_vs_bicubic", PHOTO_ISSUE,
               "MANet + RRDB-SFT on Gaussian8 + noise σ 15 (BSD100) ≥ bicubic + {threshold} dB",
               _MANET_NOISY, 1.5, psnr("bicubic", "bicubic", "gaussian8_n15"), where="BSD100 Gaussian8 + σ 15"),
    QualityBar("noise_vs_previous", PHOTO_ISSUE,
               "MANet + RRDB-SFT on Gaussian8 + noise σ 15 (BSD100) ≥ the previous models + {threshold} dB",
               _MANET_NOISY, 1.0, psnr("previous models", "manet_previous", "gaussian8_n15"),
               where="BSD100 Gaussian8 + σ 15"),
    QualityBar("clean_manet_gaussian8", PHOTO_ISSUE,
               "MANet + RRDB-SFT on clean Gaussian8 (BSD100) within {threshold} dB of the previous models (or above)",
               psnr("MANet", "manet", "gaussian8"), -0.3, psnr("previous models", "manet_previous", "gaussian8"),
               where="BSD100 clean Gaussian8"),
    QualityBar("clean_manet_variant", PHOTO_ISSUE,
               "MANet + RRDB-SFT on the clean variant modes (BSD100) within {threshold} dB of the previous models "
               "(or above)", _MANET_VARIANTS, -0.3, variant_psnr("previous models", "manet_previous"),
               where="BSD100 clean variant modes"),
    QualityBar("clean_ikc_gaussian8", PHOTO_ISSUE,
               "IKC on clean Gaussian8 (BSD100) within {threshold} dB of the previous models (or above)",
               psnr("IKC", "ikc", "gaussian8"), -0.3, psnr("previous models", "ikc_previous", "gaussian8"),
               where="BSD100 clean Gaussian8"),
    QualityBar("lr_psnr_noise", PHOTO_ISSUE, "MANet LR-PSNR ≥ {threshold} dB on nine-kernel BSD100 + noise σ 15",
               lr_psnr("MANet LR-PSNR", "manet9_n15"), 40,
               where="MANet LR-PSNR (Y, against the noise-free LR image), BSD100 nine kernels + σ 15"),
    QualityBar("ikc_t7_set5", PHOTO_ISSUE, "IKC at t = 7 ≥ IKC at t = 1 − {threshold} dB on Set5 Gaussian8",
               ikc_iteration("IKC t = 7", 7, "Set5"), -0.02, ikc_iteration("t = 1", 1, "Set5"), paired=True,
               where="Set5 Gaussian8"),
    QualityBar("ikc_t7_bsd100", PHOTO_ISSUE, "IKC at t = 7 ≥ IKC at t = 1 − {threshold} dB on BSD100 Gaussian8",
               ikc_iteration("IKC t = 7", 7), -0.02, ikc_iteration("t = 1", 1), paired=True, where="BSD100 Gaussian8"),
    # issue 20: the same statements at ×2 and ×3 (IKC's margin over bicubic differs per scale)
    _IKC_VS_BICUBIC_X2,
    replace(_IKC_VS_BICUBIC_X2, id="ikc_vs_bicubic_x3", threshold=2.0, scales=(3,)),
    replace(_MANET_VS_BICUBIC, id="manet_vs_bicubic_x2_x3", issue=SCALES_ISSUE, scales=(2, 3)),
    replace(_MANET_VS_IKC, id="manet_vs_ikc_x2_x3", issue=SCALES_ISSUE, scales=(2, 3)),
)
"""The quality bars, in report order; :func:`check_bars` checks them."""

BAR_BY_ID: dict[str, QualityBar] = {bar.id: bar for bar in QUALITY_BARS}


def _subsample(results: Mapping[str, Any], bench: str) -> str | None:
    u = results.get("images", {}).get(bench)
    return None if not u or u["used"] == u["total"] else f"{u['used']}/{u['total']} {bench} images"


def check_bars(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A results dict → each quality bar with the measured value, the target and ``met`` (None: not measured).

    Only the bars of the results' scale (default ×4) are listed; those of :data:`PHOTO_ISSUE` only
    when a photo-like protocol or the previous models were evaluated.
    """
    photo = any(p in PHOTO_PROTOCOLS for p in results["protocols"]) or "models_previous" in results
    scale = int(results.get("scale", 4))
    return [bar.check(results, _subsample(results, bar.measured.bench)) for bar in QUALITY_BARS
            if scale in bar.scales and (bar.issue != PHOTO_ISSUE or photo)]
