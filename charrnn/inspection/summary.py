"""What a checkpoint holds, for ``charrnn info``: a summary and the loss curves."""

from __future__ import annotations

from dataclasses import asdict

from charrnn.saving.checkpoint import Checkpoint
from charrnn.training.state import from_checkpoint


def summary(checkpoint: Checkpoint) -> dict:
    """Everything worth knowing about a checkpoint, as JSON-able values."""
    config = checkpoint.model.config
    result = {
        "architecture": {**config.to_dict(), "parameters": config.num_params(),
                         "dtype": str(checkpoint.model.dtype)},
        "vocabulary": list(checkpoint.vocab.chars),
    }
    state = from_checkpoint(checkpoint)
    if state is not None:
        batch_size, seq_length = state.window
        result["training"] = {
            "steps": state.position.step,
            "epochs": state.epochs,
            "seconds": round(state.elapsed, 1),
            "best_val_loss": state.plateau.best_val_loss,
            "corpus_sha256": state.corpus_checksum,
            "corpus_characters": state.corpus_chars,
            "window": {"batch_size": batch_size, "seq_length": seq_length},  # as trained
            "resumable": state.resumable,
            "settings": asdict(state.settings),
        }
    return result


def loss_curves(checkpoint: Checkpoint) -> dict[str, list[tuple[int, float]]]:
    """The training and validation losses against step, from the checkpoint's history."""
    state = from_checkpoint(checkpoint)
    history = state.history if state is not None else ()
    train = [(entry["step"], entry["train_loss"]) for entry in history
             if entry.get("train_loss") is not None]
    val = [(entry["step"], entry["val_loss"]) for entry in history
           if entry.get("val_loss") is not None]
    return {"train": train, "val": val}
