"""The strip above the viewer that says which result is shown and switches between kept results."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from app.session import METHOD_SHORT, QueueEntry, device_name


class ResultPicker(QtWidgets.QWidget):
    """"Showing: [MANet ▾]": one entry per method this image has a result of (hidden before any run)."""

    method_chosen = QtCore.Signal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QtWidgets.QLabel("Showing")
        self.label.setProperty("role", "muted")
        self.combo = QtWidgets.QComboBox()
        self.combo.setToolTip("Results are kept per method: switch between them without running again")
        self.combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.detail = QtWidgets.QLabel("")
        self.detail.setProperty("role", "muted")
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(8, 3, 8, 3)
        layout.addWidget(self.label)
        layout.addWidget(self.combo)
        layout.addWidget(self.detail, 1)
        self.combo.activated.connect(self._on_activated)
        self.set_entry(None)

    def set_entry(self, entry: QueueEntry | None) -> None:
        self.combo.blockSignals(True)
        self.combo.clear()
        methods = list(entry.results) if entry is not None else []
        for method in methods:
            out = entry.results[method]
            self.combo.addItem(f"{METHOD_SHORT[method]} result", method)
            self.combo.setItemData(self.combo.count() - 1, f"×{out.result.scale}, {out.result.seconds:.1f} s on "
                                   f"{device_name(out.result.provider)}", QtCore.Qt.ItemDataRole.ToolTipRole)
        if entry is not None and entry.shown in methods:
            self.combo.setCurrentIndex(methods.index(entry.shown))
        self.combo.blockSignals(False)
        others = len(methods) - 1
        self.detail.setText(f"({others} other result{'s' if others > 1 else ''} kept for this image)"
                            if others > 0 else "")
        self.setVisible(bool(methods))

    def methods(self) -> list[str]:
        return [self.combo.itemData(i) for i in range(self.combo.count())]

    @QtCore.Slot(int)
    def _on_activated(self, index: int) -> None:
        self.method_chosen.emit(str(self.combo.itemData(index)))
