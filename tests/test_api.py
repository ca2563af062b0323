"""The public API: the command line prints what it returns, each default is the same on both
sides, and the library prints nothing."""

from __future__ import annotations

import inspect
import json
import math
import warnings

import click
import pytest
from click.testing import CliRunner
from conftest import TINY_TEXT

import charrnn
from charrnn.api import RUN_OPTIONS, SAMPLING, TRAIN_OPTIONS, TextModel
from charrnn.cli import cli
from charrnn.cli.output import parse_escapes
from charrnn.generation.sampling import Sampling


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(arg) for arg in args], input=input)


def command_defaults(command: str) -> dict:
    """Each option's default as the command line parses it (None for none)."""
    context = click.Context(cli.commands[command])
    defaults = {}
    for param in cli.commands[command].params:
        if isinstance(param, click.Option) and not param.is_flag:
            value = param.get_default(context)
            given = isinstance(value, (int, float, str, tuple))  # not None, nor click's "unset"
            defaults[param.name] = param.type_cast_value(context, value) if given else None
    return defaults


def test_every_sampling_option_defaults_as_the_api_does():
    sample, show = command_defaults("sample"), command_defaults("show")
    signature = inspect.signature(TextModel.sample).parameters
    for name in ("length", "temperature", "top_k", "top_p", "min_p", "repetition_penalty",
                 "repetition_window"):
        cli_default = sample[name]
        if name == "temperature":
            (cli_default,) = cli_default  # a list of one
        assert cli_default == getattr(Sampling(), name) == signature[name].default, name
    assert sample["stop"] in ((), None) and signature["stop"].default == Sampling().stop == ()
    assert show["length"] == SAMPLING.length


def test_every_training_option_defaults_as_the_api_does():
    train = command_defaults("train")
    for name, default in TRAIN_OPTIONS.items():
        if name in ("records", "keep_best"):  # flags: off
            assert default is False
            continue
        cli_default = train[name]
        if name == "delimiter":
            cli_default = parse_escapes(cli_default)
        assert cli_default == default, name
    assert set(TRAIN_OPTIONS) | {"out"} == {param.name for param in cli.commands["train"].params
                                            if isinstance(param, click.Option)} - {"help"}
    assert RUN_OPTIONS["sample_length"] == train["sample_length"]


def test_sample_prints_exactly_what_the_api_returns(tiny_checkpoint):
    result = run("sample", tiny_checkpoint, "--seed", 11, "-k", 3)
    assert result.exit_code == 0, result.output
    expected = charrnn.load(tiny_checkpoint).sample(3, seed=11)
    assert result.stdout == "".join(text + "\n" for text in expected)
    assert len(set(expected)) > 1


def test_sample_options_reach_the_api_unchanged(tiny_checkpoint):
    result = run("sample", tiny_checkpoint, "--seed", 2, "-k", 2, "-t", "0.5,1.2", "--top-k", 5,
                 "--top-p", 0.9, "--min-p", 0.05, "--repetition-penalty", 1.3, "--stop", "at",
                 "--prime", "the", "--length", 40)
    expected = charrnn.load(tiny_checkpoint).sample(
        2, 40, (0.5, 1.2), "the", 2, top_k=5, top_p=0.9, min_p=0.05, repetition_penalty=1.3,
        stop=["at"])
    assert result.stdout.splitlines() == expected and len(expected) == 4


def test_stream_joins_to_the_sample(tiny_checkpoint):
    model = charrnn.load(tiny_checkpoint)
    pieces = list(model.stream(length=50, prime="the", seed=4))
    assert pieces[0] == "the" and len(pieces) > 2
    assert "".join(pieces) == model.sample(1, 50, prime="the", seed=4)[0]


def test_score_is_what_eval_prints(tiny_checkpoint, tiny_text_file):
    score = charrnn.load(tiny_checkpoint).score(TINY_TEXT)
    printed = json.loads(run("eval", tiny_checkpoint, tiny_text_file, "--json").stdout)
    assert (score.nats_per_char, score.bits_per_char) == (printed["nats_per_char"],
                                                          printed["bits_per_char"])
    assert score.bits_per_char == pytest.approx(score.nats_per_char / math.log(2))


def test_score_lines_is_what_eval_per_line_prints(tiny_checkpoint, tiny_text_file):
    lines = TINY_TEXT.splitlines()[:3]
    scores = charrnn.load(tiny_checkpoint).score_lines(lines)
    printed = run("eval", tiny_checkpoint, tiny_text_file, "--per-line", "--json").stdout
    first = [json.loads(line) for line in printed.splitlines()[:3]]
    assert [score.nats_per_char for score in scores] == [row["nats_per_char"] for row in first]
    assert scores[0].bits_per_char == pytest.approx(scores[0].nats_per_char / math.log(2))


def test_the_library_prints_nothing_and_warns_of_what_it_skips(tiny_checkpoint, tmp_path,
                                                               tiny_text_file, capfd):
    events = []
    model = charrnn.train(tiny_text_file, tmp_path / "m.npz", on_event=events.append,
                          max_steps=6, eval_every=3, hidden_size=8, embedding_size=4,
                          threads=1, sample_every=3, sample_length=10)
    with pytest.warns(charrnn.CharrnnWarning, match="'Z' are not in the model's vocabulary"):
        model.sample(2, length=20, prime="Zthe", seed=0)
    model.score("the cat")
    assert capfd.readouterr() == ("", "")
    kinds = [type(event).__name__ for event in events]
    assert {"Note", "TrainEvent", "SamplesDrawn"} <= set(kinds)
    assert [event.step for event in events if isinstance(event, charrnn.SamplesDrawn)] == [3, 6]
    assert any(isinstance(event, charrnn.Note) and event.kind == "start" for event in events)
    assert model.config.hidden_size == 8 and (tmp_path / "m.npz").exists()


def test_train_refuses_what_it_does_not_know(tmp_path, tiny_text_file):
    with pytest.raises(charrnn.CharrnnError, match="unknown training setting 'hiden_size'"):
        charrnn.train(tiny_text_file, tmp_path / "m.npz", hiden_size=8)
    with pytest.raises(charrnn.SettingNeeded, match="`sample_length` needs `sample_every`"):
        charrnn.train(tiny_text_file, tmp_path / "m.npz", sample_length=8)
    with pytest.raises(charrnn.CharrnnError, match="the setting hidden_size is 0"):
        charrnn.train(tiny_text_file, tmp_path / "m.npz", hidden_size=0)
    with pytest.raises(charrnn.CharrnnError, match="unknown cell 'lstn'"):
        charrnn.train(tiny_text_file, tmp_path / "m.npz", cell="lstn")
    with pytest.raises(charrnn.CharrnnError, match="the sampling setting top_p"):
        charrnn.load().sample(top_p=0)


def test_the_api_is_named_and_documented():
    for name in charrnn.__all__:
        value = getattr(charrnn, name)
        if callable(value):
            assert inspect.getdoc(value), name
    for name in ("sample", "stream", "score", "score_lines", "export", "sample_results"):
        assert inspect.getdoc(getattr(TextModel, name)), name
    assert "hidden_size = None" in charrnn.train.__doc__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(charrnn.load().sample(2, length=30, seed=1)) == 2
