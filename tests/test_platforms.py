"""Other platforms, as far as this one can play them: no fork (as on Windows), a console in
cp1252, paths with spaces and non-ASCII names; and no shared memory left behind."""

from __future__ import annotations

import builtins
import io
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import SHM, blocks_of

from charrnn.cli import cli
from charrnn.saving.checkpoint import load_checkpoint, save_checkpoint
from charrnn.training import parallel
from charrnn.training.settings import available_cores, physical_memory

SMALL = ["--hidden-size", "16", "--embedding-size", "8", "--seq-length", "16",
         "--batch-size", "4"]

# A sitecustomize module that makes this Python a platform without fork, as Windows is:
# multiprocessing offers spawn alone, its default, and os.fork fails.
NO_FORK = '''
import multiprocessing
import multiprocessing.context
import os


def _no_fork(*args, **kwargs):
    raise OSError("this platform cannot fork (simulated)")


os.fork = _no_fork
for _method in ("fork", "forkserver"):
    multiprocessing.context._concrete_contexts.pop(_method, None)
multiprocessing.get_all_start_methods = lambda: ["spawn"]
multiprocessing.set_start_method("spawn", force=True)
'''


def charrnn(*args, env=None, timeout=300) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "charrnn", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, encoding="utf-8",
                          errors="replace", timeout=timeout, env=env)


def without_fork(tmp_path: Path) -> dict:
    """The environment of a Python that plays a platform without fork."""
    folder = tmp_path / "no-fork"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(NO_FORK, encoding="utf-8")
    paths = [str(folder), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def test_the_platform_without_fork_has_none(tmp_path):
    """The premise of the tests that use it."""
    result = subprocess.run(
        [sys.executable, "-c", "import multiprocessing, os\n"
         "print(multiprocessing.get_all_start_methods())\n"
         "try:\n    os.fork()\nexcept OSError as error:\n    print(error)\n"
         "multiprocessing.get_context('forkserver')"],
        capture_output=True, text=True, env=without_fork(tmp_path), timeout=60)
    assert result.stdout == "['spawn']\nthis platform cannot fork (simulated)\n"
    assert "cannot find context for 'forkserver'" in result.stderr


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(),
                    reason="compares with workers started by fork")
def test_training_without_fork_gives_the_weights_of_training_with_fork(tmp_path, tiny_text_file,
                                                                       monkeypatch):
    args = ["train", tiny_text_file, "--threads", 2, "--max-steps", 6, "--eval-every", 3,
            "--dropout", 0.1, *SMALL]
    spawned = charrnn(*args, "--out", tmp_path / "spawned.npz", env=without_fork(tmp_path))
    assert spawned.returncode == 0 and "; 2 threads\n" in spawned.stderr, spawned.stderr
    monkeypatch.setattr(parallel, "start_method", lambda: "fork")
    forked = CliRunner().invoke(cli, [*map(str, args), "--out", str(tmp_path / "forked.npz")])
    assert forked.exit_code == 0 and "; 2 threads\n" in forked.stderr, forked.output
    expected = load_checkpoint(tmp_path / "forked.npz").model.params
    for name, param in load_checkpoint(tmp_path / "spawned.npz").model.params.items():
        np.testing.assert_array_equal(param, expected[name], err_msg=name)


def test_every_command_takes_odd_paths_and_a_cp1252_console(tmp_path):
    """Folders and files with spaces and non-ASCII names; standard output and error in
    Windows' cp1252, which lacks some of the text's characters: never a traceback, and
    one note where a table had to replace characters."""
    folder = tmp_path / "mes données ü"
    folder.mkdir()
    text = folder / "notes d'été ☃.txt"
    text.write_text("héllo wörld ☃ “quoted” ✓\n" * 30, encoding="utf-8")
    model, exported, page = folder / "modèle 1.npz", folder / "é x.npz", folder / "pâge.html"
    env = {**os.environ, "PYTHONIOENCODING": "cp1252"}
    commands = [("train", text, "--out", model, "--max-steps", 3, "--threads", 2, *SMALL),
                ("train", text, "--resume", model, "--max-steps", 4),
                ("sample", model, "--length", 40, "--prime", "h"),
                ("eval", model, text), ("info", model), ("export", model, exported),
                ("show", model, text), ("show", model, text, "--html", page)]
    for command in commands:
        result = charrnn(*command, env=env)
        assert result.returncode == 0 and "Traceback" not in result.stderr, (command, result)
        if command[0] == "info":
            assert result.stderr.count("note: this console's encoding (cp1252)") == 1
    assert load_checkpoint(exported).training["resumable"] is False and page.stat().st_size > 0


@pytest.mark.skipif(not SHM.is_dir(), reason="lists shared memory in /dev/shm (Linux)")
def test_a_run_that_ends_leaves_no_shared_memory(tmp_path, tiny_text_file):
    process = subprocess.Popen(
        [sys.executable, "-m", "charrnn", "train", str(tiny_text_file), "--out",
         str(tmp_path / "m.npz"), "--threads", "2", "--max-steps", "3", *SMALL],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0 and "; 2 threads\n" in stderr, stderr
    assert not blocks_of(process.pid)


def test_the_cores_are_counted_where_the_platform_has_no_affinity_mask(monkeypatch):
    for name in ("process_cpu_count", "sched_getaffinity"):
        monkeypatch.delattr(os, name, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert available_cores() == 1
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert available_cores() == 6


def test_the_memory_is_unknown_where_the_platform_has_no_sysconf(monkeypatch):
    monkeypatch.delattr(os, "sysconf", raising=False)
    assert physical_memory() is None


def test_checkpoints_are_never_opened_in_text_mode(tmp_path, tiny_checkpoint, monkeypatch):
    """No line-ending translation can touch them, whatever the platform."""
    modes = []
    real_open = io.open

    def recording_open(file, mode="r", *args, **kwargs):
        modes.append(mode)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", recording_open)
    monkeypatch.setattr(io, "open", recording_open)
    checkpoint = load_checkpoint(tiny_checkpoint)
    save_checkpoint(tmp_path / "copy.npz", checkpoint)
    load_checkpoint(tmp_path / "copy.npz")
    assert modes and all("b" in mode for mode in modes), modes
