"""Fine-tuning: a trained model's weights carried into a new run on a new text.

The new text is encoded in the model's vocabulary extended by the characters
it adds (``corpus.recode``). Every old token keeps its embedding row and its
output column and bias, whatever its new id. A new character's embedding row
and output column are those a fresh model would get; its output bias starts
at the lowest of the old biases, so that the model first thinks it as
unlikely as its rarest known character (a fresh bias of 0 would give it
more probability than most, and a loss on every prediction until it is
learned).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from charrnn.data.vocab import END_ID, START_ID, Vocabulary, code_points
from charrnn.nn.model import ModelConfig, Params
from charrnn.saving.checkpoint import Checkpoint


def new_characters(old: Vocabulary, new: Vocabulary) -> list[str]:
    """The characters of ``new`` that ``old`` lacks, in order."""
    known = set(old.chars)
    return [char for char in new.chars if char not in known]


def fine_tuned_config(checkpoint: Checkpoint, vocab: Vocabulary) -> ModelConfig:
    """The checkpoint's architecture, for the (extended) vocabulary ``vocab``."""
    return replace(checkpoint.model.config, vocab_size=vocab.size)


def extended_params(params: Params, old: Vocabulary, new: Vocabulary, fresh: Params) -> Params:
    """``params`` of a model of vocabulary ``old`` made for ``new``, which holds all of ``old``.

    ``fresh`` are a fresh model's parameters for ``new``, whence the new
    characters' rows; the result has their type.
    """
    dtype = fresh["embedding"].dtype
    new_ids = new.lookup(code_points("".join(old.chars)))  # (V_old - 2,) each old char's new id
    rows = np.concatenate([[START_ID, END_ID], new_ids])  # (V_old,) each old token's new id
    extended = {name: value.astype(dtype) for name, value in params.items()}
    embedding = fresh["embedding"].copy()  # (V_new, E)
    embedding[rows] = params["embedding"]
    weight = fresh["output.weight"].copy()  # (H, V_new)
    weight[:, rows] = params["output.weight"]
    lowest = np.delete(params["output.bias"], START_ID).min()  # <START> is never a target
    bias = np.full(new.size, lowest, dtype)  # (V_new,)
    bias[rows] = params["output.bias"]
    extended.update({"embedding": embedding, "output.weight": weight, "output.bias": bias})
    return extended
