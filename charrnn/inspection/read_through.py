"""Reading a text through the model once and keeping what it did: how surprised it was by
each token, what it guessed instead, and what chosen units did.

Shape letters as in ``model.py``, plus N (tokens in the sequence read), K
(guesses kept per token) and U (units followed).

Everything is indexed by the token it is about: for token p, its surprise
is -log P(tokens[p] | tokens[:p]) in nats (what the model spent on it), its
guesses are the K tokens the model found likeliest at that point, and a
unit's value is the one after the model has read it.

A long sequence is read as B streams side by side, each but the first
starting from the state the ``warmup`` tokens before it leave, as ``eval``
scores (``evaluate.warmed_up_state``), so that what it records is, to
within what the model remembers from further back, what one sequential pass
would. A short one is read as one stream: exactly one sequential pass. On
40,000 characters of Shakespeare, a warm-up of 256 tokens changed no
character's surprise by more than 0.008 nats and no cell by more than
0.002 from a sequential pass on the 2 x 256 model first shipped (64 tokens:
0.2 and 0.05), and 0.011 and 0.007 on the 2 x 512 one
(``docs/make_pictures.py`` measures it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from charrnn.data.vocab import END_ID, NUM_SPECIAL, START_ID
from charrnn.data.windows import Windows
from charrnn.nn.model import Model
from charrnn.nn.scoring import warmed_up_state

WARMUP = 256  # tokens read before each stream but the first, to settle its state
MAX_STREAMS = 64
WINDOW = 128  # steps read per forward pass
TOP_GUESSES = 5


@dataclass(frozen=True)
class Unit:
    layer: int
    index: int


@dataclass
class Trace:
    """What the model made of a token sequence, one row per token."""

    tokens: np.ndarray  # (N,) the sequence read
    nats: np.ndarray  # (N,) float64 surprise; NaN where not predicted (token 0, a <START>)
    guesses: np.ndarray  # (N, K) the likeliest tokens, likeliest first (row 0 unused)
    guess_probs: np.ndarray  # (N, K) their probabilities
    units: np.ndarray  # (N, U) float64 each unit's value after reading the token; NaN on the
    # last token, which is never read


@dataclass(frozen=True)
class Window:
    """One forward pass over the streams: what it predicted and what the units did."""

    steps: np.ndarray  # (n,) the steps recorded in this window (step s reads tokens[s])
    losses: np.ndarray  # (n,) float64 the loss on tokens[s + 1]
    probs: np.ndarray  # (n, V) the distribution predicted for tokens[s + 1]
    unit_values: list[np.ndarray]  # per layer (n, H): after reading tokens[s] (empty without a kind)


def stream_count(num_steps: int, warmup: int = WARMUP, max_streams: int = MAX_STREAMS) -> int:
    """Streams for a sequence of ``num_steps``: each at least 4 warm-ups long, so that
    warming up costs at most a quarter more steps."""
    return int(np.clip(num_steps // (4 * max(warmup, 1)), 1, max_streams))


def read_windows(model: Model, tokens: np.ndarray, unit_kind: str | None = None,
                 warmup: int = WARMUP, max_streams: int = MAX_STREAMS,
                 window: int = WINDOW) -> Iterator[Window]:
    """Read ``tokens`` (N,) through the model in windows of streams, each stream but the
    first warmed up as ``evaluate.warmed_up_state`` does, yielding what each window
    recorded. Every step 0 .. N-2 is recorded once."""
    num_steps = len(tokens) - 1
    batch_size = stream_count(num_steps, warmup, max_streams)
    windows = Windows(tokens, batch_size, window, pad=True)
    state = warmed_up_state(model, tokens, batch_size, windows.stream_length, warmup)
    stream_starts = np.arange(batch_size) * windows.stream_length  # (B,)
    for index in range(windows.num_windows):
        inputs, targets = windows.window(index)  # (T, B)
        steps = stream_starts + index * window + np.arange(len(inputs))[:, None]  # (T, B)
        keep = steps < num_steps  # not padding
        losses, probs, state, values = model.predictions(inputs, targets, state, unit_kind)
        yield Window(steps[keep], losses[keep], probs.reshape(*keep.shape, -1)[keep],
                     [layer_values[keep] for layer_values in values])


def trace_tokens(model: Model, tokens: np.ndarray, units: tuple[Unit, ...] = (),
                 unit_kind: str | None = None, top_k: int = TOP_GUESSES, **layout) -> Trace:
    """Read ``tokens`` (N,) through the model once: each token's surprise and the model's
    ``top_k`` guesses for it, and the ``unit_kind`` value of each of ``units``
    (see ``Model.predictions``) after each token. ``layout``: ``read_windows``'s options."""
    N = len(tokens)
    top_k = min(top_k, model.config.vocab_size)
    nats = np.full(N, np.nan)
    guesses = np.zeros((N, top_k), np.int64)
    guess_probs = np.zeros((N, top_k))
    unit_values = np.full((N, len(units)), np.nan)
    for window in read_windows(model, tokens, unit_kind if units else None, **layout):
        targets = window.steps + 1
        nats[targets] = np.where(tokens[targets] == START_ID, np.nan, window.losses)
        likeliest = np.argsort(-window.probs, axis=1, kind="stable")[:, :top_k]  # (n, K)
        guesses[targets] = likeliest
        guess_probs[targets] = np.take_along_axis(window.probs, likeliest, axis=1)
        for column, unit in enumerate(units):
            unit_values[window.steps, column] = window.unit_values[unit.layer][:, unit.index]
    return Trace(tokens, nats, guesses, guess_probs, unit_values)


def shown_positions(tokens: np.ndarray, records: bool) -> np.ndarray:
    """The tokens a view of the text shows: every character and, in a records layout, each
    record's <END> (shown as the line end that delimited it). (M,) indices into tokens."""
    shown = tokens >= NUM_SPECIAL
    if records:
        shown |= tokens == END_ID
    return np.flatnonzero(shown)
