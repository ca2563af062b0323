"""PyTorch weights: the export follows PyTorch's names, layouts and equations, reads back
exactly, and hostile files are one clear refusal."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TINY_TEXT, make_trainer

import charrnn
from charrnn.cli import cli
from charrnn.data.vocab import START_ID
from charrnn.errors import CharrnnError
from charrnn.io.safetensors import write_safetensors
from charrnn.nn.cells import CELLS
from charrnn.saving.checkpoint import Checkpoint, load_checkpoint
from charrnn.saving.pytorch import held_cell, load_safetensors, save_safetensors, torch_state


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def torch_layer_step(cell: str, x, h, c, w_ih, w_hh, b_ih, b_hh):
    """One step of torch.nn.LSTM, GRU or RNN, as PyTorch's documentation writes it."""
    gi, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
    if cell == "rnn":
        return np.tanh(gi + gh), c
    if cell == "gru":
        i_r, i_z, i_n = np.split(gi, 3, axis=-1)
        h_r, h_z, h_n = np.split(gh, 3, axis=-1)
        r, z = sigmoid(i_r + h_r), sigmoid(i_z + h_z)
        n = np.tanh(i_n + r * h_n)
        return (1 - z) * n + z * h, c
    i, f, g, o = np.split(gi + gh, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c), c


def torch_logits(state: dict, tokens: np.ndarray, cell: str) -> np.ndarray:
    """The logits (T, V) of the PyTorch module of docs/python.md, in float64."""
    state = {name: value.astype(np.float64) for name, value in state.items()}
    layers = sum(name.startswith("rnn.weight_ih_l") for name in state)
    hidden = state["rnn.weight_hh_l0"].shape[1]
    h = [np.zeros(hidden) for _ in range(layers)]
    c = [np.zeros(hidden) for _ in range(layers)]
    logits = []
    for token in tokens:
        x = state["embedding.weight"][token]
        for k in range(layers):
            h[k], c[k] = torch_layer_step(cell, x, h[k], c[k], *(
                state[f"rnn.{kind}_l{k}"] for kind in ("weight_ih", "weight_hh", "bias_ih",
                                                       "bias_hh")))
            x = h[k]
        logits.append(x @ state["output.weight"].T + state["output.bias"])
    return np.array(logits)


@pytest.mark.parametrize("cell", ["lstm", "lstm-cifg", "gru", "rnn"])
def test_pytorchs_equations_on_the_export_give_charrnns_logits(tmp_path, cell):
    trainer = make_trainer(TINY_TEXT, tmp_path / "m.npz", cell=cell, max_steps=5)
    trainer.run()
    model, vocab = trainer.model, trainer.corpus.vocab
    tokens = np.concatenate([[START_ID], vocab.encode(TINY_TEXT[:30])[0]])
    stepper = model.stepper(1)
    ours = np.array([stepper.step(np.array([token]))[0].copy() for token in tokens])
    np.testing.assert_allclose(torch_logits(torch_state(model), tokens, held_cell(cell)), ours,
                               rtol=1e-4, atol=1e-4)


def test_an_export_reads_back_exactly_and_samples_alike(tmp_path, tiny_checkpoint):
    out = tmp_path / "tiny.safetensors"
    result = CliRunner().invoke(cli, ["export", str(tiny_checkpoint), str(out), "--format",
                                      "safetensors"])
    assert result.exit_code == 0, result.output
    original, loaded = load_checkpoint(tiny_checkpoint), load_safetensors(out)[0]
    assert loaded.vocab == original.vocab and loaded.model.config == original.model.config
    for name, value in original.model.params.items():
        np.testing.assert_array_equal(loaded.model.params[name], value)
    assert charrnn.load(out).sample(2, 60, seed=3) == charrnn.load(tiny_checkpoint).sample(
        2, 60, seed=3)


def test_the_reference_implementation_reads_what_charrnn_writes_and_back(tmp_path,
                                                                          tiny_checkpoint):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "tiny.safetensors"
    charrnn.load(tiny_checkpoint).export(path)
    tensors = safetensors_numpy.load_file(str(path))
    config = load_checkpoint(tiny_checkpoint).model.config
    H, V = config.hidden_size, config.vocab_size
    assert tensors["rnn.weight_ih_l0"].shape == (4 * H, config.embedding_size)
    assert tensors["rnn.weight_hh_l1"].shape == (4 * H, H)
    assert tensors["output.weight"].shape == (V, H) and not tensors["rnn.bias_hh_l0"].any()
    with open(path, "rb") as file:
        (length,) = struct.unpack("<Q", file.read(8))
        metadata = json.loads(file.read(length))["__metadata__"]
    assert json.loads(metadata["vocabulary"])[:3] == ["<START>", "<END>", "\n"]
    again = tmp_path / "again.safetensors"
    safetensors_numpy.save_file(tensors, str(again), metadata=metadata)
    assert charrnn.load(again).sample(1, 40, seed=1) == charrnn.load(path).sample(1, 40, seed=1)


