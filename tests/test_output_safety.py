"""No command destroys a file or loses a result (issue 17): the output planner and the one writer.

Each test reproduces one failure of the issue's probe (numbered as there) on the command line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from engine.imageio import Image, ImageReadError, read_image, write_image

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def tiny_models(tiny_models_dir, monkeypatch):
    monkeypatch.setenv("KERNELSCOPE_MODELS", str(tiny_models_dir))
    return tiny_models_dir


def smooth_rgb(h, w, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([np.sin(x / 5 + c) * np.cos(y / 7 - c) for c in range(3)], axis=-1)
    return np.clip(0.5 + 0.4 * base + 0.02 * rng.standard_normal((h, w, 3)), 0, 1).astype(np.float32)


def make_png(path, h=16, w=16, seed=0):
    write_image(path, Image(rgb_f32=smooth_rgb(h, w, seed)))
    return path


def one_line_error(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert "Traceback" not in err
    assert len(lines) == 1, err
    return lines[0]


def parts_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def bicubic(*args):
    return ["upscale", *map(str, args), "--method", "bicubic", "--no-progress"]


# --- 1: degrade --save-kernel onto the input or the output ------------------------------------------


def test_1_degrade_save_kernel_never_replaces_the_input_or_the_output(tmp_path, capsys):
    hr = make_png(tmp_path / "hr.png", 32, 32)
    lr = tmp_path / "lr.png"
    before = hr.read_bytes()
    assert main(["degrade", str(hr), str(lr), "--save-kernel", str(hr), "--overwrite"]) == 2
    assert "input" in one_line_error(capsys.readouterr().err)
    assert hr.read_bytes() == before and not lr.exists()

    assert main(["degrade", str(hr), str(lr), "--save-kernel", str(lr), "--overwrite"]) == 2
    assert "--save-kernel" in one_line_error(capsys.readouterr().err)
    assert not lr.exists()


def test_1_degrade_kernel_file_is_not_replaced_without_overwrite(tmp_path, capsys):
    hr = make_png(tmp_path / "hr.png", 32, 32)
    kernel = tmp_path / "k.npz"
    kernel.write_bytes(b"keep me")
    assert main(["degrade", str(hr), str(tmp_path / "lr.png"), "--save-kernel", str(kernel)]) == 1
    assert "k.npz" in one_line_error(capsys.readouterr().err)
    assert kernel.read_bytes() == b"keep me" and not (tmp_path / "lr.png").exists()
    assert main(["degrade", str(hr), str(tmp_path / "lr.png"), "--save-kernel", str(kernel), "--overwrite"]) == 0
    with np.load(kernel) as z:
        assert z["kernel"].shape == (21, 21)
    assert parts_in(tmp_path) == []


# --- 2: an output never replaces another input of the run ----------------------------------------------


def test_2_output_never_replaces_another_input(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    png = make_png(folder / "a.png", seed=1)
    write_image(folder / "a.jpg", Image(rgb_f32=smooth_rgb(16, 16, seed=2)))
    before = png.read_bytes()
    code = main(bicubic(folder, "--format", "png", "--name", "{stem}.{ext}", "--overwrite"))
    err = capsys.readouterr().err
    assert code == 1
    assert png.read_bytes() == before
    assert "would replace the input" in err and "0 written" in err


def test_2_two_inputs_mapped_to_one_output_do_not_replace_each_other(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    make_png(folder / "a.png", seed=1)
    write_image(folder / "a.jpg", Image(rgb_f32=smooth_rgb(16, 16, seed=2)))
    out = tmp_path / "out"
    code = main(bicubic(folder, "--format", "png", "--out", out, "--overwrite"))
    err = capsys.readouterr().err
    assert code == 1
    assert "is also the output of this run" in err and "1 written, 0 skipped, 1 failed" in err
    assert [p.name for p in out.iterdir()] == ["a_x4_bicubic.png"]


# --- 3: --save-kernels does not replace an existing kernel map ------------------------------------------


def test_3_save_kernels_keeps_an_existing_npz_without_overwrite(tmp_path, tiny_models, capsys):
    src = make_png(tmp_path / "a.png")
    npz = tmp_path / "a_x4_manet_kernels.npz"
    npz.write_bytes(b"keep me")
    args = ["upscale", str(src), "--save-kernels", "--no-progress"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "a_x4_manet_kernels.npz: already exists" in err
    assert npz.read_bytes() == b"keep me"
    assert not (tmp_path / "a_x4_manet.png").exists()  # all outputs of an input, or none
    assert main(args + ["--skip-existing"]) == 0
    assert npz.read_bytes() == b"keep me"
    assert main(args + ["--overwrite"]) == 0
    with np.load(npz) as z:
        assert z["codes"].shape[:2] == (16, 16)


# --- 4: two processes writing one output -----------------------------------------------------------------

_GATED_CLI = textwrap.dedent("""
    import sys, time, pathlib
    import engine.upscale as U

    real = U.upscale
    me, other = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])

    def gated(*args, **kwargs):  # both processes have planned their output before either computes
        me.touch()
        start = time.monotonic()
        while not other.exists() and time.monotonic() - start < 120:
            time.sleep(0.01)
        return real(*args, **kwargs)

    U.upscale = gated
    from engine.cli import main
    sys.exit(main(sys.argv[3:]))
