"""``charrnn show`` and what it stands on: the trace of a text, the features and the units
that follow them, the HTML page."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TINY_TEXT, train_tiny

from charrnn.cli import cli
from charrnn.data.corpus import sequence_tokens
from charrnn.data.vocab import START_ID, Vocabulary
from charrnn.inspection.probes import (FEATURES, Correlations, excerpt_start, find_units,
                                       text_features, token_text)
from charrnn.inspection.read_through import Unit, trace_tokens
from charrnn.nn.model import Model, ModelConfig, init_params
from charrnn.nn.scoring import breakdown, score_tokens
from charrnn.saving.checkpoint import Checkpoint, load_checkpoint, save_checkpoint


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def json_rows(result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_surprise_is_the_loss_eval_computes(tiny_checkpoint, tmp_path):
    text = TINY_TEXT[:150]  # short enough for eval to read it as one stream
    text_file = tmp_path / "short.txt"
    text_file.write_text(text)
    rows = json_rows(run("show", tiny_checkpoint, text_file, "--json"))
    assert "".join(row["char"] for row in rows) == text

    loaded = load_checkpoint(tiny_checkpoint)
    tokens, _ = sequence_tokens([text], loaded.vocab)
    score = score_tokens(loaded.model, tokens, by_token=True)
    _, by_token = breakdown(score, loaded.vocab)
    eval_nats = {row.label: row.nats_per_char for row in by_token}
    for char in set(text):
        shown = [row["nats"] for row in rows if row["char"] == char]
        assert np.mean(shown) == pytest.approx(eval_nats[char], abs=1e-4), char
    # And one by one, against the training loss of a sequential pass.
    losses, _ = loaded.model.target_losses(tokens[:-1, None], tokens[1:, None],
                                           loaded.model.zero_state(1))
    np.testing.assert_allclose([row["nats"] for row in rows], losses[:-1, 0], atol=1e-4)


def test_guesses_are_the_likeliest_tokens_in_order(tiny_checkpoint, tiny_text_file):
    rows = json_rows(run("show", tiny_checkpoint, tiny_text_file, "--json"))
    for row in rows:
        probs = [guess["prob"] for guess in row["guesses"]]
        assert len(probs) == 5 and probs == sorted(probs, reverse=True) and sum(probs) <= 1
        if row["char"] not in [guess["char"] for guess in row["guesses"]]:
            assert np.exp(-row["nats"]) <= probs[-1] + 1e-6
        else:
            chosen = next(g["prob"] for g in row["guesses"] if g["char"] == row["char"])
            assert chosen == pytest.approx(np.exp(-row["nats"]), abs=1e-4)


def stepped_hidden(model: Model, tokens: np.ndarray, layer: int) -> np.ndarray:
    """h of one layer after each token, from ``Model.step`` one token at a time."""
    state, states = model.zero_state(1), []
    for token in tokens:
        _, state = model.step(np.array([token]), state)
        states.append(state[layer][0][0])
    return np.array(states)


def test_a_units_trajectory_is_the_state_of_a_step_by_step_run(tiny_checkpoint):
    text = TINY_TEXT * 2  # several windows of the trace
    rows = json_rows(run("show", tiny_checkpoint, "-", "--unit", "1:3", "--what", "hidden",
                         "--json", input=text))
    loaded = load_checkpoint(tiny_checkpoint)
    tokens, _ = sequence_tokens([text], loaded.vocab)
    expected = stepped_hidden(loaded.model, tokens, layer=1)[1:-1, 3]  # after each character
    np.testing.assert_allclose([row["unit"] for row in rows], expected, atol=1e-5)


def test_streams_with_a_warmup_match_one_sequential_pass(tiny_checkpoint):
    loaded = load_checkpoint(tiny_checkpoint)
    tokens, _ = sequence_tokens([TINY_TEXT * 10], loaded.vocab)
    units = (Unit(0, 1), Unit(1, 5))
    sequential = trace_tokens(loaded.model, tokens, units, "cell", max_streams=1)
    streams = trace_tokens(loaded.model, tokens, units, "cell", warmup=64, max_streams=8)
    np.testing.assert_allclose(streams.nats, sequential.nats, atol=1e-4)
    np.testing.assert_allclose(streams.units, sequential.units, atol=1e-4)
    np.testing.assert_array_equal(streams.guesses[1:], sequential.guesses[1:])


def test_text_features_by_hand():
    text = 'Ab "c d"\n  (x[1])\n'
    f = dict(zip(FEATURES, text_features(text).T))
    assert list(f["inside double quotes"]) == [0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert list(f["inside brackets"]) == [0] * 11 + [1, 1, 1, 1, 1, 0, 0]
    assert list(f["position in line"]) == [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0]
    assert list(f["start of word"]) == [1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0]
    assert list(f["inside word"]) == [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert list(f["uppercase"]) == [1] + [0] * 17
    assert list(f["digit"]) == [0] * 14 + [1, 0, 0, 0]
    assert list(f["after newline"]) == [1] + [0] * 8 + [1] + [0] * 8
    assert list(f["indentation depth"]) == [0] * 9 + [1, 2, 2, 2, 2, 2, 2, 2, 0]


def test_correlations_in_batches_equal_numpys():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)) + 1e4  # far from zero: sums about a shift keep the precision
    f = np.stack([x[:, 0] * 2 + rng.normal(size=300), rng.normal(size=300), np.ones(300)], 1)
    correlations = Correlations()
    for start in range(0, 300, 70):
        correlations.add(x[start: start + 70], f[start: start + 70])
    r = correlations.result()
    expected = np.corrcoef(x.T, f[:, :2].T)[:4, 4:]
    np.testing.assert_allclose(r[:, :2], expected, atol=1e-9)
    assert np.isnan(r[:, 2]).all()  # a feature that never varies


def test_excerpt_start_finds_where_a_feature_varies():
    feature = np.zeros(100)
    feature[60:63] = 1
    start = excerpt_start(feature, 10)
    assert start <= 60 and start + 10 >= 63


def flip_flop_model(vocab: Vocabulary) -> Model:
    """A one-layer LSTM built by hand whose unit 0 changes sign at each double quote (and
    unit 1 does nothing): the cell is rewritten on a quote with -tanh(k h), kept otherwise."""
    H, big = 2, 20.0
    config = ModelConfig(vocab.size, embedding_size=vocab.size, hidden_size=H, num_layers=1)
    params = {name: np.zeros(shape) for name, shape in config.param_shapes().items()}
    params["embedding"] = np.eye(vocab.size)
    quote = vocab.encode('"')[0][0]
    i, f, o, g = 0, H, 2 * H, 3 * H  # unit 0's column in each gate block
    params["lstm0.bias"][[i, f, o, g]] = [-big, big, big, 0.5]
    params["lstm0.input_weight"][quote, [i, f]] = [2 * big, -2 * big]
    params["lstm0.hidden_weight"][0, g] = -10.0
    return Model(config, params)


def test_find_recovers_a_unit_built_to_follow_quotes():
    text = "".join(np.random.default_rng(0).choice(list('ab "'), 3000, p=[.3, .3, .25, .15]))
    vocab = Vocabulary.from_text(text)
    model = flip_flop_model(vocab)
    tokens, _ = sequence_tokens([text], vocab)
    features = text_features(token_text(tokens, vocab))
    # One sequential pass: a stream started in the middle would not know whether a quote is
    # open (the unit holds the parity of all the quotes so far).
    findings, r = find_units(model, tokens, features, "cell", max_streams=1)
    quotes = findings[FEATURES.index("inside double quotes")]
    assert quotes.unit == Unit(0, 0) and quotes.r > 0.95
    assert r.shape == (1, 2, len(FEATURES))


def mode_text(rng, length: int) -> str:
    """Random a/b, with a quote that opens rarely (1 in 30 characters) and closes often (1 in
    4): only a model that remembers whether a quote is open knows how likely the next is."""
    chars, inside = [], False
    for _ in range(length):
        if rng.random() < (0.25 if inside else 1 / 30):
            chars.append('"')
            inside = not inside
        else:
            chars.append("ab"[rng.integers(2)])
    return "".join(chars)


def test_show_find_names_the_unit_built_to_follow_quotes(tmp_path):
    """Through the command line, on the hand-built model: a text under 1,024 characters is
    read in one stream, so the unit's parity of quotes is exact."""
    text = "".join(np.random.default_rng(1).choice(list('ab "'), 1000, p=[.3, .3, .25, .15]))
    vocab = Vocabulary.from_text(text)
    out, text_file = tmp_path / "flip-flop.npz", tmp_path / "quotes.txt"
    save_checkpoint(out, Checkpoint(flip_flop_model(vocab), vocab))
    text_file.write_text(text)
    rows = {row["feature"]: row for row in json_rows(run("show", out, text_file, "--find",
                                                         "--json"))}
    assert list(rows) == list(FEATURES)
    quotes = rows["inside double quotes"]
    assert (quotes["layer"], quotes["index"]) == (0, 0) and abs(quotes["r"]) > 0.95
    assert rows["digit"]["r"] is None and rows["digit"]["layer"] is None  # never varies
    table = run("show", out, text_file, "--find")
    assert table.exit_code == 0
    assert re.search(r"inside double quotes\s+0:0\s+[+-]1\.00", table.stdout)