def test_fine_tuning_and_sampling_start_from_an_export(tmp_path, tiny_checkpoint,
                                                       tiny_text_file):
    export = tmp_path / "tiny.safetensors"
    charrnn.load(tiny_checkpoint).export(export)
    result = CliRunner().invoke(cli, ["train", str(tiny_text_file), "--init-from", str(export),
                                      "--out", str(tmp_path / "tuned.npz"), "--max-steps", "2",
                                      "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert len(charrnn.load(tmp_path / "tuned.npz").sample(1, 20, seed=0)) == 1
    sampled = CliRunner().invoke(cli, ["sample", str(export), "--length", "20", "--seed", "1"])
    assert sampled.exit_code == 0 and sampled.stdout


@pytest.mark.parametrize("cell", [name for name, cell in CELLS.items() if not cell.pytorch_module])
def test_a_cell_pytorch_has_no_layer_for_is_refused_in_one_line(tmp_path, cell):
    trainer = make_trainer(TINY_TEXT, tmp_path / "m.npz", cell=cell)
    checkpoint = Checkpoint(trainer.model, trainer.corpus.vocab)
    with pytest.raises(CharrnnError) as refused:
        save_safetensors(tmp_path / "m.safetensors", checkpoint, None)
    assert str(refused.value) == (f"a {cell} model cannot be written as PyTorch weights: "
                                  "torch.nn has no such layer (only lstm, lstm-cifg, gru, rnn "
                                  "models can be)")
    assert not (tmp_path / "m.safetensors").exists()


def test_a_gru_bias_inside_the_reset_gate_is_refused(tmp_path):
    trainer = make_trainer(TINY_TEXT, tmp_path / "m.npz", cell="gru")
    path = tmp_path / "gru.safetensors"
    save_safetensors(path, Checkpoint(trainer.model, trainer.corpus.vocab), None)
    tensors, metadata = read_back(path)
    tensors["rnn.bias_hh_l1"][-1] = 0.5  # b_hn
    rewrite(path, tensors, metadata)
    with pytest.raises(CharrnnError, match="candidate .n. block that is not zero"):
        load_safetensors(path)


def read_back(path):
    from charrnn.io.safetensors import read_safetensors

    with open(path, "rb") as file:
        tensors, metadata = read_safetensors(file, path.stat().st_size)
    return {name: value.copy() for name, value in tensors.items()}, metadata


def rewrite(path, tensors, metadata):
    buffer = io.BytesIO()
    write_safetensors(buffer, tensors, metadata)
    path.write_bytes(buffer.getvalue())


def header_file(header: dict, data: bytes = b"") -> bytes:
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + data


HOSTILE = {
    "empty": b"",
    "huge header": struct.pack("<Q", 1 << 62) + b"{}",
    "not json": struct.pack("<Q", 4) + b"{{{{",
    "a list": header_file([]),  # type: ignore[arg-type]
    "bfloat16": header_file({"x": {"dtype": "BF16", "shape": [1], "data_offsets": [0, 2]}},
                            b"\0\0"),
    "shape past its data": header_file({"x": {"dtype": "F32", "shape": [1 << 40],
                                              "data_offsets": [0, 4]}}, b"\0" * 4),
    "overlapping": header_file({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                "y": {"dtype": "F32", "shape": [1], "data_offsets": [2, 6]}},
                               b"\0" * 6),
    "cut short": header_file({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}},
                             b"\0" * 8),
    "no vocabulary": header_file({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                                 b"\0" * 4),
    "metadata not strings": header_file({"__metadata__": {"vocabulary": ["<START>"]}}),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_files_are_one_clear_refusal(tmp_path, name):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(HOSTILE[name])
    result = CliRunner().invoke(cli, ["sample", str(path)])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith(f"charrnn: error: {path}: not ")
    assert len(result.stderr.splitlines()) == 1
