"""Checkpoints: one ``.npz`` file of named arrays plus a JSON metadata entry.

Array names:
    param/<name>      the model's parameters (names as in ``model.py``)
    <group>/<name>    training state added by the trainer (optimizer moments,
                      the carried recurrent state)
    known_records     for a records model, the sorted 64-bit hashes of the
                      records it was trained on (``known_records.py``), uint64
    metadata          UTF-8 JSON as a uint8 array: format, format_version,
                      charrnn_version, model (the ModelConfig), vocabulary
                      (the characters in id order, after <START> and <END>),
                      known_records (how many hashes that array holds, with it),
                      and, for a checkpoint that can be resumed, training.

A checkpoint may come from a stranger. It can never run code (no pickles),
and every array's header is checked against the metadata and against the
bytes stored for it before any array is read, so a damaged or crafted file
is one CharrnnError, never a crash, and never allocates more than the file
holds and the model needs. The weights may be stored as float16, float32 or
float64 (all one type); float16 is widened to float32 on loading.

Files are written atomically (``charrnn.io.atomic``), so a crash never leaves
a half-written checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import reprlib
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from charrnn._version import __version__
from charrnn.data.known_records import KnownRecords
from charrnn.data.vocab import NUM_SPECIAL, Vocabulary
from charrnn.errors import CharrnnError
from charrnn.io.atomic import write_atomically
from charrnn.io.npy import Archive, ArrayHeader, Unreadable
from charrnn.nn.cells import CELLS
from charrnn.nn.model import Model, ModelConfig

FORMAT = "charrnn-checkpoint"
FORMAT_VERSION = 1
PARAM_PREFIX = "param/"
METADATA_KEY = "metadata"
KNOWN_RECORDS_KEY = "known_records"
FLOAT_TYPES = ("float16", "float32", "float64")  # of the weights; float16 is widened on loading
MAX_METADATA_BYTES = 32 << 20  # a vocabulary of all of Unicode takes about 17 MB
MAX_INT_DIGITS = 40  # the random generator's state holds 128-bit integers (39 digits)
MAX_METADATA_DEPTH = 16  # how deep lists and objects may nest; charrnn writes 4 (the RNG state)


@dataclass
class Checkpoint:
    """A model with its vocabulary, and whatever training state was saved with it."""

    model: Model
    vocab: Vocabulary
    training: dict | None = None  # JSON-able training state, None if none was saved
    training_arrays: dict[str, np.ndarray] = field(default_factory=dict)
    known_records: KnownRecords | None = None  # the training records of a records model


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
    if checkpoint.known_records is not None:
        metadata[KNOWN_RECORDS_KEY] = len(checkpoint.known_records)
        arrays[KNOWN_RECORDS_KEY] = checkpoint.known_records.hashes
    arrays[METADATA_KEY] = np.frombuffer(json.dumps(metadata).encode("utf-8"), dtype=np.uint8)

    write_atomically(path, lambda file: np.savez(file, allow_pickle=False, **arrays))


def _array_header(path: str, archive: Archive, name: str) -> ArrayHeader:
    try:
        return archive.header(name)
    except Unreadable as error:
        raise CharrnnError(f"{path}: damaged checkpoint "
                           f"({name.removeprefix(PARAM_PREFIX)!r}: {error})") from None


def _read_array(path: str, archive: Archive, name: str) -> np.ndarray:
    """One array whose header was checked, in native byte order, float16 widened to float32."""
    try:
        array = archive.read(name)
    except Exception:  # a bad CRC, data cut short, anything numpy or zipfile may raise
        raise CharrnnError(f"{path}: damaged checkpoint ({name!r} is unreadable)") from None
    return array.astype("float32" if array.dtype.name == "float16" else array.dtype.name,
                        copy=False)


def _nesting_depth(value) -> int:
    """How deep lists and objects nest in a JSON value (0 for a number or a string)."""
    depth, level = 0, [value]
    while containers := [item for item in level if isinstance(item, (dict, list))]:
        depth += 1
        level = [child for container in containers
                 for child in (container.values() if isinstance(container, dict) else container)]
    return depth


def _not_a_number(constant: str):
    raise ValueError(f"{constant} is not a number charrnn writes")


def _finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent, which must be finite (1e999 is not)."""
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text[:20]} is too large")
    return number


