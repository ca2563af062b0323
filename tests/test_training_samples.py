"""Samples while training (--sample-every): on stderr, labelled in records mode, and never a
change to what is trained."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TINY_TEXT, make_trainer

from charrnn.cli import cli
from charrnn.data import known_records
from charrnn.data.corpus import build_corpus
from charrnn.data.known_records import KnownRecords, record_hash, records_of_tokens
from charrnn.generation.training_samples import LABELS, TrainingSampler
from charrnn.saving.checkpoint import load_checkpoint

SMALL = ["--hidden-size", "16", "--embedding-size", "8", "--seq-length", "16",
         "--batch-size", "4"]
LABEL_WIDTH = max(map(len, LABELS))  # labels are padded to this, then two spaces
NAMES = "emma\nolivia\nava\nmia\nsofia\nella\n" * 6 + "zoe\nivy\n"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize("block_size", [3, 1 << 20])  # records cut between blocks, or not
def test_the_records_of_a_layout_are_those_of_its_text(monkeypatch, block_size):
    monkeypatch.setattr(known_records, "BLOCK_SIZE", block_size)
    text = "emma\n\nolivia\nava é\n\x00zoë\nemma\n"  # a NUL: the separator must be another
    records = ["emma", "olivia", "ava é", "\x00zoë", "emma"]
    corpus = build_corpus(text, records=True, delimiter="\n", val_fraction=0.01)
    assert list(records_of_tokens(corpus.train_tokens, corpus.vocab)) == records
    known = KnownRecords.from_tokens(corpus.train_tokens, corpus.vocab)
    assert len(known) == 4 and known.hashes.dtype == np.uint64  # emma once
    assert all(record in known for record in records)
    assert "emm" not in known and "emma\n" not in known and "" not in known
    other = build_corpus("ava é\nqux\nqux\n", records=True, delimiter="\n", val_fraction=0.01)
    assert other.vocab != corpus.vocab  # the same record under other token ids: the same hash
    assert record_hash("ava é") in KnownRecords.from_tokens(other.train_tokens, other.vocab).hashes
    assert record_hash("ava é") in known.hashes


def test_records_are_labelled_training_held_out_new_or_unfinished():
    corpus = build_corpus(NAMES, records=True, delimiter="\n", val_fraction=0.05)
    sampler = TrainingSampler(corpus, records=True, seed=0, length=10)
    assert sampler.label("emma", "end") == "in training text"
    assert sampler.label("ivy", "end") == "held out"  # the last 5% of the records
    assert sampler.label("zara", "end") == "new"
    assert sampler.label("emma", "length") == "unfinished"


def test_records_of_the_run_fine_tuned_from_are_training_records(tmp_path):
    """As `sample --json` calls them in_training: the checkpoint keeps them."""
    first, names = tmp_path / "first.txt", tmp_path / "names.txt"
    first.write_text("zara\n" * 3)
    names.write_text(NAMES)
    learned = run("train", first, "--records", "-o", tmp_path / "a.npz", *SMALL, "--lr", 0.01,
                  "--lr-schedule", "constant", "--max-steps", 100)
    assert learned.exit_code == 0, learned.output
    # A learning rate too small to unlearn it: the samples are still "zara".
    result = run("train", names, "--records", "-o", tmp_path / "b.npz", "--lr", 1e-9,
                 "--max-steps", 1, "--init-from", tmp_path / "a.npz", "--sample-every", 1)
    assert result.exit_code == 0, result.output
    lines = result.stderr.split("--- sample at step 1 ---\n")[1].splitlines()[:5]
    assert [line.split() for line in lines] == [["in", "training", "text", "zara"]] * 5


def test_a_model_that_learned_its_records_by_heart_samples_copies(tmp_path):
    trainer = make_trainer("hello\nhello\nhello\n", tmp_path / "m.npz", records=True,
                           lr=1e-2, max_steps=100, lr_schedule="constant")
    trainer.run()
    samples = TrainingSampler(trainer.corpus, records=True, seed=0, length=20).draw(trainer.model)
    assert len(samples) == 5
    assert [(sample.text, sample.label) for sample in samples] == [("hello",
                                                                    "in training text")] * 5


def test_sample_every_prints_samples_on_stderr_only(tmp_path):
    text_file = tmp_path / "t.txt"
    text_file.write_text(TINY_TEXT)
    result = run("train", text_file, "-o", tmp_path / "m.npz", *SMALL, "--max-steps", 5,
                 "--sample-every", 2, "--sample-length", 7)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    stderr = result.stderr
    assert "--- sample at step 2 ---" in stderr and "--- sample at step 4 ---" in stderr
    assert "at step 5" not in stderr
    sample = stderr.split("--- sample at step 4 ---\n")[1].split("\nstep 5 |")[0]
    assert 0 < len(sample) <= 7


def test_records_samples_are_labelled(tmp_path):
    """Each sample's label is the one its text earns: the training names (all but the last
    5%, "ivy"), the held-out one, a full-length draw, or anything else."""
    text_file = tmp_path / "names.txt"
    text_file.write_text(NAMES)
    result = run("train", text_file, "--records", "-o", tmp_path / "m.npz", *SMALL,
                 "--max-steps", 2, "--sample-every", 2, "--sample-length", 12)
    assert result.exit_code == 0, result.output
    lines = result.stderr.split("--- sample at step 2 ---\n")[1].splitlines()[:5]
    training_names = set(NAMES.split()) - {"ivy"}
    for line in lines:
        label, text = line[:LABEL_WIDTH].strip(), line[LABEL_WIDTH + 2:]
        expected = ("unfinished" if len(text) == 12 else "in training text"
                    if text in training_names else "held out" if text == "ivy" else "new")
        assert label == expected, line


def test_sample_length_needs_sample_every(tmp_path):
    result = run("train", "-o", tmp_path / "m.npz", "--sample-length", 10)
    assert result.exit_code == 2 and "--sample-length needs --sample-every" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def train_cli(tmp_path, name, *extra):
    text_file = tmp_path / "t.txt"
    text_file.write_text(TINY_TEXT)
    out = tmp_path / name
    result = run("train", text_file, "-o", out, *SMALL, "--dropout", 0.2,
                 "--lr-schedule", "constant", *extra)
    assert result.exit_code == 0, result.output
    return load_checkpoint(out)


def test_sampling_does_not_change_training_nor_resuming(tmp_path):
    """Dropout draws from the training's random stream: a sample drawn from it would show."""
    plain = train_cli(tmp_path, "plain.npz", "--max-steps", 6)
    sampled = train_cli(tmp_path, "sampled.npz", "--max-steps", 6, "--sample-every", 1)
    train_cli(tmp_path, "resumed.npz", "--max-steps", 3, "--sample-every", 2)
    resumed = train_cli(tmp_path, "resumed.npz", "--resume", tmp_path / "resumed.npz",
                        "--max-steps", 6, "--sample-every", 1)
    for checkpoint in (sampled, resumed):
        for name, param in plain.model.params.items():
            np.testing.assert_array_equal(checkpoint.model.params[name], param)
        assert checkpoint.training["rng"] == plain.training["rng"]