@pytest.mark.slow
def test_find_recovers_a_mode_a_trained_model_learned(tmp_path):
    out = train_tiny(mode_text(np.random.default_rng(0), 10_000), tmp_path / "mode.npz",
                     max_steps=900, eval_every=900, hidden_size=32, seq_length=32,
                     batch_size=16, lr=5e-3)
    loaded = load_checkpoint(out)
    text = mode_text(np.random.default_rng(1), 3000)
    tokens, _ = sequence_tokens([text], loaded.vocab)
    features = text_features(token_text(tokens, loaded.vocab))
    column = FEATURES.index("inside double quotes")
    untrained, _ = find_units(Model(loaded.model.config, init_params(
        loaded.model.config, np.random.default_rng(0))), tokens, features, "cell")
    assert abs(untrained[column].r) < 0.5  # what the mode owes to training, not to the input

    text_file = tmp_path / "mode.txt"
    text_file.write_text(text)
    rows = {row["feature"]: row for row in json_rows(run("show", out, text_file, "--find",
                                                         "--json"))}
    assert list(rows) == list(FEATURES)
    assert abs(rows["inside double quotes"]["r"]) > 0.8
    assert rows["digit"]["r"] is None and rows["digit"]["layer"] is None  # never varies
    table = run("show", out, text_file, "--find")
    assert table.exit_code == 0
    assert re.search(r"inside double quotes\s+\d:\d+\s+[+-]0\.(8|9)", table.stdout)


