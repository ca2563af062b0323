"""The LSTM variants (peepholes, coupled input and forget gates) beyond the math that
test_cells checks for every cell: their checkpoints, what PyTorch can hold of them, and the
commands that read them."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn.cli import cli
from charrnn.errors import CharrnnError
from charrnn.nn.cells import CELLS
from charrnn.nn.model import Model, ModelConfig, init_params
from charrnn.saving.checkpoint import load_checkpoint
from charrnn.saving.shipped import pretrained_model

from conftest import TINY_TEXT, train_tiny
from damage import metadata_bytes, read_members, read_metadata, write_members

VARIANTS = ["lstm-peephole", "lstm-cifg"]


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def test_a_cifg_layer_is_an_lstm_whose_input_gate_is_the_negated_forget_gate(rng):
    config = ModelConfig(vocab_size=9, embedding_size=4, hidden_size=5, num_layers=2,
                         cell="lstm-cifg")
    cifg = Model(config, init_params(config, rng, np.float64))
    lstm_config = ModelConfig(**{**config.to_dict(), "cell": "lstm"})
    lstm_params = {name: value for name, value in cifg.params.items()
                   if not name.startswith("lstm-cifg")}
    for layer in range(config.num_layers):
        as_lstm = cifg.cell.pytorch_weights(*cifg.layer_weights(layer))
        for name, value in zip(CELLS["lstm"].weight_names, as_lstm, strict=True):
            lstm_params[lstm_config.layer_prefix(layer) + name] = value
    lstm = Model(lstm_config, lstm_params)
    tokens = rng.integers(0, 9, (12, 3))  # with <START> resets
    cifg_losses, cifg_state = cifg.target_losses(tokens[:-1], tokens[1:], cifg.zero_state(3))
    lstm_losses, lstm_state = lstm.target_losses(tokens[:-1], tokens[1:], lstm.zero_state(3))
    np.testing.assert_allclose(cifg_losses, lstm_losses, rtol=1e-12, atol=1e-12)
    for ours, theirs in zip(cifg_state, lstm_state, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_only_a_cell_a_torch_nn_module_holds_has_pytorch_names():
    assert {name: cell.require_pytorch_module() for name, cell in CELLS.items()
            if name != "lstm-peephole"} == {"lstm": "LSTM", "lstm-cifg": "LSTM", "gru": "GRU",
                                            "rnn": "RNN"}
    with pytest.raises(CharrnnError) as refused:
        CELLS["lstm-peephole"].require_pytorch_module()
    assert str(refused.value) == ("torch.nn has no layer that holds a peephole LSTM, so this "
                                  "model has no PyTorch names: keep it in charrnn's own format")


@pytest.mark.parametrize("cell", VARIANTS)
def test_a_checkpoint_records_its_variant(tmp_path, cell):
    loaded = load_checkpoint(train_tiny(TINY_TEXT, tmp_path / "x.npz", cell=cell, max_steps=3))
    assert loaded.model.config.cell == cell
    expected_names = {"lstm-peephole": "lstm-peephole0.peephole_weight",
                      "lstm-cifg": "lstm-cifg0.input_weight"}
    assert expected_names[cell] in loaded.model.params
    if cell == "lstm-peephole":
        assert loaded.model.params["lstm-peephole1.peephole_weight"].shape == (3, 16)
    else:  # three gate blocks
        assert loaded.model.params["lstm-cifg1.hidden_weight"].shape == (16, 3 * 16)


def test_older_checkpoints_load_as_the_plain_lstm(tmp_path, tiny_checkpoint):
    assert load_checkpoint(pretrained_model()).model.config.cell == "lstm"
    members = read_members(tiny_checkpoint)
    metadata = read_metadata(members)
    del metadata["model"]["cell"]  # as no charrnn writes today, but a default must cover
    members["metadata.npy"] = metadata_bytes(metadata)
    without_cell = tmp_path / "old.npz"
    write_members(without_cell, members)
    loaded = load_checkpoint(without_cell)
    assert loaded.model.config.cell == "lstm"
    assert run("sample", without_cell, "--seed", 2, "-n", 30).stdout == \
        run("sample", tiny_checkpoint, "--seed", 2, "-n", 30).stdout


@pytest.fixture(scope="module")
def variant_checkpoints(tmp_path_factory) -> dict[str, object]:
    folder = tmp_path_factory.mktemp("variants")
    return {cell: train_tiny(TINY_TEXT, folder / f"{cell}.npz", cell=cell, max_steps=8,
                             dropout=0.2)
            for cell in VARIANTS}


@pytest.mark.parametrize("cell, what, kinds", [
    ("lstm-peephole", "input", "a peephole LSTM has cell, hidden, input, forget, output"),
    ("lstm-cifg", "forget", "a CIFG LSTM has cell, hidden, forget, output"),
])
def test_show_reads_each_variants_units(variant_checkpoints, tiny_text_file, cell, what, kinds):
    checkpoint = variant_checkpoints[cell]
    shown = run("show", checkpoint, tiny_text_file, "--unit", "1:3", "--what", what, "--json")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.count("\n") == len(TINY_TEXT)
    refused = run("show", checkpoint, tiny_text_file, "--what", "reset")
    assert refused.exit_code == 2 and kinds in refused.stderr


@pytest.mark.parametrize("cell", VARIANTS)
def test_export_and_eval_keep_the_variant(tmp_path, variant_checkpoints, tiny_text_file, cell):
    slim = tmp_path / "slim.npz"
    assert run("export", variant_checkpoints[cell], slim, "--float16").exit_code == 0
    assert load_checkpoint(slim).model.config.cell == cell
    assert run("sample", slim, "-n", 20, "--seed", 1).exit_code == 0
    scored = run("eval", variant_checkpoints[cell], tiny_text_file)
    assert scored.exit_code == 0 and "nats/char" in scored.stdout


@pytest.mark.parametrize("cell", VARIANTS)
def test_a_variant_trains_with_workers_in_a_real_process(tmp_path, tiny_text_file, cell):
    out = tmp_path / "x.npz"
    command = [sys.executable, "-m", "charrnn", "train", str(tiny_text_file), "--out", str(out),
               "--cell", cell, "--threads", "2", "--max-steps", "6", "--hidden-size", "16",
               "--embedding-size", "8", "--seq-length", "16", "--batch-size", "4"]
    trained = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr
    sampled = subprocess.run([sys.executable, "-m", "charrnn", "sample", str(out), "-n", "20",
                              "--seed", "3"], capture_output=True, text=True, timeout=120)
    assert sampled.returncode == 0 and sampled.stdout and sampled.stderr == ""
    assert load_checkpoint(out).model.config.cell == cell
