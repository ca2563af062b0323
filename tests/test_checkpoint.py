"""Checkpoints round-trip exactly and refuse anything that is not one of ours."""

from __future__ import annotations

import json
import tracemalloc
import zipfile
from contextlib import contextmanager

import numpy as np
import pytest
from conftest import TINY_TEXT, make_trainer
from damage import metadata_bytes, npy_header, read_members, read_metadata, write_members

from charrnn.data.vocab import Vocabulary
from charrnn.errors import CharrnnError
from charrnn.nn.model import Model, ModelConfig, init_params
from charrnn.saving.checkpoint import (MAX_METADATA_BYTES, Checkpoint, load_checkpoint,
                                       save_checkpoint)
from charrnn.training.state import from_checkpoint


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


# -- damaged and crafted archives: every array's header is checked before anything is read --

def test_a_flipped_byte_in_an_array_header_is_one_error(tmp_path):
    """Measured before: a flipped brace in a header raised tokenize.TokenError from numpy."""
    vocab = Vocabulary(tuple("abcdefgh \n"))
    config = ModelConfig(vocab.size, embedding_size=8, hidden_size=32, num_layers=1)
    path = tmp_path / "m.npz"
    save_checkpoint(path, Checkpoint(Model(config, init_params(config, np.random.default_rng(0))),
                                     vocab))
    data = path.read_bytes()
    header = data.index(b"{'descr'", data.index(b"lstm0.hidden_weight"))  # a 16 KB array
    for position in (header, data.index(b"}", header)):
        for bit in range(8):
            damaged = bytearray(data)
            damaged[position] ^= 1 << bit
            path.write_bytes(damaged)
            with pytest.raises(CharrnnError, match="damaged checkpoint"):
                load_checkpoint(path)


MAX_REFUSAL_BYTES = 4 << 20  # the file is a few KB; refusing it needs no more than this


@contextmanager
def allocations_below(limit: int):
    """Fail if the block's Python and NumPy allocations ever reach ``limit`` bytes at once."""
    tracemalloc.start()
    try:
        yield
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < limit, f"{peak:,} bytes allocated"


@pytest.mark.parametrize("shape", [(400_000, 400_000), (40_000, 40_000), (2**62, 2**62)])
def test_a_header_claiming_a_huge_array_is_refused_before_allocating(tmp_path, rng, shape):
    """Measured before: (400000, 400000) raised _ArrayMemoryError (596 GiB); a lie of a few
    GiB would have been allocated."""
    path = tmp_path / "m.npz"
    save_checkpoint(path, small_checkpoint(rng))
    members = read_members(path)
    members["param/output.weight.npy"] = (npy_header("<f4", shape)
                                          + members["param/output.weight.npy"][128:])
    write_members(path, members)
    with pytest.raises(CharrnnError, match=r"output.weight.*header claims"):
        with allocations_below(MAX_REFUSAL_BYTES):
            load_checkpoint(path)


def test_metadata_claiming_a_huge_model_is_refused_before_allocating(tmp_path, rng):
    path = tmp_path / "m.npz"
    save_checkpoint(path, small_checkpoint(rng))
    members = read_members(path)
    metadata = read_metadata(members)
    metadata["model"]["hidden_size"] = 100_000
    config = ModelConfig(**metadata["model"])
    members = {"metadata.npy": metadata_bytes(metadata)}
    for name, shape in config.param_shapes().items():  # headers that agree with the metadata
        members[f"param/{name}.npy"] = npy_header("<f4", shape) + bytes(64)
    write_members(path, members)
    with pytest.raises(CharrnnError, match="header claims"):
        load_checkpoint(path)


def test_training_arrays_larger_than_the_model_needs_are_refused(tmp_path, rng):
    path = tmp_path / "m.npz"
    checkpoint = small_checkpoint(rng)
    num_params = checkpoint.model.config.num_params()
    checkpoint.training_arrays = {"extra": np.zeros(2 * num_params + 1, np.float32)}
    save_checkpoint(path, checkpoint)
    with pytest.raises(CharrnnError, match="training arrays"):
        load_checkpoint(path)
    checkpoint.training_arrays = {"extra": np.zeros(2 * num_params, np.float32)}
    save_checkpoint(path, checkpoint)
    assert load_checkpoint(path).training_arrays["extra"].size == 2 * num_params


def test_float16_weights_are_widened_to_float32(tmp_path, rng):
    original = small_checkpoint(rng, np.float16)
    save_checkpoint(tmp_path / "m.npz", original)
    loaded = load_checkpoint(tmp_path / "m.npz")
    for name, value in original.model.params.items():
        assert loaded.model.params[name].dtype == np.float32
        np.testing.assert_array_equal(loaded.model.params[name], value.astype(np.float32))


@pytest.mark.parametrize("change, message", [
    (lambda params: params.update(embedding=params["embedding"].astype(np.float64)), "mix"),
    (lambda params: params.update(embedding=params["embedding"].astype(np.int32)), "int32"),
    (lambda params: params.update(embedding=params["embedding"].astype(np.complex64)),
     "complex64"),
])
def test_weights_of_other_types_are_refused(tmp_path, rng, change, message):
    checkpoint = small_checkpoint(rng)
    change(checkpoint.model.params)
    save_checkpoint(tmp_path / "m.npz", checkpoint)
    with pytest.raises(CharrnnError, match=message):
        load_checkpoint(tmp_path / "m.npz")


