"""The command line, through click's CliRunner and through real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TINY_TEXT

from charrnn import __version__
from charrnn.cli import cli
from charrnn.cli import evaluate as eval_command
from charrnn.cli import train as train_command
from charrnn.errors import CharrnnError
from charrnn.saving.checkpoint import load_checkpoint
from charrnn.saving.shipped import pretrained_model
from charrnn.training import trainer as trainer_module
from charrnn.training.settings import NUMBER_BOUNDS, TrainSettings, bounds

SMALL = ["--hidden-size", "16", "--embedding-size", "8", "--seq-length", "16",
         "--batch-size", "4"]


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def test_version_and_help():
    result = run("--version")
    assert result.exit_code == 0 and __version__ in result.output
    bare = run()
    assert bare.exit_code == 0 and "Commands:" in bare.stdout and bare.stderr == ""
    for command in ("train", "sample", "eval", "info", "export", "show"):
        result = run(command, "--help")
        assert result.exit_code == 0 and "Usage:" in result.output


def test_train_sample_eval_round_trip(tmp_path, tiny_text_file):
    out = tmp_path / "m.npz"
    result = run("train", tiny_text_file, "--out", out, "--max-steps", 30, "--eval-every", 10,
                 *SMALL)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # progress goes to stderr only
    assert "step 30" in result.stderr and f"saved {out}" in result.stderr
    assert load_checkpoint(out).training["position"]["step"] == 30

    sample = run("sample", out, "--length", 50, "--seed", 1)
    assert sample.exit_code == 0 and sample.stderr == ""
    assert 2 <= len(sample.stdout) <= 51  # some text, then the newline every sample ends with
    assert run("sample", out, "--length", 50, "--seed", 1).stdout == sample.stdout

    evaluation = run("eval", out, tiny_text_file, "--json")
    assert evaluation.exit_code == 0
    score = json.loads(evaluation.stdout)
    assert score["predictions_scored"] == len(TINY_TEXT) + 1
    assert score["bits_per_char"] == pytest.approx(score["nats_per_char"] / np.log(2))
    text = run("eval", out, tiny_text_file)
    assert "nats/char" in text.stdout and "perplexity" in text.stdout


def test_train_says_how_many_threads_share_the_steps(tmp_path, tiny_text_file):
    """At most one per shard, and a shard per row of the batch at most (SMALL has 4)."""
    for threads, shards, said in [(1, 2, "; 1 thread\n"), (3, 2, "; 2 threads\n"),
                                  (3, 3, "; 3 threads\n"), (9, 9, "; 4 threads\n")]:
        result = run("train", tiny_text_file, "--out", tmp_path / "m.npz", "--max-steps", 1,
                     "--threads", threads, "--shards", shards, *SMALL)
        assert result.exit_code == 0 and said in result.stderr, result.output


def test_train_reads_standard_input_and_resumes(tmp_path):
    out = tmp_path / "m.npz"
    result = run("train", "-", "--out", out, "--max-steps", 5, *SMALL, input=TINY_TEXT)
    assert result.exit_code == 0, result.output
    result = run("train", "-", "--resume", out, "--max-steps", 8, input=TINY_TEXT)
    assert result.exit_code == 0, result.output
    assert load_checkpoint(out).training["position"]["step"] == 8


def test_resume_refuses_a_different_architecture(tmp_path, tiny_checkpoint, tiny_text_file):
    result = run("train", tiny_text_file, "--resume", tiny_checkpoint, "--out",
                 tmp_path / "x.npz", "--hidden-size", 99)
    assert result.exit_code == 1
    assert "--hidden-size 99 differs from the checkpoint's 16" in result.stderr


def test_prime_is_printed_and_unknown_characters_are_reported(tiny_checkpoint):
    result = run("sample", tiny_checkpoint, "--prime", "the Zat", "--length", 10, "--seed", 0)
    assert result.exit_code == 0
    assert result.stdout.startswith("the Zat")
    assert "'Z'" in result.stderr and "skipped" in result.stderr


def test_multiple_samples_each_end_with_a_newline(tiny_checkpoint):
    result = run("sample", tiny_checkpoint, "--num-samples", 3, "--length", 20, "-t", 0)
    assert result.exit_code == 0
    lines = result.stdout.split("\n")
    assert len(lines) == 4 and lines[-1] == ""
    assert lines[0] == lines[1] == lines[2]  # temperature 0: all take the likeliest path


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, tiny_checkpoint) -> dict[str, Path]:
    """Files to give commands that must refuse them: by name, as the BAD_INPUT cases use."""
    folder = tmp_path_factory.mktemp("bad")
    files = {"dir": folder, "checkpoint": tiny_checkpoint}
    for name, content in [("empty", b""), ("binary", b"ok\xff\xfe\x00\x01"),
                          ("fake", b"definitely not a checkpoint"),
                          ("truncated", tiny_checkpoint.read_bytes()[:5000])]:
        files[name] = folder / f"{name}.{'txt' if name in ('empty', 'binary') else 'npz'}"
        files[name].write_bytes(content)
    with np.load(tiny_checkpoint) as npz:
        arrays = {name: npz[name] for name in npz.files}
    metadata = json.loads(arrays["metadata"].tobytes())
    metadata["format_version"] = 7
    arrays["metadata"] = np.frombuffer(json.dumps(metadata).encode(), np.uint8)
    files["future"] = folder / "future.npz"
    np.savez(files["future"], **arrays)
    return files


BAD_INPUT = [  # arguments ({name} is a file of bad_files), and what the one line says
    ("sample {empty}", "not a charrnn checkpoint (not an .npz archive, or cut short)"),
    ("train {empty} --records --delimiter=", "--delimiter"),
    ("train {empty} --out {empty}", "is the training text itself"),
    ("train {empty} --out /proc/no/x.npz", "cannot write /proc/no/x.npz"),
    ("train {empty} --encoding rot13", "'rot13' is not a text encoding"),
    ("train {empty} --clip nan", "--clip"),
    ("train {empty} --dropout inf", "--dropout"),
    ("train {empty} --seq-length-schedule 50:10", "START <= END"),
    ("sample {checkpoint} --top-p 0", "--top-p"),
    ("sample {checkpoint} --num-samples 0", "--num-samples"),
    ("sample {truncated}", "not a charrnn checkpoint"),
    ("eval {future} {empty}", "format version 7 is not supported"),
    ("train {empty} --resume {future}", "format version 7"),
    ("train --resume {checkpoint} --lr -1", "--lr"),
    ("train {dir}/missing.txt", "missing.txt: no such file"),
    ("train - {empty}", "- (standard input) cannot be read with other files"),
    ("train {empty}", "the training text is empty"),
    ("train {binary}", "not valid utf-8 at byte 2 (use --encoding to name the file's encoding, "
                       "or --errors replace)"),
    ("sample {fake}", "not a charrnn checkpoint"),
    ("eval {fake} {empty}", "not a charrnn checkpoint"),
    ("sample {dir}/none.npz", "none.npz: no such checkpoint"),
    ("sample {checkpoint} --temperature -1", "--temperature"),
    ("sample {checkpoint} --temperature nan", "--temperature"),
    ("sample {checkpoint} --length -5", "--length"),
    ("train {empty} --val-fraction 1.5", "--val-fraction"),
    ("train {empty} --hidden-size 0", "--hidden-size"),
    ("eval {checkpoint} {empty}", "nothing to score"),
]


@pytest.mark.parametrize("arguments, message", BAD_INPUT, ids=[case for case, _ in BAD_INPUT])
def test_bad_input_gives_one_line_and_a_non_zero_exit(bad_files, arguments, message):
    result = run(*arguments.format(**bad_files).split())
    assert result.exit_code != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("charrnn: error:"), result.stderr
    assert message in lines[0]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root reads files whatever their permissions")
def test_an_unreadable_file_is_reported(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("hidden")
    secret.chmod(0)
    result = run("train", secret)
    assert result.exit_code == 1 and "permission denied" in result.stderr


def test_bom_and_crlf_are_normalised(tmp_path):
    text_file = tmp_path / "windows.txt"
    text_file.write_bytes(b"\xef\xbb\xbf" + b"line one\r\nline two\r\n" * 10)
    out = tmp_path / "w.npz"
    result = run("train", text_file, "--out", out, "--max-steps", 2, *SMALL)
    assert result.exit_code == 0, result.output
    assert "\r" not in load_checkpoint(out).vocab.chars
    assert "\ufeff" not in load_checkpoint(out).vocab.chars


def test_a_one_character_file_trains_with_smaller_windows(tmp_path):
    one = tmp_path / "one.txt"
    one.write_text("x")
    result = run("train", one, "--out", tmp_path / "one.npz", "--max-steps", 2, *SMALL)
    assert result.exit_code == 0, result.output
    assert "--batch-size 1 --seq-length 2" in result.stderr


# -- real processes -------------------------------------------------------------------------

def charrnn(*args, **kwargs):
    command = [sys.executable, "-m", "charrnn", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, **kwargs)


def test_subprocess_train_and_sample(tmp_path, tiny_text_file):
    out = tmp_path / "m.npz"
    result = charrnn("train", tiny_text_file, "--out", out, "--max-steps", 10, *SMALL)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and "saved" in result.stderr
    result = charrnn("sample", out, "--length", 30, "--seed", 2)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout == run("sample", out, "--length", 30, "--seed", 2).stdout


def test_subprocess_error_has_no_traceback(tmp_path):
    result = charrnn("sample", tmp_path / "missing.npz")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == f"charrnn: error: {tmp_path / 'missing.npz'}: no such checkpoint"


@pytest.mark.parametrize("arguments", [
    "sample {checkpoint} --length 100000 --num-samples 1000 --seed 1",  # more than 20 characters
    "eval {checkpoint} {text} --per-char",
    "info {checkpoint}",
])
def test_pipeline_into_head_exits_quietly(tiny_checkpoint, tiny_text_file, arguments):
    arguments = arguments.format(checkpoint=tiny_checkpoint, text=tiny_text_file)
    # The reader closes the pipe at once: every write of charrnn's meets a closed pipe.
    command = f"{sys.executable} -m charrnn {arguments} | head -c 0"
    if arguments.startswith("sample"):
        command = f"{sys.executable} -m charrnn {arguments} | head -c 20"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True,
                            text=True, timeout=120)
    assert result.stderr == ""
    assert result.returncode == 0
    assert len(result.stdout) == (20 if arguments.startswith("sample") else 0)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("arguments", [
    "sample {checkpoint} --length 50", "eval {checkpoint} {text} --per-char",
    "eval {checkpoint} {text} --json", "info {checkpoint}", "--help",
])
def test_output_to_a_full_disk_is_one_line(tiny_checkpoint, tiny_text_file, arguments):
    arguments = arguments.format(checkpoint=tiny_checkpoint, text=tiny_text_file).split()
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "charrnn", *arguments], stdout=full,
                                stderr=subprocess.PIPE, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr == "charrnn: error: cannot write the output: No space left on device\n"


def test_an_unforeseen_os_error_names_its_file(tiny_checkpoint, tiny_text_file, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError(5, "Input/output error", "/mnt/x.bin")

    monkeypatch.setattr(eval_command, "load", fail)
    result = run("eval", tiny_checkpoint, tiny_text_file)
    assert result.exit_code == 1
    assert result.stderr == "charrnn: error: /mnt/x.bin: Input/output error\n"


def test_running_out_of_memory_is_one_line(tiny_checkpoint, tiny_text_file, monkeypatch):
    def fail(*args, **kwargs):
        raise MemoryError("Unable to allocate 7.63 GiB for an array with shape (1000000, 1, "
                          "2048) and data type float32")

    monkeypatch.setattr(eval_command, "load", fail)
    result = run("eval", tiny_checkpoint, tiny_text_file)
    assert result.exit_code == 1
    assert result.stderr.startswith("charrnn: error: out of memory (Unable to allocate 7.63 GiB")
    assert len(result.stderr.splitlines()) == 1


def test_a_step_larger_than_the_machine_is_refused_before_training(tmp_path, monkeypatch):
    """As a stranger's checkpoint could ask with its window layout, or a typo."""
    monkeypatch.setattr(trainer_module, "physical_memory", lambda: 2**30)
    text_file = tmp_path / "t.txt"
    text_file.write_text(TINY_TEXT * 100)
    out = tmp_path / "m.npz"
    fits = run("train", text_file, "-o", out, *SMALL, "--max-steps", 1)
    assert fits.exit_code == 0, fits.output
    result = run("train", text_file, "-o", out, *SMALL, "--hidden-size", 512,
                 "--seq-length", 30_000, "--batch-size", 1, "--max-steps", 1)
    assert result.exit_code == 1
    assert result.stderr == ("charrnn: error: a training step of 1 x 30,000-step windows needs "
                             "at least 1.3 GiB of memory, more than this machine's 1.0 GiB; "
                             "use a smaller --batch-size or --seq-length\n")
    assert load_checkpoint(out).model.config.hidden_size == 16  # the checkpoint is untouched


