"""``docs/RESULTS.md`` from a results dict: the command, device, models, one table per protocol family, the bars."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engine.data import GAUSSIAN8_SIGMAS_BY_SCALE, PHOTO_PROTOCOLS, base_protocol, benchmark_paths
from engine.evaluation.bars import BAR_BY_ID
from engine.evaluation.config import not_applicable
from engine.evaluation.diagnosis import diagnosis
from engine.evaluation.values import VARIANTS, fmt, results_key, value
from engine.methods import METHOD_TABLE


_FAMILY_TITLES = {
    "gaussian8": "Gaussian8 (IKC protocol: isotropic σ {g8_lo:g} … {g8_hi:g}, blur + bicubic ↓)",
    "manet9": "MANet's nine anisotropic kernels (blur + direct subsampling)",
    "variant": "MANet's spatially variant modes 1–5 (blur per pixel + direct subsampling)",
}

_ORACLE_BEST_LABEL = "IKC oracle (best of t per image, uses ground truth)"
"""The row after the current models' IKC: per image the iteration with the best PSNR (not blind)."""

_GAUSSIAN8_ANCHORS_X4 = [
    "Published anchors for this protocol (not measured here): bicubic Set5 26.42, Set14 24.69, "
    "BSD100 24.91 dB (issue 4); IKC paper 31.67 / 28.31 / 27.37 dB (best of its iterations per "
    "image, i.e. like the oracle row); an IKC reimplementation on small data reached Set5 29.43 dB.", ""]


def _cell_text(cell: Mapping[str, Any], psnr_key: str = "psnr", ssim_key: str = "ssim") -> str:
    if "na" in cell:
        return "n/a"
    if "skipped" in cell:
        return "not run"
    if cell.get("pending"):
        return "(not run yet)"
    return f"{fmt(cell.get(psnr_key))} / {fmt(cell.get(ssim_key), 4)}"


def _label(results: Mapping[str, Any], method: str) -> str:
    """A method's row label; iterative (IKC) rows name their fixed step."""
    spec = METHOD_TABLE[method]
    if not spec.iterative:
        return spec.report_label
    step = (results.get(results_key("ikc_fixed_step", method)) or {}).get("step")
    return spec.report_label.format(step=step if step is not None else "?")


def _method_rows(results: Mapping[str, Any], protocol: str) -> list[tuple[str, str, str, str]]:
    """(label, method, psnr key, ssim key) rows for one protocol, oracle-best IKC after IKC."""
    rows = []
    for m in results["methods"]:
        if not_applicable(m, protocol) is not None:
            continue
        rows.append((_label(results, m), m, "psnr", "ssim"))
        if METHOD_TABLE[m].iterative and not METHOD_TABLE[m].repeats:
            rows.append((_ORACLE_BEST_LABEL, m, "oracle_best_psnr", "oracle_best_ssim"))
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
    """LR-PSNR and kernel-error rows of each per-pixel kernel estimator that ran (MANet, its previous models)."""
    benches = results["benchmarks"]
    out = []
    for method in [m for m in METHOD_TABLE if m in results["methods"] and METHOD_TABLE[m].kernel == "per_pixel"]:
        ke = results.get(results_key("kernel_estimation", method), {})
        for label, key, digits in (("LR-PSNR (dB)", "lr_psnr", 2), ("kernel error: mean L1", "kernel_l1", 6),
                                   ("kernel error: PSNR (dB)", "kernel_psnr", 2)):
            vals = []
            for b in benches:
                cell = ke.get(b, {}).get(protocol)
                vals.append("(not run yet)" if cell is None else "n/a" if "na" in cell else fmt(cell.get(key), digits))
            if METHOD_TABLE[method].repeats and all(v == "n/a" for v in vals):
                continue  # the convention has no kernel truth: the current models' rows already say so
            who = METHOD_TABLE[method].short
            first = f"{lead} | {who} {label}" if lead is not None else f"{who} {label}"
            out.append(f"| {first} | " + " | ".join(vals) + " |")
    return out


