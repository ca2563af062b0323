"""Simple features of a text, and which units of a model follow them.

A feature has one value per character: what is true once that character
has been read (so a unit's value after reading a character is compared with
the feature's value there). The features, all computed without a Python
loop over the text:

    inside double quotes      1 from an opening " up to (not including) its closing "
    inside brackets           1 while more ( [ { are open than closed (the opening one
                              counts; unmatched closers are ignored)
    position in line          characters since the last line end (a line end is 0)
    start of word             1 on a letter or digit that follows neither
    inside word               1 on a letter or digit that follows one
    uppercase                 1 on an uppercase letter
    digit                     1 on a digit
    after newline             1 on the first character of a line
    indentation depth         spaces and tabs at the start of the line, up to here

``find_units`` reads a text through a model and finds, for each feature,
the unit of any layer whose values correlate best with it (Pearson's r).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charrnn.data.vocab import NUM_SPECIAL, Vocabulary, code_points
from charrnn.inspection.read_through import WARMUP, Unit, read_windows, trace_tokens
from charrnn.nn.model import Model

FEATURES = ("inside double quotes", "inside brackets", "position in line", "start of word",
            "inside word", "uppercase", "digit", "after newline", "indentation depth")
OPENERS, CLOSERS = "([{", ")]}"


def char_classes(points: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean arrays (C,) over the code points: word characters, uppercase, digits."""
    distinct, inverse = np.unique(points, return_inverse=True)
    chars = [chr(point) for point in distinct]
    classes = {"word": [char.isalnum() for char in chars],
               "upper": [char.isupper() for char in chars],
               "digit": [char.isdigit() for char in chars]}
    return {name: np.array(flags, bool)[inverse] for name, flags in classes.items()}


def last_index(flags: np.ndarray) -> np.ndarray:
    """For each position, the index of the last True at or before it, or -1."""
    return np.maximum.accumulate(np.where(flags, np.arange(len(flags)), -1))


def bracket_depth(points: np.ndarray) -> np.ndarray:
    """Open brackets after each character, never below 0 (a loop over the brackets only)."""
    change = np.isin(points, code_points(OPENERS)).astype(np.int64)
    change -= np.isin(points, code_points(CLOSERS))
    brackets = np.flatnonzero(change)
    depths = np.zeros(len(brackets) + 1, np.int64)  # depths[k + 1]: after the k-th bracket
    for k, position in enumerate(brackets):
        depths[k + 1] = max(depths[k] + change[position], 0)
    return depths[np.searchsorted(brackets, np.arange(len(points)), side="right")]


def indentation(points: np.ndarray, column: np.ndarray, line_end: np.ndarray) -> np.ndarray:
    """Spaces and tabs at the start of each character's line, counted up to the character."""
    blank = np.isin(points, code_points(" \t")) & ~line_end
    # first_text[i]: the first position at or after i that is not a space or tab
    positions = np.where(blank, len(points), np.arange(len(points)))
    first_text = np.minimum.accumulate(positions[::-1])[::-1]
    line_start = np.arange(len(points)) - column + 1  # for a line end: the position after it
    line_start = np.minimum(line_start, len(points) - 1)
    leading = first_text[line_start] - line_start  # (C,) each line's indentation
    return np.minimum(np.maximum(column, 0), leading)


def text_features(text: str) -> np.ndarray:
    """The FEATURES of each character of ``text``: (C, F) float64, in FEATURES order."""
    points = code_points(text)
    classes = char_classes(points)
    line_end = points == ord("\n")
    column = np.arange(len(points)) - last_index(line_end)  # a line end is column 0
    word, previous_word = classes["word"], np.concatenate(([False], classes["word"][:-1]))
    after_newline = np.concatenate(([True], line_end[:-1])) & ~line_end
    columns = {
        "inside double quotes": np.cumsum(points == ord('"')) % 2 == 1,
        "inside brackets": bracket_depth(points) > 0,
        "position in line": column,
        "start of word": word & ~previous_word,
        "inside word": word & previous_word,
        "uppercase": classes["upper"],
        "digit": classes["digit"],
        "after newline": after_newline,
        "indentation depth": indentation(points, column, line_end),
    }
    return np.stack([columns[name] for name in FEATURES], axis=1).astype(np.float64)


