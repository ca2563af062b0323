"""Training end to end: the model learns, stops where told, resumes exactly, and fails safely."""

from __future__ import annotations

import numpy as np
import pytest

from charrnn.checkpoint import load_checkpoint
from charrnn.corpus import build_corpus
from charrnn.evaluate import score_tokens
from charrnn.model import ModelConfig
from charrnn.sample import generate
from charrnn.errors import CharrnnError
from charrnn.train import TrainingDiverged, TrainSettings, new_trainer, resume_trainer
from charrnn.vocab import Vocabulary

from conftest import TINY_TEXT


def make_trainer(text, out, *, records=False, hidden_size=32, **settings):
    settings = TrainSettings(records=records, **settings)
    corpus = build_corpus(text, records=records, delimiter="\n",
                          val_fraction=settings.val_fraction)
    config = ModelConfig(corpus.vocab.size, embedding_size=8, hidden_size=hidden_size,
                         num_layers=2)
    return new_trainer(corpus, config, settings, out)


def test_hello_is_learned_as_a_record_and_ends_by_itself(tmp_path):
    trainer = make_trainer("hello", tmp_path / "hello.npz", records=True, hidden_size=16,
                           lr=1e-2, max_steps=100, lr_schedule="constant")
    assert trainer.corpus.vocab == Vocabulary(("e", "h", "l", "o"))
    trainer.run()
    pieces = list(generate(trainer.model, trainer.corpus.vocab, seed=0, temperature=0,
                           length=20))
    assert "".join(piece.text for piece in pieces) == "hello"
    assert pieces[-1].done and pieces[-1].stop_reason == "end"


def test_overfits_a_short_text(tmp_path):
    text = "It was the best of times, it was the worst of times, it was the age of wisdom."
    trainer = make_trainer(text, tmp_path / "short.npz", batch_size=1, seq_length=100, lr=1e-2,
                           max_steps=200, lr_schedule="constant")
    trainer.run()
    assert score_tokens(trainer.model, trainer.corpus.train_tokens).nats_per_char < 0.05


def test_validation_loss_falls(tmp_path):
    trainer = make_trainer(TINY_TEXT, tmp_path / "tiny.npz", seq_length=16, batch_size=4,
                           max_steps=60, eval_every=20, val_fraction=0.1, lr_schedule="constant")
    before = trainer.validate()
    events = []
    trainer.run(events.append)
    evaluations = [event for event in events if event.kind == "eval"]
    assert [event.step for event in evaluations] == [20, 40, 60]
    assert all(entry["grad_norm"] > 0 and entry["train_loss"] > 0 for entry in trainer.history)
    assert evaluations[-1].val_loss < before - 0.5
    assert events[-1].kind == "end" and events[-1].checkpoint == str(tmp_path / "tiny.npz")


@pytest.mark.parametrize("limit, expected_step", [
    ({"max_steps": 7}, 7),
    ({"max_epochs": 2}, None),  # two full epochs, however many windows that is
])
def test_stops_at_its_limit(tmp_path, limit, expected_step):
    trainer = make_trainer(TINY_TEXT, tmp_path / "x.npz", seq_length=16, batch_size=4,
                           eval_every=1000, **limit)
    trainer.run()
    if expected_step is None:
        assert trainer.position.epoch == 2 and trainer.position.offset == 0
        expected_step = 2 * trainer.windows.num_windows
    assert trainer.position.step == expected_step
    assert load_checkpoint(tmp_path / "x.npz").training["position"]["step"] == expected_step


def test_stop_request_finishes_the_step_and_saves(tmp_path):
    trainer = make_trainer(TINY_TEXT, tmp_path / "x.npz", seq_length=16, batch_size=4,
                           max_steps=100)
    outcome = trainer.run(stop_requested=lambda: trainer.position.step >= 3)
    assert outcome == "interrupted"
    assert load_checkpoint(tmp_path / "x.npz").training["position"]["step"] == 3


