"""A training run as a user asks for it: the texts, a new, fine-tuned or resumed trainer, and
the notes that say what differs from what was asked.

``charrnn.train`` (and through it ``charrnn train``) starts every run here. The settings
arrive by their names, which are the command line's options with underscores, and only
those the user gave: a setting left out takes its default from ``TrainSettings``, its
recipe (``settings.recipe``) or ``ModelConfig``; on a resume, the checkpoint's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

from charrnn.data.cache import default_cache_dir
from charrnn.data.corpus import load_corpus
from charrnn.data.known_records import MAX_KEPT
from charrnn.data.sources import (DEFAULT_ENCODING, DEFAULT_ERRORS, default_corpus,
                                  training_files)
from charrnn.errors import CharrnnError, SettingsConflict, counted, shown_characters
from charrnn.io.atomic import check_writable
from charrnn.nn.cells import CELLS
from charrnn.nn.model import ModelConfig
from charrnn.saving.checkpoint import Checkpoint, load_checkpoint
from charrnn.saving.pytorch import is_safetensors, load_safetensors
from charrnn.training.fine_tune import fine_tuned_config, new_characters
from charrnn.training.settings import TrainSettings, recipe
from charrnn.training.state import saved_settings
from charrnn.training.trainer import Trainer, check_architecture, new_trainer, resume_trainer

# The model's defaults; its width and cell have none here: a new model takes its recipe's.
RECIPE_ARCHITECTURE = ("hidden_size", "cell")
MODEL_DEFAULTS = {setting.name: setting.default for setting in fields(ModelConfig)
                  if setting.default is not MISSING and setting.name not in RECIPE_ARCHITECTURE}
ARCHITECTURE_SETTINGS = ("cell", "hidden_size", "num_layers", "embedding_size")
TRAINING_SETTINGS = tuple(setting.name for setting in fields(TrainSettings))


@dataclass(frozen=True)
class Note:
    """What a run says besides its progress. kind: "note" (something skipped, or different
    from what was asked), "start" (what is trained on), "stop" (it stopped early, for want
    of progress) or "interrupted" (it stopped on request)."""

    message: str
    kind: str = "note"


Notify = Callable[[Note], None]


def default_out(source: str) -> Path:
    """Where a run on ``source`` saves when no path is given: checkpoints/<its name>.npz."""
    name = "stdin" if source == "-" else Path(source).stem
    return Path("checkpoints") / f"{name}.npz"


def read_model(path: str) -> Checkpoint:
    """A checkpoint (``.npz``) or PyTorch weights (``.safetensors``, see ``saving.pytorch``)."""
    if is_safetensors(path):
        return load_safetensors(path)[0]
    return load_checkpoint(path)


def start_run(files: Sequence[str], out: str | None, settings: dict, notify: Notify, *,
              resume: str | None = None, init_from: str | None = None,
              encoding: str = DEFAULT_ENCODING, errors: str = DEFAULT_ERRORS) -> Trainer:
    """A trainer for the run on ``files`` (the shipped corpus if none) that ``settings``
    (training and architecture settings by name, only those given) describe: a new model,
    one fine-tuned from ``init_from``'s weights, or one resumed from ``resume``."""
    if "-" in files and len(files) > 1:
        raise SettingsConflict("- (standard input) cannot be read with other files")
    if resume and init_from:
        raise SettingsConflict("give `resume` or `init_from`, not both")
    sources, skipped = training_files(list(files) or [default_corpus()], encoding, errors)
    for path, reason in skipped.items():
        notify(Note(f"skipped {path}: {reason}"))
    out_path = Path(out or resume or default_out((list(files) or sources)[0]))
    if str(out) == "":
        raise CharrnnError("`out` must not be empty")
    if any(out_path.resolve() == Path(source).resolve() for source in sources if source != "-"):
        raise CharrnnError(f"`out` {out_path} is the training text itself")
    check_writable(out_path)
    read = {"encoding": encoding, "errors": errors, "cache_dir": default_cache_dir()}
    architecture = {name: settings[name] for name in ARCHITECTURE_SETTINGS if name in settings}
    check_architecture_settings(architecture)
    if resume:
        if is_safetensors(resume):
            raise CharrnnError(f"{resume}: PyTorch weights, without a training state to resume; "
                               "start a new run from them with `init_from`")
        checkpoint = load_checkpoint(resume)
        check_architecture(checkpoint.model.config, architecture, "resumed")

        def read_corpus(chosen: TrainSettings):
            return load_corpus(sources, records=chosen.records, delimiter=chosen.delimiter,
                               val_fraction=chosen.val_fraction, vocab=checkpoint.vocab, **read)

        given = {name: settings[name] for name in TRAINING_SETTINGS if name in settings}
        trainer = resume_trainer(checkpoint, read_corpus, out_path, given,
                                 notify=lambda message: notify(Note(message)))
    else:
        start = None
        if init_from is not None:
            start = read_model(init_from)
            check_architecture(start.model.config, architecture, "fine-tuned")
        given = {name: settings[name] for name in TRAINING_SETTINGS if name in settings}
        trainer = new_run(sources, given, {**MODEL_DEFAULTS, **architecture}, out_path, read,
                          start, notify)
    describe_start(trainer, text_name(files, sources), notify)
    return trainer


