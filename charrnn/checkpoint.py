"""Checkpoints: one ``.npz`` file of named arrays plus a JSON metadata entry.

Array names:
    param/<name>      the model's parameters (names as in ``model.py``)
    <group>/<name>    training state added by the trainer (optimizer moments,
                      the carried recurrent state)
    metadata          UTF-8 JSON as a uint8 array: format, format_version,
                      charrnn_version, model (the ModelConfig), vocabulary
                      (the characters in id order, after <START> and <END>),
                      and, for a checkpoint that can be resumed, training.

Files are loaded with ``allow_pickle=False``, so a checkpoint can never run
code, and written to a temporary file that is renamed over the target, so a
crash never leaves a half-written checkpoint.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from . import __version__
from .errors import CharrnnError
from .model import Model, ModelConfig
from .vocab import NUM_SPECIAL, Vocabulary

FORMAT = "charrnn-checkpoint"
FORMAT_VERSION = 1
PARAM_PREFIX = "param/"
METADATA_KEY = "metadata"
PRETRAINED_NAME = "pretrained-shakespeare.npz"


@dataclass
class Checkpoint:
    """A model with its vocabulary, and whatever training state was saved with it."""

    model: Model
    vocab: Vocabulary
    training: dict | None = None  # JSON-able training state, None if not resumable
    training_arrays: dict[str, np.ndarray] = field(default_factory=dict)


def pretrained_model() -> str:
    """Path of the small Shakespeare model that ships with charrnn.

    ``charrnn/pretrained`` is a link to the repository's ``checkpoints/``
    folder; an installed package holds a copy of the shipped model.
    """
    return str(Path(__file__).parent / "pretrained" / PRETRAINED_NAME)


def for_sampling(checkpoint: Checkpoint) -> Checkpoint:
    """The checkpoint without its optimizer moments and carried state: about a third of the
    size, with the training history kept for ``info``, but no longer resumable."""
    training = None if checkpoint.training is None else {**checkpoint.training,
                                                          "resumable": False}
    return Checkpoint(checkpoint.model, checkpoint.vocab, training)


def save_checkpoint(path: str | os.PathLike, checkpoint: Checkpoint) -> None:
    """Write the checkpoint atomically: a temporary file in the same folder, fsync, rename."""
    model = checkpoint.model
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "charrnn_version": __version__,
        "model": model.config.to_dict(),
        "vocabulary": list(checkpoint.vocab.chars),
        "training": checkpoint.training,
    }
    arrays = {PARAM_PREFIX + name: value for name, value in model.params.items()}
    arrays.update(checkpoint.training_arrays)
    arrays[METADATA_KEY] = np.frombuffer(json.dumps(metadata).encode("utf-8"), dtype=np.uint8)

    write_atomically(path, lambda file: np.savez(file, allow_pickle=False, **arrays))


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write`` on a temporary file in the folder of ``path``, fsync it and rename it to
    ``path``: a crash never leaves a half-written file there. The file gets the usual
    permissions (0666 less the umask). A folder or file that cannot be written is a
    CharrnnError."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                                 suffix=".tmp")
    except OSError as error:
        raise CharrnnError(f"cannot write {path}: {error.strerror}") from None
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o666 & ~current_umask())
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise CharrnnError(f"cannot write {path}: {error.strerror}") from None
        raise
    _fsync_directory(path.parent)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(path: str | os.PathLike) -> None:
    """Fail now, not after hours of training, if ``path`` cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise CharrnnError(f"cannot write {path}: it is a directory")
    probe = path.with_name(f".{path.name}.probe")
    try:
        write_atomically(probe, lambda file: None)
    except CharrnnError:
        raise CharrnnError(f"cannot write {path}") from None
    probe.unlink()


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (where the platform allows opening a folder)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _read_arrays(path: str) -> dict[str, np.ndarray]:
    try:
        with open(path, "rb") as file:
            if not zipfile.is_zipfile(file):
                raise CharrnnError(
                    f"{path}: not a charrnn checkpoint (not an .npz archive, or cut short)")
            file.seek(0)
            with np.load(file, allow_pickle=False) as npz:
                return {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise CharrnnError(f"{path}: no such checkpoint") from None
    except IsADirectoryError:
        raise CharrnnError(f"{path}: is a directory, not a checkpoint") from None
    except PermissionError:
        raise CharrnnError(f"{path}: permission denied") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as error:
        reason = "holds pickled objects" if "pickle" in str(error) else "unreadable or truncated"
        raise CharrnnError(f"{path}: not a charrnn checkpoint ({reason})") from None


def _parse_metadata(path: str, arrays: dict[str, np.ndarray]) -> dict:
    raw = arrays.get(METADATA_KEY)
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise CharrnnError(f"{path}: not a charrnn checkpoint (no metadata)")
    try:
        metadata = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CharrnnError(f"{path}: not a charrnn checkpoint (unreadable metadata)") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CharrnnError(f"{path}: not a charrnn checkpoint")
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise CharrnnError(
            f"{path}: checkpoint format version {version} is not supported by charrnn "
            f"{__version__} (it reads version {FORMAT_VERSION}); upgrade charrnn")
    return metadata


def _build_model(path: str, metadata: dict, arrays: dict[str, np.ndarray]):
    try:
        vocab = Vocabulary(tuple(metadata["vocabulary"]))
        config = ModelConfig(**metadata["model"])
        if any(not isinstance(char, str) or len(char) != 1 for char in vocab.chars):
            raise ValueError("vocabulary entries must be single characters")
        sizes = (config.vocab_size, config.embedding_size, config.hidden_size, config.num_layers)
        if not all(type(size) is int and size >= 1 for size in sizes):
            raise ValueError("the model's sizes must be whole numbers of at least 1")
        if not isinstance(metadata.get("training"), (dict, type(None))):
            raise ValueError("the training state must be an object")
    except (KeyError, TypeError, ValueError) as error:
        raise CharrnnError(f"{path}: damaged checkpoint metadata ({error})") from None
    if config.vocab_size != len(vocab.chars) + NUM_SPECIAL:
        raise CharrnnError(f"{path}: damaged checkpoint (vocabulary size does not match the model)")
    params = {}
    for name, shape in config.param_shapes().items():
        array = arrays.get(PARAM_PREFIX + name)
        if array is None:
            raise CharrnnError(f"{path}: damaged checkpoint (no array {name!r})")
        dtype = arrays.get(PARAM_PREFIX + "output.weight", array).dtype
        if array.shape != shape or array.dtype.kind != "f" or array.dtype != dtype:
            raise CharrnnError(f"{path}: damaged checkpoint ({name!r} has shape {array.shape} "
                               f"and type {array.dtype}, expected {shape} of the model's "
                               f"float type)")
        if not np.isfinite(array).all():
            raise CharrnnError(f"{path}: damaged checkpoint ({name!r} holds NaN or infinity)")
        params[name] = array
    return Model(config, params), vocab


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and validate a checkpoint; any problem is one CharrnnError."""
    path = str(path)
    arrays = _read_arrays(path)
    metadata = _parse_metadata(path, arrays)
    model, vocab = _build_model(path, metadata, arrays)
    training_arrays = {name: array for name, array in arrays.items()
                       if name != METADATA_KEY and not name.startswith(PARAM_PREFIX)}
    return Checkpoint(model, vocab, metadata.get("training"), training_arrays)