def _images_line(results: Mapping[str, Any]) -> str:
    parts = []
    for b, u in results["images"].items():
        parts.append(f"{b} {u['used']}/{u['total']}" + ("" if u["used"] == u["total"] else f" (first {u['used']} images)"))
    return ", ".join(parts)


def _header(results: Mapping[str, Any]) -> list[str]:
    """Title (marked preliminary in a partial run), the command, date, device, images, metric, wall time."""
    title = f"# Measured results (×{results['scale']})"
    lines = [title if results.get("complete") else title + " — PRELIMINARY (partial run)", ""]
    if not results.get("complete"):
        lines += ["> **Preliminary:** this table was written while the evaluation was still running; cells "
                  "marked “(not run yet)” have no measurement.", ""]
    lines += ["Produced by:", "", "```", results.get("command") or "(command not recorded)", "```", ""]
    if results.get("merged_from"):
        lines += ["Merged (`--merge`: per-case records joined in this order, a later file's record of a method "
                  "replacing an earlier one's) from:", ""]
        for src in results["merged_from"]:
            take = src["take"] if isinstance(src["take"], str) else ", ".join(
                k if k == v else f"{k} as {v}" for k, v in src["take"].items())
            lines.append(f"- `{src['path']}` ({take}; {src.get('date')}): `{src.get('command')}`")
        lines.append("")
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
    return lines


def _model_tables(results: Mapping[str, Any]) -> list[str]:
    """The model cards used (and, after an introduction, the previous models')."""
    prev_src = results.get("previous_results")
    prev_intro = (f"Rows marked “previous models” ran these networks, from `{results.get('previous_models_dir')}`, "
                  "on the same LR images" + (":" if not prev_src else
                  f"; the cells {', '.join(prev_src['cells'])} are copied from the earlier evaluation "
                  f"`{prev_src['path']}` ({prev_src['date']}; same seed and LR images):"))
    lines: list[str] = []
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
    return lines


def _ikc_step_section(results: Mapping[str, Any]) -> list[str]:
    """Which IKC iteration is reported and why (only when IKC ran)."""
    if "ikc" not in results["methods"]:
        return []
    step_info = results.get("ikc_fixed_step")
    lines = ["## IKC iteration", ""]
    if step_info is None:
        lines.append("Not chosen yet (Set5 Gaussian8 has not been run).")
    else:
        lines.append(f"IKC is reported at **t = {step_info['step']}** — {step_info['rule']}.")
        if "set5_gaussian8_psnr_per_iteration" in step_info:
            per = ", ".join(f"t={t}: {fmt(v)}" for t, v in enumerate(step_info["set5_gaussian8_psnr_per_iteration"]))
            lines.append(f"Set5 Gaussian8 mean PSNR-Y per iteration: {per}.")
        schedule = next((m.get("ikc_correction_step") for m in results.get("models", [])
                         if m.get("network") == "ikc_corrector" and m.get("ikc_correction_step")), None)
        if schedule == "harmonic":
            lines.append("The loop applies 1/t of the corrector's change at correction t (the corrector card's "
                         "`ikc_loop.correction_step`: `harmonic`), so t = 0 and t = 1 are as with full steps.")
        elif schedule is not None:
            lines.append(f"The loop applies the corrector's changes with the card's `{schedule}` step.")
        prev = results.get("ikc_fixed_step_previous")
        if prev is not None:
            lines.append(f"The previous models' IKC is reported at **t = {prev['step']}**, "
                         "chosen by the same rule.")
        lines.append(f"The row “{_ORACLE_BEST_LABEL}” picks, for each LR image, "
                     "the iteration with the best PSNR against the HR image: it is *not* a blind result "
                     "(the published IKC numbers are of this kind).")
    lines.append("")
    return lines


def _family_title(family: str, scale: int) -> str:
    """The section heading of a protocol family; Gaussian8's names the σ of its ``scale``."""
    sigmas = GAUSSIAN8_SIGMAS_BY_SCALE[int(scale)]
    return _FAMILY_TITLES[family].format(g8_lo=min(sigmas), g8_hi=max(sigmas))


