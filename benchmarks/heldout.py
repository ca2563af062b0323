"""What the training comparisons share: a text with its end held out, and a charrnn trainer
on it that starts from given weights.

Every run trains on the same text (all but the last ``held_out`` characters)
and is scored on the same end, by charrnn's own ``score_tokens``: the end of
a text can be much easier or harder than the rest (the last play of
tinyshakespeare is), so only runs that trained and scored on exactly the same
split are compared.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from charrnn.data.corpus import Corpus, build_corpus
from charrnn.data.sources import read_text
from charrnn.nn.model import Model, ModelConfig, Params
from charrnn.nn.scoring import score_tokens
from charrnn.training.settings import TrainSettings
from charrnn.training.state import TrainingState
from charrnn.training.trainer import Trainer

HELD_OUT_CHARS = 100_000


def held_out_corpus(path: str, held_out: int = HELD_OUT_CHARS) -> Corpus:
    """The text of ``path`` split so that exactly its last ``held_out`` targets are scored
    (the last ``held_out - 1`` characters and the <END> after them)."""
    text = read_text(path)
    corpus = build_corpus(text, records=False, delimiter="\n",
                          val_fraction=(held_out + 0.5) / len(text))
    assert len(corpus.val_tokens) == held_out + 1  # with the input before the first target
    return corpus


def trainer_from(params: Params, corpus: Corpus, config: ModelConfig, settings: TrainSettings,
                 rng: np.random.Generator) -> Trainer:
    """charrnn's trainer starting from ``params`` (as ``train.new_trainer`` does from
    ``init_params``), with ``rng`` for what it draws after; it never saves here."""
    return Trainer(Model(config, params), corpus, Path(os.devnull),
                   TrainingState(settings, rng.bit_generator.state))


def held_out_loss(model: Model, corpus: Corpus) -> float:
    """Nats per character on the held-out end."""
    return score_tokens(model, corpus.val_tokens).nats_per_char
