"""Generating text: feed <START> (and a prime), then draw each next character.

Several samples advance together as one batch, each with its own temperature.
Sample i at each temperature draws from its own random generator, seeded with
(seed, i), so a sample does not depend on how many others are drawn beside
it, nor at which other temperatures.

A draw turns the logits into a choice in this order (as Hugging Face's
``generate`` does): the repetition penalty on the raw logits, then the
temperature, then top-k, top-p and min-p remove unlikely characters, and the
choice inverts the cumulative sum of what is left at a uniform random number.
"""

from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass
from typing import Iterable, Iterator, NamedTuple, Sequence

import numpy as np

from charrnn.data.vocab import END_ID, START_ID, Vocabulary
from charrnn.errors import CharrnnError
from charrnn.nn.model import Model

UNIFORMS_AHEAD = 256  # random numbers drawn at once per sample
LARGEST_UNIFORM = 1 - 2.0 ** -52  # u * total < total for every positive total (see Sampler)
COLDEST = 1e-200  # lower temperatures count as 0: a logit divided by them could overflow
NO_TOKENS = np.zeros(0, np.int64)
LOG_PROB_BLOCK = 256  # steps whose log-probabilities are worked out together ...
LOG_PROB_VALUES = 1 << 16  # ... unless their logits would hold more numbers than this (the
# float64 work arrays then stay in cache: at 64 rows, 16 us a step against 36 for 1 << 20)


class Piece(NamedTuple):
    """What one sample produced in one step: a character, or its end. (A named tuple: made
    for every character drawn, it is made several times faster than a frozen dataclass.)"""

    index: int  # which sample
    text: str  # the character drawn ("" when the sample ends without one)
    done: bool = False
    stop_reason: str | None = None  # "end" (the model drew <END>), "length" or "stop"
    log_prob: float | None = None  # on the last piece: the model's log-probability of the
    # sample's characters (and <END>), at temperature 1, natural log


@dataclass(frozen=True)
class Sampling:
    """How samples are drawn: the one place each sampling default lives (the command line's
    options and ``TextModel.sample`` take theirs from here).

    length: the most characters a sample draws (it also ends at <END>).
    temperature: the sharpness of the draw, 0 for the likeliest character; a tuple draws
    the samples at each temperature in turn. top_k: keep the k likeliest characters.
    top_p: keep the smallest set of likeliest characters whose probability reaches p
    (nucleus). min_p: drop the characters less likely than min_p times the likeliest.
    repetition_penalty: a character that occurs in the last ``repetition_window``
    characters of the text so far (prime included; the whole text for 0) has its logit
    divided by the penalty when positive and multiplied by it when negative; 1 is off.
    stop: a sample ends when its text ends with one of these strings (kept).
    """

    length: int = 500
    temperature: float | tuple[float, ...] = 0.8
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    repetition_penalty: float = 1.0
    repetition_window: int = 64
    stop: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "stop", tuple(text for text in self.stop if text))
        if isinstance(self.temperature, (list, tuple)):
            object.__setattr__(self, "temperature", tuple(self.temperature))
        checks = {
            "length": _whole(self.length, 0),
            "temperature": bool(self.temperatures) and all(
                _number(t, 0) for t in self.temperatures),
            "top_k": self.top_k is None or _whole(self.top_k, 1),
            "top_p": self.top_p is None or (_number(self.top_p, 0) and 0 < self.top_p <= 1),
            "min_p": self.min_p is None or (_number(self.min_p, 0) and self.min_p <= 1),
            "repetition_penalty": _number(self.repetition_penalty, 0)
                                  and self.repetition_penalty > 0,
            "repetition_window": _whole(self.repetition_window, 0),
            "stop": all(isinstance(text, str) for text in self.stop),
        }
        for name, fine in checks.items():
            if not fine:
                raise CharrnnError(f"the sampling setting {name} cannot be "
                                   f"{reprlib.repr(getattr(self, name))}")

    @property
    def temperatures(self) -> tuple[float, ...]:
        """The temperatures to draw at: one, or those of a tuple."""
        if isinstance(self.temperature, tuple):
            return self.temperature
        return (self.temperature,)


def _whole(value, low: int) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= low


def _number(value, low: float) -> bool:
    return (isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
            and math.isfinite(value) and value >= low)


def random_seed() -> int:
    """A seed from the system's entropy, for draws given none (and reported with them)."""
    return int(np.random.SeedSequence().entropy % (1 << 63))


def sample_rng(seed: int, index: int, draw: int = 0) -> np.random.Generator:
    """The generator of sample ``index``: seeded with (seed, index); the ``draw``-th
    draw again of that sample (``sample --novel``) with (seed, index, draw)."""
    return np.random.default_rng([seed, index] if draw == 0 else [seed, index, draw])


