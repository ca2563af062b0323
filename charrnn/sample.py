"""Generating text: feed <START> (and a prime), then draw each next character.

Several samples advance together as one batch. Sample i draws from its own
random generator, seeded with (seed, i), so a sample does not depend on how
many others are drawn beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from .model import Model, Stepper
from .vocab import END_ID, START_ID, Vocabulary


@dataclass(frozen=True)
class Piece:
    """What one sample produced in one step: a character, or its end."""

    index: int  # which sample
    text: str  # the character drawn ("" when the sample ends without one)
    done: bool = False
    stop_reason: str | None = None  # "end" (the model drew <END>) or "length"


def sample_rngs(seed: int, num_samples: int) -> list[np.random.Generator]:
    return [np.random.default_rng([seed, index]) for index in range(num_samples)]


def draw(logits: np.ndarray, temperature: float, uniforms: np.ndarray) -> np.ndarray:
    """One token per row of ``logits`` (N, V): argmax at temperature 0, else a draw
    from softmax(logits / temperature) by inverting its cumulative sum at ``uniforms`` (N,).
    <START> is never drawn."""
    logits = logits.astype(np.float64)
    logits[:, START_ID] = -np.inf
    if temperature == 0:
        return logits.argmax(axis=1)
    scaled = logits / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    cumulative = np.cumsum(np.exp(scaled), axis=1)
    thresholds = uniforms[:, None] * cumulative[:, -1:]
    drawn = (cumulative <= thresholds).sum(axis=1)
    return np.minimum(drawn, logits.shape[1] - 1)


def generate(model: Model, vocab: Vocabulary, *, seed: int, num_samples: int = 1,
             length: int = 500, temperature: float = 1.0, prime: str = "") -> Iterator[Piece]:
    """Draw ``num_samples`` samples together, yielding each character as it is drawn.

    Each sample starts from <START> followed by the prime's characters
    (those in the vocabulary) and stops when the model draws <END> or after
    ``length`` characters.
    """
    rngs = sample_rngs(seed, num_samples)
    stepper = Stepper(model)
    state = model.zero_state(num_samples)
    logits, state = stepper.step(np.full(num_samples, START_ID), state)
    prime_ids, _ = vocab.encode(prime)
    for token in prime_ids:
        logits, state = stepper.step(np.full(num_samples, token), state)

    active = np.arange(num_samples)  # samples still drawing, in order
    for position in range(length + 1):
        if position == length:
            for index in active:
                yield Piece(int(index), "", True, "length")
            return
        uniforms = np.array([rngs[index].random() for index in active])
        tokens = draw(logits, temperature, uniforms)
        ended = tokens == END_ID
        for index, token, end in zip(active, tokens, ended):
            if end:
                yield Piece(int(index), "", True, "end")
            else:
                yield Piece(int(index), vocab.token(int(token)))
        if ended.all():
            return
        if ended.any():
            keep = ~ended
            active, tokens = active[keep], tokens[keep]
            state = [(h[keep], c[keep]) for h, c in state]
        logits, state = stepper.step(tokens, state)


class OrderedWriter:
    """Writes samples one after another, each as ``prefix``, its text and a newline.

    The earliest unfinished sample is streamed as it grows; later ones are
    held back until their turn.
    """

    def __init__(self, write: Callable[[str], None], num_samples: int, prefix: str = ""):
        self.write, self.num_samples, self.prefix = write, num_samples, prefix
        self.current = 0  # the sample being streamed
        self.held: dict[int, list[str]] = {}
        self.finished: set[int] = set()
        self.write(prefix)

    def feed(self, piece: Piece) -> None:
        if piece.index != self.current:
            self.held.setdefault(piece.index, []).append(piece.text)
            if piece.done:
                self.finished.add(piece.index)
            return
        self.write(piece.text)
        if piece.done:
            self.write("\n")
            self._advance()

    def _advance(self) -> None:
        """Move on to the next samples, writing out what was held for them."""
        while True:
            self.current += 1
            if self.current == self.num_samples:
                return
            self.write(self.prefix + "".join(self.held.pop(self.current, [])))
            if self.current not in self.finished:
                return
            self.write("\n")