def _bounded_int(text: str) -> int:
    """A JSON integer, at most MAX_INT_DIGITS digits (any larger would overflow a float)."""
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text):,} digits")
    return int(text)


def _parse_metadata(path: str, archive: Archive) -> dict:
    if METADATA_KEY not in archive.names:
        raise CharrnnError(f"{path}: not a charrnn checkpoint (no metadata)")
    try:
        header = archive.header(METADATA_KEY)
    except Unreadable as error:
        raise CharrnnError(f"{path}: not a charrnn checkpoint ({error})") from None
    if header.dtype != np.uint8 or len(header.shape) != 1:
        raise CharrnnError(f"{path}: not a charrnn checkpoint (no metadata)")
    if header.size > MAX_METADATA_BYTES:
        raise CharrnnError(f"{path}: not a charrnn checkpoint (metadata of {header.size:,} "
                           f"bytes, more than {MAX_METADATA_BYTES:,})")
    raw = _read_array(path, archive, METADATA_KEY)
    try:
        metadata = json.loads(raw.tobytes().decode("utf-8"), parse_constant=_not_a_number,
                              parse_float=_finite_float, parse_int=_bounded_int)
    except (UnicodeDecodeError, ValueError, RecursionError):  # ValueError: JSON, or a number
        raise CharrnnError(f"{path}: not a charrnn checkpoint (unreadable metadata)") from None
    if _nesting_depth(metadata) > MAX_METADATA_DEPTH:
        raise CharrnnError(f"{path}: not a charrnn checkpoint (metadata nested more than "
                           f"{MAX_METADATA_DEPTH} deep)")
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CharrnnError(f"{path}: not a charrnn checkpoint")
    version = metadata.get("format_version")
    if version != FORMAT_VERSION:
        raise CharrnnError(
            f"{path}: checkpoint format version {reprlib.repr(version)} is not supported by "
            f"charrnn {__version__} (it reads version {FORMAT_VERSION}); upgrade charrnn")
    return metadata


def _describe_model(path: str, metadata: dict) -> tuple[ModelConfig, Vocabulary]:
    try:
        if not isinstance(metadata["vocabulary"], list):
            raise TypeError("the vocabulary must be a list")
        vocab = Vocabulary(tuple(metadata["vocabulary"]))
        config = ModelConfig(**metadata["model"])
        if any(not isinstance(char, str) or len(char) != 1 for char in vocab.chars):
            raise ValueError("vocabulary entries must be single characters")
        if len(set(vocab.chars)) != len(vocab.chars):
            raise ValueError("the vocabulary repeats a character")
        sizes = (config.vocab_size, config.embedding_size, config.hidden_size, config.num_layers)
        if not all(type(size) is int and size >= 1 for size in sizes):
            raise ValueError("the model's sizes must be whole numbers of at least 1")
        if not isinstance(metadata.get("training"), (dict, type(None))):
            raise ValueError("the training state must be an object")
    except (KeyError, TypeError, ValueError) as error:
        raise CharrnnError(f"{path}: damaged checkpoint metadata ({error})") from None
    if config.vocab_size != len(vocab.chars) + NUM_SPECIAL:
        raise CharrnnError(f"{path}: damaged checkpoint (vocabulary size does not match the model)")
    return config, vocab


def _training_limit(config: ModelConfig, training: dict | None) -> int:
    """The most numbers the training arrays may hold: two optimizer moments per parameter,
    and the recurrent state carried for each stream of the saved window."""
    window = (training or {}).get("window")
    streams = window.get("batch_size") if isinstance(window, dict) else None
    streams = streams if type(streams) is int and streams >= 0 else 0
    state = config.num_layers * len(CELLS[config.cell].state_names) * streams * config.hidden_size
    return 2 * config.num_params() + state


def _check_known_records(path: str, header: ArrayHeader, count) -> None:
    """The known records' header against the count in the metadata."""
    if type(count) is not int or header.dtype.name != "uint64" or header.shape != (count,):
        raise CharrnnError(f"{path}: damaged checkpoint ({KNOWN_RECORDS_KEY!r} has shape "
                           f"{header.shape} and type {header.dtype}, expected "
                           f"({reprlib.repr(count)},) of uint64)")