def _invariant_section(results: Mapping[str, Any], protocol: str) -> list[str]:
    """One spatially invariant protocol ("gaussian8" or "manet9"): its table, checks and photo-like variants."""
    lines = [f"## {_family_title(protocol, results['scale'])}", ""]
    lines += _table(results, protocol)
    lines += _kernel_rows(results, protocol)
    lines.append("")
    if protocol == "gaussian8":
        if results["scale"] == 4:
            lines += _GAUSSIAN8_ANCHORS_X4
        lines += _protocol_check_lines(results)
        if "ikc" in results["methods"]:
            lines += _ikc_iteration_table(results, protocol)
    return lines


def _variant_section(results: Mapping[str, Any], variants: Sequence[str]) -> list[str]:
    """The clean variant modes: one table (mode, method), the mean of modes, IKC's iterations."""
    benches = results["benchmarks"]
    lines = [f"## {_FAMILY_TITLES['variant']}", "",
             "| Mode | Method | " + " | ".join(benches) + " |", "|---|---|" + "---|" * len(benches)]
    for p in variants:
        lines += _table(results, p, first_value=p.removeprefix("variant"))
        lines += _kernel_rows(results, p, lead=p.removeprefix("variant"))
    if len(variants) > 1:
        lines += _variant_mean_rows(results, variants)
    lines.append("")
    if "ikc" in results["methods"]:
        lines += _ikc_iteration_table(results, variants[0], variants)
    return lines


def render_markdown(results: Mapping[str, Any]) -> str:
    """A results dict → ``docs/RESULTS.md``: command, date, device, models, one table per protocol family, bars."""
    lines = _header(results) + _model_tables(results) + _ikc_step_section(results)
    protocols = results["protocols"]
    for family in ("gaussian8", "manet9"):
        if family in protocols:
            lines += _invariant_section(results, family) + _photo_section(results, family)
    for family in ("gaussian8", "manet9"):
        if family not in protocols:
            lines += _photo_section(results, family)
    variants = [p for p in VARIANTS if p in protocols]
    if variants:
        lines += _variant_section(results, variants)
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
    out = [f"## {_family_title(family, results['scale'])} — with photo-like noise / JPEG", "",
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
        text = f"{bench} {fmt(row['bicubic_clean_psnr_y'])}"
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
            ps = [value(results, b, p, m) for p in variants]
            ss = [value(results, b, p, m, "ssim") for p in variants]
            ok = all(v is not None for v in ps + ss)
            vals.append(f"{fmt(float(np.mean(ps)))} / {fmt(float(np.mean(ss)), 4)}" if ok else "—")
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
        out.append(f"| {name} | " + " | ".join(fmt(v) for v in per) + " |")
    out.append("")
    return out


def _bars_section(results: Mapping[str, Any]) -> list[str]:
    """The bars table (measured, target, met?), each bar's detail, then the diagnosis."""
    issues = sorted({BAR_BY_ID[bar["id"]].issue for bar in results.get("bars", []) if bar.get("id") in BAR_BY_ID})
    out = [f"## Gap to the quality bars (issue{'s' if len(issues) > 1 else ''} "
           f"{' and '.join(str(i) for i in issues) or 4})", ""]
    out += ["| Bar | Measured | Target | Met? |", "|---|---|---|---|"]
    for bar in results.get("bars", []):
        met = "not measured" if bar["met"] is None else ("yes" if bar["met"] else f"**no** (gap {bar['gap_db']:.2f} dB)")
        if bar["met"] is not None and bar.get("subsample"):
            met += f" — on {bar['subsample']} only"
        out.append(f"| {bar['bar']} | {fmt(bar['measured'])} | {fmt(bar['target'])} | {met} |")
    out.append("")
    if any(bar.get("subsample") and bar["met"] is not None for bar in results.get("bars", [])):
        out += ["A bar checked on a subsample of its benchmark is an indication, not a full-benchmark result.", ""]
    for bar in results.get("bars", []):
        out.append(f"- {bar['detail']}.")
    out.append("")
    out += diagnosis(results)
    return out