@pytest.mark.parametrize("metadata, message", [
    (b"[" * 100_000 + b"]" * 100_000, "unreadable metadata"),
    (json.dumps({"format": "charrnn-checkpoint", "x": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}
                ).encode(), "nested"),
    (b'{"format": "charrnn-checkpoint", "x": ' + b"9" * 5000 + b"}", "unreadable metadata"),
    (b'"\xff"', "unreadable metadata"),
])
def test_metadata_too_deep_or_unreadable_is_refused(tmp_path, metadata, message):
    path = tmp_path / "m.npz"
    write_members(path, {"metadata.npy": metadata_bytes(metadata)})
    with pytest.raises(CharrnnError, match=message):
        load_checkpoint(path)


def test_metadata_larger_than_the_cap_is_refused_before_reading(tmp_path):
    path = tmp_path / "m.npz"
    write_members(path, {"metadata.npy": npy_header("|u1", (MAX_METADATA_BYTES + 1,))
                         + bytes(MAX_METADATA_BYTES + 1)})
    with pytest.raises(CharrnnError, match="more than"):
        load_checkpoint(path)


@pytest.mark.parametrize("name, compression", [("metadata.txt", zipfile.ZIP_STORED),
                                               ("metadata.npy", zipfile.ZIP_DEFLATED)])
def test_members_not_stored_as_npy_are_refused(tmp_path, name, compression):
    path = tmp_path / "m.npz"
    write_members(path, {name: metadata_bytes({"format": "charrnn-checkpoint"})}, compression)
    with pytest.raises(CharrnnError, match="not a charrnn checkpoint"):
        load_checkpoint(path)


def test_a_device_or_pipe_is_not_a_checkpoint():
    with pytest.raises(CharrnnError, match="not a regular file"):
        load_checkpoint("/dev/zero")


def test_metadata_claiming_more_layers_than_arrays_is_refused_at_once(tmp_path, rng):
    """Measured before: num_layers 10**30 made the loader list the layers' shapes forever."""
    path = tmp_path / "m.npz"
    save_checkpoint(path, small_checkpoint(rng))
    members = read_members(path)
    metadata = read_metadata(members)
    metadata["model"]["num_layers"] = 10**30
    members["metadata.npy"] = metadata_bytes(metadata)
    write_members(path, members)
    with pytest.raises(CharrnnError, match="model of 10+ layers in 10 arrays"):
        with allocations_below(MAX_REFUSAL_BYTES):
            load_checkpoint(path)


@pytest.fixture(scope="module")
def trained_members(tmp_path_factory) -> dict[str, bytes]:
    """The members of a resumable checkpoint after a few steps of training."""
    out = tmp_path_factory.mktemp("trained") / "m.npz"
    make_trainer(TINY_TEXT, out, max_steps=4, eval_every=2).run()
    return read_members(out)


def with_metadata(path, members: dict[str, bytes], where: tuple, value) -> None:
    """Write ``members`` to ``path`` with the metadata's value at ``where`` replaced: raw
    JSON text where ``value`` is a str, else the value."""
    metadata = read_metadata(members)
    parent = metadata
    for key in where[:-1]:
        parent = parent[key]
    parent[where[-1]] = "@@"
    text = json.dumps(metadata).replace('"@@"', value if isinstance(value, str)
                                        else json.dumps(value))
    write_members(path, {**members, "metadata.npy": metadata_bytes(text.encode())})


@pytest.mark.parametrize("where, json_text", [
    (("training", "settings", "seed"), "1" + "0" * 400),  # overflowed math.isfinite
    (("training", "epochs"), "-" + "9" * 400),  # overflowed float()
    (("training", "history", 0, "step"), "NaN"),  # failed in round()
    (("training", "history", 0, "val_loss"), "Infinity"),
    (("training", "best_val_loss"), "1e999"),  # a float literal that overflows to inf
])
def test_numbers_no_float_can_hold_are_refused_as_unreadable(tmp_path, trained_members,
                                                              where, json_text):
    path = tmp_path / "m.npz"
    with_metadata(path, trained_members, where, json_text)
    with pytest.raises(CharrnnError, match="unreadable metadata"):
        load_checkpoint(path)


@pytest.mark.parametrize("where, value", [
    (("training", "adam_step"), -1),  # divided by zero in Adam's bias correction
    (("training", "evals_since_best"), -2),
    (("training", "lr_scale"), -0.5),  # would have trained by gradient ascent
    (("training", "lr_scale"), 0),
    (("training", "corpus", "characters"), -3),
])
def test_a_training_state_out_of_range_is_damaged(tmp_path, trained_members, where, value):
    path = tmp_path / "m.npz"
    with_metadata(path, trained_members, where, value)
    with pytest.raises(CharrnnError, match=f"training state is damaged .*{where[-1]}"):
        from_checkpoint(load_checkpoint(path))
