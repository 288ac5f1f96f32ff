"""``kernelscope-cli evaluate``: PSNR/SSIM-Y tables of every method on the benchmarks (docs/RESULTS.md).

Runs bicubic, MANet + RRDB-SFT, its oracle, IKC (every iteration; reported at one step fixed on
Set5 Gaussian8) and the SFTMD oracle on Set5 / Set14 / BSD100 under the Gaussian8, nine-kernel and
spatially variant protocols, and writes a Markdown table (with the exact command at the top) and a
JSON file with every cell and every case. See :mod:`engine.evaluation`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from engine.commands import auto_or_int

NAME = "evaluate"
HELP = "Measure PSNR/SSIM-Y of every method on Set5/Set14/BSD100; write docs/RESULTS.md and results JSON."

_EPILOG = (
    "IKC is reported at one fixed iteration: 'auto' picks the iteration with the best mean PSNR-Y on "
    "Set5 gaussian8 (so both must be requested), never per image and never on Set14/BSD100; every "
    "iteration's PSNR is in the JSON, and the per-image best (which uses the ground truth) is reported "
    "separately as an oracle. --max-images takes N (every benchmark) or NAME=N (one benchmark), e.g. "
    "'--max-images BSD100=20'; the first images in file-name order are used and the table says so. "
    "Partial results are written after each protocol × benchmark group, marked preliminary. "
    "Photo-like protocols (NAME_n5, _n15: Gaussian noise σ/255; _jpeg75: JPEG quality; _n5j85, _n10j80: both) reuse "
    "their clean protocol's blur; their definitions are engine.data.PHOTO_PROTOCOLS. --previous-models DIR "
    "adds manet_previous / ikc_previous rows: the same methods run with that folder's networks."
)


def _step(text: str) -> int | None:
    """``--ikc-fixed-step``: ``auto`` (None) or an iteration number ≥ 0."""
    try:
        return auto_or_int(text, 0, "the IKC step")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_max_images(items: list[str] | None, benchmarks: list[str]) -> dict[str, int]:
    """``["20"]`` → every benchmark 20; ``["Set14=3", "BSD100=20"]`` → those two. Raises ``ValueError``."""
    out: dict[str, int] = {}
    for item in items or []:
        name, sep, count = item.partition("=")
        if not sep:
            name, count = "", item
        try:
            n = int(count)
        except ValueError:
            raise ValueError(f"--max-images: expected N or NAME=N, got {item!r}") from None
        if n < 1:
            raise ValueError(f"--max-images: the count must be ≥ 1, got {item!r}")
        if name:
            out[name] = n
        else:
            out.update({b: n for b in benchmarks})
    return out


def parse_skip(items: list[str] | None) -> frozenset[tuple[str, str, str]]:
    """``["ikc@manet9", "ikc@variant*@Set5"]`` → ``{("ikc", "manet9", "*"), ("ikc", "variant*", "Set5")}``.

    PROTOCOL and BENCHMARK are shell-style patterns; a missing BENCHMARK means every benchmark.
    Raises ``ValueError`` on a malformed item.
    """
    out = set()
    for item in items or []:
        parts = item.split("@")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"--skip: expected METHOD@PROTOCOL or METHOD@PROTOCOL@BENCHMARK, got {item!r}")
        out.add((parts[0], parts[1], parts[2] if len(parts) == 3 else "*"))
    return frozenset(out)


def with_previous_methods(methods: list[str], previous: bool) -> list[str]:
    """``methods`` plus the ``*_previous`` method of each one it names, when a previous folder is given."""
    from engine.evaluation import PREVIOUS_METHODS

    if not previous:
        return list(methods)
    extra = [p for p, base in PREVIOUS_METHODS.items() if base in methods and p not in methods]
    return list(methods) + extra


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``evaluate`` options on ``parser``."""
    from engine.backends import BACKENDS, DEVICES
    from engine.data import ALL_PROTOCOLS, BENCHMARKS
    from engine.evaluation import ALL_METHODS, METHODS

    parser.epilog = _EPILOG
    parser.add_argument("--benchmarks", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS), metavar="NAME",
                        help=f"benchmarks (default: {' '.join(BENCHMARKS)})")
    parser.add_argument("--protocols", nargs="+", choices=ALL_PROTOCOLS, default=list(ALL_PROTOCOLS), metavar="NAME",
                        help=f"degradation protocols (default: all: {' '.join(ALL_PROTOCOLS)})")
    parser.add_argument("--methods", nargs="+", choices=ALL_METHODS, default=list(METHODS), metavar="NAME",
                        help=f"methods (default: {' '.join(METHODS)}; with --previous-models also "
                             "manet_previous and ikc_previous)")
    parser.add_argument("--scale", type=int, choices=(2, 3, 4), default=4, help="SR factor (default 4)")
    parser.add_argument("--ikc-steps", type=int, default=7, help="IKC corrections after the prediction (default 7)")
    parser.add_argument("--ikc-fixed-step", type=_step, default=None, metavar="auto|N",
                        help="IKC iteration reported: 'auto' (best on Set5 gaussian8, the default) or N")
    parser.add_argument("--max-images", nargs="+", default=None, metavar="N|NAME=N",
                        help="use only the first N images of every benchmark, or NAME=N for one")
    parser.add_argument("--skip", nargs="+", default=None, metavar="METHOD@PROTOCOL[@BENCHMARK]",
                        help="cells not to run, to fit a time budget (e.g. ikc@manet9 'ikc@variant*@Set5'); "
                             "they read 'not run'")
    parser.add_argument("--seed", type=int, default=0, help="evaluation seed of the test sets (default 0)")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="where networks run")
    parser.add_argument("--backend", choices=BACKENDS, default="auto")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads per network (default: automatic)")
    parser.add_argument("--tile", type=int, default=None, help="tile size in LR pixels (default: automatic)")
    parser.add_argument("--models-dir", type=Path, default=None, help="models folder (default: the shipped one)")
    parser.add_argument("--previous-models", type=Path, default=None, metavar="DIR",
                        help="a second models folder (e.g. the models before a retraining): adds rows "
                             "manet_previous / ikc_previous for manet / ikc in --methods")
    parser.add_argument("--previous-results", type=Path, default=None, metavar="JSON",
                        help="an earlier results JSON of the previous models (same seed, scale, IKC steps): the "
                             "cells it covers are copied, not run again (e.g. docs/results.json before retraining)")
    parser.add_argument("--merge", nargs="+", default=None, metavar="JSON[:METHODS]",
                        help="run nothing: join these results files' per-case records into one report (later "
                             "files win); JSON:m1,m2 takes only those methods, JSON:manet=manet_previous renames")
    parser.add_argument("--out", type=Path, default=Path("docs/RESULTS.md"), help="Markdown output")
    parser.add_argument("--json", type=Path, default=Path("docs/results.json"), help="JSON output")
    parser.add_argument("--update-cards", action="store_true",
                        help="write the measured metrics into the used model cards' 'metrics' block")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def canonical_command(args: argparse.Namespace) -> str:
    """The full command line (every option spelled out) that reproduces this evaluation."""
    parts = ["kernelscope-cli", NAME, "--benchmarks", *args.benchmarks, "--protocols", *args.protocols,
             "--methods", *args.methods, "--scale", str(args.scale), "--ikc-steps", str(args.ikc_steps),
             "--ikc-fixed-step", "auto" if args.ikc_fixed_step is None else str(args.ikc_fixed_step)]
    if args.max_images:
        parts += ["--max-images", *args.max_images]
    if args.skip:
        parts += ["--skip", *args.skip]
    parts += ["--seed", str(args.seed), "--device", args.device]
    if args.backend != "auto":
        parts += ["--backend", args.backend]
    if args.threads is not None:
        parts += ["--threads", str(args.threads)]
    if args.tile is not None:
        parts += ["--tile", str(args.tile)]
    if args.models_dir is not None:
        parts += ["--models-dir", str(args.models_dir)]
    if args.previous_models is not None:
        parts += ["--previous-models", str(args.previous_models)]
    if args.previous_results is not None:
        parts += ["--previous-results", str(args.previous_results)]
    parts += ["--out", str(args.out), "--json", str(args.json)]
    if args.update_cards:
        parts.append("--update-cards")
    return shlex.join(parts)


