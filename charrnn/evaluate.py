"""Scoring a token sequence: average negative log-likelihood per predicted token."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .corpus import Windows
from .model import Model

SCORE_BATCH_SIZE = 128
SCORE_SEQ_LENGTH = 100


@dataclass(frozen=True)
class Score:
    total_loss: float  # summed negative log-likelihood, nats
    num_scored: int  # predicted tokens (characters and <END> markers)

    @property
    def nats_per_char(self) -> float:
        return self.total_loss / self.num_scored if self.num_scored else math.nan

    @property
    def bits_per_char(self) -> float:
        return self.nats_per_char / math.log(2)

    @property
    def perplexity(self) -> float:
        return math.exp(self.nats_per_char)


def score_tokens(model: Model, tokens: np.ndarray, batch_size: int = SCORE_BATCH_SIZE,
                 seq_length: int = SCORE_SEQ_LENGTH) -> Score:
    """Score every next-token prediction in ``tokens``, the first token given.

    The sequence is cut into up to ``batch_size`` contiguous streams scored
    side by side, each from a zero state carried across its windows.
    """
    num_targets = len(tokens) - 1
    if num_targets < 1:
        return Score(0.0, 0)
    batch_size = max(1, min(batch_size, num_targets // seq_length))
    windows = Windows(tokens, batch_size, seq_length, pad=True)
    state = model.zero_state(batch_size)
    total_loss, num_scored = 0.0, 0
    for index in range(windows.num_windows):
        inputs, targets = windows.window(index)
        loss, count, state = model.loss(inputs, targets, state)
        total_loss += loss
        num_scored += count
    return Score(total_loss, num_scored)
