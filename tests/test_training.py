"""Training end to end: the model learns, stops where told, resumes exactly, and fails safely."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, replace
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TINY_TEXT, make_trainer

from charrnn.cli import cli
from charrnn.data.corpus import build_corpus
from charrnn.data.vocab import START_ID, Vocabulary
from charrnn.errors import CharrnnError
from charrnn.generation.sampling import Sampling, generate
from charrnn.nn.scoring import score_tokens
from charrnn.saving.checkpoint import load_checkpoint
from charrnn.training.run import start_run
from charrnn.training.schedules import Progress, learning_rate, window_length
from charrnn.training.settings import (DEFAULT_MAX_EPOCHS, REFERENCE_TEXT_CHARS, STANDARD,
                                       STOP_LIMITS, TIME_BUDGET_DEFAULTS, Recipe, TrainSettings,
                                       recipe)
from charrnn.training.state import saved_settings
from charrnn.training.trainer import TrainingDiverged, resume_trainer


def test_hello_is_learned_as_a_record_and_ends_by_itself(tmp_path):
    trainer = make_trainer("hello", tmp_path / "hello.npz", records=True, hidden_size=16,
                           lr=1e-2, max_steps=100, lr_schedule="constant")
    assert trainer.corpus.vocab == Vocabulary(("e", "h", "l", "o"))
    trainer.run()
    pieces = list(generate(trainer.model, trainer.corpus.vocab,
                           Sampling(length=20, temperature=0), seed=0))
    assert "".join(piece.text for piece in pieces) == "hello"
    assert pieces[-1].done and pieces[-1].stop_reason == "end"


def test_overfits_a_short_text(tmp_path):
    text = "It was the best of times, it was the worst of times, it was the age of wisdom."
    trainer = make_trainer(text, tmp_path / "short.npz", batch_size=1, seq_length=100, lr=1e-2,
                           max_steps=200, lr_schedule="constant", hidden_size=32)
    trainer.run()
    assert score_tokens(trainer.model, trainer.corpus.train_tokens).nats_per_char < 0.05


def test_validation_loss_falls(tmp_path):
    trainer = make_trainer(TINY_TEXT, tmp_path / "tiny.npz", max_steps=60, eval_every=20,
                           val_fraction=0.1, lr_schedule="constant", hidden_size=32)
    before = trainer.validate()
    events = []
    trainer.run(events.append)
    evaluations = [event for event in events if event.kind == "eval"]
    assert [event.step for event in evaluations] == [20, 40, 60]
    assert all(entry["grad_norm"] > 0 and entry["train_loss"] > 0 for entry in trainer.history)
    assert evaluations[-1].val_loss < before - 0.5
    assert events[-1].kind == "end" and events[-1].checkpoint == str(tmp_path / "tiny.npz")


@pytest.mark.parametrize("limit, expected_epochs", [
    ({"max_steps": 7}, None),
    ({"max_epochs": 2}, 2),  # two full epochs, however many windows that is
    ({}, DEFAULT_MAX_EPOCHS),  # no limit given
])
def test_stops_at_its_limit(tmp_path, limit, expected_epochs):
    trainer = make_trainer(TINY_TEXT, tmp_path / "x.npz", eval_every=1000, **limit)
    trainer.run()
    expected_step = limit.get("max_steps")
    if expected_epochs is not None:
        assert trainer.position.epoch == expected_epochs and trainer.position.offset == 0
        expected_step = expected_epochs * trainer.windows.num_windows
    assert trainer.position.step == expected_step
    assert load_checkpoint(tmp_path / "x.npz").training["position"]["step"] == expected_step


def test_stop_request_finishes_the_step_and_saves(tmp_path):
    trainer = make_trainer(TINY_TEXT, tmp_path / "x.npz", max_steps=100)
    outcome = trainer.run(stop_requested=lambda: trainer.position.step >= 3)
    assert outcome == "interrupted"
    assert load_checkpoint(tmp_path / "x.npz").training["position"]["step"] == 3


def tiny_text_reader(checkpoint):
    """What resume_trainer reads the training text with: TINY_TEXT laid out by the settings."""
    def read_corpus(settings):
        return build_corpus(TINY_TEXT, records=settings.records, delimiter=settings.delimiter,
                            val_fraction=settings.val_fraction, vocab=checkpoint.vocab)

    return read_corpus


@pytest.mark.parametrize("cell, threads, resumed_threads", [
    ("lstm", 1, 2), ("lstm", 2, 1), ("lstm-peephole", 1, 1), ("lstm-cifg", 1, 1)])
@pytest.mark.parametrize("extra, interrupted", [
    # a run of 12 steps, resumed with --max-steps 24: the same only at a constant rate
    ({"lr_schedule": "constant"}, False),
    # schedules follow the planned length: a run planned for 24 steps, stopped at 12
    ({"seq_length_schedule": "4:16", "dropout": 0.1, "lr_schedule": "cosine"}, True),
])
def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, extra, interrupted, cell,
                                                         threads, resumed_threads):
    """Also on a machine with another number of workers: the shards are the checkpoint's."""
    common = dict(seq_length=16, batch_size=3, eval_every=4, shards=3, cell=cell, **extra)
    straight = make_trainer(TINY_TEXT, tmp_path / "straight.npz", max_steps=24, threads=threads,
                            **common)
    straight.run()

    first_half = make_trainer(TINY_TEXT, tmp_path / "resumed.npz", threads=threads,
                              max_steps=24 if interrupted else 12, **common)
    first_half.run(stop_requested=lambda: interrupted and first_half.position.step == 12)
    checkpoint = load_checkpoint(tmp_path / "resumed.npz")

    second_half = resume_trainer(checkpoint, tiny_text_reader(checkpoint), tmp_path /
                                 "resumed.npz", {"max_steps": 24, "threads": resumed_threads})
    assert second_half.position.step == 12
    assert second_half.workers.num_workers == resumed_threads
    assert second_half.workers.num_shards == 3
    second_half.run()

    assert second_half.position == straight.position
    assert second_half.optimizer.step == straight.optimizer.step == 24
    for name, value in straight.model.params.items():
        np.testing.assert_array_equal(second_half.model.params[name], value, err_msg=name)
        np.testing.assert_array_equal(second_half.optimizer.second_moment[name],
                                      straight.optimizer.second_moment[name])
    evaluated = [4, 8, 16, 20, 24] if interrupted else [4, 8, 12, 16, 20, 24]
    assert [entry["step"] for entry in second_half.history] == evaluated