@pytest.mark.parametrize("extra, interrupted", [
    # a run of 12 steps, resumed with --max-steps 24: the same only at a constant rate
    ({"lr_schedule": "constant"}, False),
    # schedules follow the planned length: a run planned for 24 steps, stopped at 12
    ({"seq_length_schedule": "4:16", "dropout": 0.1, "lr_schedule": "cosine"}, True),
])
def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, extra, interrupted):
    common = dict(seq_length=16, batch_size=3, eval_every=4, **extra)
    straight = make_trainer(TINY_TEXT, tmp_path / "straight.npz", max_steps=24, **common)
    straight.run()

    first_half = make_trainer(TINY_TEXT, tmp_path / "resumed.npz",
                              max_steps=24 if interrupted else 12, **common)
    first_half.run(stop_requested=lambda: interrupted and first_half.position.step == 12)
    checkpoint = load_checkpoint(tmp_path / "resumed.npz")
    corpus = build_corpus(TINY_TEXT, records=False, delimiter="\n", val_fraction=0.05,
                          vocab=checkpoint.vocab)
    settings = TrainSettings(max_steps=24, **common)
    second_half = resume_trainer(checkpoint, corpus, settings, tmp_path / "resumed.npz")
    assert second_half.position.step == 12
    second_half.run()

    assert second_half.position == straight.position
    assert second_half.optimizer.step == straight.optimizer.step == 24
    for name, value in straight.model.params.items():
        np.testing.assert_array_equal(second_half.model.params[name], value, err_msg=name)
        np.testing.assert_array_equal(second_half.optimizer.second_moment[name],
                                      straight.optimizer.second_moment[name])
    evaluated = [4, 8, 16, 20, 24] if interrupted else [4, 8, 12, 16, 20, 24]
    assert [entry["step"] for entry in second_half.history] == evaluated


def test_divergence_stops_with_a_clear_error_and_keeps_the_checkpoint(tmp_path):
    out = tmp_path / "x.npz"
    trainer = make_trainer(TINY_TEXT, out, seq_length=16, batch_size=4, max_steps=4,
                           eval_every=2)
    trainer.run()
    saved = load_checkpoint(out).model.params["output.bias"].copy()
    trainer.model.params["output.bias"][0] = np.nan
    trainer.settings = TrainSettings(seq_length=16, batch_size=4, max_steps=8, eval_every=2)
    with pytest.raises(TrainingDiverged, match="lower --lr"):
        trainer.run()
    np.testing.assert_array_equal(load_checkpoint(out).model.params["output.bias"], saved)


def test_records_never_score_the_start_after_an_end(tmp_path):
    trainer = make_trainer("ab\nba\n" * 10, tmp_path / "x.npz", records=True, seq_length=5,
                           batch_size=2, max_steps=1)
    inputs, targets = trainer.windows.window(0)
    # Whatever the window, a <START> target would be unscoreable: the loss ignores them.
    total, count, _ = trainer.model.loss(inputs, targets, trainer.model.zero_state(2))
    assert count == int((targets != 0).sum()) < targets.size


def test_cosine_schedule_decays_to_a_tenth_and_warmup_ramps(tmp_path):
    trainer = make_trainer(TINY_TEXT, tmp_path / "x.npz", seq_length=16, batch_size=4,
                           max_steps=10, lr=1e-2, lr_schedule="cosine", warmup_steps=4)
    rates = []
    trainer.run(lambda event: rates.append(trainer.learning_rate()) if event.kind == "step" else None)
    trainer.position.step = 0
    assert trainer.learning_rate() == pytest.approx(1e-2 / 4)
    assert rates[2] == pytest.approx(1e-2 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 0.3))))
    assert rates[-1] == pytest.approx(1e-3)  # the rate the next step would use


def test_plateau_halves_the_rate_and_patience_stops_early(tmp_path):
    trainer = make_trainer(TINY_TEXT, tmp_path / "x.npz", seq_length=16, batch_size=4,
                           max_steps=1000, eval_every=1, lr_schedule="plateau", patience=4, lr=2e-3,
                           val_fraction=0.2)
    trainer.validate = iter([3.0, 2.0, 2.5, 2.4, 2.2, 2.1, 9.9]).__next__
    assert trainer.run() == "no improvement"
    assert trainer.position.step == 6
    assert trainer.best_val_loss == 2.0
    assert trainer.lr_scale == 0.25
    assert [entry["lr"] for entry in trainer.history] == pytest.approx(
        [2e-3, 2e-3, 2e-3, 2e-3, 1e-3, 1e-3])  # the rate in use up to each evaluation


def test_seq_length_schedule_grows_the_windows(tmp_path):
    trainer = make_trainer(TINY_TEXT, tmp_path / "x.npz", batch_size=2, max_steps=20,
                           seq_length_schedule="5:25")
    lengths = []
    trainer.run(lambda event: lengths.append(trainer.seq_length()) if event.kind == "step" else None)
    assert trainer.windows.seq_length == 25
    # After step s of 20, the next window has 5 + 20 * min(1, (s / 20) / 0.5) steps.
    assert lengths == [round(5 + 20 * min(1, step / 20 / 0.5)) for step in range(1, 21)]


def test_a_bad_seq_length_schedule_is_refused(tmp_path):
    with pytest.raises(CharrnnError, match="START:END"):
        make_trainer(TINY_TEXT, tmp_path / "x.npz", seq_length_schedule="25-100")