""")


def test_4_two_processes_racing_for_one_output_write_it_once(tmp_path):
    src = make_png(tmp_path / "a.png", 64, 64)
    out = tmp_path / "out"
    out.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _GATED_CLI, str(tmp_path / f"go{i}"), str(tmp_path / f"go{1 - i}"),
             *bicubic(src, "--out", out)],
            cwd=REPO, stderr=subprocess.PIPE, text=True,
        )
        for i in range(2)
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    errs = [err for _code, err in results]
    assert sum("1 written, 0 skipped, 0 failed" in e for e in errs) == 1, errs
    assert sum("0 written, 1 skipped, 0 failed" in e for e in errs) == 1, errs
    loser_code, loser_err = next(r for r in results if "1 skipped" in r[1])
    assert loser_code == 1 and "appeared while" in loser_err
    assert sorted(p.name for p in out.iterdir()) == ["a_x4_bicubic.png"]
    assert read_image(out / "a_x4_bicubic.png").width == 256


def test_4_writer_never_replaces_a_file_that_appears_meanwhile(tmp_path, monkeypatch):
    from engine import atomic

    target = tmp_path / "t.bin"
    real_fsync = os.fsync

    def fsync_then_other_writer(fd):  # another program creates the target during our write
        real_fsync(fd)
        target.write_bytes(b"theirs")

    monkeypatch.setattr(atomic.os, "fsync", fsync_then_other_writer)
    with pytest.raises(FileExistsError):  # atomic.TargetExists
        atomic.write_atomic(target, b"ours", overwrite=False)
    assert target.read_bytes() == b"theirs" and parts_in(tmp_path) == []


# --- 5: one line instead of a traceback; argument errors before any work -------------------------------


def test_5_out_naming_an_existing_file_is_a_usage_error(tmp_path, capsys):
    src = make_png(tmp_path / "a.png")
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    assert main(bicubic(src, "--out", not_a_folder)) == 2
    assert "--out" in one_line_error(capsys.readouterr().err)
    assert main(bicubic(src, "--out", not_a_folder / "sub")) == 2
    assert "--out" in one_line_error(capsys.readouterr().err)
    assert not_a_folder.read_text() == "x"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /sys, where nobody may create files")
def test_5_unwritable_output_folder_is_reported_per_file_under_the_output(tmp_path, capsys):
    readonly = Path("/sys")
    try:
        os.close(os.open(readonly / "kernelscope_probe", os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        pytest.skip("/sys accepts new files here")
    except OSError:
        pass
    srcs = [make_png(tmp_path / f"{n}.png", seed=i) for i, n in enumerate("ab")]
    assert main(bicubic(*srcs, "--out", readonly)) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for n in "ab":  # each file, named by its output, with the reason
        assert f"{readonly / (n + '_x4_bicubic.png')}: cannot create a file here" in err
    assert "0 written, 0 skipped, 2 failed" in err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /sys, where nobody may create folders")
def test_5_read_only_out_that_cannot_be_created_is_one_line(tmp_path, capsys):
    src = make_png(tmp_path / "a.png")
    assert main(bicubic(src, "--out", "/sys/kernelscope_out")) == 2
    assert "--out" in one_line_error(capsys.readouterr().err)


def test_5_too_long_output_name_fails_that_file_and_the_batch_goes_on(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    make_png(folder / ("l" * 245 + ".png"), seed=1)  # the name fits, "<stem>_x4_bicubic.png" does not
    make_png(folder / "short.png", seed=2)
    out = tmp_path / "out"
    assert main(bicubic(folder, "--out", out)) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "name is too long (260 bytes" in err
    assert "1 written, 0 skipped, 1 failed" in err
    assert [p.name for p in out.iterdir()] == ["short_x4_bicubic.png"]


@pytest.mark.parametrize("quality", ["0", "101", "-5"])
def test_5_quality_out_of_range_is_refused_before_any_work(tmp_path, capsys, quality):
    src = make_png(tmp_path / "a.png")
    assert main(bicubic(src, "--quality", quality, "--format", "jpg")) == 2
    assert "--quality" in one_line_error(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


@pytest.mark.parametrize("pattern", ["{foo}.png", "{0}.png", "{}.png", "{stem", "{stem}}.{ext}x{", "{stem.x}.png"])
def test_5_bad_name_patterns_are_usage_errors(tmp_path, capsys, pattern):
    src = make_png(tmp_path / "a.png")
    assert main(bicubic(src, "--name", pattern)) == 2
    assert "--name" in one_line_error(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_5_deeply_nested_json_in_the_models_folder_is_one_clear_line(tmp_path, tiny_models_dir):
    import shutil

    from engine.errors import ModelError
    from engine.modelcards import find_cards, load_card

    folder = tmp_path / "models"
    shutil.copytree(tiny_models_dir, folder)
    nested = folder / "deep.json"
    nested.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ModelError, match="deep.json.*nested too deeply"):
        load_card(nested)
    assert {c.network for c in find_cards(folder)} >= {"manet", "rrdb_sft"}  # the rest still load
    src = make_png(tmp_path / "a.png")
    code = subprocess.run(
        [sys.executable, "-m", "engine.cli", "upscale", str(src), "--no-progress"], cwd=REPO,
        env={**os.environ, "KERNELSCOPE_MODELS": str(folder)}, capture_output=True, text=True, timeout=300,
    )
    assert code.returncode == 0 and "Traceback" not in code.stderr and "RecursionError" not in code.stderr


# --- 8: Ctrl-C during the final write; temporary files of killed runs ----------------------------------

_INTERRUPTED_WRITE = textwrap.dedent("""
    import os, signal, sys
    from engine import atomic

    real_fsync, real_unlink = os.fsync, os.unlink

    def fsync(fd):  # Ctrl-C while the data goes to disk ...
        os.kill(os.getpid(), signal.SIGINT)
        real_fsync(fd)

    def unlink(path, *args, **kwargs):  # ... and again while the temporary file is cleaned up
        if str(path).endswith(".part"):
            os.kill(os.getpid(), signal.SIGINT)
        real_unlink(path, *args, **kwargs)

    os.fsync, os.unlink = fsync, unlink
    import inspect
    kwargs = {"overwrite": False} if "overwrite" in inspect.signature(atomic.write_atomic).parameters else {}
    try:
        atomic.write_atomic(sys.argv[1], b"x" * 5_000_000, **kwargs)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(0)