def test_the_weights_depend_on_the_shards_not_on_the_workers(tmp_path):
    def trained(threads: int, shards: int, name: str) -> dict:
        trainer = make_trainer(TINY_TEXT, tmp_path / name, max_steps=6, dropout=0.2,
                               threads=threads, shards=shards)
        assert (trainer.workers.num_workers, trainer.workers.num_shards) == (threads, shards)
        trainer.run()
        return trainer.model.params

    one_worker, two_workers = trained(1, 2, "a.npz"), trained(2, 2, "b.npz")
    for name, param in one_worker.items():
        np.testing.assert_array_equal(param, two_workers[name], err_msg=name)
    one_shard = trained(1, 1, "c.npz")
    assert any(not np.array_equal(param, one_shard[name]) for name, param in one_worker.items())


def test_a_checkpoint_from_before_shards_keeps_cutting_its_batches_by_its_threads(tmp_path):
    trainer = make_trainer(TINY_TEXT, tmp_path / "x.npz", max_steps=2, threads=1)
    trainer.run()
    checkpoint = load_checkpoint(tmp_path / "x.npz")
    del checkpoint.training["settings"]["shards"]
    resumed = resume_trainer(checkpoint, tiny_text_reader(checkpoint), tmp_path / "x.npz")
    assert resumed.settings.shards == 1 and resumed.workers.num_shards == 1


def machine_with_cores(monkeypatch, cores: int) -> None:
    for module in ("charrnn.training.settings", "charrnn.training.trainer"):
        monkeypatch.setattr(f"{module}.available_cores", lambda: cores)


def test_threads_default_to_the_cores_and_resume_keeps_them_up_to_the_cores(tmp_path, monkeypatch):
    machine_with_cores(monkeypatch, 3)
    trainer = make_trainer(TINY_TEXT, tmp_path / "x.npz", max_steps=2, batch_size=2, shards=4)
    assert trainer.settings.threads == 3 and trainer.workers.num_workers == 2  # one row each
    trainer.run()
    checkpoint = load_checkpoint(tmp_path / "x.npz")
    assert checkpoint.training["settings"]["threads"] == 3
    read_corpus = tiny_text_reader(checkpoint)
    assert resume_trainer(checkpoint, read_corpus, tmp_path / "x.npz").settings.threads == 3
    assert resume_trainer(checkpoint, read_corpus, tmp_path / "x.npz",
                          {"threads": 1}).workers.num_workers == 1
    # On a machine with fewer cores (or from a stranger's checkpoint): never more
    # workers than cores, unless asked.
    machine_with_cores(monkeypatch, 1)
    notes = []
    assert resume_trainer(checkpoint, read_corpus, tmp_path / "x.npz",
                          notify=notes.append).settings.threads == 1
    assert notes == ["the run used 3 workers; resuming with 1, the cores available"]
    assert resume_trainer(checkpoint, read_corpus, tmp_path / "x.npz",
                          {"threads": 2}).settings.threads == 2


