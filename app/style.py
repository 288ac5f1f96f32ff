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


PALETTE_RGB: dict[str, tuple[int, int, int]] = {
    "Window": (27, 28, 31), "WindowText": (216, 216, 220), "Base": (32, 33, 37), "AlternateBase": (38, 39, 43),
    "ToolTipBase": (45, 47, 52), "ToolTipText": (230, 230, 233), "Text": (222, 222, 226), "Button": (45, 47, 52),
    "ButtonText": (227, 227, 230), "Highlight": (22, 131, 196), "HighlightedText": (255, 255, 255),
    "Link": (79, 195, 247),
}
"""The dark palette: colour role name → RGB (active and inactive groups)."""

DISABLED_RGB = (110, 112, 118)
DISABLED_ROLES = ("Text", "ButtonText", "WindowText")
"""Roles drawn in :data:`DISABLED_RGB` when their widget is disabled."""


def dark_palette() -> QtGui.QPalette:
    p = QtGui.QPalette()
    roles = QtGui.QPalette.ColorRole
    for role, rgb in PALETTE_RGB.items():
        p.setColor(getattr(roles, role), QtGui.QColor(*rgb))
    for role in DISABLED_ROLES:
        p.setColor(QtGui.QPalette.ColorGroup.Disabled, getattr(roles, role), QtGui.QColor(*DISABLED_RGB))
    return p


def apply_style(app: QtWidgets.QApplication) -> None:
    """Apply the dark theme to ``app`` (idempotent) and set pyqtgraph's defaults to match."""
    app.setStyle("Fusion")
    app.setPalette(dark_palette())
    app.setStyleSheet(STYLE_SHEET)
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, background=(24, 25, 28),
                        foreground=(190, 192, 198))
