"""Generating text: feed <START> (and a prime), then draw each next character.

Several samples advance together as one batch. Sample i draws from its own
random generator, seeded with (seed, i), so a sample does not depend on how
many others are drawn beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from .model import Model
from .vocab import END_ID, START_ID, Vocabulary


@dataclass(frozen=True)
class Piece:
    """What one sample produced in one step: a character, or its end."""

    index: int  # which sample
    text: str  # the character drawn ("" when the sample ends without one)
    done: bool = False
    stop_reason: str | None = None  # "end" (the model drew <END>), "length" or "stop"
    log_prob: float | None = None  # on the last piece: the model's log-probability of the
    # sample's characters (and <END>), at temperature 1, natural log


def sample_rngs(seed: int, num_samples: int) -> list[np.random.Generator]:
    return [np.random.default_rng([seed, index]) for index in range(num_samples)]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities (N, V) in float64 from logits (N, V); <START> is impossible."""
    logits = logits.astype(np.float64)
    logits[:, START_ID] = -np.inf
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def restrict_(scaled: np.ndarray, top_k: int | None, top_p: float | None) -> np.ndarray:
    """Set to -inf, in place, the logits (N, V) of tokens outside the top k, then outside
    the smallest set of most likely tokens whose probability reaches top_p (nucleus)."""
    if top_k is not None and top_k < scaled.shape[1]:
        kth_largest = np.partition(scaled, -top_k, axis=1)[:, -top_k:].min(axis=1, keepdims=True)
        scaled[scaled < kth_largest] = -np.inf
    if top_p is not None and top_p < 1:
        probs = np.exp(scaled - scaled.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        order = np.argsort(-probs, axis=1, kind="stable")
        sorted_probs = np.take_along_axis(probs, order, axis=1)
        mass_before = np.cumsum(sorted_probs, axis=1) - sorted_probs
        outside = np.zeros_like(scaled, dtype=bool)
        np.put_along_axis(outside, order, mass_before >= top_p, axis=1)
        scaled[outside] = -np.inf
    return scaled


def draw(logits: np.ndarray, uniforms: np.ndarray, temperature: float = 1.0,
         top_k: int | None = None, top_p: float | None = None) -> np.ndarray:
    """One token per row of ``logits`` (N, V): the argmax at temperature 0, else a draw
    from softmax(logits / temperature), restricted to top_k / top_p, made by inverting
    its cumulative sum at ``uniforms`` (N,). <START> is never drawn."""
    logits = logits.astype(np.float64)
    logits[:, START_ID] = -np.inf
    greedy = logits.argmax(axis=1)
    if temperature == 0:
        return greedy
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = logits / temperature  # all 0 at an infinite temperature: uniform
    scaled[:, START_ID] = -np.inf  # -inf / inf is NaN
    overflowed = ~np.isfinite(scaled.max(axis=1))  # a temperature so small it is 0
    scaled[overflowed] = np.where(np.arange(scaled.shape[1]) == greedy[overflowed, None],
                                  0.0, -np.inf)
    scaled = restrict_(scaled, top_k, top_p)
    scaled -= scaled.max(axis=1, keepdims=True)
    cumulative = np.cumsum(np.exp(scaled), axis=1)
    thresholds = uniforms[:, None] * cumulative[:, -1:]
    drawn = (cumulative <= thresholds).sum(axis=1)
    # Rounding can push the count past the last allowed token: step back to it.
    last_allowed = scaled.shape[1] - 1 - np.argmax(np.isfinite(scaled[:, ::-1]), axis=1)
    return np.minimum(drawn, last_allowed)


def primed_start(model: Model, vocab: Vocabulary, prime: str, batch_size: int = 1):
    """Feed <START> and the prime's known characters to ``batch_size`` rows.

    Returns (stepper, logits (B, V), state): the stepper's ``step`` generates
    from there (see ``Model.stepper``).
    """
    stepper = model.stepper()
    state = model.zero_state(batch_size)
    logits, state = stepper.step(np.full(batch_size, START_ID), state)
    for token in vocab.encode(prime)[0]:
        logits, state = stepper.step(np.full(batch_size, token), state)
    return stepper, logits, state


def generate(model: Model, vocab: Vocabulary, *, seed: int, num_samples: int = 1,
             length: int = 500, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, prime: str = "",
             stop: tuple[str, ...] = ()) -> Iterator[Piece]:
    """Draw ``num_samples`` samples together, yielding each character as it is drawn.

    Each sample starts from <START> followed by the prime's characters (those
    in the vocabulary) and stops when the model draws <END>, after ``length``
    characters, or when its text ends with one of the ``stop`` strings (which
    is kept).
    """
    rngs = sample_rngs(seed, num_samples)
    stepper, logits, state = primed_start(model, vocab, prime, num_samples)
    longest_stop = max(map(len, stop), default=0)
    tails = [""] * num_samples  # each sample's last characters, to spot stop strings
    log_probs = np.zeros(num_samples)
    active = np.arange(num_samples)  # samples still drawing, in order
    for _ in range(length):
        uniforms = np.array([rngs[index].random() for index in active])
        tokens = draw(logits, uniforms, temperature, top_k, top_p)
        log_probs[active] += log_softmax(logits)[np.arange(len(active)), tokens]
        finished = np.zeros(len(active), dtype=bool)
        for row, (index, token) in enumerate(zip(active, tokens)):
            if token == END_ID:
                finished[row] = True
                yield Piece(int(index), "", True, "end", float(log_probs[index]))
                continue
            char = vocab.token(int(token))
            tails[index] = (tails[index] + char)[-longest_stop:] if stop else ""
            if stop and tails[index].endswith(stop):
                finished[row] = True
                yield Piece(int(index), char, True, "stop", float(log_probs[index]))
            else:
                yield Piece(int(index), char)
        if finished.all():
            return
        if finished.any():
            keep = ~finished
            active, tokens = active[keep], tokens[keep]
            state = [tuple(part[keep] for part in layer) for layer in state]
        logits, state = stepper.step(tokens, state)
    for index in active:
        yield Piece(int(index), "", True, "length", float(log_probs[index]))


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
