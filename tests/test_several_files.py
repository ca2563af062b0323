"""Training on several files, or a folder: each file its own sequence (or its own records),
the cache keyed on every file, and the folder's text files told from the rest."""

from __future__ import annotations

import os

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn.cli import cli
from charrnn.data import corpus
from charrnn.data.corpus import build_corpus, load_corpus
from charrnn.data.sources import training_files
from charrnn.data.vocab import END_ID, START_ID
from charrnn.errors import CharrnnError
from charrnn.saving.checkpoint import load_checkpoint

SMALL = ["--hidden-size", "16", "--embedding-size", "8", "--seq-length", "8",
         "--batch-size", "2"]


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


@pytest.fixture
def folder(tmp_path):
    """Two text files (the first without a final line end), an empty one, and what is not
    taken: a hidden file, a binary file, one that is not UTF-8, and a subfolder."""
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "b.txt").write_text("alpha\nbeta\n" * 6)
    (folder / "a.txt").write_text("gamma\ndelta" * 6)
    (folder / "c.txt").write_text("")
    (folder / ".hidden.txt").write_text("hidden\n")
    (folder / "d.bin").write_bytes(b"GIF89a\x00\x00data")
    (folder / "e.txt").write_bytes(b"caf\xe9\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "x.txt").write_text("below\n")
    return folder


def all_tokens(loaded) -> np.ndarray:
    """The whole layout again, from the training and validation parts."""
    overlap = 0 if loaded.train_tokens[-1] == START_ID else 1  # the records split does not
    return np.concatenate([loaded.train_tokens, loaded.val_tokens[overlap:]])


def test_a_folder_is_its_text_files_by_name(folder):
    files, skipped = training_files([str(folder)])
    assert files == [str(folder / name) for name in ("a.txt", "b.txt", "c.txt")]
    assert skipped == {str(folder / "d.bin"): "binary (a NUL byte near its start)",
                       str(folder / "e.txt"): "not valid utf-8 at byte 3"}
    assert training_files([str(folder), str(folder / "a.txt")], "latin-1")[0] == [
        str(folder / name) for name in ("a.txt", "b.txt", "c.txt", "e.txt", "a.txt")]
    (folder / "sub" / "x.txt").write_bytes(b"\x00")
    with pytest.raises(CharrnnError, match="sub: no text files in this folder"):
        training_files([str(folder / "a.txt"), str(folder / "sub")])


def test_each_file_is_its_own_sequence(folder):
    files = [str(folder / name) for name in ("a.txt", "c.txt", "b.txt")]
    loaded = load_corpus(files, records=False, delimiter="\n", val_fraction=0.1)
    a, b = (loaded.vocab.encode((folder / name).read_text())[0] for name in ("a.txt", "b.txt"))
    # no sequence for the empty file; the <START> between the others resets the state
    assert all_tokens(loaded).tolist() == [START_ID, *a, END_ID, START_ID, *b, END_ID]
    assert loaded.num_chars == len(a) + len(b)
    joined = build_corpus((folder / "a.txt").read_text() + (folder / "b.txt").read_text(),
                          records=False, delimiter="\n", val_fraction=0.1)
    assert loaded.checksum != joined.checksum
    alone = load_corpus(files[0], records=False, delimiter="\n", val_fraction=0.1)
    assert alone.checksum == build_corpus((folder / "a.txt").read_text(), records=False,
                                          delimiter="\n", val_fraction=0.1).checksum


def test_records_are_pooled_and_never_run_from_one_file_into_the_next(folder):
    files = [str(folder / name) for name in ("a.txt", "b.txt")]
    loaded = load_corpus(files, records=True, delimiter="\n", val_fraction=0.1)
    expected = build_corpus("gamma\ndelta" * 6 + "\n" + "alpha\nbeta\n" * 6, records=True,
                            delimiter="\n", val_fraction=0.1)
    assert all_tokens(loaded).tolist() == all_tokens(expected).tolist()  # "delta" + "alpha"
    assert len(loaded.val_tokens) == len(expected.val_tokens)  # the same records held out


def test_the_cache_keys_on_every_file(folder, tmp_path, monkeypatch):
    encodings = []
    real_encode_texts = corpus.encode_texts
    monkeypatch.setattr(corpus, "encode_texts",
                        lambda *args: encodings.append(args) or real_encode_texts(*args))
    cache_dir = tmp_path / "cache"

    def load(*names):
        return load_corpus([str(folder / name) for name in names], records=False,
                           delimiter="\n", val_fraction=0.1, cache_dir=cache_dir)

    first = load("a.txt", "b.txt")
    second = load("a.txt", "b.txt")
    assert isinstance(second.train_tokens, np.memmap) and len(encodings) == 1
    assert np.array_equal(first.train_tokens, second.train_tokens)
    load("b.txt", "a.txt")  # another order is another text
    assert len(encodings) == 2
    (folder / "b.txt").write_text("alpha\nbeta\n" * 5 + "omega\n")  # the second file changes
    os.utime(folder / "b.txt", ns=(1, 1))
    changed = load("a.txt", "b.txt")
    assert len(encodings) == 3 and changed.checksum != first.checksum


def test_train_a_folder_and_resume_it_bit_for_bit(folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    common = [*SMALL, "--lr-schedule", "constant", "--dropout", 0.1]
    result = run("train", folder, *common, "--max-steps", 6)
    assert result.exit_code == 0, result.output
    assert f"note: skipped {folder / 'd.bin'}: binary" in result.stderr
    assert "training on 3 files: 132 characters" in result.stderr
    whole = load_checkpoint(tmp_path / "checkpoints" / "texts.npz")  # named after the folder
    names = [str(folder / name) for name in ("a.txt", "b.txt", "c.txt")]
    half = tmp_path / "half.npz"
    assert run("train", *names, *common, "--max-steps", 3, "-o", half).exit_code == 0
    resumed = run("train", *names, "--resume", half, "--max-steps", 6)
    assert resumed.exit_code == 0, resumed.output
    assert "note:" not in resumed.stderr  # the same text: the same place in it
    for name, param in whole.model.params.items():
        np.testing.assert_array_equal(load_checkpoint(half).model.params[name], param)


def test_standard_input_is_read_alone(folder, tmp_path):
    result = run("train", "-", folder / "a.txt", "-o", tmp_path / "m.npz", input="abc")
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert "- (standard input) cannot be read with other files" in result.stderr
    (tmp_path / "empty").mkdir()
    result = run("train", tmp_path / "empty", "-o", tmp_path / "m.npz")
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1
    assert "empty: no text files in this folder" in result.stderr