def test_output_is_utf8_whatever_the_locale(tmp_path):
    text_file = tmp_path / "u.txt"
    text_file.write_text("héllo wörld ☃\n" * 20, encoding="utf-8")
    out = tmp_path / "u.npz"
    assert charrnn("train", text_file, "--out", out, "--max-steps", 20, *SMALL).returncode == 0
    prime = tmp_path / "prime.txt"
    prime.write_text("héllo ☃", encoding="utf-8")  # the output starts with it: not ASCII
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONIOENCODING": "ascii"}
    result = subprocess.run([sys.executable, "-m", "charrnn", "sample", str(out), "--prime-file",
                             str(prime), "--seed", "0", "--length", "200"], capture_output=True,
                            timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode("utf-8").startswith("héllo ☃")


def test_installed_console_script_runs():
    script = Path(sys.executable).parent / "charrnn"
    if not script.exists():
        pytest.skip("charrnn is not installed beside this Python (run pip install . first)")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and __version__ in result.stdout


def test_info_summarises_a_checkpoint(tiny_checkpoint):
    result = run("info", tiny_checkpoint)
    assert result.exit_code == 0, result.output
    assert "2 x LSTM 16" in result.stdout and "40 steps" in result.stdout
    assert "● validation" in result.stdout and "│" in result.stdout
    details = json.loads(run("info", tiny_checkpoint, "--json").stdout)
    assert details["architecture"]["parameters"] == load_checkpoint(
        tiny_checkpoint).model.config.num_params()
    assert details["training"]["steps"] == 40
    assert details["vocabulary"][:3] == ["\n", " ", "."]


def test_prime_from_standard_input_or_a_file(tmp_path, tiny_checkpoint):
    from_stdin = run("sample", tiny_checkpoint, "--prime", "-", "-n", 10, "--seed", 4,
                     input="the dog ")
    assert from_stdin.exit_code == 0 and from_stdin.stdout.startswith("the dog ")
    prime_file = tmp_path / "prime.txt"
    prime_file.write_text("the dog ")
    from_file = run("sample", tiny_checkpoint, "--prime-file", prime_file, "-n", 10, "--seed", 4)
    assert from_file.stdout == from_stdin.stdout
    both = run("sample", tiny_checkpoint, "--prime-file", prime_file, "--prime", "x")
    assert both.exit_code == 2 and "not both" in both.stderr


def test_beam_width_one_prints_the_greedy_text(tiny_checkpoint):
    greedy = run("sample", tiny_checkpoint, "-t", 0, "-n", 30, "--prime", "the ")
    beam = run("sample", tiny_checkpoint, "--beam-width", 1, "-n", 30, "--prime", "the ")
    assert beam.exit_code == 0 and beam.stdout == greedy.stdout
    wide = run("sample", tiny_checkpoint, "--beam-width", 4, "-n", 30, "--json")
    assert wide.exit_code == 0
    assert json.loads(wide.stdout)["log_prob"] >= json.loads(
        run("sample", tiny_checkpoint, "--beam-width", 1, "-n", 30, "--json").stdout)["log_prob"]
    refused = run("sample", tiny_checkpoint, "--beam-width", 4, "--num-samples", 2)
    assert refused.exit_code == 2 and "--num-samples" in refused.stderr


@pytest.mark.parametrize("cell", ["lstm-peephole", "lstm-cifg", "gru", "rnn"])
def test_other_cells_train_resume_and_sample(tmp_path, tiny_text_file, cell):
    out = tmp_path / f"{cell}.npz"
    result = run("train", tiny_text_file, "--out", out, "--cell", cell, "--dropout", 0.2,
                 "--max-steps", 6, "--eval-every", 3, *SMALL)
    assert result.exit_code == 0, result.output
    assert load_checkpoint(out).model.config.cell == cell
    assert run("train", tiny_text_file, "--resume", out, "--max-steps", 9).exit_code == 0
    assert load_checkpoint(out).training["position"]["step"] == 9
    refused = run("train", tiny_text_file, "--resume", out, "--cell", "lstm")
    assert refused.exit_code == 1 and "--cell lstm differs" in refused.stderr
    sample = run("sample", out, "-n", 20, "--seed", 1)
    assert sample.exit_code == 0 and len(sample.stdout) >= 2  # text before the newline
    assert f"2 x {cell.upper()} 16" in run("info", out).stdout


def test_sample_json_reports_each_sample(tiny_checkpoint):
    result = run("sample", tiny_checkpoint, "--json", "-k", 3, "-n", 40, "--seed", 9,
                 "--stop", "\\n", "--prime", "the")
    assert result.exit_code == 0, result.output
    samples = [json.loads(line) for line in result.stdout.splitlines()]
    assert [s["index"] for s in samples] == [0, 1, 2]
    for s in samples:
        assert s["prime"] == "the" and s["seed"] == 9 and s["log_prob"] < 0
        assert s["stop_reason"] in ("end", "length", "stop")
        assert s["stop_reason"] != "stop" or s["text"].endswith("\n")
    plain = run("sample", tiny_checkpoint, "-k", 3, "-n", 40, "--seed", 9, "--stop", "\\n",
                "--prime", "the")
    assert plain.stdout == "".join("the" + s["text"] + "\n" for s in samples)


def test_top_k_one_is_greedy(tiny_checkpoint):
    greedy = run("sample", tiny_checkpoint, "-t", 0, "-n", 30, "--seed", 1)
    top1 = run("sample", tiny_checkpoint, "--top-k", 1, "-n", 30, "--seed", 1)
    assert top1.stdout == greedy.stdout


def test_eval_per_char_breaks_the_loss_down(tiny_checkpoint, tiny_text_file):
    result = json.loads(run("eval", tiny_checkpoint, tiny_text_file, "--per-char",
                            "--json").stdout)
    by_class = {row["class"]: row for row in result["by_class"]}
    assert by_class["lowercase"]["count"] == sum(c.islower() for c in TINY_TEXT)
    assert by_class["newline"]["count"] == TINY_TEXT.count("\n")
    assert by_class["<END>"]["count"] == 1
    assert sum(row["count"] for row in result["by_class"]) == result["predictions_scored"]
    total = sum(row["count"] * row["nats_per_char"] for row in result["by_character"])
    assert total / result["predictions_scored"] == pytest.approx(result["nats_per_char"])
    hardness = [row["nats_per_char"] for row in result["by_character"]]
    assert hardness == sorted(hardness, reverse=True)
    table = run("eval", tiny_checkpoint, tiny_text_file, "--per-char")
    assert "loss by character class" in table.stdout and "hardest characters" in table.stdout


def test_export_slims_a_checkpoint_for_sampling(tmp_path, tiny_checkpoint, tiny_text_file):
    slim = tmp_path / "slim.npz"
    result = run("export", tiny_checkpoint, slim)
    assert result.exit_code == 0 and result.stdout == ""
    assert slim.stat().st_size < tiny_checkpoint.stat().st_size / 2
    original, exported = load_checkpoint(tiny_checkpoint), load_checkpoint(slim)
    for name, value in original.model.params.items():
        np.testing.assert_array_equal(exported.model.params[name], value)
    assert exported.training_arrays == {}
    assert run("sample", slim, "--seed", 3).stdout == run("sample", tiny_checkpoint,
                                                          "--seed", 3).stdout
    assert "40 steps" in run("info", slim).stdout
    refused = run("train", tiny_text_file, "--resume", slim, "--out", tmp_path / "x.npz")
    assert refused.exit_code == 1 and "exported for sampling" in refused.stderr


def test_resume_from_pytorch_weights_points_to_init_from(tmp_path, tiny_checkpoint,
                                                        tiny_text_file):
    weights = tmp_path / "weights.safetensors"
    assert run("export", tiny_checkpoint, weights).exit_code == 0
    refused = run("train", tiny_text_file, "--resume", weights)
    assert refused.exit_code == 1
    assert refused.stderr.count("\n") == 1 and "start a new run from them with --init-from" \
        in refused.stderr
    fine_tuned = run("train", tiny_text_file, "--init-from", weights, "--out",
                     tmp_path / "tuned.npz", "--max-steps", 2)
    assert fine_tuned.exit_code == 0


def test_export_float16_halves_the_weights_and_loads_as_float32(tmp_path, tiny_checkpoint):
    slim, half = tmp_path / "slim.npz", tmp_path / "half.npz"
    run("export", tiny_checkpoint, slim)
    assert run("export", tiny_checkpoint, half, "--float16").exit_code == 0
    original, widened = load_checkpoint(tiny_checkpoint), load_checkpoint(half)
    two_bytes_per_weight = 2 * original.model.config.num_params()
    assert slim.stat().st_size - half.stat().st_size == two_bytes_per_weight
    for name, value in original.model.params.items():
        assert widened.model.params[name].dtype == np.float32
        np.testing.assert_array_equal(widened.model.params[name],
                                      value.astype(np.float16).astype(np.float32))


def test_sample_with_no_checkpoint_uses_the_shipped_model():
    result = run("sample", "--seed", 5, "-n", 200)
    assert result.exit_code == 0, result.output
    assert len(result.stdout) > 100 and result.stderr == ""
    shipped = load_checkpoint(pretrained_model())
    assert shipped.training["best_val_loss"] < 1.6  # nats/char on tinyshakespeare
    assert set(result.stdout) <= set(shipped.vocab.chars)


def test_info_on_the_shipped_model():
    result = run("info", pretrained_model())
    assert result.exit_code == 0, result.output
    assert "2 x LSTM 512" in result.stdout and "8.49 epochs" in result.stdout


def test_keep_last_keeps_step_checkpoints_and_needs_save_every(tmp_path, tiny_text_file):
    refused = run("train", tiny_text_file, "-o", tmp_path / "m.npz", "--keep-last", 2)
    assert refused.exit_code == 2 and len(refused.stderr.splitlines()) == 1
    assert "--keep-last needs --save-every" in refused.stderr
    result = run("train", tiny_text_file, "-o", tmp_path / "m.npz", *SMALL, "--max-steps", 5,
                 "--save-every", 1, "--keep-last", 2)
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in tmp_path.glob("m.*")) == ["m.npz", "m.step4.npz",
                                                                 "m.step5.npz"]


COMPANIONS = {"keep_last": {"save_every": 1}}  # a setting that needs another one given


@pytest.mark.parametrize("name", ["max_time", "clip", "warmup_steps", *NUMBER_BOUNDS])
def test_an_option_takes_the_numbers_its_setting_takes(name):
    """The command line refuses at once what TrainSettings (and so a checkpoint's check)
    would: train's own option, tried at and around the edges of the setting's range."""
    option = next(param for param in train_command.train.params if param.name == name)
    limits = bounds(name)
    edges = [limits.low, limits.high] if limits.high != float("inf") else [limits.low]
    for value in [edge + step for edge in edges for step in (-1, 0, 1)] + [0.5, 10 ** 9]:
        whole = isinstance(option.type, click.IntRange)
        if whole and value != int(value):
            continue
        value = int(value) if whole else float(value)
        try:
            option.type.convert(str(value), option, None)
            accepted = True
        except click.BadParameter:
            accepted = False
        try:
            TrainSettings(**{name: value}, **COMPANIONS.get(name, {}))
            taken = True
        except CharrnnError:
            taken = False
        assert accepted == taken, value
