"""Scoring a token sequence: average negative log-likelihood per predicted token,
overall and broken down by the character predicted."""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass

import numpy as np

from .corpus import Windows
from .model import Model
from .vocab import END, START_ID, Vocabulary

SCORE_BATCH_SIZE = 128
SCORE_SEQ_LENGTH = 100


@dataclass(frozen=True)
class Score:
    total_loss: float  # summed negative log-likelihood, nats
    num_scored: int  # predicted tokens (characters and <END> markers)
    loss_by_token: np.ndarray | None = None  # (V,) summed loss where each token was the target
    count_by_token: np.ndarray | None = None  # (V,) how often each token was the target

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
                 seq_length: int = SCORE_SEQ_LENGTH, by_token: bool = False) -> Score:
    """Score every next-token prediction in ``tokens``, the first token given.

    The sequence is cut into up to ``batch_size`` contiguous streams scored
    side by side, each from a zero state carried across its windows. With
    ``by_token``, the loss is also summed per target token.
    """
    num_targets = len(tokens) - 1
    if num_targets < 1:
        return Score(0.0, 0)
    batch_size = max(1, min(batch_size, num_targets // seq_length))
    windows = Windows(tokens, batch_size, seq_length, pad=True)
    state = model.zero_state(batch_size)
    vocab_size = model.config.vocab_size
    loss_by_token, count_by_token = np.zeros(vocab_size), np.zeros(vocab_size, np.int64)
    total_loss, num_scored = 0.0, 0
    for index in range(windows.num_windows):
        inputs, targets = windows.window(index)
        losses, state = model.target_losses(inputs, targets, state)
        total_loss += float(losses.sum())
        num_scored += int((targets != START_ID).sum())
        if by_token:
            loss_by_token += np.bincount(targets.ravel(), losses.ravel(), vocab_size)
            count_by_token += np.bincount(targets.ravel(), minlength=vocab_size)
    if not by_token:
        return Score(total_loss, num_scored)
    count_by_token[START_ID] = 0  # padding, never scored
    return Score(total_loss, num_scored, loss_by_token, count_by_token)


CHARACTER_CLASSES = ("lowercase", "uppercase", "digit", "space", "newline", "punctuation",
                     "other", "<END>")


def character_class(token: str) -> str:
    """The class a predicted token falls in, for the per-character breakdown."""
    if token == END:
        return "<END>"
    if token == "\n":
        return "newline"
    if token.isspace():
        return "space"
    if token.isdigit():
        return "digit"
    if token.isalpha():
        return "lowercase" if token.islower() else "uppercase" if token.isupper() else "other"
    if unicodedata.category(token).startswith(("P", "S")):
        return "punctuation"
    return "other"


@dataclass(frozen=True)
class Breakdown:
    """Loss per predicted token or class: how often it came and how hard it was."""

    label: str
    count: int
    total_loss: float

    @property
    def nats_per_char(self) -> float:
        return self.total_loss / self.count


def breakdown(score: Score, vocab: Vocabulary) -> tuple[list[Breakdown], list[Breakdown]]:
    """The loss by character class (in CHARACTER_CLASSES order) and by token (hardest
    first), from a score made with ``by_token``."""
    tokens = [Breakdown(vocab.token(token_id), int(score.count_by_token[token_id]),
                        float(score.loss_by_token[token_id]))
              for token_id in np.flatnonzero(score.count_by_token)]
    classes = {name: [0, 0.0] for name in CHARACTER_CLASSES}
    for row in tokens:
        totals = classes[character_class(row.label)]
        totals[0] += row.count
        totals[1] += row.total_loss
    by_class = [Breakdown(name, count, loss) for name, (count, loss) in classes.items() if count]
    by_token = sorted(tokens, key=lambda row: row.nats_per_char, reverse=True)
    return by_class, by_token