def sample_rngs(seed: int, num_samples: int,
                num_temperatures: int = 1) -> list[np.random.Generator]:
    """Sample i at every temperature draws from ``sample_rng(seed, i)``."""
    return [sample_rng(seed, index)
            for _ in range(num_temperatures) for index in range(num_samples)]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities (N, V) in float64 from logits (N, V); <START> is impossible."""
    logits = logits.astype(np.float64)
    logits[:, START_ID] = -np.inf
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def penalize_(logits: np.ndarray, seen: np.ndarray, penalty: float) -> None:
    """The repetition penalty, in place on the logits (N, V) of the tokens ``seen`` (N, V):
    positive logits divided by ``penalty``, negative ones multiplied by it."""
    hit = logits[seen]
    logits[seen] = np.where(hit > 0, hit / penalty, hit * penalty)


def restrict_(shifted: np.ndarray, sampling: Sampling) -> np.ndarray:
    """Set to -inf, in place, the logits (N, V) of tokens outside the top k, then outside
    the smallest set of most likely tokens whose probability reaches top_p (nucleus),
    then below min_p times the likeliest's probability. Each row's largest logit is 0."""
    top_k, top_p, min_p = sampling.top_k, sampling.top_p, sampling.min_p
    if top_k is not None and top_k < shifted.shape[1]:
        kth_largest = np.partition(shifted, -top_k, axis=1)[:, -top_k:].min(axis=1, keepdims=True)
        shifted[shifted < kth_largest] = -np.inf
    if top_p is not None and top_p < 1:
        probs = np.exp(shifted)
        probs /= probs.sum(axis=1, keepdims=True)
        order = np.argsort(-probs, axis=1, kind="stable")
        sorted_probs = np.take_along_axis(probs, order, axis=1)
        mass_before = np.cumsum(sorted_probs, axis=1) - sorted_probs
        outside = np.zeros_like(shifted, dtype=bool)
        np.put_along_axis(outside, order, mass_before >= top_p, axis=1)
        shifted[outside] = -np.inf
    if min_p is not None and min_p > 0:
        # p / p_max = exp(logit - largest logit) = exp(logit) here.
        shifted[shifted < math.log(min_p)] = -np.inf
    return shifted


class RecentTokens:
    """Which tokens occur in each row's last ``window`` tokens (in all its tokens for 0)."""

    def __init__(self, context: np.ndarray, batch_size: int, vocab_size: int, window: int):
        # counts (B, V + 1): the last column counts the ring's empty slots.
        self.counts = np.zeros((batch_size, vocab_size + 1), np.int64)
        self.ring = np.full((batch_size, window), vocab_size) if window else None  # (B, window)
        self.position = 0
        for token in context[-window:] if window else context:
            self.add(np.full(batch_size, token))

    def add(self, tokens: np.ndarray) -> None:
        """Append one token (B,) to every row."""
        rows = np.arange(len(tokens))
        if self.ring is not None:
            self.counts[rows, self.ring[:, self.position]] -= 1
            self.ring[:, self.position] = tokens
            self.position = (self.position + 1) % self.ring.shape[1]
        self.counts[rows, tokens] += 1

    def seen(self) -> np.ndarray:
        """(B, V) bool: whether each token is in each row's window."""
        return self.counts[:, :-1] > 0

    def keep(self, rows: np.ndarray) -> None:
        """Keep only the rows where ``rows`` (B,) is true."""
        self.counts = self.counts[rows]
        if self.ring is not None:
            self.ring = self.ring[rows]


