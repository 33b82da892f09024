"""One look for every figure: light grid, muted palette, no chart junk."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np


def apply_style() -> None:
    mpl.rcParams.update(
        {
            "figure.facecolor": "white",
            "axes.facecolor": "white",
            "axes.edgecolor": "#c8c8c8",
            "axes.grid": True,
            "grid.color": "#ececec",
            "grid.linewidth": 0.8,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.titlesize": 11,
            "axes.titleweight": "bold",
            "axes.labelsize": 9,
            "axes.labelcolor": "#444444",
            "xtick.color": "#666666",
            "ytick.color": "#666666",
            "xtick.labelsize": 8,
            "ytick.labelsize": 8,
            "legend.fontsize": 8,
            "font.family": "DejaVu Sans",
        }
    )


def size_colors(n: int) -> list:
    """Muted sequential colours, light for small models and dark for large ones."""
    return [mpl.colormaps["viridis"](x) for x in np.linspace(0.15, 0.8, n)]


def level_colors(n: int) -> list:
    """Ordered levels (bins, classes) in a muted sequential palette."""
    return [mpl.colormaps["cividis"](x) for x in np.linspace(0.05, 0.9, n)]


def category_colors(n: int) -> list:
    """Unordered levels (tags, word classes): distinct muted hues."""
    palette = mpl.colormaps["tab10" if n <= 10 else "tab20"]
    return [palette(i) for i in range(n)]


# Regime bands of the fingerprint figures: red for chaotic, amber for transition, green for stable.
REGIME_COLORS = {"chaotic": "#d9665b", "transition": "#e8b04a", "stable": "#5fa873"}


def step_colormap():
    """Training steps as colour (log-scaled by the caller): a sequential map unlike the sizes' viridis."""
    return mpl.colormaps["plasma"]
