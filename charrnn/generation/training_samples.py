"""Samples drawn while training, to watch what the model has learned so far.

They are drawn by ``sampling.generate`` at ``Sampling``'s default temperature, from
random generators of their own, seeded with the training seed, and only read the weights: a run that draws
them trains the same weights, bit for bit, as one that does not. Every draw
uses the same seed, so what changes from one to the next is the model.

In the default layout one text is drawn; in the records layout a few whole
records, each labelled as makemore does: a copy of a training record, of a
held-out (validation) record, or new; a record still unfinished at the
length limit is labelled so.
"""

from __future__ import annotations

from dataclasses import dataclass

from charrnn.data.corpus import Corpus
from charrnn.data.known_records import KnownRecords
from charrnn.generation.sampling import Sampling, generate, whole_samples
from charrnn.nn.model import Model

DEFAULT_LENGTH = 200  # characters per sample
NUM_RECORDS = 5  # records drawn at a time in records mode
LABELS = ("in training text", "held out", "new", "unfinished")


@dataclass(frozen=True)
class TrainingSample:
    """One sampled text, and in records mode its label (one of LABELS)."""

    text: str
    label: str | None = None


@dataclass(frozen=True)
class SamplesDrawn:
    """A training event: the samples drawn at ``step``."""

    step: int
    samples: list[TrainingSample]


class TrainingSampler:
    """Draws samples from a model being trained on ``corpus``.

    In records mode (``records``), the training and held-out records are
    gathered as sets once, here; the training records include the ``earlier``
    ones of the checkpoint the run was resumed or fine-tuned from.
    """

    def __init__(self, corpus: Corpus, *, records: bool, seed: int, length: int = DEFAULT_LENGTH,
                 earlier: KnownRecords | None = None):
        self.vocab, self.seed, self.length = corpus.vocab, seed, length
        self.known = None
        if records:
            training = KnownRecords.from_tokens(corpus.train_tokens, corpus.vocab)
            self.known = (training if earlier is None else training.union(earlier),
                          KnownRecords.from_tokens(corpus.val_tokens, corpus.vocab))

    def draw(self, model: Model) -> list[TrainingSample]:
        """One text in the default layout; NUM_RECORDS labelled records in records mode."""
        num_samples = 1 if self.known is None else NUM_RECORDS
        pieces = generate(model, self.vocab, Sampling(length=self.length), seed=self.seed,
                          num_samples=num_samples)
        samples = whole_samples(pieces, num_samples)
        if self.known is None:
            return [TrainingSample(sample.text) for sample in samples]
        return [TrainingSample(sample.text, self.label(sample.text, sample.stop_reason))
                for sample in samples]

    def label(self, record: str, stop_reason: str) -> str:
        training, held_out = self.known
        if stop_reason != "end":
            return "unfinished"
        if record in training:
            return "in training text"
        return "held out" if record in held_out else "new"
