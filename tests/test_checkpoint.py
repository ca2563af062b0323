"""Checkpoints round-trip exactly and refuse anything that is not one of ours."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from charrnn.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from charrnn.errors import CharrnnError
from charrnn.model import Model, ModelConfig, init_params
from charrnn.vocab import Vocabulary


def small_checkpoint(rng, dtype=np.float32) -> Checkpoint:
    vocab = Vocabulary(tuple("abcé\n"))
    config = ModelConfig(vocab.size, embedding_size=3, hidden_size=4, num_layers=2)
    return Checkpoint(Model(config, init_params(config, rng, dtype)), vocab)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_gives_identical_weights_and_logits(tmp_path, rng, dtype):
    original = small_checkpoint(rng, dtype)
    save_checkpoint(tmp_path / "m.npz", original)
    loaded = load_checkpoint(tmp_path / "m.npz")
    assert loaded.vocab == original.vocab
    assert loaded.model.config == original.model.config
    for name, value in original.model.params.items():
        assert loaded.model.params[name].dtype == value.dtype
        np.testing.assert_array_equal(loaded.model.params[name], value)
    tokens = np.array([0, 2, 3, 4])
    logits_a, _ = original.model.step(tokens, original.model.zero_state(4))
    logits_b, _ = loaded.model.step(tokens, loaded.model.zero_state(4))
    np.testing.assert_array_equal(logits_a, logits_b)


def test_save_creates_folders_and_leaves_no_temporary_files(tmp_path, rng):
    path = tmp_path / "deep" / "er" / "m.npz"
    save_checkpoint(path, small_checkpoint(rng))
    save_checkpoint(path, small_checkpoint(rng))
    assert [p.name for p in path.parent.iterdir()] == ["m.npz"]


def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, rng, monkeypatch):
    path = tmp_path / "m.npz"
    good = small_checkpoint(rng)
    save_checkpoint(path, good)

    def crash_halfway(file, **arrays):
        file.write(b"PK half an archive")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash_halfway)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, small_checkpoint(rng))
    monkeypatch.undo()
    loaded = load_checkpoint(path)
    np.testing.assert_array_equal(loaded.model.params["embedding"], good.model.params["embedding"])
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def test_never_writes_pickled_objects(tmp_path, rng):
    checkpoint = small_checkpoint(rng)
    checkpoint.training_arrays = {"bad": np.array([object()], dtype=object)}
    with pytest.raises(ValueError):
        save_checkpoint(tmp_path / "m.npz", checkpoint)
    assert not (tmp_path / "m.npz").exists()


def rewrite_metadata(path, change):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    metadata = json.loads(arrays["metadata"].tobytes())
    change(metadata)
    arrays["metadata"] = np.frombuffer(json.dumps(metadata).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


def test_refuses_a_future_format_version(tmp_path, rng):
    path = tmp_path / "m.npz"
    save_checkpoint(path, small_checkpoint(rng))
    rewrite_metadata(path, lambda metadata: metadata.update(format_version=99))
    with pytest.raises(CharrnnError, match="format version 99 is not supported"):
        load_checkpoint(path)


def test_refuses_wrong_shapes_and_non_finite_weights(tmp_path, rng):
    path = tmp_path / "m.npz"
    checkpoint = small_checkpoint(rng)
    checkpoint.model.params["output.bias"] = np.zeros(3, np.float32)
    save_checkpoint(path, checkpoint)
    with pytest.raises(CharrnnError, match="output.bias"):
        load_checkpoint(path)
    checkpoint = small_checkpoint(rng)
    checkpoint.model.params["embedding"][0, 0] = np.inf
    save_checkpoint(path, checkpoint)
    with pytest.raises(CharrnnError, match="NaN or infinity"):
        load_checkpoint(path)


def test_refuses_pickled_objects_without_running_them(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, metadata=np.array([{"format": "charrnn-checkpoint"}], dtype=object))
    with pytest.raises(CharrnnError, match="pickled"):
        load_checkpoint(path)


@pytest.mark.parametrize("content", [
    b"",
    b"not a zip file at all",
    b"PK\x03\x04 truncated",
])
def test_refuses_files_that_are_not_checkpoints(tmp_path, content):
    path = tmp_path / "x.npz"
    path.write_bytes(content)
    with pytest.raises(CharrnnError, match="not a charrnn checkpoint"):
        load_checkpoint(path)


def test_refuses_a_truncated_checkpoint(tmp_path, rng):
    path = tmp_path / "m.npz"
    save_checkpoint(path, small_checkpoint(rng))
    data = path.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30):
        path.write_bytes(data[:cut])
        with pytest.raises(CharrnnError):
            load_checkpoint(path)


def test_refuses_an_npz_of_someone_else(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.zeros(3))
    with pytest.raises(CharrnnError, match="no metadata"):
        load_checkpoint(path)
    assert zipfile.is_zipfile(path)
