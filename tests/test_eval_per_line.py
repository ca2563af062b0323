"""eval --per-line: each line (or record) scored on its own, in input order, so that a shell
can rank candidates."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import train_tiny

from charrnn.cli import cli
from charrnn.data.vocab import END_ID, START_ID
from charrnn.nn.scoring import score_lines, sequence_losses, split_lines
from charrnn.saving.checkpoint import load_checkpoint
from charrnn.saving.shipped import pretrained_model

NAMES_TEXT = "emma\nolivia\nava\nmia\nsofia\nella\n" * 6


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


@pytest.fixture(scope="module")
def records_checkpoint(tmp_path_factory):
    """A records model that has learned its six names (and so finds them likely)."""
    return train_tiny(NAMES_TEXT, tmp_path_factory.mktemp("names") / "names.npz", records=True,
                      max_steps=100, lr=1e-2)


def stepped_log_prob(model, tokens) -> float:
    """A line's log-probability one step at a time with Model.step, the plain reference
    (a softmax over every token, as eval's, <START> included)."""
    state, total = model.zero_state(1), 0.0
    for token, target in zip(tokens[:-1], tokens[1:]):
        logits, state = model.step(np.array([token]), state)
        logits = logits[0].astype(np.float64)
        total += logits[target] - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
    return total


@pytest.mark.parametrize("records", [False, True])
def test_each_line_scores_what_stepping_through_it_alone_gives(records, tiny_checkpoint,
                                                               records_checkpoint):
    loaded = load_checkpoint(records_checkpoint if records else tiny_checkpoint)
    lines = ["emma", "", "the cat sat" * 30, "ava", "zzz"]  # one longer than a window
    scores = score_lines(loaded.model, loaded.vocab, lines, "\n" if records else None)
    end = END_ID if records else int(loaded.vocab.encode("\n")[0][0])
    for line, score in zip(lines, scores):
        tokens = [START_ID, *loaded.vocab.encode(line)[0], end]
        assert score.num_predictions == len(tokens) - 1
        assert score.log_prob == pytest.approx(stepped_log_prob(loaded.model, tokens), rel=1e-5)
        assert score.nats_per_char == pytest.approx(-score.log_prob / score.num_predictions)
    alone = score_lines(loaded.model, loaded.vocab, lines[3:4], "\n" if records else None)
    assert alone[0].log_prob == pytest.approx(scores[3].log_prob, rel=1e-5)


def test_sequences_are_batched_by_length_and_padding_is_not_scored(tiny_checkpoint):
    model = load_checkpoint(tiny_checkpoint).model
    rng = np.random.default_rng(0)
    sequences = [np.concatenate([[START_ID], rng.integers(2, 10, n)]) for n in (5, 40, 1, 12)]
    together = sequence_losses(model, sequences, batch_size=2, window_length=7)
    for sequence, loss in zip(sequences, together):
        assert loss == pytest.approx(-stepped_log_prob(model, sequence), rel=1e-5)


def test_lines_and_records_split_as_written():
    assert split_lines("a\n\nb\n", None) == ["a", "", "b"]
    assert split_lines("a\nb", None) == ["a", "b"]
    assert split_lines("a--b--", "--") == ["a", "b"]
    assert split_lines("", None) == []


def test_per_line_prints_tab_separated_scores_in_input_order():
    candidates = "ROMEO:\nqzxv qzxv\n\nWhat light through yonder window breaks?\na\\b\n"
    result = run("eval", pretrained_model(), "-", "--per-line", input=candidates)
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [row[2] for row in rows] == ["ROMEO:", "qzxv qzxv", "",
                                        "What light through yonder window breaks?", "a\\\\b"]
    log_probs, nats = [float(row[0]) for row in rows], [float(row[1]) for row in rows]
    assert all(value < 0 for value in log_probs)
    assert min(nats) == nats[3] and max(nats) == nats[1]  # English first, gibberish last
    ranked = sorted(rows, key=lambda row: float(row[1]))
    assert ranked[0][2].startswith("What light")


def test_per_line_json_and_records(records_checkpoint):
    result = run("eval", records_checkpoint, "-", "--per-line", "--json",
                 input="emma\nqqqq\tx\nmia\n")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["line"] for line in lines] == [1, 2, 3]
    assert [line["text"] for line in lines] == ["emma", "qqqq\tx", "mia"]
    assert lines[1]["characters_skipped"] == 6 and lines[1]["predictions"] == 1  # only <END>
    assert lines[0]["predictions"] == 5  # e m m a <END>
    assert lines[0]["nats_per_char"] < lines[1]["nats_per_char"]
    assert "skipped 6 characters" in result.stderr


@pytest.mark.parametrize("args, code, message", [
    (("--per-line", "--per-char"), 2, "choose one"),
    (("--per-line",), 1, "nothing to score"),
])
def test_per_line_refusals(tiny_checkpoint, args, code, message):
    result = run("eval", tiny_checkpoint, "-", *args, input="")
    assert result.exit_code == code and message in result.stderr and result.stdout == ""
