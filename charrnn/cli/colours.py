"""The colour scales of ``charrnn show``, shared by the terminal view and the HTML page.

A scale cuts a range of values into equal bins, each with a background
colour; values beyond the range take the end bins, and NaN (nothing to show)
takes none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def blend(start: tuple[int, int, int], end: tuple[int, int, int], count: int) -> tuple[str, ...]:
    """``count`` colours from ``start`` to ``end`` (RGB), as "#rrggbb"."""
    steps = np.linspace(0, 1, count)[:, None]
    rgb = np.rint(np.array(start) * (1 - steps) + np.array(end) * steps).astype(int)
    return tuple("#{:02x}{:02x}{:02x}".format(*row) for row in rgb)


@dataclass(frozen=True)
class Scale:
    label: str
    low: float
    high: float
    colours: tuple[str, ...]  # one per bin, "#rrggbb", from low to high
    open_ended: bool = False  # values above ``high`` are common (and go in the last bin)

    def bins(self, values: np.ndarray) -> np.ndarray:
        """The bin of each value, (n,) int: 0 .. len(colours) - 1, or -1 for NaN."""
        values = np.asarray(values, np.float64)
        count = len(self.colours)
        with np.errstate(invalid="ignore"):
            scaled = np.floor((values - self.low) / (self.high - self.low) * count)
        return np.where(np.isnan(values), -1, np.clip(np.nan_to_num(scaled), 0, count - 1)).astype(int)

    def bin_labels(self) -> list[str]:
        """Each bin's lowest value, as a legend names it ("7+" for an open-ended last bin)."""
        edges = np.linspace(self.low, self.high, len(self.colours) + 1)[:-1]
        labels = [f"{edge:g}" for edge in edges]
        if self.open_ended:
            labels[-1] += "+"
        return labels


WHITE = (255, 255, 255)
# Surprise: one bin per nat up to 8, white to red; 8 nats and more share the last.
SURPRISE = Scale("nats", 0.0, 8.0, blend(WHITE, (255, 214, 102), 4)[:3]
                 + blend((255, 190, 90), (214, 48, 39), 5), open_ended=True)
# A unit: -1 (blue) to 1 (red) through white, in bins of 0.2.
UNIT = Scale("value", -1.0, 1.0, blend((69, 117, 220), WHITE, 6)[:5] + blend(WHITE, (214, 48, 39), 6)[1:])