VOID_ELEMENTS = {"meta", "br", "link", "img", "input", "hr"}


class PageParser(HTMLParser):
    """Collects the characters of the text's spans and the page's scripts."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.spans, self.scripts, self.in_text = [], [], [], False

    def handle_starttag(self, tag, attrs):
        if tag in VOID_ELEMENTS:
            return
        self.stack.append(tag)
        if tag == "pre" and ("id", "text") in attrs:
            self.in_text = True
        elif tag == "span" and self.in_text:
            self.spans.append("")
        elif tag == "script":
            self.scripts.append("")

    def handle_endtag(self, tag):
        assert self.stack.pop() == tag, tag
        if tag == "pre":
            self.in_text = False

    def handle_data(self, data):
        if self.stack[-1:] == ["span"] and self.in_text:
            self.spans[-1] += data
        elif self.stack[-1:] == ["script"]:
            self.scripts[-1] += data


def test_html_page_holds_one_escaped_element_per_character(tiny_checkpoint, tmp_path):
    text = 'the cat <script>alert("x")</script> & the dog\n\nsat on the log.\n'
    text_file, page_file = tmp_path / "x.txt", tmp_path / "x.html"
    text_file.write_text(text)
    result = run("show", tiny_checkpoint, text_file, "--html", page_file, "--unit", "0:2")
    assert result.exit_code == 0 and result.stdout == ""
    page = page_file.read_text()
    parser = PageParser()
    parser.feed(page)
    parser.close()
    assert parser.stack == []
    known = [char for char in text if char in set(TINY_TEXT)]
    assert parser.spans == known  # one element per character the model reads, in order
    assert len(parser.scripts) == 2 and not any("alert" in script for script in parser.scripts)
    assert "http" not in page  # nothing fetched
    data = json.loads(parser.scripts[0])
    assert len(data["nats"]) == len(known) and len(data["values"]) == len(known)
    assert len(data["guesses"]) == len(data["probs"]) == 5 * len(known)


def test_plain_view_has_a_numeric_column_and_a_summary(tiny_checkpoint, tiny_text_file):
    result = run("show", tiny_checkpoint, tiny_text_file)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["nats", "text"]
    body = lines[1: 1 + TINY_TEXT.count("\n")]
    assert [line[8:] for line in body] == TINY_TEXT.splitlines()
    assert all(float(line[:6]) >= 0 for line in body)
    assert "nats/char" in lines[-1] and "hardest" in lines[-1]
    unit = run("show", tiny_checkpoint, tiny_text_file, "--unit", "1:0", "--no-color")
    assert unit.stdout.splitlines()[0].split() == ["mean", "text"]
    assert "unit 1:0 cell" in unit.stdout


def test_terminal_view_is_coloured(tiny_checkpoint, tiny_text_file, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    result = run("show", tiny_checkpoint, tiny_text_file)
    assert "\x1b[" in result.stdout and "nats:" in result.stdout
    plain = run("show", tiny_checkpoint, tiny_text_file, "--no-color")
    assert "\x1b[" not in plain.stdout


def test_shows_a_sample_of_the_shipped_model_by_default():
    result = run("show", "--length", 60, "--seed", 1)
    assert result.exit_code == 0, result.output
    assert "note: showing a sample of 60 characters (--seed 1)" in result.stderr
    assert "nats/char" in result.stdout


def test_records_from_standard_input_are_shown_record_by_record(tmp_path):
    out = train_tiny("ab\nba\nabba\n" * 20, tmp_path / "rec.npz", records=True)
    rows = json_rows(run("show", out, "-", "--json", input="ab\n\nba"))
    assert "".join(row["char"] for row in rows) == "ab\nba\n"  # each <END> as a line end
    loaded = load_checkpoint(out)
    tokens, _ = sequence_tokens(["ab", "ba"], loaded.vocab)
    losses, _ = loaded.model.target_losses(tokens[:-1, None], tokens[1:, None],
                                           loaded.model.zero_state(1))
    scored = tokens[1:] != START_ID
    np.testing.assert_allclose([row["nats"] for row in rows], losses[scored, 0], atol=1e-4)
    empty = run("show", out, "-", input="\n\n")
    assert empty.exit_code == 1 and empty.stdout == ""
    assert empty.stderr == "charrnn: error: standard input: nothing to show (no characters " \
                           "the model knows)\n"


@pytest.mark.parametrize("args, message", [
    (("--unit", "abc"), "'abc' is not LAYER:INDEX"),
    (("--unit", "1"), "'1' is not LAYER:INDEX"),
    (("--unit", "-1:2"), "'-1:2' is not LAYER:INDEX"),
    (("--unit", "2:0"), "2:0 is not in the model: it has layers 0 to 1 of units 0 to 15"),
    (("--unit", "0:16"), "0:16 is not in the model"),
    (("--what", "reset"), "an LSTM has cell, hidden, input, forget, output"),
    (("--what", "gates"), "'gates' is not one of"),
    (("--find", "--unit", "0:1"), "--find makes its own table"),
    (("--json", "--html", "x.html"), "give --json or --html"),
    (("--html", "/proc/no/x.html"), "cannot write /proc/no/x.html"),
])
def test_bad_options_are_one_line(tiny_checkpoint, tiny_text_file, args, message):
    result = run("show", tiny_checkpoint, tiny_text_file, *args)
    assert result.exit_code == (1 if "cannot write" in message else 2) and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("charrnn: error:") and message in lines[0], \
        result.stderr


def test_the_page_never_replaces_the_text(tiny_checkpoint, tiny_text_file):
    result = run("show", tiny_checkpoint, tiny_text_file, "--html", tiny_text_file)
    assert result.exit_code == 2 and "is the text itself" in result.stderr
    assert tiny_text_file.read_text() == TINY_TEXT


def test_what_a_gru_has(tmp_path, tiny_text_file):
    out = train_tiny(TINY_TEXT, tmp_path / "gru.npz", cell="gru", max_steps=5)
    good = run("show", out, tiny_text_file, "--unit", "0:0", "--what", "update", "--json")
    assert all(0 <= row["unit"] <= 1 for row in json_rows(good))  # a gate
    bad = run("show", out, tiny_text_file, "--unit", "0:0", "--what", "forget")
    assert bad.exit_code == 2 and "a GRU has hidden, reset, update" in bad.stderr


def test_unknown_characters_are_skipped_with_a_note(tiny_checkpoint):
    result = run("show", tiny_checkpoint, "-", "--json", input="the QQ cat")
    assert [row["char"] for row in json_rows(result)] == list("the  cat")
    assert "note: 2 characters outside the model's vocabulary ('Q') are skipped" in result.stderr