def check_architecture_settings(architecture: dict) -> None:
    """Refuse a cell charrnn does not have, or a size that is not a whole number of at least 1."""
    cell = architecture.get("cell")
    if cell is not None and cell not in CELLS:
        raise CharrnnError(f"unknown cell {cell!r}: one of {', '.join(CELLS)}")
    for name in ("hidden_size", "num_layers", "embedding_size"):
        value = architecture.get(name)
        if value is not None and not (type(value) is int and value >= 1):
            raise CharrnnError(f"the setting {name} is {value!r}, not a whole number of at "
                               "least 1")


def new_run(sources: list[str], given: dict, architecture: dict, out_path: Path,
            read: dict, init_from: Checkpoint | None, notify: Notify) -> Trainer:
    """A trainer for a fresh model (of ``architecture``, its width and cell by default the
    recipe's),
    or with ``init_from`` for one fine-tuned from that checkpoint (in its vocabulary, extended
    by the text's new characters), trained with the ``given`` settings and, for the rest,
    the recipe of the run's limits and its text's length."""
    layout = TrainSettings(**given)  # how to read the text, which the recipe does not change
    corpus = load_corpus(sources, records=layout.records, delimiter=layout.delimiter,
                         val_fraction=layout.val_fraction, extend_vocab=True,
                         vocab=None if init_from is None else init_from.vocab, **read)
    text_chars = len(corpus.train_tokens)
    settings = TrainSettings(**given, text_chars=text_chars)
    if init_from is None:
        fitted = recipe(settings.max_steps, settings.max_epochs, settings.max_time, text_chars)
        config = ModelConfig(corpus.vocab.size, **{
            **architecture, **{name: architecture.get(name) or getattr(fitted, name)
                               for name in RECIPE_ARCHITECTURE}})
    else:
        config = fine_tuned_config(init_from, corpus.vocab)
        describe_fine_tuning(init_from, corpus.vocab, settings, notify)
    return new_trainer(corpus, config, settings, out_path, init_from)


def text_name(files: Sequence[str], sources: list[str]) -> str:
    """What is trained on, in a few words."""
    if not files:
        return "the shipped corpus"
    if sources == ["-"]:
        return "standard input"
    return Path(sources[0]).name if len(sources) == 1 else f"{len(sources)} files"


def describe_fine_tuning(checkpoint: Checkpoint, vocab, settings: TrainSettings,
                         notify: Notify) -> None:
    """Notes: the characters added, and a layout that differs from the checkpoint's."""
    added = new_characters(checkpoint.vocab, vocab)
    if added:
        notify(Note(f"the text has {counted(len(added), 'character')} the checkpoint's "
                    f"vocabulary lacks, given new rows: {shown_characters(added)}"))
    if checkpoint.training is not None and saved_settings(checkpoint).records != settings.records:
        before, now = ("without", "with") if settings.records else ("with", "without")
        notify(Note(f"the checkpoint was trained {before} `records`, this run is {now} it"))


def describe_start(trainer: Trainer, name: str, notify: Notify) -> None:
    """Notes on what differs from what was asked, then what is trained on."""
    settings, windows, corpus = trainer.settings, trainer.windows, trainer.corpus
    if (windows.batch_size, windows.window_length) != (settings.batch_size,
                                                    settings.window_range()[1]):
        notify(Note(f"the text is short: training with `batch_size` {windows.batch_size} "
                    f"`seq_length` {windows.window_length}"))
    if len(corpus.val_tokens) < 2:
        notify(Note("the text is too short to hold any out for validation; `keep_best` and "
                    "`patience` have nothing to go on"))
    if settings.records and trainer.known_records is None:
        notify(Note(f"more than {MAX_KEPT:,} records: the checkpoint will not keep them, so "
                    "sampling with `novel` and in_training are not available"))
    notify(Note(f"training on {name}: {counted(corpus.num_chars, 'character')}, vocabulary "
                f"{corpus.vocab.size}, {trainer.model.config.num_params():,} parameters; "
                f"{counted(trainer.workers.num_workers, 'thread')}", "start"))


def stop_note(trainer: Trainer, outcome: str) -> Note | None:
    """Why a run stopped before its limit (``Trainer.run``'s outcome), or None."""
    if outcome == "no improvement":
        return Note(f"stopped early: no better validation loss in {trainer.settings.patience} "
                    f"evaluations (best {trainer.plateau.best_val_loss:.4f} nats/char)", "stop")
    if outcome == "interrupted":
        return Note(f"stopped at step {trainer.position.step}; saved {trainer.out}",
                    "interrupted")
    return None