class Sampler:
    """Draws every row's next token, each row at its own temperature.

    For ``draw``, it also keeps what drawing needs from one step to the next:
    each row's random numbers, drawn ahead in blocks from the row's generator
    in ``rngs`` (a row's k-th draw still uses its generator's k-th number), and,
    for a repetition penalty, the tokens each row holds in its window, starting
    with those of ``context`` (the prime).
    """

    def __init__(self, sampling: Sampling, temperatures: Sequence[float],
                 rngs: Sequence[np.random.Generator] = (), context: np.ndarray = NO_TOKENS,
                 vocab_size: int = 0):
        self.sampling = sampling
        self._set_temperatures(np.asarray(temperatures, np.float64))
        self.rngs = list(rngs)
        self.uniforms = np.empty((len(self.rngs), UNIFORMS_AHEAD))  # (B, block)
        self.used = UNIFORMS_AHEAD  # the numbers of the block used so far
        self.recent = None
        if self.rngs and sampling.repetition_penalty != 1:
            self.recent = RecentTokens(context, len(self.rngs), vocab_size,
                                       sampling.repetition_window)

    def _set_temperatures(self, temperatures: np.ndarray) -> None:
        """Each row's temperature (B,), and what ``choose`` needs of them, worked out once."""
        self.temperatures = temperatures
        self.cold = temperatures < COLDEST  # (B,) rows that take the likeliest token
        self.any_cold = bool(self.cold.any())
        # (B, 1) divisors: 1 for cold rows, whose scaled logits are replaced anyway.
        self.divisors = np.where(self.cold, 1.0, temperatures)[:, None]
        self.divide = bool((self.divisors != 1).any())
        self.any_infinite = bool(np.isinf(temperatures).any())

    def choose(self, logits: np.ndarray, uniforms: np.ndarray,
               seen: np.ndarray | None = None) -> np.ndarray:
        """One token (B,) per row of ``logits`` (B, V).

        Rows at temperature 0 (or below ``COLDEST``) take the argmax; the others
        draw from softmax(logits / temperature), restricted as ``sampling`` says,
        by inverting its cumulative sum at ``uniforms`` (B,), each in
        [0, LARGEST_UNIFORM].
        Both come after the repetition penalty on the tokens ``seen`` (B, V),
        when given. <START> is never drawn.
        """
        # Rows contiguous whatever the logits' layout (a Stepper's are transposed): numpy
        # accumulates along rows of 67 columns at 64 rows in 16 us so, 25 us in columns.
        scaled = logits.astype(np.float64, order="C")
        scaled[:, START_ID] = -np.inf
        if seen is not None and self.sampling.repetition_penalty != 1:
            penalize_(scaled, seen, self.sampling.repetition_penalty)
        if self.any_cold:
            greedy = scaled[self.cold].argmax(axis=1)
        if self.any_infinite:  # the rows' logits become 0, but <START>'s -inf / inf is NaN
            with np.errstate(invalid="ignore"):
                scaled /= self.divisors
            scaled[:, START_ID] = -np.inf
        elif self.divide:
            scaled /= self.divisors
        scaled -= np.maximum.reduce(scaled, axis=1, keepdims=True)
        if self.any_cold:
            scaled[self.cold] = np.where(np.arange(scaled.shape[1]) == greedy[:, None], 0.0,
                                         -np.inf)
        restrict_(scaled, self.sampling)
        cumulative = np.add.accumulate(np.exp(scaled, out=scaled), axis=1, out=scaled)
        # The first token whose cumulative sum passes u * total. u <= LARGEST_UNIFORM keeps
        # the threshold below the total, so that token exists and has positive probability.
        thresholds = uniforms[:, None] * cumulative[:, -1:]
        return (cumulative > thresholds).argmax(axis=1)

    def draw(self, logits: np.ndarray) -> np.ndarray:
        """The next token (B,) of every row from its logits (B, V), with the rows' own
        random numbers and recent tokens."""
        if self.used == UNIFORMS_AHEAD:
            self.uniforms = np.minimum(np.stack([rng.random(UNIFORMS_AHEAD) for rng in self.rngs]),
                                       LARGEST_UNIFORM)
            self.used = 0
        uniforms = self.uniforms[:, self.used]
        self.used += 1
        if self.recent is None:
            return self.choose(logits, uniforms)
        tokens = self.choose(logits, uniforms, self.recent.seen())
        self.recent.add(tokens)
        return tokens

    def keep(self, rows: np.ndarray) -> None:
        """Keep only the rows where ``rows`` (B,) is true."""
        self._set_temperatures(self.temperatures[rows])
        self.uniforms = self.uniforms[rows]
        self.rngs = [rng for rng, kept in zip(self.rngs, rows) if kept]
        if self.recent is not None:
            self.recent.keep(rows)


def primed_start(model: Model, vocab: Vocabulary, prime: str, batch_size: int = 1):
    """Feed <START> and the prime's known characters to ``batch_size`` rows.

    Returns (stepper, logits (B, V)): the stepper (see ``Model.stepper``)
    generates from there.
    """
    stepper = model.stepper(batch_size)
    logits = stepper.step(np.full(batch_size, START_ID))
    for token in vocab.encode(prime)[0]:
        logits = stepper.step(np.full(batch_size, token))
    return stepper, logits


