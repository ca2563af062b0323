"""Is a sample new, or a copy of a training record? The checkpoint keeps the records' hashes;
sample --json says in_training, and sample --novel draws again until a record is new."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_trainer

from charrnn.cli import cli
from charrnn.data.corpus import build_corpus
from charrnn.saving.checkpoint import load_checkpoint, save_checkpoint
from charrnn.saving.export import for_sampling
from charrnn.training.settings import TrainSettings
from charrnn.training.trainer import new_trainer, resume_trainer

NAMES = ["emma", "olivia", "ava", "mia", "sofia", "ella", "lia", "mila", "nora", "luna"]
RECORDS_TEXT = "\n".join(NAMES * 12) + "\n"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def memorised(tmp_path_factory):
    """A records model that has learned its ten names by heart."""
    path = tmp_path_factory.mktemp("names") / "names.npz"
    make_trainer(RECORDS_TEXT, path, records=True, hidden_size=32, lr=1e-2, max_steps=200,
                 eval_every=200, lr_schedule="constant").run()
    return path


def test_a_records_checkpoint_keeps_every_record_once_and_its_export_too(memorised, tmp_path):
    known = load_checkpoint(memorised).known_records
    assert len(known) == len(NAMES) and all(name in known for name in NAMES)
    assert "emm" not in known and "emma\n" not in known
    exported = tmp_path / "exported.npz"
    save_checkpoint(exported, for_sampling(load_checkpoint(memorised), "float16"))
    np.testing.assert_array_equal(load_checkpoint(exported).known_records.hashes, known.hashes)


def test_a_one_sequence_model_keeps_no_records(tiny_checkpoint):
    assert load_checkpoint(tiny_checkpoint).known_records is None
    result = run("sample", tiny_checkpoint, "--novel")
    assert result.exit_code == 1 and "keeps none" in result.stderr


def test_resuming_or_fine_tuning_on_another_text_keeps_the_records_of_both(memorised, tmp_path):
    settings = TrainSettings(records=True, seq_length=16, batch_size=4, max_steps=205)
    new_text = "zoe\nzara\nyves\n" * 6

    def read_corpus(settings):
        return build_corpus(new_text, records=True, delimiter="\n", val_fraction=0.1,
                            vocab=load_checkpoint(memorised).vocab, extend_vocab=True)

    resumed = resume_trainer(load_checkpoint(memorised), read_corpus, tmp_path / "r.npz",
                             {"max_steps": 205})
    corpus = read_corpus(settings)
    fine_tuned = new_trainer(corpus, load_checkpoint(memorised).model.config, settings,
                             tmp_path / "f.npz", init_from=load_checkpoint(memorised))
    for trainer in (resumed, fine_tuned):
        assert len(trainer.known_records) == len(NAMES) + 3
        assert "zara" in trainer.known_records and "emma" in trainer.known_records


def samples(result):
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_in_training_tells_copies_from_new_records(memorised):
    drawn = samples(run("sample", memorised, "-k", 40, "-t", 1.0, "--seed", 3, "--json"))
    for sample in drawn:
        assert sample["in_training"] == (sample["text"] in NAMES)
    copies = sum(sample["in_training"] for sample in drawn)
    assert 20 <= copies < 40  # memorised: mostly copies, some new
    primed = samples(run("sample", memorised, "-p", "mi", "-t", 0, "--json"))
    assert primed[0]["text"] in ("a", "la") and primed[0]["in_training"]  # mia or mila


def test_novel_draws_again_until_each_record_is_new(memorised):
    plain = samples(run("sample", memorised, "-k", 40, "-t", 1.2, "--seed", 3, "--json"))
    novel = samples(run("sample", memorised, "-k", 40, "-t", 1.2, "--seed", 3, "--json",
                        "--novel"))
    assert [sample["index"] for sample in novel] == list(range(40))
    assert not any(sample["in_training"] or sample["text"] in NAMES for sample in novel)
    for before, after in zip(plain, novel):  # a sample new at the first draw is kept as it is
        assert before["in_training"] or before["text"] == after["text"]
    again = samples(run("sample", memorised, "-k", 40, "-t", 1.2, "--seed", 3, "--json",
                        "--novel"))
    assert again == novel
    text = run("sample", memorised, "-k", 40, "-t", 1.2, "--seed", 3, "--novel")
    assert text.stdout == "".join(sample["text"] + "\n" for sample in novel)


def test_novel_gives_up_with_a_note(memorised):
    # At temperature 0 every draw is the same memorised name.
    result = run("sample", memorised, "-t", "0,1", "--seed", 1, "--novel", "--json")
    assert result.exit_code == 0
    assert "sample 0 (temperature 0.0) was a training record in all 100 draws" in result.stderr
    assert [sample["index"] for sample in samples(result)] == [1]


@pytest.mark.parametrize("metadata_count, array", [
    (3, np.arange(3, dtype=np.uint64)[::-1].copy()),  # unsorted is sorted on loading
    (4, np.arange(3, dtype=np.uint64)),
    ("3", np.arange(3, dtype=np.uint64)),
    (3, np.arange(3, dtype=np.int64)),
    (3, None),
])
def test_damaged_known_records_are_one_error(tmp_path, tiny_checkpoint, metadata_count, array):
    with np.load(tiny_checkpoint) as npz:
        arrays = {name: npz[name] for name in npz.files}
    metadata = json.loads(arrays["metadata"].tobytes())
    metadata["known_records"] = metadata_count
    arrays["metadata"] = np.frombuffer(json.dumps(metadata).encode(), np.uint8)
    if array is not None:
        arrays["known_records"] = array
    path = tmp_path / "damaged.npz"
    np.savez(path, **arrays)
    if metadata_count == 3 and array is not None and array.dtype == np.uint64:
        assert load_checkpoint(path).known_records.hashes.tolist() == [0, 1, 2]
        return
    result = run("sample", path)
    assert result.exit_code == 1 and "damaged checkpoint" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
