"""`charrnn sample`'s options for draws that do not loop: temperature lists, min-p and the
repetition penalty, through the command line."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from click.testing import CliRunner

from charrnn.cli import cli
from charrnn.generation.sampling import Sampling, generate, whole_samples
from charrnn.saving.checkpoint import load_checkpoint


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_a_temperature_list_draws_each_sample_at_each_temperature(tiny_checkpoint):
    result = run("sample", tiny_checkpoint, "-t", "0,0.5,1.5", "-k", 2, "-n", 40, "--seed", 6,
                 "--json")
    assert result.exit_code == 0, result.output
    samples = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(s["index"], s["temperature"]) for s in samples] == [
        (0, 0.0), (1, 0.0), (2, 0.5), (3, 0.5), (4, 1.5), (5, 1.5)]
    alone = run("sample", tiny_checkpoint, "-t", "1.5", "-k", 2, "-n", 40, "--seed", 6, "--json")
    assert [json.loads(line)["text"] for line in alone.stdout.splitlines()] == \
        [s["text"] for s in samples[4:]]
    plain = run("sample", tiny_checkpoint, "-t", "0,0.5,1.5", "-k", 2, "-n", 40, "--seed", 6)
    assert plain.stdout == "".join(s["text"] + "\n" for s in samples)


@pytest.mark.parametrize("option, sampling", [
    (("--min-p", 0.5), Sampling(min_p=0.5)),
    (("--repetition-penalty", 2.0), Sampling(repetition_penalty=2.0)),
    (("--repetition-penalty", 2.0, "--repetition-window", 2),
     Sampling(repetition_penalty=2.0, repetition_window=2)),
])
def test_each_option_draws_as_the_sampler_given_it_does(tiny_checkpoint, option, sampling):
    """The option reaches the sampler as that setting (what each setting does to a draw is
    tested in test_sample.py), and changes what is drawn."""
    base = ("sample", tiny_checkpoint, "-k", 3, "-n", 80, "-t", 1.2, "--seed", 2)
    changed = run(*base, *option)
    assert changed.exit_code == 0 and changed.stderr == ""
    loaded = load_checkpoint(tiny_checkpoint)
    drawn = whole_samples(generate(loaded.model, loaded.vocab,
                                   replace(sampling, length=80, temperature=1.2), seed=2,
                                   num_samples=3), 3)
    assert changed.stdout == "".join(sample.text + "\n" for sample in drawn)
    assert changed.stdout != run(*base).stdout


def test_the_repetition_window_limits_what_the_penalty_sees(tiny_checkpoint):
    """Greedy decoding (any seed) with a penalty on the last 3 characters draws as the
    sampler given that window does, and otherwise than with the whole text penalised."""
    base = ("sample", tiny_checkpoint, "-n", 80, "-t", 0, "--repetition-penalty", 1.5)
    windowed = run(*base, "--repetition-window", 3).stdout
    loaded = load_checkpoint(tiny_checkpoint)
    drawn = whole_samples(generate(loaded.model, loaded.vocab,
                                   Sampling(length=80, temperature=0, repetition_penalty=1.5,
                                            repetition_window=3), seed=0), 1)
    assert windowed == drawn[0].text + "\n"
    assert windowed != run(*base, "--repetition-window", 0).stdout


@pytest.mark.parametrize("args, option", [
    (("--min-p", "1.5"), "--min-p"),
    (("--min-p", "-0.1"), "--min-p"),
    (("--repetition-penalty", "0"), "--repetition-penalty"),
    (("--repetition-penalty", "inf"), "--repetition-penalty"),
    (("--repetition-window", "-1"), "--repetition-window"),
    (("-t", "0.5,,1"), "comma-separated"),
    (("-t", "0.5,-1"), "-1.0 is not in the range x>=0"),
])
def test_bad_values_are_one_line(tiny_checkpoint, args, option):
    result = run("sample", tiny_checkpoint, *args)
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("charrnn: error:") and option in lines[0]
