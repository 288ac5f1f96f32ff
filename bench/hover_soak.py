"""Hover soak of the real studio on a real X server: MANet run, then thousands of real pointer moves.

    xvfb-run -s "-screen 0 1600x1000x24" .venv/bin/python bench/hover_soak.py [--moves 3000] [--models DIR]

Opens ``resources/sample_lr.png`` in the real window (shipped models unless ``--models``), runs MANet,
then ``xdotool`` moves the X pointer ``--moves`` times over the LR and SR views (at ~80 moves a second,
below pyqtgraph's 100 Hz rate limit, so each one is handled) while the event loop runs. Prints the
reference counts of None/True/False before and after, how many moves reached the views, and whether
the window is still alive. PySide6/shiboken6 6.12.0 aborted here after a few hundred moves
("Fatal Python error: none_dealloc"). Exit status 0 only when the counts stayed put and all went well.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SLACK = 64  # the same constant slack as tests/test_app_soak.py


def refcounts() -> dict[str, int]:
    gc.collect()
    return {"None": sys.getrefcount(None), "True": sys.getrefcount(True), "False": sys.getrefcount(False)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=3000)
    parser.add_argument("--models", type=Path, default=None, help="models folder (default: the shipped one)")
    args = parser.parse_args(argv)
    if shutil.which("xdotool") is None:
        print("xdotool is not installed (apt-get install xdotool)")
        return 2

    import numpy as np
    from PySide6 import QtCore, QtWidgets

    from app.main import create_application, freeze_startup_objects
    from app.window import MainWindow

    app = create_application()
    import PySide6
    import shiboken6

    print(f"PySide6 {PySide6.__version__}, shiboken6 {shiboken6.__version__}, Python {sys.version.split()[0]}, "
          f"platform {app.platformName()}")
    settings_dir = tempfile.mkdtemp(prefix="kernelscope-soak-")
    settings = QtCore.QSettings(str(Path(settings_dir) / "s.ini"), QtCore.QSettings.Format.IniFormat)
    window = MainWindow(settings, models_dir=args.models)
    window.resize(1500, 900)
    window.move(0, 0)
    window.show()
    freeze_startup_objects()

    def spin(predicate, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} did not happen within {timeout_s:.0f} s")
            app.processEvents()
            time.sleep(0.01)

    window.open_path(ROOT / "resources" / "sample_lr.png")
    spin(lambda: window.current is not None, 60, "opening the sample")
    rp = window.run_panel
    rp.method.setCurrentIndex(rp.method.findData("manet"))
    start = time.perf_counter()
    window.start_run()
    spin(lambda: not window.is_running(), 600, "the MANet run")
    print(f"MANet run: {time.perf_counter() - start:.1f} s, result "
          f"{'present' if window.current.result is not None else 'MISSING'}")

    viewer = window.viewer
    views = [viewer.lr_view, viewer.sr_view]
    seen = {"lr": 0, "sr": 0}
    for view, name in zip(views, seen):
        view.widget.scene().sigMouseMoved.connect(lambda _pos, name=name: seen.__setitem__(name, seen[name] + 1))
    rng = np.random.default_rng(16)
    commands: list[str] = []
    for i in range(args.moves):
        vp = views[i % 2].widget.viewport()
        fx, fy = rng.uniform(0.05, 0.95, 2)
        g = vp.mapToGlobal(QtCore.QPoint(int(fx * vp.width()), int(fy * vp.height())))
        commands += ["mousemove", str(g.x()), str(g.y()), "sleep", "0.012"]
    for _ in range(20):
        app.processEvents()
    before = refcounts()
    lowest = dict(before)

    def sample() -> None:
        for name, count in refcounts().items():
            lowest[name] = min(lowest[name], count)

    timer = QtCore.QTimer()
    timer.timeout.connect(sample)
    timer.start(1000)
    done = threading.Event()
    result: dict[str, object] = {}

    def drive() -> None:  # a plain thread: the event loop keeps running while xdotool moves the pointer
        proc = subprocess.run(["xdotool", *commands], capture_output=True, text=True)
        result["rc"] = proc.returncode
        result["stderr"] = proc.stderr.strip()
        done.set()

    start = time.perf_counter()
    threading.Thread(target=drive, daemon=True).start()
    spin(done.is_set, 900, "xdotool")
    for _ in range(20):
        app.processEvents()
    timer.stop()
    sample()
    after = refcounts()
    drift = {k: after[k] - before[k] for k in after}
    dip = {k: lowest[k] - before[k] for k in after}
    alive = window.isVisible() and window.current is not None and window.current.result is not None
    print(f"xdotool: {args.moves} moves in {time.perf_counter() - start:.1f} s, exit {result['rc']} "
          f"{result['stderr']}".rstrip())
    print(f"moves that reached the views: LR {seen['lr']}, SR {seen['sr']}")
    print(f"refcounts before {before}")
    print(f"refcounts after  {after}")
    print(f"drift {drift}, lowest seen minus before {dip}")
    ok = (alive and result["rc"] == 0 and all(abs(v) <= SLACK for v in drift.values())
          and all(v >= -SLACK for v in dip.values()) and min(seen.values()) > 0)
    print(f"window alive: {alive}; {'OK' if ok else 'FAILED'}")
    window.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
