"""Shared fixtures: small models trained in a second, and paths to the shipped corpus."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from charrnn.data.corpus import build_corpus
from charrnn.nn.model import ModelConfig
from charrnn.training.settings import TrainSettings
from charrnn.training.trainer import Trainer, new_trainer

REPO = Path(__file__).resolve().parent.parent
SHAKESPEARE = REPO / "data" / "tinyshakespeare.txt"

TINY_TEXT = "the cat sat on the mat.\nthe dog sat on the log.\n" * 8
SHM = Path("/dev/shm")  # where Linux lists shared memory


def blocks_of(pid: int) -> list[Path]:
    """The shared memory blocks that training workers of process ``pid`` use (Linux)."""
    return sorted(SHM.glob(f"charrnn_{pid}_*"))


def make_trainer(text: str, out: Path, *, hidden_size: int = 16, embedding_size: int = 8,
                 cell: str = "lstm", **settings) -> Trainer:
    """A trainer for a small fresh 2-layer model on ``text``: windows of 4 x 16 steps unless
    ``settings`` say otherwise."""
    settings = TrainSettings(**{"seq_length": 16, "batch_size": 4, **settings})
    corpus = build_corpus(text, records=settings.records, delimiter=settings.delimiter,
                          val_fraction=settings.val_fraction)
    config = ModelConfig(corpus.vocab.size, embedding_size=embedding_size,
                         hidden_size=hidden_size, num_layers=2, cell=cell)
    return new_trainer(corpus, config, settings, out)


def train_tiny(text: str, out: Path, *, max_steps: int = 40, eval_every: int = 20,
               **settings) -> Path:
    """Train a small model on ``text`` and return its checkpoint path."""
    make_trainer(text, out, max_steps=max_steps, eval_every=eval_every, **settings).run()
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint trained briefly on TINY_TEXT (one sequence), with training state."""
    return train_tiny(TINY_TEXT, tmp_path_factory.mktemp("tiny") / "tiny.npz")


@pytest.fixture(scope="session")
def tiny_text_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "tiny.txt"
    path.write_text(TINY_TEXT, encoding="utf-8")
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def private_corpus_cache(tmp_path_factory, monkeypatch):
    """Keep the corpus cache of `charrnn train` out of the user's cache folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
