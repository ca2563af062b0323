"""The training state: everything beyond the weights that training needs to continue exactly
where it stopped, and its place in the checkpoint format (``checkpoint.py``).

In the checkpoint's metadata, the ``training`` object holds:

    settings          the TrainSettings, by name
    position          {step, epoch, offset}: updates made, epochs complete, steps into the streams
    epochs            epochs done, fractional
    window            {batch_size, seq_length}: the window trained on (smaller than the
                      settings ask for a short text)
    elapsed           seconds trained, in all runs
    history           one object per evaluation: step, epoch, elapsed, train_loss and grad_norm
                      (means since the evaluation before), val_loss, lr
    best_val_loss, evals_since_best, lr_scale      the Plateau record (``schedules.py``)
    adam_step         Adam's update count
    rng               the random generator's state (NumPy's ``bit_generator.state``)
    corpus            {checksum, characters}: the training text's SHA-256 and length
    resumable         false in an exported checkpoint (see ``saving.export.for_sampling``)

and among its arrays:

    adam_m/<param>, adam_v/<param>   Adam's first and second moments
    state/h<l>, state/c<l>           the recurrent state carried into the next window
                                     (c for LSTMs only), each (B, H)

An exported checkpoint keeps the metadata but not the arrays.
"""

from __future__ import annotations

import reprlib
from dataclasses import asdict, dataclass, replace

import numpy as np

from charrnn.data.known_records import KnownRecords
from charrnn.data.vocab import Vocabulary
from charrnn.errors import CharrnnError
from charrnn.nn.model import Model, Params, State
from charrnn.saving.checkpoint import Checkpoint
from charrnn.training.schedules import Plateau
from charrnn.training.settings import TrainSettings


@dataclass(frozen=True)
class Position:
    """Where training is: updates made, epochs complete, steps into the streams."""

    step: int = 0
    epoch: int = 0
    offset: int = 0


@dataclass(frozen=True)
class TrainingState:
    """A training run as saved: enough, with the weights, to continue it bit for bit."""

    settings: TrainSettings
    rng_state: dict  # the random generator's, for dropout
    position: Position = Position()
    epochs: float = 0.0  # epochs done, fractional
    window: tuple[int, int] | None = None  # (B, T) trained on; None before training
    elapsed: float = 0.0  # seconds, in all runs
    history: tuple[dict, ...] = ()  # one entry per evaluation
    plateau: Plateau = Plateau()
    adam_step: int = 0
    adam_moments: tuple[Params, Params] | None = None  # first, second; None: zeros
    carried: State | None = None  # the state entering the next window; None: zeros
    corpus_checksum: str | None = None  # SHA-256 of the training text
    corpus_chars: int = 0
    resumable: bool = True


def to_checkpoint(model: Model, vocab: Vocabulary, state: TrainingState,
                  known_records: KnownRecords | None = None) -> Checkpoint:
    """A resumable checkpoint of ``model`` with ``state`` (and a records model's
    ``known_records``)."""
    batch_size, seq_length = state.window
    plateau = state.plateau
    training = {
        "settings": asdict(state.settings),
        "position": asdict(state.position),
        "epochs": state.epochs,
        "window": {"batch_size": batch_size, "seq_length": seq_length},
        "elapsed": state.elapsed,
        "history": list(state.history),
        "best_val_loss": plateau.best_val_loss,
        "evals_since_best": plateau.evals_since_best,
        "lr_scale": plateau.lr_scale,
        "adam_step": state.adam_step,
        "rng": state.rng_state,
        "corpus": {"checksum": state.corpus_checksum, "characters": state.corpus_chars},
    }
    first, second = state.adam_moments
    arrays = {f"adam_m/{name}": first[name] for name in model.params}
    arrays.update({f"adam_v/{name}": second[name] for name in model.params})
    for layer, layer_state in enumerate(state.carried):
        for name, array in zip(model.cell.state_names, layer_state):
            arrays[f"state/{name}{layer}"] = array
    return Checkpoint(model, vocab, training, arrays, known_records)


