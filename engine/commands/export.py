"""``kernelscope-cli export``: regenerate ONNX graphs from the weights named by the model cards.

- ``export --all``: every network card in the models folder.
- ``export --card ID [--card ID ...]``: the named cards.
- ``export --init-untrained [ID ...]``: create seeded, untrained weights + card + graph for the
  given ids (``<network>_<preset>_x<scale>``; default: the small ×4 set shipped before training).
  Existing cards are left alone unless ``--overwrite``.

Each graph is written atomically, checked with ``onnx.checker`` and compared with the torch module
in onnxruntime; its card gets the new ``graph_sha256``, ``parameters``, ``opset`` and ``exporter``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

NAME = "export"
HELP = "Export the networks to ONNX from the weights named by their model cards and update the cards."

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``export`` options on ``parser``."""
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--all", action="store_true", help="re-export every model card in the models folder")
    what.add_argument("--card", action="append", metavar="ID", help="re-export this card (repeatable)")
    what.add_argument(
        "--init-untrained",
        nargs="*",
        metavar="ID",
        help="write seeded untrained weights, card and graph for these ids "
        "(network_preset_xS; default: the small x4 set)",
    )
    parser.add_argument("--models-dir", type=Path, metavar="DIR", help="models folder (default: the shipped models/)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18; at least 17)")
    parser.add_argument(
        "--exporter",
        choices=("auto", "dynamo", "torchscript"),
        default="auto",
        help="auto: dynamo, falling back to TorchScript where dynamo fails (default auto)",
    )
    parser.add_argument("--seed", type=int, default=0, help="--init-untrained: weight seed (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="--init-untrained: replace existing cards")


def parse_card_id(ident: str) -> tuple[str, str, int]:
    """``"ikc_predictor_small_x4"`` → ``("ikc_predictor", "small", 4)``; ``ValueError`` otherwise."""
    head, sep, scale = ident.rpartition("_x")
    network, _, preset = head.rpartition("_")
    if not sep or not network or not preset or not scale.isdigit():
        raise ValueError(f"{ident!r} is not an id of the form <network>_<preset>_x<scale>")
    return network, preset, int(scale)


def run(args: argparse.Namespace) -> int:
    """Run the export; exit code 0 on success, 1 when a card failed, 2 on bad arguments."""
    if args.opset < 17:
        print("export: --opset must be at least 17", file=sys.stderr)
        return 2
    from engine import export
    from engine.errors import ModelError

    # per-pass INFO chatter of the ONNX optimiser; "torchvision is not installed" notes of torch.onnx
    for noisy, level in (("onnxscript", logging.WARNING), ("onnx_ir", logging.WARNING), ("torch.onnx", logging.ERROR)):
        logging.getLogger(noisy).setLevel(max(level, logging.getLogger().level))
    from engine.paths import models_dir

    folder = args.models_dir
    try:
        if args.init_untrained is not None:
            targets = (
                [parse_card_id(i) for i in args.init_untrained]
                if args.init_untrained
                else list(export.INITIAL_ARTIFACTS)
            )
            cards = []
            for network, preset, scale in targets:
                ident = export.card_id(network, preset, scale)
                existing = (folder if folder is not None else models_dir()) / f"{ident}.json"
                if existing.exists() and not args.overwrite:
                    print(f"{ident}: card exists, left alone (use --overwrite to replace it)")
                    continue
                cards.append(
                    export.init_untrained(
                        network, preset, scale, seed=args.seed, models_folder=folder,
                        overwrite=args.overwrite, opset=args.opset, exporter=args.exporter,
                    )
                )
        else:
            cards = export.export_all(folder, ids=args.card, opset=args.opset, exporter=args.exporter)
    except ValueError as exc:
        print(f"export: {exc}", file=sys.stderr)
        return 2
    except (ModelError, KeyError, OSError) as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return 1
    for card in cards:
        print(
            f"{card.id}: {card.graph} ({card.extra.get('exporter')}, opset {card.opset}, "
            f"{card.parameters:,} parameters, sha256 {card.graph_sha256[:12]}…)"
        )
    if not cards and args.init_untrained is None:
        print("no model cards found")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m engine.commands.export``: the sub-command on its own."""
    parser = argparse.ArgumentParser(prog="kernelscope-cli export", description=HELP)
    add_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
