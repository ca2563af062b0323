"""Ways to damage a file and to craft the members of an ``.npz``, for the loaders' tests."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np


def read_members(path: Path | BinaryIO) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {member.filename: archive.read(member) for member in archive.infolist()}


def write_members(path: Path | BinaryIO, members: dict[str, bytes],
                  compression: int = zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def npy_header(descr: str, shape: tuple, fortran_order: bool = False) -> bytes:
    """A version 1.0 ``.npy`` header saying whatever it is given."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": descr, "fortran_order": fortran_order, "shape": shape})
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def metadata_bytes(metadata) -> bytes:
    """The ``metadata.npy`` member holding ``metadata`` as JSON (or ``bytes`` as they are)."""
    raw = metadata if isinstance(metadata, bytes) else json.dumps(metadata).encode()
    return npy_bytes(np.frombuffer(raw, dtype=np.uint8))


def read_metadata(members: dict[str, bytes]) -> dict:
    return json.loads(np.load(io.BytesIO(members["metadata.npy"])).tobytes())


def flip_bits(data: bytes, rng: np.random.Generator, count: int) -> bytes:
    damaged = bytearray(data)
    for position in rng.integers(0, len(data) * 8, count):
        damaged[position // 8] ^= 1 << (position % 8)
    return bytes(damaged)


def truncate(data: bytes, rng: np.random.Generator) -> bytes:
    return data[: rng.integers(0, len(data))]


def zero_run(data: bytes, rng: np.random.Generator) -> bytes:
    start = int(rng.integers(0, len(data)))
    length = int(rng.integers(1, 200))
    return data[:start] + bytes(min(length, len(data) - start)) + data[start + length:]
