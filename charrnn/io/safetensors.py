"""The safetensors format: named arrays in a file that PyTorch and other tools read.

A file is three parts:
    8 bytes   N, the header's length, a little-endian unsigned 64-bit integer
    N bytes   UTF-8 JSON: each tensor's name -> {"dtype": "F32", "shape": [...],
              "data_offsets": [begin, end]}, plus "__metadata__", an object of strings;
              spaces may pad it
    the rest  the tensors' values, little-endian, in C order, each at its offsets (bytes
              from the start of this part), together covering it without a gap

Nothing in a file is executed when it is read, and reading checks everything
before it allocates: the header's length against the file's and MAX_HEADER_BYTES,
the JSON, each dtype, each shape against its offsets, and the offsets against the
data (in order, no overlap, no gap, as the specification requires). charrnn
writes the format itself rather than depend on the ``safetensors`` package: the
format is this simple, and charrnn's runtime dependencies stay numpy, click,
rich and threadpoolctl.
"""

from __future__ import annotations

import json
import struct
from typing import BinaryIO

import numpy as np

from charrnn.io.npy import Unreadable

# The float types charrnn reads and writes (bfloat16 has no numpy type).
DTYPES = {"F16": np.dtype("<f2"), "F32": np.dtype("<f4"), "F64": np.dtype("<f8")}
CODES = {dtype.name: code for code, dtype in DTYPES.items()}
MAX_HEADER_BYTES = 100 << 20  # as the safetensors package's own limit
METADATA = "__metadata__"


def write_safetensors(file: BinaryIO, tensors: dict[str, np.ndarray],
                      metadata: dict[str, str]) -> None:
    """Write ``tensors`` (float16, float32 or float64) in order, with string ``metadata``."""
    header: dict[str, object] = {METADATA: metadata}
    offset = 0
    for name, array in tensors.items():
        end = offset + array.nbytes
        header[name] = {"dtype": CODES[array.dtype.name], "shape": list(array.shape),
                        "data_offsets": [offset, end]}
        offset = end
    encoded = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)  # the data starts 8-byte aligned
    file.write(struct.pack("<Q", len(encoded)))
    file.write(encoded)
    for array in tensors.values():
        file.write(np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes())


def _entries(header: dict) -> list[tuple[str, np.dtype, tuple[int, ...], int, int]]:
    """(name, dtype, shape, begin, end) of every tensor, by offset; Unreadable if any is
    malformed."""
    entries = []
    for name, entry in header.items():
        if name == METADATA:
            continue
        if not (isinstance(entry, dict) and entry.get("dtype") in DTYPES):
            dtype = entry.get("dtype") if isinstance(entry, dict) else None
            raise Unreadable(f"{name!r} has dtype {str(dtype)[:20]!r}, not one of "
                             f"{', '.join(DTYPES)}")
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if not (isinstance(shape, list) and all(type(size) is int and size >= 0
                                                 for size in shape)
                and isinstance(offsets, list) and len(offsets) == 2
                and all(type(offset) is int for offset in offsets)):
            raise Unreadable(f"{name!r} has a malformed shape or offsets")
        dtype = DTYPES[entry["dtype"]]
        if int(np.prod(shape, dtype=object)) * dtype.itemsize != offsets[1] - offsets[0]:
            raise Unreadable(f"{name!r}: its shape does not fit its offsets")
        entries.append((name, dtype, tuple(shape), offsets[0], offsets[1]))
    return sorted(entries, key=lambda entry: entry[3:])


def read_safetensors(file: BinaryIO, size: int) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors (native byte order) and the metadata of a file of ``size`` bytes;
    Unreadable, saying why, for anything that is not a well-formed safetensors file."""
    start = file.read(8)
    if len(start) < 8:
        raise Unreadable("shorter than a header")
    (length,) = struct.unpack("<Q", start)
    if length > min(MAX_HEADER_BYTES, size - 8):
        raise Unreadable(f"a header of {length:,} bytes in a file of {size:,}")
    try:
        header = json.loads(file.read(length).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Unreadable("the header is not JSON") from None
    if not isinstance(header, dict):
        raise Unreadable("the header is not a JSON object")
    metadata = header.get(METADATA, {})
    if not (isinstance(metadata, dict) and all(isinstance(value, str)
                                               for value in metadata.values())):
        raise Unreadable("the metadata is not an object of strings")
    entries = _entries(header)
    data_size, position = size - 8 - length, 0
    for name, _, _, begin, end in entries:
        if begin != position:
            raise Unreadable(f"{name!r} does not start where the tensor before it ends")
        position = end
    if position != data_size:
        raise Unreadable(f"the tensors cover {position:,} bytes of {data_size:,}")
    tensors = {}
    for name, dtype, shape, begin, end in entries:
        raw = file.read(end - begin)
        if len(raw) != end - begin:
            raise Unreadable("cut short")
        tensors[name] = np.frombuffer(raw, dtype).reshape(shape).astype(dtype.newbyteorder("="))
    return tensors, metadata
