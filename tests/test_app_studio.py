"""The studio as people use it: results kept per method, regions that survive runs, the IKC tab, progress,
layout and brush strokes (pytest-qt, offscreen, tiny random-weight models)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")

from tests.test_app_window import (read_and_wait, run_and_wait, settings, small_lr,  # noqa: E402,F401
                                   window)


def test_painted_regions_survive_a_run(window, qtbot, small_lr):
    read_and_wait(qtbot, window, lambda: window.open_path(small_lr))
    window.regions.label = 2
    window.regions.tool = "brush"
    window.regions.stroke([(5.0, 5.0), (20.0, 12.0)])
    painted = window.regions.labels.copy()
    assert (painted == 2).sum() > 20
    run_and_wait(qtbot, window, "manet")
    np.testing.assert_array_equal(window.regions.labels, painted)
    np.testing.assert_array_equal(window.current.labels, painted)
    assert window.regions_panel.stats and window.regions_panel.stats[0].label == 2  # stats from the new run
    run_and_wait(qtbot, window, "bicubic")
    np.testing.assert_array_equal(window.regions.labels, painted)


def test_manet_and_ikc_results_coexist(window, qtbot, small_lr):
    read_and_wait(qtbot, window, lambda: window.open_path(small_lr))
    run_and_wait(qtbot, window, "manet")
    manet = window.current.result
    window.regions.tool = "brush"
    window.regions.stroke([(10.0, 10.0), (14.0, 14.0)])
    run_and_wait(qtbot, window, "ikc", ikc_steps=1)
    entry = window.current
    assert set(entry.results) == {"manet", "ikc"} and entry.shown == "ikc"
    assert entry.results["manet"].result is manet
    assert window.result_picker.isVisible() and window.result_picker.methods() == ["manet", "ikc"]
    assert "IKC" in window.viewer.sr_view.label.text
    # region statistics keep using MANet's kernel map while IKC is shown, and say so
    assert window.regions_panel.stats and "MANet kernel map" in window.regions_panel.hint.text()
    # switch back without running again
    window.result_picker.combo.setCurrentIndex(0)
    window.result_picker.combo.activated.emit(0)
    assert entry.shown == "manet" and window.current.result is manet
    assert "MANet" in window.viewer.sr_view.label.text
    assert "MANet" in window.inspector.title.text()
    np.testing.assert_array_equal(window.viewer.sr_item.image, entry.results["manet"].sr_u8)


def test_ikc_tab_empty_state_then_difference_view_differs_from_plain(window, qtbot, small_lr):
    panel = window.ikc_panel
    window.tabs.setCurrentWidget(panel)
    assert panel.empty.isVisible() and not panel.content.isVisible()
    assert "Run" in panel.empty.text() and "IKC" in panel.empty.text()
    read_and_wait(qtbot, window, lambda: window.open_path(small_lr))
    run_and_wait(qtbot, window, "ikc", ikc_steps=2)
    assert panel.content.isVisible() and not panel.empty.isVisible()
    assert len(panel.kernel_buttons) == 3
    for plot in (panel.plot, panel.sigma_plot):  # axes start at 0
        assert plot.getViewBox().viewRange()[1][0] == 0
    panel.compare.setCurrentIndex(panel.compare.findData("iteration"))
    panel.other.setValue(0)
    panel.set_iteration(2)
    plain = panel.right.item.image.copy()
    panel.difference.setChecked(True)
    diff = panel.right.item.image
    assert diff.shape == plain.shape and not np.array_equal(diff, plain)
    assert diff.max() > 100  # amplified: visible even when the iterations differ by a fraction of a level
    assert "×" in panel.right.title.text and "levels" in panel.right.title.text
    its = window.current.result.ikc.iterations
    d_levels = np.abs(255 * (its[2].sr_rgb_f32 - its[0].sr_rgb_f32).mean(-1))
    np.testing.assert_allclose(panel.diff.max_levels, d_levels.max(), rtol=1e-4)
    panel.compare.setCurrentIndex(panel.compare.findData("input"))  # vs the input: on the SR grid too
    assert panel.right.item.image.shape == plain.shape


@pytest.mark.parametrize("method, phases", [
    ("manet", ["loading models", "estimating kernels · tile", "super-resolving · tile"]),
    ("ikc", ["loading models", "IKC step 0 of 2 · predicting the kernel", "IKC step 0 of 2 · super-resolving · tile",
             "IKC step 1 of 2 · correcting the kernel", "IKC step 1 of 2 · super-resolving · tile",
             "IKC step 2 of 2 · super-resolving · tile"]),
])
def test_progress_names_the_phases_in_order(window, qtbot, small_lr, method, phases):
    read_and_wait(qtbot, window, lambda: window.open_path(small_lr))
    messages: list[str] = []
    texts: list[str] = []
    window.bridge.progressed.connect(lambda _j, _f, m: messages.append(m))
    window.bridge.progressed.connect(lambda *_: texts.append(window.run_panel.eta.text()))
    run_and_wait(qtbot, window, method, tile=16, ikc_steps=2)
    positions = []
    for phase in phases:
        hits = [k for k, m in enumerate(messages) if m.startswith(phase)]
        assert hits, f"no progress message starts with {phase!r}: {messages}"
        positions.append(hits[0])
    assert positions == sorted(positions), messages
    assert any(" · tile " in t and " · ETA " in t for t in texts), texts  # the run panel shows them


def _fully_visible(widget) -> bool:
    """Shown, and not clipped by a scroll area, a dock or the window edge."""
    return widget.isVisible() and widget.visibleRegion().boundingRect().size() == widget.size()


def test_run_and_cancel_visible_at_1024x640_and_panels_recover(window, qtbot):
    from PySide6 import QtWidgets

    window.resize(1024, 640)
    qtbot.wait(300)  # the dock balancing runs shortly after a resize
    QtWidgets.QApplication.processEvents()
    rp = window.run_panel
    assert _fully_visible(rp.run_button) and _fully_visible(rp.cancel_button)
    assert _fully_visible(rp.progress)
    assert window.queue_dock.width() >= 150 and window.run_dock.width() >= 290
    # squeezed, then large again: the side panels come back to a sensible width
    window.resize(700, 500)
    qtbot.wait(300)
    window.resize(1600, 1000)
    qtbot.wait(300)
    QtWidgets.QApplication.processEvents()
    assert window.run_dock.width() >= 340 and window.queue_dock.width() >= 200
    # View > Reset layout puts a hidden, floating panel back
    window.run_dock.setFloating(True)
    window.queue_dock.hide()
    window.reset_layout()
    QtWidgets.QApplication.processEvents()
    assert not window.run_dock.isFloating() and window.queue_dock.isVisible()
    assert any(a.text() == "&Reset layout" for a in window.menuBar().actions()[1].menu().actions())


def test_balanced_widths_grow_back_and_cap():
    from app.layout import balanced_widths

    assert balanced_widths(1600, {"queue": 150, "right": 290}) == {"queue": 215, "right": 360}
    assert balanced_widths(1600, {"queue": 250, "right": 500}) == {"queue": 250, "right": 500}  # the user's
    assert balanced_widths(1024, {"queue": 400, "right": 700}) == {"queue": 225, "right": 409}  # capped
    assert balanced_widths(600, {"queue": 100, "right": 100}) == {"queue": 150, "right": 290}  # minimum


def test_brush_stroke_between_two_distant_mouse_events_is_continuous(window, qtbot, small_lr):
    """A real drag with only a press, one far move and a release paints the whole segment."""
    from PySide6 import QtCore, QtTest

    read_and_wait(qtbot, window, lambda: window.open_path(small_lr))
    window.regions_panel.set_tool("brush")
    window.regions.set_brush_radius(1.5)
    view = window.viewer.lr_view
    vp = view.widget.viewport()

    def at(x_lr: float, y_lr: float) -> QtCore.QPoint:
        s = window.viewer.geometry_.scale
        return view.widget.mapFromScene(view.vb.mapViewToScene(QtCore.QPointF(x_lr * s, y_lr * s)))

    a, b = (4.0, 6.0), (40.0, 30.0)
    QtTest.QTest.mousePress(vp, QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier, at(*a))
    QtTest.QTest.mouseMove(vp, at(a[0] + 2, a[1] + 1))  # past the drag threshold
    QtTest.QTest.mouseMove(vp, at(*b))
    QtTest.QTest.mouseRelease(vp, QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier, at(*b))
    labels = window.regions.labels
    for t in np.linspace(0.0, 1.0, 25):
        x, y = a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])
        assert labels[int(round(y)), int(round(x))] == 1, f"gap at LR ({x:.1f}, {y:.1f})"
    assert np.array_equal(window.current.labels, labels)  # kept with the image once the stroke ends


def test_lattice_is_see_through_on_one_scale_with_a_legend(window, qtbot, small_lr):
    from app.analysis import lattice_overlay

    read_and_wait(qtbot, window, lambda: window.open_path(small_lr))
    run_and_wait(qtbot, window, "manet")
    kmap = window.current.result.kernel_map
    lattice = lattice_overlay(kmap)
    alpha = lattice.rgba_u8[..., 3]
    assert alpha.mean() < 0.4 * 255 and (alpha == 0).mean() > 0.3  # the image stays visible
    assert (alpha > 240).mean() < 0.05  # kernels are see-through, only their 2σ rings are near-opaque
    assert lattice.magnification > 0 and f"×{lattice.magnification:.1f}" in lattice.legend() and "σ1" in lattice.legend()
    window.inspector.lattice.setChecked(True)
    assert window.inspector.lattice_legend.isVisible() and "MANet" in window.inspector.lattice_legend.text()


def test_start_screen_banner_run_all_and_region_preview(window, qtbot, small_lr, tmp_path):
    from PySide6 import QtWidgets

    assert window.start_hint.isVisible() and "Open or drop images" in window.start_hint.text()
    assert not window.run_panel.run_all_button.isEnabled() and not window.act_run_all.isEnabled()
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    read_and_wait(qtbot, window, lambda: window.open_path(bad))
    assert window.notice.isVisible()
    read_and_wait(qtbot, window, lambda: window.open_path(small_lr))
    assert not window.notice.isVisible()  # the old error no longer applies
    assert not window.start_hint.isVisible() and window.viewer.isVisible()
    assert window.run_panel.run_all_button.isEnabled()
    run_and_wait(qtbot, window, "manet")
    window.regions.tool = "brush"
    window.regions.stroke([(10.0, 10.0), (20.0, 16.0)])
    with qtbot.waitSignal(window.bridge.finished, timeout=60_000):
        assert window.upscale_region(1) is not None
    outlines = [i for i in window.viewer.preview_items if isinstance(i, QtWidgets.QGraphicsRectItem)]
    assert len(outlines) == 3  # input, result and divider views
    texts = [i.textItem.toPlainText() for i in window.viewer.preview_items if hasattr(i, "textItem")]
    assert "region 1: before" in texts and "region 1: after" in texts


def test_inspector_shows_the_other_methods_kernel_for_the_same_spot(window, qtbot, small_lr):
    from app.geometry import hover_hit

    read_and_wait(qtbot, window, lambda: window.open_path(small_lr))
    run_and_wait(qtbot, window, "manet")
    hit = hover_hit(30.0, 20.0, window.viewer.geometry_)
    window.inspect(hit, "sr")
    assert not window.inspector.compare_box.isVisibleTo(window.inspector)  # only MANet so far
    run_and_wait(qtbot, window, "ikc", ikc_steps=1)
    window.inspect(hit, "sr")  # IKC shown: MANet's kernel at that LR pixel beside it
    assert window.inspector.compare_box.isVisibleTo(window.inspector)
    expected = window.current.results["manet"].result.kernel_map.kernel_at(hit.lr_col, hit.lr_row)
    np.testing.assert_array_equal(window.inspector.compare_view.kernel, expected.kernel)
    assert window.inspector.compare_caption.text().startswith("MANet here")


def test_inspector_shows_the_inputs_noise_level_at_the_cursor(window, qtbot, small_lr):
    from app.geometry import hover_hit
    from engine.noise import estimate_noise

    read_and_wait(qtbot, window, lambda: window.open_path(small_lr))
    assert window.inspector.noise.text() == "–"  # no run yet
    run_and_wait(qtbot, window, "manet")
    hit = hover_hit(30.0, 20.0, window.viewer.geometry_)
    window.inspect(hit, "sr")
    est = estimate_noise(window.current.image.rgb_f32)
    text = window.inspector.noise.text()
    assert f"{est.at(hit.lr_x, hit.lr_y):.1f}/255 here" in text and f"{est.sigma_255:.1f}/255 image" in text


def test_nonblind_inspector_keeps_the_runs_kernel_after_the_sliders_move(window, qtbot, small_lr):
    import math

    from app.geometry import hover_hit
    from engine.degradation.kernels import KernelParams, anisotropic_gaussian_kernel

    read_and_wait(qtbot, window, lambda: window.open_path(small_lr))
    run_and_wait(qtbot, window, "nonblind", sigma1=1.5, sigma2=1.0, theta=30.0)
    ran = anisotropic_gaussian_kernel(KernelParams(1.5, 1.0, math.radians(30.0)), window.current.result.scale)
    rp = window.run_panel
    rp.sigma1.setValue(3.5)
    rp.sigma2.setValue(3.0)
    rp.theta.setValue(120.0)
    window.inspect(hover_hit(30.0, 20.0, window.viewer.geometry_), "sr")
    np.testing.assert_allclose(window.inspector.view.kernel, ran, atol=1e-7)