class Correlations:
    """Pearson correlations between many series (units) and a few (features), accumulated
    over batches of rows.

    Sums of products are kept about a shift (the first batch's means), so that
    nearly constant series do not lose their variance to cancellation.
    """

    def __init__(self):
        self.count = 0
        self.shift_x = self.shift_f = None

    def add(self, x: np.ndarray, f: np.ndarray) -> None:
        """x: (n, U) unit values; f: (n, F) feature values, for the same n rows."""
        if len(x) == 0:
            return
        if self.shift_x is None:
            self.shift_x, self.shift_f = x.mean(axis=0, dtype=np.float64), f.mean(axis=0)
            U, F = x.shape[1], f.shape[1]
            self.sum_x, self.sum_xx = np.zeros(U), np.zeros(U)
            self.sum_f, self.sum_ff, self.sum_xf = np.zeros(F), np.zeros(F), np.zeros((U, F))
        x = x - self.shift_x
        f = f - self.shift_f
        self.count += len(x)
        self.sum_x += x.sum(axis=0)
        self.sum_xx += np.einsum("nu,nu->u", x, x)
        self.sum_f += f.sum(axis=0)
        self.sum_ff += np.einsum("nf,nf->f", f, f)
        self.sum_xf += x.T @ f

    def result(self) -> np.ndarray:
        """(U, F) correlations; NaN for a feature that never varies, 0 for a constant unit."""
        n = self.count
        covariance = n * self.sum_xf - np.outer(self.sum_x, self.sum_f)
        spread_x = np.sqrt(np.maximum(n * self.sum_xx - self.sum_x ** 2, 0))
        spread_f = np.sqrt(np.maximum(n * self.sum_ff - self.sum_f ** 2, 0))
        with np.errstate(invalid="ignore", divide="ignore"):
            r = covariance / np.outer(spread_x, spread_f)
        r[spread_x == 0] = 0.0
        r[:, spread_f == 0] = np.nan
        return r


def excerpt_start(feature: np.ndarray, length: int) -> int:
    """Where a ``length``-character excerpt shows the most of a feature: the start of the
    window in which the feature varies most (the first if it never does)."""
    if len(feature) <= length:
        return 0
    totals = np.concatenate(([0.0], np.cumsum(feature)))
    squares = np.concatenate(([0.0], np.cumsum(feature ** 2)))
    mean = (totals[length:] - totals[:-length]) / length
    variance = (squares[length:] - squares[:-length]) / length - mean ** 2
    return int(np.argmax(variance > variance.max() * (1 - 1e-9)))


@dataclass(frozen=True)
class Finding:
    feature: str
    unit: Unit | None  # None when the feature never varies in the text
    r: float  # the unit's correlation with the feature (NaN without a unit)


def token_text(tokens: np.ndarray, vocab: Vocabulary) -> str:
    """The text of a token sequence with <START> and <END> as line ends: one character
    per token."""
    return "".join(np.array(["\n"] * NUM_SPECIAL + list(vocab.chars))[tokens])


def find_units(model: Model, tokens: np.ndarray, features: np.ndarray, unit_kind: str,
               **layout) -> tuple[list[Finding], np.ndarray]:
    """For each feature, the unit (of all layers) whose ``unit_kind`` values follow it best,
    over the tokens read (every token but the last).

    tokens: (N,); features: (N, F) the FEATURES of each token (see ``token_text``);
    ``layout``: as for ``read_windows``. Returns the findings, in FEATURES order,
    and all the correlations, (layers, H, F).
    """
    correlations = Correlations()
    for window in read_windows(model, tokens, unit_kind, **layout):
        correlations.add(np.concatenate(window.unit_values, axis=1), features[window.steps])
    H = model.config.hidden_size
    r = correlations.result().reshape(model.config.num_layers, H, features.shape[1])
    findings = []
    for column, feature in enumerate(FEATURES):
        strengths = np.abs(r[..., column])
        if np.isnan(strengths).all():
            findings.append(Finding(feature, None, float("nan")))
            continue
        layer, index = np.unravel_index(np.nanargmax(strengths), strengths.shape)
        findings.append(Finding(feature, Unit(int(layer), int(index)),
                                float(r[layer, index, column])))
    return findings, r


def excerpt(model: Model, tokens: np.ndarray, feature: np.ndarray, unit: Unit, unit_kind: str,
            length: int, warmup: int = WARMUP) -> tuple[int, np.ndarray]:
    """The ``length`` tokens where ``feature`` (N,) varies most, and the unit's values on
    them, read after ``warmup`` tokens before them: (start, values (length,))."""
    start = excerpt_start(feature[:-1], length)
    first = max(start - warmup, 0)
    stop = min(start + length, len(tokens) - 1)
    trace = trace_tokens(model, tokens[first: stop + 1], (unit,), unit_kind, max_streams=1)
    return start, trace.units[start - first: stop - first, 0]