class LogProbTotals:
    """Each row's summed log-probability (natural log, at temperature 1) of the tokens drawn.

    A step only stores its logits and tokens; the log-probabilities of the
    stored steps are worked out together, every ``block`` steps or when a total
    is asked for, which costs far less than a softmax at every step.
    """

    def __init__(self, batch_size: int, vocab_size: int, dtype):
        self.sums = np.zeros(batch_size)
        self._allocate(batch_size, vocab_size, dtype)

    def _allocate(self, batch_size: int, vocab_size: int, dtype) -> None:
        self.block = max(1, min(LOG_PROB_BLOCK, LOG_PROB_VALUES // (batch_size * vocab_size)))
        self.logits = np.empty((self.block, batch_size, vocab_size), dtype)
        self.tokens = np.empty((self.block, batch_size), np.int64)
        self.count = 0  # steps stored

    def add(self, logits: np.ndarray, tokens: np.ndarray) -> None:
        """One step: the logits (B, V) the rows drew their tokens (B,) from."""
        self.logits[self.count] = logits
        self.tokens[self.count] = tokens
        self.count += 1
        if self.count == self.block:
            self._flush()

    def _flush(self) -> None:
        if self.count:
            steps, batch_size, vocab_size = self.logits[: self.count].shape
            log_probs = log_softmax(self.logits[:steps].reshape(steps * batch_size, vocab_size))
            picked = log_probs[np.arange(steps * batch_size), self.tokens[:steps].ravel()]
            self.sums += picked.reshape(steps, batch_size).sum(axis=0)
            self.count = 0

    def total(self, row: int) -> float:
        self._flush()
        return float(self.sums[row])

    def keep(self, rows: np.ndarray) -> None:
        """Keep only the rows where ``rows`` (B,) is true."""
        self._flush()
        self.sums = self.sums[rows]
        self._allocate(len(self.sums), self.logits.shape[2], self.logits.dtype)


def generate(model: Model, vocab: Vocabulary, sampling: Sampling = Sampling(), *, seed: int,
             num_samples: int = 1, prime: str = "") -> Iterator[Piece]:
    """Draw ``num_samples`` samples at each of ``sampling``'s temperatures, all together,
    yielding each character as it is drawn.

    Samples are numbered temperature by temperature: with temperatures
    (t0, t1), samples 0 .. num_samples - 1 are at t0. Each starts from <START>
    followed by the prime's characters (those in the vocabulary) and stops
    when the model draws <END>, after ``sampling.length`` characters, or when
    its text ends with one of the ``sampling.stop`` strings (which is kept).
    """
    temperatures = sampling.temperatures
    return generate_rows(model, vocab, np.repeat(temperatures, num_samples),
                         sample_rngs(seed, num_samples, len(temperatures)), sampling, prime)


def generate_rows(model: Model, vocab: Vocabulary, temperatures: Sequence[float],
                  rngs: Sequence[np.random.Generator], sampling: Sampling,
                  prime: str) -> Iterator[Piece]:
    """``generate`` for samples given one by one: sample i at ``temperatures[i]``, drawing
    from ``rngs[i]``."""
    batch_size = len(rngs)
    sampler = Sampler(sampling, temperatures, rngs, vocab.encode(prime)[0],
                      model.config.vocab_size)
    stepper, logits = primed_start(model, vocab, prime, batch_size)
    log_probs = LogProbTotals(batch_size, model.config.vocab_size, logits.dtype)
    chars = [vocab.token(token) for token in range(vocab.size)]
    stop, length = sampling.stop, sampling.length
    longest_stop = max(map(len, stop), default=0)
    tails = [""] * batch_size  # each sample's last characters, to spot stop strings
    active = list(range(batch_size))  # the samples still drawing, in order: one per row
    for _ in range(length):
        tokens = sampler.draw(logits)
        log_probs.add(logits, tokens)
        drawn = tokens.tolist()
        if not stop and END_ID not in drawn:  # every row goes on with a character
            yield from map(Piece, active, [chars[token] for token in drawn])
            logits = stepper.step(tokens)
            continue
        finished = []  # rows
        for row, token in enumerate(drawn):
            index = active[row]
            if token == END_ID:
                finished.append(row)
                yield Piece(index, "", True, "end", log_probs.total(row))
                continue
            char = chars[token]
            if stop:
                tails[index] = (tails[index] + char)[-longest_stop:]
                if tails[index].endswith(stop):
                    finished.append(row)
                    yield Piece(index, char, True, "stop", log_probs.total(row))
                    continue
            yield Piece(index, char)
        if finished:
            if len(finished) == len(active):
                return
            keep = np.ones(len(active), bool)
            keep[finished] = False
            active = [index for index, kept in zip(active, keep) if kept]
            tokens = tokens[keep]
            stepper.select(keep)
            sampler.keep(keep)
            log_probs.keep(keep)
        logits = stepper.step(tokens)
    for row, index in enumerate(active):
        yield Piece(index, "", True, "length", log_probs.total(row))


@dataclass(frozen=True)
class Sample:
    """One finished sample."""

    text: str
    stop_reason: str  # as in Piece
    log_prob: float


def whole_samples(pieces: Iterable[Piece], num_samples: int) -> list[Sample]:
    """The ``num_samples`` samples that ``pieces`` (from ``generate``) make up, by index, once
    every one is finished."""
    texts: list[list[str]] = [[] for _ in range(num_samples)]
    samples: list[Sample | None] = [None] * num_samples
    for piece in pieces:
        texts[piece.index].append(piece.text)
        if piece.done:
            samples[piece.index] = Sample("".join(texts[piece.index]), piece.stop_reason,
                                          piece.log_prob)
    return samples