def test_divergence_stops_with_a_clear_error_and_keeps_the_checkpoint(tmp_path):
    out = tmp_path / "x.npz"
    trainer = make_trainer(TINY_TEXT, out, max_steps=8, eval_every=2)
    trainer.run(stop_requested=lambda: trainer.position.step == 4)
    saved = load_checkpoint(out).model.params["output.bias"].copy()
    trainer.model.params["output.bias"][0] = np.nan
    with pytest.raises(TrainingDiverged, match=r"^training diverged at step 4 \(loss nan, "
                                               r"gradient norm nan\); this run saved no"):
        trainer.run()
    np.testing.assert_array_equal(load_checkpoint(out).model.params["output.bias"], saved)


def test_records_are_scored_each_from_its_own_start(tmp_path):
    trainer = make_trainer("ab\nba\nabba\n" * 4, tmp_path / "x.npz", records=True, max_steps=5)
    trainer.run()
    model, tokens = trainer.model, trainer.corpus.train_tokens
    together = score_tokens(model, tokens, window_length=5)  # across the records' bounds
    starts = np.flatnonzero(tokens == START_ID)
    alone = [score_tokens(model, tokens[start:end])  # <START> record <END>
             for start, end in zip(starts, [*starts[1:], len(tokens)])]
    # The <START> after each <END> is never a target, and it resets the state.
    assert together.num_scored == sum(score.num_scored for score in alone) == (
        len(tokens) - len(starts))
    assert together.total_loss == pytest.approx(sum(score.total_loss for score in alone),
                                                rel=1e-5)


def test_cosine_schedule_decays_to_zero_and_warmup_ramps():
    settings = TrainSettings(max_steps=10, lr=1e-2, lr_schedule="cosine", warmup_steps=4)
    rates = [learning_rate(settings, Progress(step, epochs=0.0, seconds=0.0))
             for step in range(11)]
    assert rates[0] == pytest.approx(1e-2 / 4 * 0.5 * (1 + np.cos(np.pi * 0.0)))  # a quarter up
    assert rates[3] == pytest.approx(1e-2 * 0.5 * (1 + np.cos(np.pi * 0.3)))
    assert rates[5] == pytest.approx(1e-2 * 0.5)  # halfway down
    assert rates[9] == pytest.approx(1e-2 * 0.5 * (1 + np.cos(np.pi * 0.9)))  # the last update
    assert rates[10] == pytest.approx(0.0, abs=1e-12)  # zero at the limit
    by_time = TrainSettings(max_time=10, lr=1e-2)  # with no step or epoch limit, by the clock
    assert learning_rate(by_time, Progress(99, epochs=3.0, seconds=5.0)) == pytest.approx(5e-3)


def test_the_learning_rate_of_each_update_is_the_schedule_s(tmp_path):
    trainer = make_trainer(TINY_TEXT, tmp_path / "x.npz", max_steps=10, eval_every=1, lr=1e-2,
                           warmup_steps=4)
    trainer.run()
    expected = [learning_rate(trainer.settings, Progress(step, 0.0, 0.0)) for step in range(10)]
    assert [entry["lr"] for entry in trainer.history] == pytest.approx(expected)


def test_plateau_halves_the_rate_and_patience_stops_early(tmp_path):
    trainer = make_trainer(TINY_TEXT, tmp_path / "x.npz", max_steps=1000, eval_every=1,
                           lr_schedule="plateau", patience=4, lr=2e-3, val_fraction=0.2)
    trainer.validate = iter([3.0, 2.0, 2.5, 2.4, 2.2, 2.1, 9.9]).__next__
    assert trainer.run() == "no improvement"
    assert trainer.position.step == 6
    assert trainer.plateau.best_val_loss == 2.0
    assert trainer.plateau.lr_scale == 0.25
    assert [entry["lr"] for entry in trainer.history] == pytest.approx(
        [2e-3, 2e-3, 2e-3, 2e-3, 1e-3, 1e-3])  # the rate in use up to each evaluation


def test_seq_length_schedule_grows_the_windows(tmp_path):
    trainer = make_trainer(TINY_TEXT, tmp_path / "x.npz", batch_size=2, max_steps=20,
                           seq_length_schedule="5:25")
    lengths = []  # of the windows trained on
    compute = trainer.loss_and_gradients
    trainer.loss_and_gradients = lambda inputs, *rest: (lengths.append(len(inputs)),
                                                        compute(inputs, *rest))[1]
    trainer.run()
    assert trainer.windows.window_length == 25
    # After s steps of 20, the window has 5 + 20 * min(1, (s / 20) / 0.5) steps.
    assert lengths == [round(5 + 20 * min(1, step / 20 / 0.5)) for step in range(20)]
    assert window_length(trainer.settings, Progress(20, 0.0, 0.0)) == 25


