"""Scoring a text: average negative log-likelihood per predicted token, overall and broken
down by the character predicted; and scoring each line of a text on its own
(``score_lines``), exactly, many lines side by side.

``score_tokens`` is the one scorer of a text: ``charrnn eval`` (through ``score_text``)
and validation during training both use it. It gives what one sequential
pass from a zero state would (to within 0.001 nats/char, as tested), at the
speed of a batch: the tokens are cut into up to SCORE_BATCH_SIZE streams
scored side by side, and every stream but the first starts from the state
that the WARMUP_LENGTH tokens before it leave, run unscored from a zero
state. ``benchmarks/eval_exact.py`` measures the shipped model all three ways (one
pass, warmed-up streams, streams from a zero state); its figures are in
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass

import numpy as np

from charrnn.data.corpus import text_tokens
from charrnn.data.vocab import END, END_ID, START_ID, Vocabulary
from charrnn.data.windows import Windows
from charrnn.nn.model import Model

SCORE_BATCH_SIZE = 128
SCORE_WINDOW_LENGTH = 100
WARMUP_LENGTH = 50  # tokens run unscored before each stream, to settle its state


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


def score_tokens(model: Model, tokens: np.ndarray, by_token: bool = False, *,
                 batch_size: int = SCORE_BATCH_SIZE, window_length: int = SCORE_WINDOW_LENGTH,
                 warmup: int = WARMUP_LENGTH) -> Score:
    """Score every next-token prediction in ``tokens``, the first token given, as one pass
    from a zero state would (see the module's docstring). With ``by_token``, the loss is also
    summed per target token.

    B streams of L >= ``warmup`` steps each, windows of ``window_length``; a
    stream's state is carried across its windows.
    """
    num_targets = len(tokens) - 1
    if num_targets < 1:
        return Score(0.0, 0)
    batch_size = max(1, min(batch_size, num_targets // max(window_length, warmup, 1)))
    windows = Windows(tokens, batch_size, window_length, pad=True)
    state = warmed_up_state(model, tokens, batch_size, windows.stream_length, warmup)
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


def warmed_up_state(model: Model, tokens: np.ndarray, batch_size: int, stream_length: int,
                    warmup: int):
    """The state each of B streams of ``stream_length`` steps starts from: zero for the
    first, and for every other the state the ``warmup`` tokens before it leave (run from a
    zero state)."""
    state = model.zero_state(batch_size)
    if batch_size == 1 or warmup == 0:
        return state
    starts = np.arange(batch_size) * stream_length  # (B,) where each stream starts
    # (W, B) the tokens before each stream; the first stream's are its own, and unused.
    positions = np.maximum(starts - warmup, 0) + np.arange(warmup)[:, None]
    state = model.final_state(tokens[positions], state)
    for layer_state in state:
        for array in layer_state:  # (B, H)
            array[0] = 0.0
    return state


@dataclass(frozen=True)
class TextScore:
    """The score of a text, and what of it was scored."""

    score: Score
    num_sequences: int  # <END> markers predicted: one per record, or one for the whole text
    num_skipped: int  # characters outside the vocabulary, left out

    @property
    def num_chars(self) -> int:
        """Characters scored."""
        return self.score.num_scored - self.num_sequences

    @property
    def nats_per_char(self) -> float:
        """Mean negative log-likelihood per prediction (characters and <END>), natural log."""
        return self.score.nats_per_char

    @property
    def bits_per_char(self) -> float:
        return self.score.bits_per_char

    @property
    def perplexity(self) -> float:
        return self.score.perplexity


def score_text(model: Model, vocab: Vocabulary, text: str, delimiter: str | None,
               by_token: bool = False) -> TextScore:
    """Score a text laid out as in training: as one sequence with no ``delimiter``, else as
    one sequence per record. Characters outside ``vocab`` are left out and counted."""
    tokens, num_skipped = text_tokens(text, vocab, delimiter)
    score = score_tokens(model, tokens, by_token)
    return TextScore(score, int(np.count_nonzero(tokens == END_ID)), num_skipped)


@dataclass(frozen=True)
class LineScore:
    """The score of one line (or record) on its own."""

    log_prob: float  # natural log of the model's probability of its characters and its end
    num_predictions: int  # the characters scored and the end
    num_skipped: int  # characters outside the vocabulary, left out

    @property
    def nats_per_char(self) -> float:
        return -self.log_prob / self.num_predictions if self.num_predictions else math.nan

    @property
    def bits_per_char(self) -> float:
        return self.nats_per_char / math.log(2)


def split_lines(text: str, delimiter: str | None) -> list[str]:
    """The records of a text split at ``delimiter``, or its lines with None, empty ones
    kept; a delimiter at the very end ends the last one rather than starting another."""
    pieces = text.split("\n" if delimiter is None else delimiter)
    return pieces[:-1] if pieces[-1] == "" else pieces


def score_lines(model: Model, vocab: Vocabulary, lines: list[str],
                delimiter: str | None) -> list[LineScore]:
    """Score each line on its own, from <START>, as the model would write it whole: its
    characters (those in ``vocab``) and its end, which is <END> for a records model (a
    ``delimiter``) and the newline for a one-sequence model (None)."""
    end = [END_ID] if delimiter is not None else list(vocab.encode("\n")[0])
    encoded = [vocab.encode(line) for line in lines]
    sequences = [np.concatenate([[START_ID], tokens, end]).astype(np.int64)
                 for tokens, _ in encoded]
    losses = sequence_losses(model, sequences)
    return [LineScore(-float(loss), len(sequence) - 1, num_skipped)
            for loss, sequence, (_, num_skipped) in zip(losses, sequences, encoded)]


def sequence_losses(model: Model, sequences: list[np.ndarray],
                    batch_size: int = SCORE_BATCH_SIZE,
                    window_length: int = SCORE_WINDOW_LENGTH) -> np.ndarray:
    """The summed negative log-likelihood (N,) of each token sequence's tokens after its
    first, each run on its own from a zero state. Sequences of like length share a batch,
    one per row, padded with <START> (never scored); long ones go a window at a time."""
    totals = np.zeros(len(sequences))
    order = np.argsort([len(sequence) for sequence in sequences], kind="stable")
    for first in range(0, len(order), batch_size):
        rows = order[first: first + batch_size]
        grid = np.full((max(len(sequences[row]) for row in rows), len(rows)), START_ID)  # (L, B)
        for column, row in enumerate(rows):
            grid[: len(sequences[row]), column] = sequences[row]
        state = model.zero_state(len(rows))
        for start in range(0, len(grid) - 1, window_length):
            inputs = grid[start: start + window_length]
            targets = grid[start + 1: start + 1 + window_length]
            losses, state = model.target_losses(inputs[: len(targets)], targets, state)
            totals[rows] += losses.sum(axis=0)
    return totals


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
