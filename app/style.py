"""The studio's dark theme: Fusion style, a dark palette and a small style sheet."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6 import QtGui, QtWidgets

ACCENT = "#4fc3f7"

STYLE_SHEET = f"""
QMainWindow, QDialog {{ background: #1b1c1f; }}
QWidget {{ font-size: 10pt; }}
QDockWidget {{ color: #d8d8dc; font-weight: 600; }}
QDockWidget::title {{ background: #25272b; padding: 6px 8px; border-bottom: 1px solid #34363b; }}
QTabWidget::pane {{ border: 0; }}
QTabBar {{ qproperty-drawBase: 0; }}
QTabBar::tab {{ background: #222327; color: #a9abb2; padding: 7px 16px; border: 0;
               border-bottom: 2px solid transparent; }}
QTabBar::tab:selected {{ color: #ffffff; border-bottom: 2px solid {ACCENT}; background: #1b1c1f; }}
QLabel[role="muted"] {{ color: #9a9ca3; }}
QLabel[role="heading"] {{ color: #e8e8ec; font-weight: 600; }}
QPushButton {{ background: #2d2f34; border: 1px solid #3b3e44; border-radius: 4px; padding: 5px 12px;
              color: #e3e3e6; }}
QPushButton:hover {{ border-color: {ACCENT}; }}
QPushButton:disabled {{ color: #6b6d73; background: #25262a; }}
QPushButton#primary {{ background: #0f6ea8; border-color: #1683c4; color: white; font-weight: 600; }}
QPushButton#primary:disabled {{ background: #2a3a46; color: #7f8a92; }}
QToolButton {{ background: #2d2f34; border: 1px solid #3b3e44; border-radius: 4px; padding: 4px 8px;
              color: #e3e3e6; }}
QToolButton:checked {{ background: #0f6ea8; border-color: #1683c4; }}
QProgressBar {{ background: #25272b; border: 1px solid #3b3e44; border-radius: 4px; height: 18px;
               text-align: center; color: #e8e8ec; }}
QProgressBar::chunk {{ background: #1683c4; border-radius: 3px; }}
QListWidget {{ background: #202125; border: 0; color: #d8d8dc; }}
QListWidget::item {{ padding: 4px; border-radius: 4px; }}
QListWidget::item:selected {{ background: #2f4a5e; color: white; }}
QTableWidget {{ background: #202125; gridline-color: #34363b; color: #d8d8dc; border: 0; }}
QHeaderView::section {{ background: #25272b; color: #a9abb2; border: 0; padding: 3px; }}
QFrame#notice {{ background: #4a3b12; border-bottom: 1px solid #8a6d1c; }}
QFrame#notice QLabel {{ color: #ffe7a3; }}
QStatusBar {{ background: #202125; color: #b8bac0; }}
QStatusBar QLabel {{ color: #b8bac0; padding: 0 8px; }}
QScrollArea {{ background: transparent; }}
"""


def dark_palette() -> QtGui.QPalette:
    p = QtGui.QPalette()
    c = QtGui.QColor
    roles = QtGui.QPalette.ColorRole
    p.setColor(roles.Window, c(27, 28, 31))
    p.setColor(roles.WindowText, c(216, 216, 220))
    p.setColor(roles.Base, c(32, 33, 37))
    p.setColor(roles.AlternateBase, c(38, 39, 43))
    p.setColor(roles.ToolTipBase, c(45, 47, 52))
    p.setColor(roles.ToolTipText, c(230, 230, 233))
    p.setColor(roles.Text, c(222, 222, 226))
    p.setColor(roles.Button, c(45, 47, 52))
    p.setColor(roles.ButtonText, c(227, 227, 230))
    p.setColor(roles.Highlight, c(22, 131, 196))
    p.setColor(roles.HighlightedText, c(255, 255, 255))
    p.setColor(roles.Link, c(79, 195, 247))
    p.setColor(QtGui.QPalette.ColorGroup.Disabled, roles.Text, c(110, 112, 118))
    p.setColor(QtGui.QPalette.ColorGroup.Disabled, roles.ButtonText, c(110, 112, 118))
    p.setColor(QtGui.QPalette.ColorGroup.Disabled, roles.WindowText, c(110, 112, 118))
    return p


def apply_style(app: QtWidgets.QApplication) -> None:
    """Apply the dark theme to ``app`` (idempotent) and set pyqtgraph's defaults to match."""
    app.setStyle("Fusion")
    app.setPalette(dark_palette())
    app.setStyleSheet(STYLE_SHEET)
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, background=(24, 25, 28),
                        foreground=(190, 192, 198))
