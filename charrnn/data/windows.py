"""Streams and windows: how a token sequence is batched.

The sequence is cut into B **streams**, contiguous and of equal length L,
that are trained or scored side by side; each stream is taken T steps at a
time, and a **window** is those T steps of every stream: inputs and targets,
each time-major (T, B), the target of each input being the next token.
"""

from __future__ import annotations

import numpy as np

from charrnn.data.vocab import START_ID
from charrnn.errors import CharrnnError


def fit_window(num_tokens: int, batch_size: int, window_length: int) -> tuple[int, int]:
    """The largest (batch_size, window_length), no larger than asked, that gives one window.

    A window of B rows and T steps needs B * T + 1 tokens; rows are given up
    before steps. Raises CharrnnError if there are fewer than two tokens.
    """
    num_targets = num_tokens - 1
    if num_targets < 1:
        raise CharrnnError("the training text is too short: it needs at least one character")
    window_length = min(window_length, num_targets)
    batch_size = min(batch_size, num_targets // window_length)
    return batch_size, window_length


class Windows:
    """A token sequence cut into B parallel contiguous streams and windows of T steps.

    With ``pad`` the sequence is padded so that every target falls in some
    window (the last window may be shorter, and padded targets are <START>,
    which is never scored): for scoring. Without it, the ragged end is
    dropped and every window has T steps: for training.
    """

    def __init__(self, tokens: np.ndarray, batch_size: int, window_length: int, pad: bool = False):
        num_targets = len(tokens) - 1
        if pad:
            stream_length = -(-num_targets // batch_size)
            padded = np.full(batch_size * stream_length + 1, START_ID, tokens.dtype)
            padded[: len(tokens)] = tokens
            tokens = padded
            self.num_windows = -(-stream_length // window_length)
        else:
            stream_length = num_targets // batch_size
            self.num_windows = stream_length // window_length
        span = batch_size * stream_length
        self.inputs = tokens[:span].reshape(batch_size, stream_length)  # (B, L)
        self.targets = tokens[1: span + 1].reshape(batch_size, stream_length)  # (B, L)
        self.batch_size, self.window_length = batch_size, window_length

    @property
    def stream_length(self) -> int:
        """L: the steps in each stream."""
        return self.inputs.shape[1]

    def window(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The inputs and targets of window ``index``, each (T, B)."""
        return self.span(index * self.window_length, self.window_length)

    def span(self, start: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """The inputs and targets of ``length`` steps from step ``start``, each (length, B)."""
        steps = slice(start, start + length)
        return (np.ascontiguousarray(self.inputs[:, steps].T),
                np.ascontiguousarray(self.targets[:, steps].T))
