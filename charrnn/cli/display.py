"""Drawing in a terminal: characters that may be invisible, and curves as characters."""

from __future__ import annotations

import math
import unicodedata

PLOT_WIDTH = 60
PLOT_HEIGHT = 12


def printable_char(char: str) -> str:
    """A character as it can be shown in one cell: escapes for controls and spaces."""
    names = {"\n": "\\n", "\t": "\\t", "\r": "\\r", " ": "␣"}
    if char in names:
        return names[char]
    if unicodedata.category(char)[0] in "CZ":
        return f"\\u{ord(char):04x}"
    return char


def plot_curves(series: dict[str, list[tuple[float, float]]], markers: dict[str, str],
                width: int = PLOT_WIDTH, height: int = PLOT_HEIGHT) -> list[str]:
    """A character plot of several (x, y) series on shared axes, with a y scale on the left.

    Later series are drawn over earlier ones where they meet.
    """
    points = [(x, y) for values in series.values() for x, y in values if math.isfinite(y)]
    if not points:
        return []
    x_low, x_high = min(x for x, _ in points), max(x for x, _ in points)
    y_low, y_high = min(y for _, y in points), max(y for _, y in points)
    x_span, y_span = (x_high - x_low) or 1.0, (y_high - y_low) or 1.0
    grid = [[" "] * width for _ in range(height)]
    for name, values in series.items():
        for x, y in values:
            if math.isfinite(y):
                column = round((x - x_low) / x_span * (width - 1))
                row = round((y_high - y) / y_span * (height - 1))
                grid[row][column] = markers[name]
    lines = []
    for row, cells in enumerate(grid):
        label = f"{y_high - row * y_span / (height - 1):7.3f}" if row in (0, height - 1) else ""
        lines.append(f"{label:>7} │{''.join(cells)}")
    lines.append(" " * 8 + "└" + "─" * width)
    lines.append(" " * 9 + f"{x_low:<{width // 2}g}{x_high:>{width - width // 2}g}")
    return lines