def test_a_bad_seq_length_schedule_is_refused(tmp_path):
    with pytest.raises(CharrnnError, match="START:END"):
        make_trainer(TINY_TEXT, tmp_path / "x.npz", seq_length_schedule="25-100")


@pytest.mark.parametrize("setting, value, message", [
    ("batch_size", "64", "batch_size is '64', not of type int"),
    ("batch_size", True, "batch_size is True, not of type int"),
    ("batch_size", 0, "batch_size is 0, not at least 1"),
    ("lr", float("nan"), "lr is nan, not above 0"),
    ("dropout", 1.0, r"dropout is 1.0, not in \[0, 1\)"),
    ("warmup_steps", -1, "warmup_steps is -1, not at least 0"),
    ("max_time", float("inf"), "max_time is inf, not at least 0"),
    ("records", 1, "records is 1, not of type bool"),
    ("seq_length_schedule", ["x" * 1000], r"seq_length_schedule is \['xxxxx"),
])
def test_settings_of_the_wrong_type_or_range_are_refused(setting, value, message):
    """As a damaged checkpoint may hold them: each one a short message naming the setting."""
    with pytest.raises(CharrnnError, match=message) as refused:
        TrainSettings(**{setting: value})
    assert len(str(refused.value)) < 100


def recipe_of(settings: TrainSettings) -> tuple:
    return (settings.lr, settings.dropout, settings.batch_size, settings.seq_length)


def as_set(recipe: Recipe) -> tuple:
    return (recipe.lr, recipe.dropout, recipe.batch_size, recipe.seq_length)


def test_a_run_by_the_clock_gets_the_recipe_of_the_shortest_budget_that_holds_it():
    """At both ends of each budget's range of --max-time, and past the last finite one."""
    starts = [0] + [seconds for seconds, _ in TIME_BUDGET_DEFAULTS[:-1]]
    for start, (seconds, recipe) in zip(starts, TIME_BUDGET_DEFAULTS):
        for max_time in (start + 0.5, seconds if math.isfinite(seconds) else start * 10):
            assert recipe_of(TrainSettings(max_time=max_time)) == as_set(recipe), max_time
    assert len({as_set(recipe) for _, recipe in TIME_BUDGET_DEFAULTS}) > 1


def test_on_tinyshakespeare_the_text_changes_no_recipe():
    for seconds in (60, 200, 201, 500, 501, 1200, 1201, 5000):
        assert (recipe_of(TrainSettings(max_time=seconds, text_chars=REFERENCE_TEXT_CHARS))
                == recipe_of(TrainSettings(max_time=seconds))), seconds


