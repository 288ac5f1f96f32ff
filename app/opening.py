"""Getting images in: files and folders read on the loader thread, the clipboard, the lab's sharp image.

:class:`Opening` asks the window's :class:`~app.loader.ImageLoader` to read, adds what it decodes to
the session's queue (or hands it to the degradation lab), remembers recent files and reports the files
it could not read together, non-modally.
"""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from engine.imageio import Image, ImageIOError, decode_image_bytes

from app.session import QueueEntry



class Opening(QtCore.QObject):
    """Reads for the queue (``purpose`` "queue") and for the lab ("lab"); see :meth:`open_paths`."""

    def __init__(self, window: QtWidgets.QMainWindow) -> None:  # the app.window.MainWindow (which imports this module)
        super().__init__(window)
        self.window = window
        self._last_opened: dict[int, QueueEntry] = {}  # loader request id → the last image it opened
        self._stopped = False
        window.loader.opened.connect(self._on_image_read)
        window.loader.finished.connect(self._on_read_finished)

    def stop(self) -> None:
        """Ignore what the loader still delivers (the window is closing)."""
        self._stopped = True

    def open_paths(self, paths: list[Path]) -> int:
        """Open files and folders into the queue, read on the loader thread (the window stays responsive).

        Images join the queue as they are decoded; unreadable files are reported together (non-modal)
        and skipped; the last image opened is selected when the request finishes. Returns the request id
        (the loader's signals ``opened`` and ``finished`` carry it).
        """
        paths = [Path(p) for p in paths]
        if len(paths) == 1 and not paths[0].is_dir():
            self.window.statusBar().showMessage(f"Reading {paths[0].name}…", 10_000)
        else:
            self.window.statusBar().showMessage(f"Reading {len(paths)} item(s)…", 10_000)
        return self.window.loader.read(paths, "queue")

    def lab_open_image(self, path: Path) -> int:
        """Read a sharp image into the degradation lab on the loader thread; returns the request id."""
        return self.window.loader.read([Path(path)], "lab")

    @QtCore.Slot(int, str, object, object)
    def _on_image_read(self, request_id: int, purpose: str, path: Path, image: Image) -> None:
        w = self.window
        if self._stopped:
            return
        if purpose == "lab":
            try:
                w.lab.set_image(image.rgb_f32, path.name, w.run_panel.options().scale)
            except ValueError as exc:
                w.notify(f"Lab: {exc}")
            return
        self._last_opened[request_id] = w.add_image(image, path.name, path)
        w.recent.remember(path)
        w.settings.setValue("folders/open", str(path.parent))

    @QtCore.Slot(int, str, object)
    def _on_read_finished(self, request_id: int, purpose: str, problems: list[str]) -> None:
        w = self.window
        if self._stopped:
            return
        last = self._last_opened.pop(request_id, None)
        if problems:
            if purpose == "lab":
                w.notify("Lab: could not open " + "; ".join(problems))
            else:
                head = "Could not open " + ("1 file" if len(problems) == 1 else f"{len(problems)} files")
                w.notify(f"{head} — " + "; ".join(problems))
        elif last is not None:
            w.statusBar().clearMessage()
            w.notice.dismiss()  # an old "could not open" no longer applies
        if last is not None:
            w.select_entry(last)

    def paste_from_clipboard(self) -> bool:
        """Open an image (or image files) from the clipboard."""
        w = self.window
        mime = QtWidgets.QApplication.clipboard().mimeData()
        if mime is None:
            return False
        if mime.hasUrls() and any(u.isLocalFile() for u in mime.urls()):
            self.open_paths([Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()])
            return True
        if mime.hasImage():
            buf = QtCore.QBuffer()
            buf.open(QtCore.QIODevice.OpenModeFlag.WriteOnly)
            QtGui.QImage(mime.imageData()).save(buf, "PNG")
            try:
                image = decode_image_bytes(bytes(buf.data()), "clipboard image")
            except ImageIOError as exc:
                w.notify(f"Could not paste: {exc.reason}")
                return False
            w.select_entry(w.add_image(image, f"pasted {len(w.entries) + 1}.png"))
            return True
        w.notify("The clipboard holds no image.")
        return False
