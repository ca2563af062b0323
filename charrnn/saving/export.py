"""Exported checkpoints: what a model needs for sampling and scoring, without what only
resuming needs."""

from __future__ import annotations

from charrnn.nn.model import Model
from charrnn.saving.checkpoint import Checkpoint


def for_sampling(checkpoint: Checkpoint, dtype: str | None = None) -> Checkpoint:
    """The checkpoint without its optimizer moments and carried state: about a third of the
    size, with the training history kept for ``info``, but no longer resumable.

    With ``dtype="float16"`` the weights are also stored at half precision (half the size
    again; they are widened back to float32 when loaded).
    """
    training = None if checkpoint.training is None else {**checkpoint.training,
                                                          "resumable": False}
    model = checkpoint.model
    if dtype is not None:
        params = {name: value.astype(dtype) for name, value in model.params.items()}
        model = Model(model.config, params)
    return Checkpoint(model, checkpoint.vocab, training, known_records=checkpoint.known_records)
