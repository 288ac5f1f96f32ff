"""What limits each method, read off the oracles and the bars (measured numbers only), and what would close it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.evaluation.bars import BAR_BY_ID, PHOTO_ISSUE
from engine.evaluation.values import fmt, value, variant_mean



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


def ikc_change_by_image(results: Mapping[str, Any], bench: str, first: int, last: int, worst: int = 5) -> str:
    """Where IKC's PSNR-Y change from iteration ``first`` to ``last`` on ``bench`` Gaussian8 comes from.

    Per image, the mean change over its kernels (read off the per-case records), the ``worst`` most
    negative first, and what share of the set's mean change they make; empty without per-case records
    for at least two images.
    """
    by_image: dict[str, list[float]] = {}
    for record in results.get("cases", {}).get(bench, {}).get("gaussian8", []):
        psnr = (record.get("ikc") or {}).get("psnr") or []
        if len(psnr) > last and psnr[first] is not None and psnr[last] is not None:
            by_image.setdefault(str(record.get("image")), []).append(psnr[last] - psnr[first])
    if len(by_image) < 2:
        return ""
    means = sorted((sum(v) / len(v), name) for name, v in by_image.items())
    total = sum(d for d, _ in means)
    shown = means[:worst]
    which = "most negative first" if len(shown) == len(means) else f"the {len(shown)} most negative of {len(means)}"
    text = (f" Mean PSNR-Y change t = {first} → {last} per image (over its kernels), {which}: "
            + ", ".join(f"{name} {d:+.3f}" for d, name in shown) + " dB")
    if total < 0 and len(shown) < len(means):
        text += f"; together {sum(d for d, _ in shown) / total:.0%} of the set's total change"
    return text + "."


def _ikc_lines(results: Mapping[str, Any], bars: Mapping[str, Any], steps: Mapping[str, Any],
               presets: Mapping[str, Any]) -> list[str]:
    out = []
    for bar in [bars[i] for i in ("ikc_set5", "ikc_bsd100") if i in bars and bars[i]["met"] is False]:
        bench = BAR_BY_ID[bar["id"]].measured.bench
        oracle = value(results, bench, "gaussian8", "sftmd_oracle")
        best = value(results, bench, "gaussian8", "ikc", "oracle_best_psnr")
        effect = _ikc_corrector_effect(results, bench)
        text = f"- IKC {bench}: {fmt(bar['measured'])} dB at the fixed t"
        if best is not None:
            text += f", {fmt(best)} dB with the per-image best t (ground truth)"
        if oracle is not None:
            text += f", and {fmt(oracle)} dB for SFTMD given the true σ. "
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
    return out


def _manet_oracle_line(results: Mapping[str, Any], measured: float, steps: Mapping[str, Any],
                       presets: Mapping[str, Any]) -> str | None:
    ora, _ = variant_mean(results, "BSD100", "manet_oracle")
    bic, _ = variant_mean(results, "BSD100", "bicubic")
    if ora is None:
        return None
    gap = ora - measured
    within = -BAR_BY_ID["manet_vs_oracle"].threshold
    text = (f"- MANet + RRDB-SFT, BSD100 variant modes: {gap:.2f} dB below its oracle (the same RRDB-SFT "
            "fed the true kernels), which is the cost of the kernel estimate "
            f"(MANet, {presets.get('manet', '?')} preset, {steps.get('manet', '?')} steps); "
            + (f"within the {within} dB bar." if gap <= within else
               "more MANet training (kernel L1) and blind fine-tuning of RRDB-SFT on MANet's codes would close it."))
    if bic is not None:
        text += (f" The oracle itself is only {ora - bic:.2f} dB above bicubic, so a small gap also says "
                 "how little this RRDB-SFT gains from any kernel yet: the oracle bar is only meaningful "
                 "once the SR network is strong.")
    return text


def diagnosis(results: Mapping[str, Any]) -> list[str]:
    """A results dict → the report's "what limits the numbers" section, as Markdown lines."""
    out = ["### What limits the numbers, and what would close the gap", ""]
    steps = {m["network"]: m["training_steps"] for m in results.get("models", [])}
    presets = {m["network"]: m["preset"] for m in results.get("models", [])}
    bars = {b["id"]: b for b in results.get("bars", [])}

    out += _ikc_lines(results, bars, steps, presets)
    b = bars.get("manet_vs_oracle")
    if b is not None and b["measured"] is not None:
        line = _manet_oracle_line(results, b["measured"], steps, presets)
        if line is not None:
            out.append(line)
    b = bars.get("manet_vs_bicubic")
    if b is not None and b["met"] is False:
        out.append(f"- MANet + RRDB-SFT is {b['gap_db']:.2f} dB short of bicubic + "
                   f"{BAR_BY_ID['manet_vs_bicubic'].threshold} dB on BSD100's variant modes; "
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
        out.append(f"- MANet LR-PSNR on nine-kernel BSD100 is {b['gap_db']:.2f} dB below "
                   f"{BAR_BY_ID['lr_psnr'].threshold} dB: its kernels do not yet "
                   "explain the LR images; more MANet steps (paper: 300k at batch 16) would close it.")
    for bar in results.get("bars", []):  # the photo issue's bars: measured, no diagnosis of their own yet
        known = BAR_BY_ID.get(bar.get("id"))
        if known is not None and known.issue == PHOTO_ISSUE and bar["met"] is False:
            out.append(f"- Not met: {bar['bar']} ({bar['detail']}).")
            steps = (known.reference.ikc_step if known.reference is not None else None, known.measured.ikc_step)
            if None not in steps:
                out[-1] += ikc_change_by_image(results, known.measured.bench, *steps)
    if len(out) == 2:
        out.append("- Every measured bar is met.")
    out.append("")
    return out