def _write(results: dict, md_path: Path, json_path: Path) -> None:
    from engine.evaluation import render_markdown
    from engine.imageio import write_bytes_atomically

    for path, text in ((json_path, json.dumps(results, indent=1, ensure_ascii=False) + "\n"),
                       (md_path, render_markdown(results))):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomically(path, text.encode("utf-8"), overwrite=True)  # a report is regenerated


def _update_cards(results: dict, models_dir: Path | None, reports: str) -> list[Path]:
    from engine.evaluation import card_metrics
    from engine.modelcards import find_cards, save_card

    used = {m["id"] for m in results["models"]}
    written = []
    for card in find_cards(models_dir):
        if card.id in used:
            card.metrics = card_metrics(results, card.network, reports)
            written.append(save_card(card))
    return written


def _finish(results: dict, args: argparse.Namespace) -> int:
    """After the reports are written: the cards' metrics (``--update-cards``) and the bars, printed; 0."""
    if args.update_cards:
        for path in _update_cards(results, args.models_dir, f"{args.out}, {args.json}"):
            print(f"metrics recorded in {path}")
    for bar_info in results["bars"]:
        state = "not measured" if bar_info["met"] is None else ("met" if bar_info["met"] else "NOT met")
        print(f"  {bar_info['bar']}: {state} ({bar_info['detail']})")
    return 0


