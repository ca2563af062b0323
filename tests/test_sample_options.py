"""`charrnn sample`'s options for draws that do not loop: temperature lists, min-p and the
repetition penalty, through the command line."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from charrnn.cli import cli


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


@pytest.mark.parametrize("option", [("--min-p", 0.5), ("--repetition-penalty", 2.0),
                                    ("--repetition-penalty", 2.0, "--repetition-window", 2)])
def test_each_option_changes_the_draw_and_a_seed_reproduces_it(tiny_checkpoint, option):
    base = ("sample", tiny_checkpoint, "-k", 3, "-n", 80, "-t", 1.2, "--seed", 2)
    plain, changed = run(*base), run(*base, *option)
    assert changed.exit_code == 0 and changed.stderr == ""
    assert changed.stdout != plain.stdout
    assert run(*base, *option).stdout == changed.stdout


def test_the_repetition_window_changes_the_draw(tiny_checkpoint):
    base = ("sample", tiny_checkpoint, "-n", 80, "-t", 0, "--repetition-penalty", 1.5)
    assert run(*base, "--repetition-window", 3).stdout != run(*base).stdout


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
