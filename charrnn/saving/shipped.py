"""The model that ships with charrnn: 2 x 512 LSTM trained on tinyshakespeare."""

from __future__ import annotations

from pathlib import Path

PRETRAINED_NAME = "pretrained-shakespeare.npz"


def pretrained_model() -> str:
    """Path of the small Shakespeare model that ships with charrnn.

    ``charrnn/pretrained`` is a link to the repository's ``checkpoints/``
    folder; an installed package holds a copy of the shipped model.
    """
    return str(Path(__file__).parents[1] / "pretrained" / PRETRAINED_NAME)