def _merge(args: argparse.Namespace, fail) -> int:
    """``--merge``: join the given results files into ``--out`` / ``--json`` (and the cards' metrics)."""
    from engine.evaluation.merge import load_merge_source, merge_results, parse_merge_source
    from engine.outputs import OutputPlan, OutputRefused

    try:
        sources = [parse_merge_source(text) for text in args.merge]
        plan = OutputPlan([s.path for s in sources], overwrite=True)  # never write over a source
        plan.claim_all([(args.out, "--out report"), (args.json, "--json results")])
        command = shlex.join(["kernelscope-cli", NAME, "--merge", *args.merge, "--out", str(args.out),
                              "--json", str(args.json)] + (["--update-cards"] if args.update_cards else []))
        results = merge_results([(s, load_merge_source(s)) for s in sources], command=command)
    except OutputRefused as exc:
        print(f"kernelscope-cli {NAME}: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        return fail(str(exc))
    _write(results, args.out, args.json)
    print(f"wrote {args.out} and {args.json} (merged {len(sources)} results files)")
    return _finish(results, args)


def run(args: argparse.Namespace) -> int:
    """Evaluate, write ``--out`` and ``--json`` (and the cards' metrics); 0 on success, 1 on errors."""
    from tqdm import tqdm

    from engine.errors import ModelError
    from engine.evaluation import EvalConfig, count_cases, run_evaluation
    from engine.imageio import ImageIOError
    from engine.outputs import OutputPlan, OutputRefused
    from engine.paths import models_dir

    def fail(message: str) -> int:
        print(f"kernelscope-cli {NAME}: error: {message}", file=sys.stderr)
        return 1

    if args.merge:
        return _merge(args, fail)
    try:
        args.methods = with_previous_methods(args.methods, args.previous_models is not None
                                             or args.previous_results is not None)
        max_images = parse_max_images(args.max_images, args.benchmarks)
        skip = parse_skip(args.skip)
        config = EvalConfig(
            benchmarks=tuple(args.benchmarks), protocols=tuple(args.protocols), methods=tuple(args.methods),
            scale=args.scale, ikc_steps=args.ikc_steps, ikc_fixed_step=args.ikc_fixed_step,
            max_images=max_images, skip=skip, seed=args.seed, device=args.device, backend=args.backend,
            threads=args.threads, tile=args.tile, models_dir=args.models_dir,
            previous_models_dir=args.previous_models, previous_results_path=args.previous_results,
            command=canonical_command(args),
        )
        config.validate()
        total = count_cases(config)
    except (ValueError, FileNotFoundError) as exc:
        return fail(str(exc))
    # the reports are regenerated (replaced) on every run, but never onto a model file or each other
    plan = OutputPlan(sorted((args.models_dir or models_dir()).glob("*")), overwrite=True)
    try:
        plan.claim_all([(args.out, "--out report"), (args.json, "--json results")])
    except OutputRefused as exc:
        print(f"kernelscope-cli {NAME}: error: {exc}", file=sys.stderr)
        return 2

    bar = tqdm(total=total, unit="case", desc="evaluate", disable=args.no_progress, dynamic_ncols=True)

    def on_case(name: str, record: dict) -> None:
        bar.set_postfix_str(name, refresh=False)
        bar.update(1)

    try:
        results = run_evaluation(config, on_case=on_case,
                                 on_partial=lambda partial: _write(partial, args.out, args.json))
        bar.close()
        _write(results, args.out, args.json)
    except (ModelError, ValueError, FileNotFoundError, ImageIOError) as exc:
        bar.close()
        return fail(str(exc))
    print(f"wrote {args.out} and {args.json} ({total} cases, {results['timing'].get('total_seconds', 0):.0f} s)")
    return _finish(results, args)
