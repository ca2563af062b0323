"""Reading ``.npy`` arrays and ``.npz`` archives that may be damaged or hostile.

``np.load`` trusts what a file says: a 100 KB archive whose header claims a
(400000, 400000) array makes it allocate 596 GiB, and a flipped byte in a
header can raise almost anything (``tokenize.TokenError`` among others).
Here every header is parsed first, any exception of the parser becomes
``Unreadable``, and an array is read only when the bytes its shape and type
need are exactly the bytes stored for it. An archive's members must be
stored uncompressed, each inside the file and none overlapping (their sizes
add up to at most the file's size). So reading never allocates more than
the file holds.
"""

from __future__ import annotations

import math
import os
import stat
import zipfile
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from numpy.lib import format as npy_format

MAX_HEADER_SIZE = 10_000  # bytes of a header's text; np.save writes about 128


class Unreadable(Exception):
    """The file, or an array in it, cannot be trusted; the message says why."""


@dataclass(frozen=True)
class ArrayHeader:
    """What an array's ``.npy`` header says, checked against its stored size."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    data_offset: int  # where the data starts, from the start of the .npy

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def read_header(file: BinaryIO, stored_size: int) -> ArrayHeader:
    """Parse the ``.npy`` header at the file's position, for an array stored in ``stored_size``
    bytes from there (header included). The array must fill them exactly; it may not hold
    Python objects."""
    start = file.tell()
    try:
        version = npy_format.read_magic(file)
        if version == (1, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_1_0(file, MAX_HEADER_SIZE)
        elif version == (2, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_2_0(file, MAX_HEADER_SIZE)
        else:
            raise Unreadable(f"unknown .npy version {version}")
    except Unreadable:
        raise
    except Exception:  # the parsers raise ValueError, SyntaxError, TokenError, MemoryError...
        raise Unreadable("unreadable array header") from None
    if dtype.hasobject:
        raise Unreadable("holds pickled objects")
    if dtype.fields is not None or dtype.subdtype is not None or dtype.itemsize == 0:
        raise Unreadable(f"unsupported array type {dtype}")
    if any(length < 0 for length in shape):
        raise Unreadable(f"negative shape {shape}")
    header = ArrayHeader(tuple(shape), dtype, fortran_order, file.tell() - start)
    if header.data_offset + header.size * dtype.itemsize != stored_size:
        raise Unreadable(f"header claims {shape} of {dtype} but {stored_size} bytes are stored")
    return header


def regular_file_size(file: BinaryIO) -> int:
    """The size of an open file, which must be a regular file (not a pipe or a device)."""
    status = os.fstat(file.fileno())
    if not stat.S_ISREG(status.st_mode):
        raise Unreadable("not a regular file")
    return status.st_size


class Archive:
    """An open ``.npz`` archive whose members were checked before any is read.

    ``names`` are the arrays' names (member names without ``.npy``).
    """

    def __init__(self, file: BinaryIO):
        file_size = regular_file_size(file)
        try:
            is_archive = zipfile.is_zipfile(file)
        except Exception:
            is_archive = False
        if not is_archive:
            raise Unreadable("not an .npz archive, or cut short")
        try:
            file.seek(0)
            self.zip = zipfile.ZipFile(file)
            members = self.zip.infolist()
        except Exception:
            raise Unreadable("unreadable or truncated") from None
        self.members: dict[str, zipfile.ZipInfo] = {}
        for member in members:
            name = member.filename.removesuffix(".npy")
            if name == member.filename or name in self.members:
                raise Unreadable(f"unexpected member {member.filename!r}")
            if (member.compress_type != zipfile.ZIP_STORED
                    or member.compress_size != member.file_size):
                raise Unreadable(f"compressed member {member.filename!r}")
            self.members[name] = member
        if sum(member.file_size for member in members) > file_size:
            raise Unreadable("members larger than the file")
        self.names = list(self.members)

    def header(self, name: str) -> ArrayHeader:
        member = self.members[name]
        with self.zip.open(member) as stream:
            return read_header(stream, member.file_size)

    def read(self, name: str) -> np.ndarray:
        """The array, after checking its header (see ``header``)."""
        member = self.members[name]
        with self.zip.open(member) as stream:
            read_header(stream, member.file_size)
            stream.seek(0)
            return npy_format.read_array(stream, allow_pickle=False,
                                         max_header_size=MAX_HEADER_SIZE)

    def close(self) -> None:
        self.zip.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