""")


def test_8_ctrl_c_during_the_final_write_leaves_no_part_file(tmp_path):
    target = tmp_path / "out.png"
    run = subprocess.run([sys.executable, "-c", _INTERRUPTED_WRITE, str(target)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 130, run.stderr
    assert parts_in(tmp_path) == []
    assert not target.exists() or target.stat().st_size == 5_000_000  # whole or absent


def test_8_part_files_of_a_killed_run_are_cleaned_up(tmp_path, capsys):
    src = make_png(tmp_path / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = out / f".a_x4_bicubic.png.{dead.pid}-0123456789ab.part"
    stale.write_bytes(b"")
    alive = out / f".b.png.{os.getpid()}-0123456789ab.part"  # a write in progress elsewhere: kept
    alive.write_bytes(b"")
    assert main(bicubic(src, "--out", out)) == 0
    assert parts_in(out) == [alive.name]


def test_8_ctrl_c_in_the_cli_exits_130_without_partial_files(tmp_path):
    src = make_png(tmp_path / "a.png", 200, 200)
    out = tmp_path / "out"
    script = textwrap.dedent("""
        import os, signal, sys
        real_fsync = os.fsync
        def fsync(fd):
            os.kill(os.getpid(), signal.SIGINT)
            real_fsync(fd)
        os.fsync = fsync
        from engine.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    run = subprocess.run([sys.executable, "-c", script, *bicubic(src, "--out", out)], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 130 and "Traceback" not in run.stderr
    # Ctrl-C came while the file went to disk: the write completes, is counted, then the run stops
    assert "interrupted: 1 written" in run.stderr
    assert parts_in(out) == [] and [p.name for p in out.iterdir()] == ["a_x4_bicubic.png"]
    assert read_image(out / "a_x4_bicubic.png").width == 800


# --- smaller ones --------------------------------------------------------------------------------------


def test_a_folder_named_like_an_image_is_not_a_silent_success(tmp_path, capsys):
    (tmp_path / "x.png").mkdir()
    assert main(bicubic(tmp_path / "x.png")) == 1
    assert "x.png: is a folder with no images" in capsys.readouterr().err


def test_animated_webp_says_only_the_first_frame_is_used(tmp_path, caplog):
    from PIL import Image as PILImage

    frames = [PILImage.fromarray((smooth_rgb(16, 16, seed=s) * 255).astype(np.uint8)) for s in range(3)]
    path = tmp_path / "anim.webp"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with caplog.at_level("WARNING", logger="engine.imageio"):
        image = read_image(path)
    assert image.width == 16
    assert any("animated WEBP" in r.getMessage() and "first frame" in r.getMessage() for r in caplog.records)
    apng = tmp_path / "anim.png"
    frames[0].save(apng, save_all=True, append_images=frames[1:], duration=100, loop=0)
    caplog.clear()
    with caplog.at_level("WARNING", logger="engine.imageio"):
        assert read_image(apng).width == 16
    assert any("animated PNG" in r.getMessage() for r in caplog.records)
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    with pytest.raises(ImageReadError, match="unsupported format: GIF"):
        read_image(gif)


def test_ikc_steps_has_an_upper_bound(tmp_path, capsys):
    from engine.upscale import IKC_STEPS_MAX, UpscaleOptions

    src = make_png(tmp_path / "a.png")
    assert main(["upscale", str(src), "--method", "ikc", "--ikc-steps", "1000000", "--no-progress"]) == 2
    assert f"--ikc-steps must be in 0..{IKC_STEPS_MAX}" in one_line_error(capsys.readouterr().err)
    with pytest.raises(ValueError):
        UpscaleOptions(method="ikc", ikc_steps=IKC_STEPS_MAX + 1)


@pytest.mark.parametrize("pattern", ["../x.{ext}", "sub/{stem}.{ext}", "..", "{stem}/.."])
def test_name_pattern_cannot_leave_out(tmp_path, capsys, pattern):
    src = make_png(tmp_path / "a.png")
    out = tmp_path / "out"
    assert main(bicubic(src, "--out", out, "--name", pattern)) == 2
    assert "--name" in one_line_error(capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_degrade_refuses_to_make_an_image_too_small_to_read(tmp_path, capsys):
    hr = make_png(tmp_path / "hr.png", 8, 8)  # ×4 would give 2×2 px; the reader needs 4×4
    assert main(["degrade", str(hr), str(tmp_path / "lr.png")]) == 1
    assert "too small" in one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "lr.png").exists()


def test_resume_loads_checkpoints_with_weights_only(tmp_path):
    import argparse

    import torch

    from engine.training.trainer import load_checkpoint

    ckpt = tmp_path / "ckpt_last.pt"
    torch.save({"model": {}, "step": 3, "config": argparse.Namespace(evil=True)}, ckpt)
    with pytest.raises(ValueError, match="refusing to resume"):
        load_checkpoint(ckpt)
    from collections import Counter

    torch.save({"model": {"w": torch.ones(2)}, "step": 3, "milestones": Counter([1, 2])}, ckpt)
    assert load_checkpoint(ckpt)["step"] == 3


def test_studio_batch_job_never_replaces_a_file(tmp_path):
    from engine.jobs import batch_job
    from engine.upscale import UpscaleOptions

    def no_models(method, scale):
        return None

    from engine.progress import NULL_PROGRESS

    existing = tmp_path / "a_x4_bicubic.png"
    existing.write_bytes(b"keep me")
    out = batch_job(no_models, None, Image(rgb_f32=smooth_rgb(8, 8)), "a.png", UpscaleOptions(method="bicubic"),
                    tmp_path, progress=NULL_PROGRESS)
    assert out.name == "a_x4_bicubic_1.png" and existing.read_bytes() == b"keep me"
    assert read_image(out).width == 32


def test_cli_and_studio_name_results_alike(tmp_path, monkeypatch):
    """The CLI's default --name and the studio ("Upscale all", the save dialog) use one naming function."""
    import engine.outputs
    from app.saving import suggested_names
    from app.session import QueueEntry
    from engine.jobs import batch_job
    from engine.progress import NULL_PROGRESS
    from engine.upscale import UpscaleOptions, upscale

    calls = []
    real = engine.outputs.output_name

    def spy(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine.outputs, "output_name", spy)
    for module in ("engine.jobs", "engine.commands.upscale", "app.saving"):
        monkeypatch.setattr(f"{module}.output_name", spy)
    src = tmp_path / "photo.v2.png"
    write_image(src, Image(rgb_f32=smooth_rgb(8, 8)))
    out = tmp_path / "out"
    assert main(["upscale", str(src), "--method", "bicubic", "--out", str(out), "--no-progress"]) == 0
    image = read_image(src)
    options = UpscaleOptions(method="bicubic")
    studio = batch_job(lambda method, scale: None, None, image, src.name, options, tmp_path, progress=NULL_PROGRESS)
    entry = QueueEntry(name=src.name, image=image)
    from app.jobs import RunOutput

    entry.add_result(RunOutput(upscale(image, options, None), np.zeros((1, 1, 3), np.uint8)))
    assert [p.name for p in out.iterdir()] == [studio.name] == [suggested_names(entry)["result"]]
    assert studio.name == "photo.v2_x4_bicubic.png" and len(calls) == 3
    assert suggested_names(entry)["kernels"] == "photo.v2_x4_bicubic_kernels.npz"


def test_no_replace_outside_the_one_writer():
    """The house rule: files are published only by engine/atomic.py."""
    offenders = []
    paths = [*(REPO / "engine").rglob("*.py"), *(REPO / "app").rglob("*.py"), REPO / "build_installer.py"]
    for path in paths:
        if path.name == "atomic.py" and path.parent.name == "engine":
            continue
        text = path.read_text(encoding="utf-8")
        for needle in ("os.replace(", "os.rename(", ".write_text(", ".write_bytes("):
            if needle in text:
                offenders.append(f"{path.relative_to(REPO)}: {needle}")
    assert offenders == []


def test_evaluate_reports_never_replace_a_model_file_or_each_other(tmp_path, tiny_models_dir, capsys):
    card = next(tiny_models_dir.glob("manet_*.json"))
    before = card.read_bytes()
    common = ["evaluate", "--models-dir", str(tiny_models_dir), "--no-progress"]
    assert main(common + ["--out", str(card), "--json", str(tmp_path / "r.json")]) == 2
    assert "would replace the input" in one_line_error(capsys.readouterr().err)
    assert card.read_bytes() == before
    same = tmp_path / "r.md"
    assert main(common + ["--out", str(same), "--json", str(same)]) == 2
    assert "is also the --out report" in one_line_error(capsys.readouterr().err)
    assert not same.exists()


def test_estimate_out_naming_a_file_is_a_usage_error(tmp_path, capsys):
    src = make_png(tmp_path / "lr.png")
    before = src.read_bytes()
    assert main(["estimate", str(src), "--out", str(src)]) == 2
    assert "--out" in one_line_error(capsys.readouterr().err)
    assert src.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["lr.png"]


def test_writer_without_hard_links_still_never_replaces(tmp_path, monkeypatch):
    from engine import atomic

    def no_links(src, dst, *args, **kwargs):  # FAT, some network shares
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(atomic.os, "link", no_links)
    target = tmp_path / "t.bin"
    atomic.write_atomic(target, b"first", overwrite=False)
    with pytest.raises(FileExistsError):
        atomic.write_atomic(target, b"second", overwrite=False)
    atomic.write_atomic(target, b"third", overwrite=True)
    assert target.read_bytes() == b"third" and parts_in(tmp_path) == []


def test_streamed_atomic_writes_publish_whole_or_leave_nothing(tmp_path):
    from engine import atomic

    target = tmp_path / "big.tar.gz"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="packing failed"):
        with atomic.atomic_writer(target, overwrite=True) as out:
            out.write(b"half of it")
            raise RuntimeError("packing failed")
    assert target.read_bytes() == b"old" and parts_in(tmp_path) == []
    with atomic.atomic_writer(target, overwrite=True) as out:
        for _ in range(3):
            out.write(b"chunk")
    assert target.read_bytes() == b"chunk" * 3 and parts_in(tmp_path) == []
    with pytest.raises(FileExistsError):
        with atomic.atomic_writer(target, overwrite=False) as out:
            out.write(b"never")
    assert target.read_bytes() == b"chunk" * 3
