"""The kernel inspector at work: the kernel under the cursor, the kernel lattice, IKC's iteration kernel.

What to show comes from the session (:meth:`app.session.StudioSession.kernel_at` and its titles);
:class:`Inspection` puts it into the :class:`~app.panels.KernelInspector`, the viewer and the status bar.
"""

from __future__ import annotations


from PySide6 import QtCore, QtWidgets

from app.geometry import HoverHit
from app.session import METHOD_SHORT, file_text



class Inspection(QtCore.QObject):
    """Hover read-out, lattice toggle and IKC iteration kernel of the window's current image."""

    def __init__(self, window: QtWidgets.QMainWindow) -> None:  # the app.window.MainWindow (which imports this module)
        super().__init__(window)
        window.viewer.hovered.connect(self._on_hover)
        window.inspector.lattice_toggled.connect(self.show_lattice)
        window.ikc_panel.iteration_changed.connect(self._on_ikc_iteration)
        self.window = window
        self.session = window.session
        self.inspector = window.inspector

    def reset(self) -> None:
        """A new image or result is on show: nothing under the cursor yet; the lattice follows."""
        self.show_lattice(self.inspector.lattice.isChecked())
        self.inspector.show_info(None, self.session.inspector_title(), "move the mouse over either view",
                                 self.session.inspector_source(self.window.ikc_panel.current()))
        self.inspector.show_noise(None, None)
        current = self.session.current
        self.inspector.show_file(file_text(current.image) if current is not None else None)
        self.inspector.show_other(None, "")

    @QtCore.Slot(object, str)
    def _on_hover(self, hit: HoverHit | None, space: str) -> None:
        if hit is None or self.session.current is None:
            self.window.hover_label.setText("")
            return
        self.window.hover_label.setText(f"LR ({hit.lr_col}, {hit.lr_row})  SR ({hit.sr_x:.0f}, {hit.sr_y:.0f})")
        self.inspect(hit, space)

    def inspect(self, hit: HoverHit, space: str) -> None:
        """Show the kernel at ``hit`` — exactly ``kernel_at`` for MANet results — with the input's noise
        level there and the other blind method's kernel at the same spot."""
        current = self.session.current
        iteration = self.window.ikc_panel.current()
        info = self.session.kernel_at(hit, space, iteration)
        self.inspector.show_info(info, self.session.inspector_title(), f"LR ({hit.lr_col}, {hit.lr_row}), "
                                 f"{space.upper()} view", self.session.inspector_source(iteration))
        shown = current.output if current else None
        noise = shown.noise if shown is not None else None
        self.inspector.show_noise(None if noise is None else noise.at(hit.lr_x, hit.lr_y),
                                  None if noise is None else noise.sigma_255)
        other = current.other_kernel(hit.lr_row, hit.lr_col, iteration) if current else None
        self.inspector.show_other(other[0] if other else None, METHOD_SHORT[other[1]] if other else "")

    @QtCore.Slot(bool)
    def show_lattice(self, on: bool) -> None:
        """Draw (or hide) the kernel lattice of the result whose kernel map feeds it."""
        w = self.window
        if w.act_lattice.isChecked() != on:
            w.act_lattice.setChecked(on)
        current = self.session.current
        source = current.kernel_source() if current is not None else None
        lattice = None if source is None else source.lattice
        if on and lattice is not None:
            w.viewer.set_lattice(lattice.rgba_u8, lattice.px_per_lr)
            self.inspector.lattice_legend.setText(f"{METHOD_SHORT[source.method]} kernels. {lattice.legend()}")
        else:
            w.viewer.set_lattice(None)
        self.inspector.lattice_legend.setVisible(on and lattice is not None)
        if on and lattice is None and current is not None:
            w.statusBar().showMessage("The kernel lattice needs a MANet result", 5000)

    @QtCore.Slot(int)
    def _on_ikc_iteration(self, index: int) -> None:
        from engine.pipeline.kernelmap import describe_kernel

        current = self.session.current
        result = current.result if current is not None else None
        if result is None or result.ikc is None:
            return
        it = self.session.ikc_iteration(result, index)
        self.window.viewer.set_sr(it.sr_rgb_f32)
        self.inspector.show_info(describe_kernel(it.kernel), self.session.inspector_title(), "whole image",
                                 self.session.inspector_source(self.window.ikc_panel.current()))
