"""Process start of ``kernelscope-cli upscale`` (issue 18): the run imports what an upscale needs and
nothing of the evaluation, training or export code, nor tqdm under ``--no-progress``; the parser still
lists every sub-command and each one's options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from engine.cli import build_parser, main
from engine.imageio import Image, write_image

ROOT = Path(__file__).resolve().parents[1]
NOT_NEEDED = ("engine.evaluation", "engine.data", "engine.training.trainer", "engine.training.stages", "engine.export", "engine.quantize", "tqdm",
              "torch", "onnx", "scipy")

PROBE = """
import json, sys
from engine.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "loaded": [m for m in %r if m in sys.modules]}))
""" % (NOT_NEEDED,)


def test_upscale_process_imports_nothing_it_does_not_need(tmp_path, tiny_models_dir):
    src = tmp_path / "in.png"
    write_image(src, Image(rgb_f32=np.random.default_rng(0).random((16, 16, 3), dtype=np.float32)))
    env = {**os.environ, "KERNELSCOPE_MODELS": str(tiny_models_dir), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", PROBE, "upscale", str(src), "--out", str(tmp_path / "o"),
                           "--no-progress"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"code": 0, "loaded": []}, proc.stderr
    assert (tmp_path / "o" / "in_x4_manet.png").is_file()


def test_parser_for_one_command_still_lists_all(capsys):
    full = build_parser()
    names = set(full._subparsers._group_actions[0].choices)  # noqa: SLF001 - argparse keeps them there
    only = build_parser("upscale")
    assert set(only._subparsers._group_actions[0].choices) == names  # noqa: SLF001
    assert {"upscale", "evaluate", "train", "export"} <= names
    args = only.parse_args(["upscale", "x.png", "--precision", "fp32"])
    assert args.precision == "fp32" and args.method == "manet"


def test_other_commands_keep_their_options(capsys):
    try:
        main(["evaluate", "--help"])
    except SystemExit as exc:
        assert exc.code == 0
    assert "--protocols" in capsys.readouterr().out