@pytest.mark.parametrize("max_time, text_chars, dropout, cell", [
    (120, REFERENCE_TEXT_CHARS // 10, 0.2, "lstm"),  # read as often as tinyshakespeare in 1,200 s
    (120, REFERENCE_TEXT_CHARS // 2, 0.0, "lstm-cifg"),  # ... in 240 s
    (300, REFERENCE_TEXT_CHARS // 2, 0.2, "lstm"),   # ... in 600 s
    (120, REFERENCE_TEXT_CHARS * 4, 0.0, "lstm-cifg"),  # ... in 30 s
    (300, REFERENCE_TEXT_CHARS * 4, 0.0, "lstm-cifg"),  # ... in 75 s
    (600, REFERENCE_TEXT_CHARS * 4, 0.0, "lstm"),    # ... in 150 s: a long run keeps its cell
    (1000, REFERENCE_TEXT_CHARS // 100, 0.2, "lstm"),  # the standard width's strongest
    (1800, REFERENCE_TEXT_CHARS * 100, 0.35, "lstm"),  # the wide recipe, whatever the text
    (1800, REFERENCE_TEXT_CHARS // 100, 0.35, "lstm"),
])
def test_a_run_by_the_clock_takes_the_dropout_and_cell_of_the_epochs_its_text_allows(
        max_time, text_chars, dropout, cell):
    settings = TrainSettings(max_time=max_time, text_chars=text_chars)
    assert settings.dropout == dropout
    assert recipe(None, None, max_time, text_chars).cell == cell
    plain = TrainSettings(max_time=max_time)  # the rest follows the steps, not the text
    assert (settings.lr, settings.batch_size, settings.seq_length) == (
        plain.lr, plain.batch_size, plain.seq_length)


def test_the_texts_length_is_not_a_setting_and_the_dropout_it_chose_is_kept():
    settings = TrainSettings(max_time=120, text_chars=REFERENCE_TEXT_CHARS // 10)
    assert "text_chars" not in asdict(settings)
    assert replace(settings, lr=1e-3).dropout == 0.2
    stored = json.loads(json.dumps({"settings": asdict(settings)}))
    assert saved_settings(SimpleNamespace(training=stored)) == settings


@pytest.mark.parametrize("limits", [{}, {"max_steps": 10}, {"max_epochs": 1},
                                    {"max_time": 120, "max_steps": 10},
                                    {"max_time": 10_000, "max_epochs": 1}])
def test_a_run_not_limited_by_time_alone_gets_the_standard_recipe(limits):
    assert recipe_of(TrainSettings(**limits)) == as_set(STANDARD)


@pytest.mark.parametrize("limits, given", [
    ({"max_time": 120}, {"lr": 1e-3}),
    ({"max_time": 10_000}, {"dropout": 0.0, "seq_length": 50}),
    ({}, {"lr": 1e-3, "dropout": 0.5, "batch_size": 8}),
])
def test_given_values_win_over_any_recipe(limits, given):
    settings = TrainSettings(**limits, **given)
    chosen = replace(recipe(*(limits.get(name) for name in STOP_LIMITS)), **given)
    assert recipe_of(settings) == as_set(chosen)


@pytest.mark.parametrize("settings, hidden_size, cell", [
    ({"max_time": 1800}, 512, "lstm"), ({"max_time": 900}, 256, "lstm"),
    ({"max_time": 501}, 256, "lstm"), ({"max_time": 500}, 256, "lstm-cifg"),
    ({"max_steps": 10}, 256, "lstm"), ({}, 256, "lstm"),
    ({"max_time": 120, "max_steps": 10}, 256, "lstm"),
    ({"max_time": 1800, "hidden_size": 64}, 64, "lstm"),
    ({"max_time": 120, "cell": "gru"}, 256, "gru"), ({"max_time": 900, "cell": "lstm-cifg"},
                                                     256, "lstm-cifg"),
])
def test_the_width_and_cell_of_a_new_model_follow_the_time_budget(tmp_path, settings,
                                                                  hidden_size, cell):
    text = tmp_path / "text.txt"  # as long as tinyshakespeare: its recipes unchanged
    text.write_text("To be, or not to be, that is the question.\n" * (REFERENCE_TEXT_CHARS // 40))
    trainer = start_run([str(text)], str(tmp_path / "x.npz"),
                        {"threads": 1, **settings}, notify=lambda note: None)
    assert (trainer.model.config.hidden_size, trainer.model.config.cell) == (hidden_size, cell)


def test_a_short_run_on_a_short_text_trains_the_lstm(tmp_path, tiny_text_file):
    """Read hundreds of times in 120 s, it gets the LSTM with the dropout of a long run."""
    trainer = start_run([str(tiny_text_file)], str(tmp_path / "x.npz"),
                        {"threads": 1, "max_time": 120}, notify=lambda note: None)
    assert (trainer.model.config.cell, trainer.settings.dropout) == ("lstm", 0.2)


def test_the_defaults_chosen_for_a_budget_are_saved_and_kept_on_resume(tmp_path,
                                                                      tiny_text_file):
    out = tmp_path / "x.npz"
    result = CliRunner().invoke(cli, ["train", str(tiny_text_file), "--out", str(out),
                                      "--max-time", "1", "--hidden-size", "8"])
    assert result.exit_code == 0, result.output
    checkpoint = load_checkpoint(out)
    # A second of a tiny text reads it as often as hours of tinyshakespeare: dropout.
    assert (checkpoint.training["settings"]["lr"], checkpoint.training["settings"]["dropout"]) \
        == (5e-3, 0.2)
    read_corpus = tiny_text_reader(checkpoint)
    resumed = resume_trainer(checkpoint, read_corpus, out, {"max_steps": 1000}).settings
    assert (resumed.lr, resumed.dropout) == (5e-3, 0.2)


def test_settings_survive_the_checkpoints_json():
    """Whole numbers where floats are expected (JSON may write 1.0 as 1), None, booleans and
    empty strings: a checkpoint's settings read back as they were written."""
    settings = TrainSettings(lr=1, max_epochs=2, patience=None, keep_best=True, delimiter="")
    stored = json.loads(json.dumps({"settings": asdict(settings)}))
    assert saved_settings(SimpleNamespace(training=stored)) == settings