def from_checkpoint(checkpoint: Checkpoint) -> TrainingState | None:
    """The training state saved in ``checkpoint``, None if it holds none. The arrays are
    read only from a resumable checkpoint (an exported one has none). Anything missing or
    malformed is a CharrnnError that names it."""
    training = checkpoint.training
    if training is None:
        return None
    position = _record(Position, _field(training, "position", dict))
    if any(type(value) is not int or value < 0 for value in asdict(position).values()):
        raise _damaged(f"position {reprlib.repr(training['position'])}")
    window = _field(training, "window", dict)
    window = (_field(window, "batch_size", int), _field(window, "seq_length", int))
    corpus = _field(training, "corpus", dict)
    history = _field(training, "history", list)
    if not all(_is_evaluation(entry) for entry in history):
        raise _damaged("history")
    best_val_loss = training.get("best_val_loss")
    if best_val_loss is not None:
        best_val_loss = _field(training, "best_val_loss", float)
    state = TrainingState(
        settings=saved_settings(checkpoint),
        rng_state=_rng_state(_field(training, "rng", dict)),
        position=position,
        epochs=_field(training, "epochs", float),
        window=window,
        elapsed=_field(training, "elapsed", float),
        history=tuple(history),
        plateau=Plateau(best_val_loss, _count(training, "evals_since_best"),
                        _positive(training, "lr_scale")),
        adam_step=_count(training, "adam_step"),
        corpus_checksum=_field(corpus, "checksum", str),
        corpus_chars=_count(corpus, "characters"),
        resumable=_field(training, "resumable", bool, default=True),
    )
    if not state.resumable:
        return state
    model = checkpoint.model
    moments = tuple({name: _array(checkpoint, f"{group}/{name}", param.shape, param.dtype)
                     for name, param in model.params.items()} for group in ("adam_m", "adam_v"))
    carried_shape = (window[0], model.config.hidden_size)
    carried = [tuple(_array(checkpoint, f"state/{name}{layer}", carried_shape, model.dtype)
                     for name in model.cell.state_names)
               for layer in range(model.config.num_layers)]
    return replace(state, adam_moments=moments, carried=carried)


def saved_settings(checkpoint: Checkpoint) -> TrainSettings:
    """The settings a checkpoint was trained with (the defaults if it holds none)."""
    saved = (checkpoint.training or {}).get("settings", {})
    if not isinstance(saved, dict):
        raise _damaged("settings")
    if "shards" not in saved and "threads" in saved:
        # Saved before shards were a setting: the run cut its batches by its workers.
        saved = {**saved, "shards": saved["threads"]}
    try:
        return TrainSettings(**saved)
    except TypeError:
        raise CharrnnError("the checkpoint's training settings are damaged or from a newer "
                           "charrnn") from None
    except CharrnnError as error:
        raise _damaged(f"settings: {error}") from None


def _is_evaluation(entry) -> bool:
    """Whether ``entry`` is a history entry: a step and the losses as numbers (or null)."""
    def is_number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    return (isinstance(entry, dict) and is_number(entry.get("step"))
            and all(entry.get(key) is None or is_number(entry[key])
                    for key in ("train_loss", "val_loss")))


def _damaged(what: str) -> CharrnnError:
    return CharrnnError(f"the checkpoint's training state is damaged ({what})")


NO_DEFAULT = object()


def _field(record: dict, key: str, kind: type, default=NO_DEFAULT):
    """``record[key]``, which must be of ``kind`` (an int will do for a float)."""
    value = record.get(key, default)
    if value is NO_DEFAULT:
        raise _damaged(f"no {key!r}")
    kinds = (int, float) if kind is float else kind
    if not isinstance(value, kinds) or (isinstance(value, bool) and kind is not bool):
        raise _damaged(f"{key!r} is {reprlib.repr(value)}")
    return float(value) if kind is float else value


def _count(record: dict, key: str) -> int:
    """``record[key]``, which must be a whole number, at least 0."""
    value = _field(record, key, int)
    if value < 0:
        raise _damaged(f"{key!r} is {value}")
    return value


def _positive(record: dict, key: str) -> float:
    """``record[key]``, which must be a number above 0."""
    value = _field(record, key, float)
    if not value > 0:
        raise _damaged(f"{key!r} is {value}")
    return value


def _record(kind: type, values: dict):
    """A dataclass made from the JSON object ``values``."""
    try:
        return kind(**values)
    except TypeError:
        raise _damaged(f"{kind.__name__.lower()} {reprlib.repr(values)}") from None


def _rng_state(state: dict) -> dict:
    """``state``, checked by giving it to a generator."""
    try:
        np.random.default_rng().bit_generator.state = state
    except (KeyError, TypeError, ValueError, OverflowError):
        raise _damaged("random generator state") from None
    return state


def _array(checkpoint: Checkpoint, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A copy of one saved training array, which must have this shape and type."""
    array = checkpoint.training_arrays.get(name)
    if array is None:
        raise _damaged(f"no array {name!r}")
    if array.shape != shape or array.dtype != dtype:
        raise _damaged(f"{name!r} has shape {array.shape} and type {array.dtype}, "
                       f"expected {shape} of {dtype}")
    return array.copy()
