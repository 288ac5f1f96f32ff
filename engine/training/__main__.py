"""``python -m engine.training [train options]``: the ``train`` sub-command without the CLI table
(works under ``torchrun --nproc_per_node N -m engine.training ...``)."""

from __future__ import annotations

import argparse
import logging
import sys

from engine.training import command as train_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.training", description=train_command.HELP)
    train_command.add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return train_command.run(args)


if __name__ == "__main__":
    sys.exit(main())
