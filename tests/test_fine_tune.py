"""Fine-tuning (--init-from): a new run that starts from a trained model's weights, in its
vocabulary extended by the new text's characters."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_trainer

from charrnn.cli import cli
from charrnn.data.corpus import build_corpus
from charrnn.data.vocab import Vocabulary
from charrnn.nn.model import ModelConfig, init_params
from charrnn.nn.scoring import score_text
from charrnn.saving.checkpoint import load_checkpoint
from charrnn.saving.shipped import pretrained_model
from charrnn.training.fine_tune import extended_params, fine_tuned_config, new_characters
from charrnn.training.settings import TrainSettings
from charrnn.training.trainer import new_trainer, resume_trainer

SMALL = ["--hidden-size", "16", "--embedding-size", "8", "--seq-length", "16",
         "--batch-size", "4"]
OLD_TEXT = "emma\nolivia\nava\nmia\nsofia\nella\nlia\nmila\n" * 8
# New records with new characters first; the held-out last tenth uses only old ones.
NEW_TEXT = "zoë\nzara\nyves\n" * 4 + OLD_TEXT[: len(OLD_TEXT) // 2]
VAL_RECORDS = 6  # a tenth of NEW_TEXT's 60 records


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_extension_keeps_every_old_row_and_starts_new_ones_fresh(rng):
    old, new = Vocabulary(("b", "d")), Vocabulary(("a", "b", "c", "d"))
    assert new_characters(old, new) == ["a", "c"]
    old_params = init_params(ModelConfig(old.size, 3, 5, 1), rng)
    old_params["output.bias"][:] = [-9.0, 0.5, 1.0, -2.0]  # <START> far below the rest
    fresh = init_params(ModelConfig(new.size, 3, 5, 1), rng)
    params = extended_params(old_params, old, new, fresh)
    # ids: old <START> <END> b d -> new <START> <END> a b c d
    for old_id, new_id in [(0, 0), (1, 1), (2, 3), (3, 5)]:
        np.testing.assert_array_equal(params["embedding"][new_id], old_params["embedding"][old_id])
        np.testing.assert_array_equal(params["output.weight"][:, new_id],
                                      old_params["output.weight"][:, old_id])
        assert params["output.bias"][new_id] == old_params["output.bias"][old_id]
    for new_id in (2, 4):  # a and c: a fresh model's rows, the lowest bias of a target
        np.testing.assert_array_equal(params["embedding"][new_id], fresh["embedding"][new_id])
        np.testing.assert_array_equal(params["output.weight"][:, new_id],
                                      fresh["output.weight"][:, new_id])
        assert params["output.bias"][new_id] == -2.0
    for name in ("lstm0.input_weight", "lstm0.hidden_weight", "lstm0.bias"):
        np.testing.assert_array_equal(params[name], old_params[name])


@pytest.fixture(scope="module")
def old_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("old") / "old.npz"
    make_trainer(OLD_TEXT, path, records=True, hidden_size=32, lr=1e-2, max_steps=150,
                 eval_every=150, lr_schedule="constant").run()
    return load_checkpoint(path)


def fine_tuner(old_checkpoint, out, **settings):
    settings = TrainSettings(**{"seq_length": 16, "batch_size": 4, "records": True,
                                "val_fraction": 0.1, **settings})
    corpus = build_corpus(NEW_TEXT, records=True, delimiter="\n", val_fraction=0.1,
                          vocab=old_checkpoint.vocab, extend_vocab=True)
    config = fine_tuned_config(old_checkpoint, corpus.vocab)
    return new_trainer(corpus, config, settings, out, init_from=old_checkpoint)


def test_fine_tuning_starts_from_the_old_model_s_held_out_loss(tmp_path, old_checkpoint):
    held_out = "\n".join(NEW_TEXT.splitlines()[-VAL_RECORDS:])
    old_loss = score_text(old_checkpoint.model, old_checkpoint.vocab, held_out,
                          "\n").score.nats_per_char
    trainer = fine_tuner(old_checkpoint, tmp_path / "new.npz", max_steps=2, eval_every=1,
                         lr=1e-3)
    assert new_characters(old_checkpoint.vocab, trainer.corpus.vocab) == list("ryzë")
    assert trainer.position.step == 0 and trainer.optimizer.step == 0  # a new run
    assert abs(trainer.validate() - old_loss) < 0.02
    trainer.run()
    first_validation = trainer.history[0]["val_loss"]
    fresh = make_trainer(NEW_TEXT, tmp_path / "fresh.npz", records=True, hidden_size=32,
                         val_fraction=0.1, max_steps=1, eval_every=1, lr=1e-3)
    fresh.run()
    assert old_loss < 1.0 < 2.5 < fresh.history[0]["val_loss"]
    assert abs(first_validation - old_loss) < 0.05


def test_a_fine_tuned_run_resumes_bit_for_bit(tmp_path, old_checkpoint):
    whole = fine_tuner(old_checkpoint, tmp_path / "whole.npz", max_steps=6, eval_every=3,
                       lr_schedule="constant", dropout=0.1)
    whole.run()
    fine_tuner(old_checkpoint, tmp_path / "half.npz", max_steps=3, eval_every=3,
               lr_schedule="constant", dropout=0.1).run()
    resumed = resume_trainer(load_checkpoint(tmp_path / "half.npz"),
                             lambda settings: whole.corpus, tmp_path / "half.npz",
                             {"max_steps": 6})
    resumed.run()
    for name, param in whole.model.params.items():
        np.testing.assert_array_equal(resumed.model.params[name], param)


@pytest.mark.slow
def test_init_from_the_shipped_model(tmp_path, tiny_text_file):
    """The 3.3 M-parameter shipped model takes the path of any export (40 MB written)."""
    out = tmp_path / "m.npz"
    result = run("train", tiny_text_file, "--init-from", pretrained_model(), "-o", out,
                 "--max-steps", 1, "--batch-size", 2, "--seq-length", 8)
    assert result.exit_code == 0, result.output
    tuned, shipped = load_checkpoint(out), load_checkpoint(pretrained_model())
    assert tuned.model.config == shipped.model.config  # tiny.txt's characters are all known
    assert tuned.training["position"]["step"] == 1 and len(tuned.training["history"]) == 1


def test_init_from_an_export_or_refused(tmp_path, tiny_checkpoint):
    """An exported checkpoint (as the shipped model is) starts a new run, given rows for the
    characters its vocabulary lacks."""
    out = tmp_path / "m.npz"
    exported = tmp_path / "exported.npz"
    assert run("export", tiny_checkpoint, exported).exit_code == 0
    text = tmp_path / "new.txt"
    text.write_text("the owl sat on the bough.\n" * 4)
    result = run("train", text, "--init-from", exported, "-o", out, *SMALL, "--max-steps", 1)
    assert result.exit_code == 0, result.output
    assert "note: the text has 3 characters the checkpoint's vocabulary lacks, given new " \
           "rows: 'buw'" in result.stderr
    assert load_checkpoint(out).vocab.chars == tuple(sorted(set(
        load_checkpoint(tiny_checkpoint).vocab.chars) | set("bwu")))
    for refused, message in [
            (["--hidden-size", 99], "--hidden-size 99 differs from the checkpoint's 16; a "
                                    "fine-tuned model keeps its architecture"),
            (["--resume", out], "give --resume or --init-from, not both")]:
        result = run("train", text, "--init-from", exported, "-o", out, *refused)
        assert result.exit_code != 0 and message in result.stderr
        assert len(result.stderr.splitlines()) == 1