def _check_headers(path: str, archive: Archive, config: ModelConfig, training: dict | None,
                   known_records):
    """Every array's header against what the metadata says the model needs (``known_records``:
    the metadata's count of them), before any array is read."""
    if 3 * config.num_layers + 3 > len(archive.names):  # embedding, 3 per layer, output's 2
        raise CharrnnError(f"{path}: damaged checkpoint (a model of {config.num_layers} layers "
                           f"in {len(archive.names)} arrays)")
    expected = {PARAM_PREFIX + name: shape for name, shape in config.param_shapes().items()}
    missing = [name for name in expected if name not in archive.names]
    if missing:
        raise CharrnnError(f"{path}: damaged checkpoint "
                           f"(no array {missing[0].removeprefix(PARAM_PREFIX)!r})")
    param_types, training_size = set(), 0
    for name in archive.names:
        if name == METADATA_KEY:
            continue
        header = _array_header(path, archive, name)
        if name == KNOWN_RECORDS_KEY:
            _check_known_records(path, header, known_records)
        elif name in expected:
            if header.shape != expected[name] or header.dtype.name not in FLOAT_TYPES:
                raise CharrnnError(
                    f"{path}: damaged checkpoint ({name.removeprefix(PARAM_PREFIX)!r} has shape "
                    f"{header.shape} and type {header.dtype}, expected {expected[name]} of "
                    f"{', '.join(FLOAT_TYPES)})")
            param_types.add(header.dtype.name)
        elif name.startswith(PARAM_PREFIX):
            raise CharrnnError(f"{path}: damaged checkpoint (unexpected array {name!r})")
        elif header.dtype.name not in FLOAT_TYPES:
            raise CharrnnError(f"{path}: damaged checkpoint ({name!r} has type {header.dtype}, "
                               f"not a float type)")
        else:
            training_size += header.size
    if len(param_types) > 1:
        raise CharrnnError(f"{path}: damaged checkpoint (the parameters mix float types: "
                           f"{', '.join(sorted(param_types))})")
    limit = _training_limit(config, training)
    if training_size > limit:
        raise CharrnnError(f"{path}: damaged checkpoint (training arrays of {training_size:,} "
                           f"numbers, more than the model's {limit:,})")


def _read_params(path: str, archive: Archive, config: ModelConfig) -> dict[str, np.ndarray]:
    params = {}
    for name in config.param_shapes():
        params[name] = array = _read_array(path, archive, PARAM_PREFIX + name)
        if not np.isfinite(array).all():
            raise CharrnnError(f"{path}: damaged checkpoint ({name!r} holds NaN or infinity)")
    return params


def _load(path: str, file: BinaryIO) -> Checkpoint:
    """Metadata first, then every array's header checked against it, then the arrays."""
    try:
        archive = Archive(file)
    except Unreadable as error:
        raise CharrnnError(f"{path}: not a charrnn checkpoint ({error})") from None
    with archive:
        metadata = _parse_metadata(path, archive)
        config, vocab = _describe_model(path, metadata)
        training = metadata.get("training")
        _check_headers(path, archive, config, training, metadata.get(KNOWN_RECORDS_KEY))
        params = _read_params(path, archive, config)
        training_arrays = {name: _read_array(path, archive, name) for name in archive.names
                           if name not in (METADATA_KEY, KNOWN_RECORDS_KEY)
                           and not name.startswith(PARAM_PREFIX)}
        known_records = None
        if KNOWN_RECORDS_KEY in archive.names:
            known_records = KnownRecords(_read_array(path, archive, KNOWN_RECORDS_KEY))
        elif KNOWN_RECORDS_KEY in metadata:
            raise CharrnnError(f"{path}: damaged checkpoint (no array {KNOWN_RECORDS_KEY!r})")
    return Checkpoint(Model(config, params), vocab, training, training_arrays, known_records)


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read and validate a checkpoint; any problem is one CharrnnError.

    Nothing is allocated that the file does not hold, nor more than the metadata
    says the model needs (see ``npy.py``).
    """
    path = str(path)
    try:
        with open(path, "rb") as file:
            return _load(path, file)
    except FileNotFoundError:
        raise CharrnnError(f"{path}: no such checkpoint") from None
    except IsADirectoryError:
        raise CharrnnError(f"{path}: is a directory, not a checkpoint") from None
    except PermissionError:
        raise CharrnnError(f"{path}: permission denied") from None
    except CharrnnError:
        raise
    except Exception as error:  # the net under the checks above: never a traceback
        raise CharrnnError(f"{path}: damaged checkpoint ({type(error).__name__})") from None
