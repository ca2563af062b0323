"""Nothing lost, nothing crashes: extra checkpoints, signals, kills while saving, any text."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import SHM, TINY_TEXT, blocks_of, make_trainer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from charrnn.data import cache
from charrnn.generation.sampling import Sampling, generate
from charrnn.saving.checkpoint import load_checkpoint
from charrnn.training.settings import SettingNeeded, TrainSettings, resumed_settings
from charrnn.training.trainer import TrainingDiverged, resume_trainer


def tiny_trainer(out, text=TINY_TEXT, **settings):
    return make_trainer(text, out, hidden_size=8, embedding_size=4, **settings)


def test_keep_best_keeps_the_lowest_validation_loss(tmp_path):
    trainer = tiny_trainer(tmp_path / "m.npz", max_steps=30, eval_every=5, keep_best=True,
                           val_fraction=0.2)
    trainer.run()
    best = load_checkpoint(tmp_path / "m.best.npz")
    losses = [entry["val_loss"] for entry in trainer.history]
    assert best.training["best_val_loss"] == min(losses)
    assert best.training["history"][-1]["val_loss"] == min(losses)


def test_save_every_saves_between_evaluations(tmp_path, monkeypatch):
    trainer = tiny_trainer(tmp_path / "m.npz", max_steps=10, eval_every=100, save_every=3)
    saved_at = []
    original = trainer.save
    monkeypatch.setattr(trainer, "save", lambda *args: (saved_at.append(
        trainer.position.step), original(*args)))
    trainer.run()
    assert saved_at == [3, 6, 9, 10]


def test_a_run_that_ends_on_a_save_every_save_still_validates_its_last_weights(tmp_path):
    trainer = tiny_trainer(tmp_path / "m.npz", max_steps=6, eval_every=4, save_every=3,
                           keep_best=True, val_fraction=0.2)
    events = []
    trainer.run(events.append)
    assert [entry["step"] for entry in trainer.history] == [4, 6]
    assert events[-1].kind == "end" and events[-1].val_loss == trainer.history[-1]["val_loss"]
    assert load_checkpoint(tmp_path / "m.npz").training["history"][-1]["step"] == 6


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(min_size=1, max_size=60), records=st.booleans())
def test_any_text_trains_saves_loads_and_samples(tmp_path_factory, text, records):
    if records and not text.replace("\n", ""):
        return  # no records at all: refused with a clear error, tested elsewhere
    out = tmp_path_factory.mktemp("any") / "m.npz"
    trainer = tiny_trainer(out, text, records=records, max_steps=1)
    trainer.run()
    loaded = load_checkpoint(out)
    assert loaded.vocab.chars == tuple(sorted(set(text)))  # delimiters too, for records
    for name, param in trainer.model.params.items():
        np.testing.assert_array_equal(loaded.model.params[name], param)
    pieces = list(generate(loaded.model, loaded.vocab, Sampling(length=20), seed=0,
                           prime=text[:5]))
    assert pieces[-1].done and len("".join(piece.text for piece in pieces)) <= 20


# -- signals and kills, in real processes ---------------------------------------------------

TRAIN_FOREVER = ["--hidden-size", "8", "--embedding-size", "4", "--seq-length", "16",
                 "--batch-size", "4", "--max-steps", "10000000", "--eval-every", "50"]


def start_training(text_file, out, *extra, own_group=False):
    """``charrnn train`` in a new process (with ``own_group``, leading a process group of
    its own, as a job in a terminal does)."""
    command = [sys.executable, "-m", "charrnn", "train", str(text_file), "--out", str(out),
               *TRAIN_FOREVER, *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=own_group)


def modified(path) -> int | None:
    return path.stat().st_mtime_ns if path.exists() else None


def wait_for(path, process, timeout=120, before=None):
    """Wait until ``process`` has written ``path`` (again, when it was modified at ``before``)."""
    deadline = time.monotonic() + timeout
    while modified(path) in (None, before):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.05)


POSIX_SIGNALS = pytest.mark.skipif(sys.platform == "win32",
                                   reason="Windows delivers no signal to another process")


@POSIX_SIGNALS
@pytest.mark.parametrize("signal_number, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_training_after_saving(tmp_path, tiny_text_file, signal_number, status):
    out = tmp_path / "m.npz"
    process = start_training(tiny_text_file, out, "--threads", "2")
    wait_for(out, process)
    process.send_signal(signal_number)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == status, stderr
    assert "Traceback" not in stderr and stdout == ""
    step = load_checkpoint(out).training["position"]["step"]
    assert f"stopped at step {step}; saved {out}" in stderr
    assert not blocks_of(process.pid)


@POSIX_SIGNALS
def test_ctrl_c_to_the_whole_job_still_finishes_the_step_with_worker_processes(
        tmp_path, tiny_text_file):
    """Ctrl-C in a terminal signals every process of the job, the worker processes too:
    they go on, and the step finishes and is saved."""
    out = tmp_path / "m.npz"
    process = start_training(tiny_text_file, out, "--threads", "2", own_group=True)
    wait_for(out, process)
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    step = load_checkpoint(out).training["position"]["step"]
    assert f"stopped at step {step}; saved {out}" in stderr and "Traceback" not in stderr
    assert not blocks_of(process.pid)


@pytest.mark.skipif(not SHM.is_dir(), reason="lists shared memory in /dev/shm (Linux)")
def test_a_run_killed_outright_leaves_no_shared_memory(tmp_path, tiny_text_file):
    """The workers end when the killed process's pipes close, and Python's resource tracker
    then unlinks the block."""
    out = tmp_path / "m.npz"
    process = start_training(tiny_text_file, out, "--threads", "2")
    wait_for(out, process)
    assert blocks_of(process.pid)
    process.kill()
    process.communicate(timeout=60)
    deadline = time.monotonic() + 60
    while blocks_of(process.pid):
        assert time.monotonic() < deadline, blocks_of(process.pid)
        time.sleep(0.1)


@pytest.mark.slow
def test_sigkill_while_saving_never_leaves_a_broken_checkpoint(tmp_path, tiny_text_file):
    """Saving every step, killed at random moments: what is on disk always loads."""
    rng = np.random.default_rng(0)
    out = tmp_path / "m.npz"
    steps_seen = []
    for _ in range(12):
        before = modified(out)
        process = start_training(tiny_text_file, out, "--save-every", "1",
                                 *(["--resume", str(out)] if out.exists() else []))
        wait_for(out, process, before=before)  # however slowly the process starts
        time.sleep(rng.uniform(0.05, 0.6))
        process.kill()
        process.communicate()
        steps_seen.append(load_checkpoint(out).training["position"]["step"])
    assert steps_seen == sorted(steps_seen) and steps_seen[-1] > steps_seen[0]


def test_weights_that_stop_being_finite_are_never_saved(tmp_path):
    out = tmp_path / "m.npz"
    tiny_trainer(out, max_steps=4, eval_every=2).run()
    good = load_checkpoint(out).model.params["output.weight"].copy()
    trainer = tiny_trainer(out, max_steps=4, eval_every=2, lr=1e300)
    with pytest.raises(TrainingDiverged, match="this run saved no checkpoint"):
        trainer.run()
    np.testing.assert_array_equal(load_checkpoint(out).model.params["output.weight"], good)


def test_a_stop_limit_given_on_resume_replaces_the_saved_ones():
    saved = TrainSettings(max_epochs=1, max_time=60)
    settings = resumed_settings(saved, {"max_steps": 50, "cell": "gru"})
    assert (settings.max_steps, settings.max_epochs, settings.max_time) == (50, None, None)
    assert resumed_settings(saved, {"lr": 1e-3}) == TrainSettings(max_epochs=1, max_time=60,
                                                                  lr=1e-3)


def test_checkpoints_get_the_usual_permissions(tmp_path):
    out = tmp_path / "m.npz"
    tiny_trainer(out, max_steps=1).run()
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_resume_with_nothing_left_to_train_still_writes_its_output(tmp_path):
    first = tmp_path / "first.npz"
    tiny_trainer(first, max_steps=4, eval_every=2).run()
    trainer = resume_trainer(load_checkpoint(first), lambda settings: tiny_trainer(first).corpus,
                             tmp_path / "copy.npz", {"max_steps": 3})
    trainer.run()
    assert load_checkpoint(tmp_path / "copy.npz").training["position"]["step"] == 4


def test_two_runs_at_once_on_one_text_and_one_out(tmp_path):
    """Two `train` runs on the same file, saving to the same --out at every step: whatever is
    at --out always loads, the last save wins, and the corpus cache holds one whole entry."""
    text = tmp_path / "text.txt"
    text.write_text(TINY_TEXT * 2000, encoding="utf-8")  # 780 KB: the cache takes a moment
    out = tmp_path / "out" / "m.npz"
    environment = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    processes = [subprocess.Popen(
        [sys.executable, "-m", "charrnn", "train", str(text), "--out", str(out), "--seed", seed,
         "--max-steps", "40", "--save-every", "1", *TRAIN_FOREVER[:8]],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
        for seed in ("1", "2")]
    loads = 0
    while any(process.poll() is None for process in processes):
        if out.exists():
            load_checkpoint(out)  # never half-written
            loads += 1
    for process in processes:
        _, stderr = process.communicate()
        assert process.returncode == 0 and "Traceback" not in stderr, stderr
    final = load_checkpoint(out).training
    assert final["position"]["step"] == 40 and final["settings"]["seed"] in (1, 2)
    assert loads > 0 and [path.name for path in out.parent.iterdir()] == ["m.npz"]
    [entry] = (tmp_path / "xdg" / "charrnn" / "corpora").iterdir()
    assert cache.load(cache.entry_for(entry.parent, str(text), encoding="utf-8", errors="strict",
                                      delimiter=None)) is not None


def test_keep_last_keeps_the_latest_step_checkpoints(tmp_path):
    out = tmp_path / "m.npz"
    others = [tmp_path / name for name in ("m.step99.npz", "mm.step2.npz", "m.step2.npz.tmp")]
    for path in others:  # a later step of another run, another output, not a checkpoint
        path.write_bytes(b"")
    tiny_trainer(out, max_steps=7, eval_every=4, save_every=2, keep_last=2).run()
    steps = sorted(path.name for path in tmp_path.glob("m.step*.npz"))
    assert steps == ["m.step4.npz", "m.step6.npz", "m.step99.npz"]
    assert load_checkpoint(tmp_path / "m.step6.npz").training["position"]["step"] == 6
    assert load_checkpoint(out).training["position"]["step"] == 7
    assert all(path.exists() for path in others)
    resumed = resume_trainer(load_checkpoint(out), lambda settings: tiny_trainer(out).corpus,
                             out, {"max_steps": 12, "keep_last": 1})
    resumed.run()
    assert sorted(path.name for path in tmp_path.glob("m.step*.npz")) == ["m.step12.npz",
                                                                          "m.step99.npz"]


def test_keep_last_needs_save_every():
    with pytest.raises(SettingNeeded):
        TrainSettings(keep_last=2)
    with pytest.raises(SettingNeeded):
        resumed_settings(TrainSettings(), {"keep_last": 2})
    assert resumed_settings(TrainSettings(save_every=5), {"keep_last": 2}).keep_last == 2
