"""Weights as PyTorch lays them out, in a ``.safetensors`` file: the export, and reading it
back (to sample from it, or to fine-tune it).

The file holds the state dict of this PyTorch module (docs/python.md shows it):
``embedding = nn.Embedding(V, E)``, ``rnn = nn.LSTM(E, H, L)`` (or ``nn.GRU``,
``nn.RNN``) and ``output = nn.Linear(H, V)``. Names and shapes, for G gate blocks:

    embedding.weight      (V, E)       charrnn's embedding
    rnn.weight_ih_l{k}    (G*H, D_k)   layer k's input_weight, transposed, blocks reordered
    rnn.weight_hh_l{k}    (G*H, H)     its hidden_weight, likewise
    rnn.bias_ih_l{k}      (G*H,)       its one bias, blocks reordered
    rnn.bias_hh_l{k}      (G*H,)       zero
    output.weight         (V, H)       output.weight, transposed
    output.bias           (V,)

PyTorch orders an LSTM's blocks i, f, g, o (charrnn: i, f, o, g) and a GRU's r, z, n
(as charrnn does). PyTorch adds two biases where charrnn has one: read back, they are
summed, but for a GRU's n block, where PyTorch's b_hn sits inside the reset gate,
r * (W_hn h + b_hn), and charrnn has no bias: a file whose b_hn is not zero is refused.
A cell PyTorch has no layer for is refused on export (see TORCH_LAYERS).

The metadata holds "vocabulary", a JSON list of the tokens by id (<START> and <END>
first), and "record_delimiter", JSON: the delimiter of a records model, or null.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charrnn._version import __version__
from charrnn.data.vocab import END, NUM_SPECIAL, START, Vocabulary
from charrnn.errors import CharrnnError
from charrnn.io.atomic import write_atomically
from charrnn.io.npy import Unreadable
from charrnn.io.safetensors import read_safetensors, write_safetensors
from charrnn.nn.cells import CELLS
from charrnn.nn.model import Model, ModelConfig, Params
from charrnn.saving.checkpoint import Checkpoint

SAFETENSORS_SUFFIX = ".safetensors"


@dataclass(frozen=True)
class TorchLayer:
    """The PyTorch layer that holds a charrnn cell exactly."""

    module: str  # its name in torch.nn
    gate_order: tuple[str, ...]  # its gate blocks, in charrnn's names for them


# The cells PyTorch has a layer for; another cell is exported as the one of these whose
# layer holds it (``Cell.pytorch_module``), or not at all.
TORCH_LAYERS = {
    "lstm": TorchLayer("LSTM", ("input", "forget", "candidate", "output")),
    "gru": TorchLayer("GRU", ("reset", "update", "candidate")),
    "rnn": TorchLayer("RNN", ("hidden",)),
}


def torch_layer(cell: str) -> TorchLayer:
    """The PyTorch layer of ``cell``; one CharrnnError for a cell PyTorch has none for."""
    if cell not in TORCH_LAYERS:
        raise CharrnnError(f"a {cell} model cannot be written as PyTorch weights: torch.nn has "
                           f"no such layer (only {', '.join(TORCH_LAYERS)} models can be)")
    return TORCH_LAYERS[cell]


def held_cell(cell: str) -> str:
    """The cell of TORCH_LAYERS whose PyTorch layer holds ``cell`` exactly (a CIFG LSTM is
    held as an LSTM); one CharrnnError for a cell that no torch.nn layer holds."""
    held = [name for name, layer in TORCH_LAYERS.items()
            if layer.module == CELLS[cell].pytorch_module]
    if not held:
        exported = [name for name, other in CELLS.items() if other.pytorch_module]
        raise CharrnnError(f"a {cell} model cannot be written as PyTorch weights: torch.nn has "
                           f"no such layer (only {', '.join(exported)} models can be)")
    return held[0]


def _block_order(cell: str, to_torch: bool) -> list[int]:
    """The permutation of gate blocks from charrnn's order to PyTorch's (or back)."""
    ours, theirs = CELLS[cell].gate_order, torch_layer(cell).gate_order
    if to_torch:
        return [ours.index(gate) for gate in theirs]
    return [theirs.index(gate) for gate in ours]


def _reorder(array: np.ndarray, order: list[int]) -> np.ndarray:
    """``array`` (G*H, ...) with its G blocks of H rows taken in ``order``."""
    blocks = array.reshape(len(order), -1, *array.shape[1:])
    return blocks[order].reshape(array.shape)


def torch_state(model: Model) -> dict[str, np.ndarray]:
    """The model's parameters under PyTorch's names and layouts."""
    config = model.config
    order = _block_order(held_cell(config.cell), to_torch=True)
    as_held = CELLS[config.cell].pytorch_weights  # in the held cell's gate order
    state = {"embedding.weight": model.params["embedding"]}
    for layer in range(config.num_layers):
        input_weight, hidden_weight, bias = as_held(*model.layer_weights(layer))
        state[f"rnn.weight_ih_l{layer}"] = _reorder(input_weight.T, order)  # (G*H, D)
        state[f"rnn.weight_hh_l{layer}"] = _reorder(hidden_weight.T, order)  # (G*H, H)
        state[f"rnn.bias_ih_l{layer}"] = _reorder(bias, order)  # (G*H,)
        state[f"rnn.bias_hh_l{layer}"] = np.zeros_like(bias)
    state["output.weight"] = model.params["output.weight"].T  # (V, H)
    state["output.bias"] = model.params["output.bias"]
    return state


def save_safetensors(path: str | os.PathLike, checkpoint: Checkpoint,
                     record_delimiter: str | None, dtype: str | None = None) -> None:
    """Write the checkpoint's model as PyTorch weights (in ``dtype``, by default its own),
    atomically."""
    state = torch_state(checkpoint.model)
    state = {name: np.ascontiguousarray(value, dtype or value.dtype)
             for name, value in state.items()}
    tokens = [checkpoint.vocab.token(token) for token in range(checkpoint.vocab.size)]
    metadata = {"format": "charrnn-pytorch", "charrnn_version": __version__,
                "vocabulary": json.dumps(tokens, ensure_ascii=False),
                "record_delimiter": json.dumps(record_delimiter)}
    write_atomically(path, lambda file: write_safetensors(file, state, metadata))


def _vocabulary(metadata: dict[str, str]) -> Vocabulary:
    tokens = json.loads(metadata["vocabulary"])
    if not (isinstance(tokens, list) and tokens[:NUM_SPECIAL] == [START, END]):
        raise ValueError("the vocabulary must be a list starting <START>, <END>")
    chars = tokens[NUM_SPECIAL:]
    if any(not isinstance(char, str) or len(char) != 1 for char in chars):
        raise ValueError("vocabulary entries must be single characters")
    if len(set(chars)) != len(chars):
        raise ValueError("the vocabulary repeats a character")
    return Vocabulary(tuple(chars))


def _config(tensors: dict[str, np.ndarray], vocab: Vocabulary) -> ModelConfig:
    """The architecture the tensors' shapes give: the cell by its number of gate blocks."""
    num_layers = sum(f"rnn.weight_ih_l{layer}" in tensors for layer in range(len(tensors)))
    vocab_size, embedding_size = tensors["embedding.weight"].shape
    gate_rows, hidden_size = tensors["rnn.weight_hh_l0"].shape
    cells = {len(layer.gate_order): cell for cell, layer in TORCH_LAYERS.items()}
    if gate_rows % hidden_size or gate_rows // hidden_size not in cells:
        raise ValueError(f"rnn.weight_hh_l0 of shape {(gate_rows, hidden_size)} is no LSTM, "
                         "GRU or RNN layer")
    config = ModelConfig(vocab_size, embedding_size, hidden_size, num_layers,
                         cells[gate_rows // hidden_size])
    if vocab_size != vocab.size:
        raise ValueError(f"embedding.weight has {vocab_size} rows for a vocabulary of "
                         f"{vocab.size} tokens")
    return config


def _params(tensors: dict[str, np.ndarray], config: ModelConfig) -> Params:
    """charrnn's parameters from PyTorch's, whose names and shapes must be exactly those of
    ``torch_state`` for ``config``."""
    order, gates = _block_order(config.cell, to_torch=False), CELLS[config.cell].num_gates
    expected = {"embedding.weight": (config.vocab_size, config.embedding_size),
                "output.weight": (config.vocab_size, config.hidden_size),
                "output.bias": (config.vocab_size,)}
    for layer in range(config.num_layers):
        rows = gates * config.hidden_size
        expected.update({
            f"rnn.weight_ih_l{layer}": (rows, config.embedding_size if layer == 0
                                        else config.hidden_size),
            f"rnn.weight_hh_l{layer}": (rows, config.hidden_size),
            f"rnn.bias_ih_l{layer}": (rows,), f"rnn.bias_hh_l{layer}": (rows,)})
    differing = sorted(set(expected) ^ set(tensors))
    if differing:
        name = differing[0]
        raise ValueError(f"{'no' if name in expected else 'unexpected'} tensor {name!r}")
    for name, shape in expected.items():
        if tensors[name].shape != shape:
            raise ValueError(f"{name!r} has shape {tensors[name].shape}, expected {shape}")
        if not np.isfinite(tensors[name]).all():
            raise ValueError(f"{name!r} holds NaN or infinity")
    params = {"embedding": tensors["embedding.weight"]}
    for layer in range(config.num_layers):
        bias_hh = tensors[f"rnn.bias_hh_l{layer}"]
        if config.cell == "gru" and bias_hh[2 * config.hidden_size:].any():
            raise ValueError(f"rnn.bias_hh_l{layer} has a candidate (n) block that is not "
                             "zero; charrnn's GRU has no bias inside its reset gate")
        prefix = config.layer_prefix(layer)
        params[prefix + "input_weight"] = _reorder(tensors[f"rnn.weight_ih_l{layer}"], order).T
        params[prefix + "hidden_weight"] = _reorder(tensors[f"rnn.weight_hh_l{layer}"], order).T
        params[prefix + "bias"] = _reorder(tensors[f"rnn.bias_ih_l{layer}"] + bias_hh, order)
    params["output.weight"] = tensors["output.weight"].T
    params["output.bias"] = tensors["output.bias"]
    return {name: np.ascontiguousarray(value) for name, value in params.items()}


def load_safetensors(path: str | os.PathLike) -> tuple[Checkpoint, str | None]:
    """A model from PyTorch weights as ``save_safetensors`` writes them, and its record
    delimiter (None for one sequence); any problem is one CharrnnError."""
    path = str(path)
    try:
        with open(path, "rb") as file:
            tensors, metadata = read_safetensors(file, os.fstat(file.fileno()).st_size)
    except FileNotFoundError:
        raise CharrnnError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CharrnnError(f"{path}: is a directory, not a safetensors file") from None
    except Unreadable as error:
        raise CharrnnError(f"{path}: not a safetensors file ({error})") from None
    try:
        if "vocabulary" not in metadata:
            raise ValueError("no vocabulary in its metadata")
        vocab = _vocabulary(metadata)
        delimiter = json.loads(metadata.get("record_delimiter", "null"))
        if not (delimiter is None or isinstance(delimiter, str) and delimiter):
            raise ValueError("the record delimiter must be null or a string")
        if "embedding.weight" not in tensors or "rnn.weight_hh_l0" not in tensors:
            raise ValueError("no tensor embedding.weight or rnn.weight_hh_l0")
        config = _config(tensors, vocab)
        types = {tensor.dtype.name for tensor in tensors.values()}
        if len(types) > 1:
            raise ValueError(f"the tensors mix float types: {', '.join(sorted(types))}")
        dtype = "float32" if types == {"float16"} else types.pop()
        params = {name: value.astype(dtype) for name, value in
                  _params(tensors, config).items()}
    except (ValueError, TypeError, RecursionError) as error:
        raise CharrnnError(f"{path}: not charrnn's PyTorch weights ({error})") from None
    return Checkpoint(Model(config, params), vocab), delimiter


def is_safetensors(path: str | os.PathLike) -> bool:
    """Whether ``path`` names PyTorch weights rather than a checkpoint: by its suffix."""
    return Path(path).suffix == SAFETENSORS_SUFFIX
