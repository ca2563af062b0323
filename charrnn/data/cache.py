"""A cache of encoded training texts, so that a second run on a big file starts at once.

Where: ``$XDG_CACHE_HOME/charrnn/corpora`` (``~/.cache/charrnn/corpora`` by
default), not beside the text, whose folder may be read-only or shared.

What: for each list of files (most often one) laid out together, decoding
and layout (encoding, errors, delimiter), one entry, one file
``<name>.tokens`` named after a hash of the files' absolute paths in order
and those options, so a changed file replaces its entry instead of adding
one. It holds:

- a first line of JSON: the key (path, size, modification time and inode of
  every file, and the options), the token array's length and dtype, what
  the caller stores with it (the vocabulary, checksum and counts), and a
  CRC-32 of all of these and the tokens, padded with spaces so that the
  array's data is aligned;
- then the token array as an ``.npy``, memory-mapped read-only, so only the
  pages in use take memory.

An entry is written whole to a temporary file that is renamed into place, so
two runs filling the same entry at once leave one whole entry (the last
renamed) and a crash leaves none. It is used only when its key matches the
files as they are now, its array header matches the JSON and the file's size,
and the CRC-32 matches (about 1 s per GB of tokens): a damaged vocabulary is
a miss, as damaged tokens are. Anything
missing, stale, damaged or mismatched is a miss, never an error, and is
written again; a cache that cannot be written is skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charrnn.errors import CharrnnError
from charrnn.io.atomic import write_atomically
from charrnn.io.npy import read_header, regular_file_size

FORMAT_VERSION = 4  # 3: a key names a list of files; 4: the CRC-32 covers the JSON too
MAX_INFO_BYTES = 32 << 20  # the JSON line; a vocabulary of all of Unicode takes about 17 MB
ALIGNMENT = 64  # bytes: where the .npy starts, as np.save aligns its data
READ_SIZE = 1 << 20  # bytes read at a time to check the tokens' CRC-32


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "charrnn" / "corpora"


@dataclass(frozen=True)
class Entry:
    """Where the tokens of a list of files, read with given options, are cached, and the key
    that says whether they are still current."""

    sources: tuple[Path, ...]  # the files, as absolute paths
    path: Path  # the entry: a JSON line, then the tokens as an .npy
    key: dict

    def is_current(self) -> bool:
        return self.key == _key(self.sources, self.key["options"])


def _key(sources: tuple[Path, ...], options: dict) -> dict | None:
    """What identifies the files' content and how they were read; None if one cannot be
    read."""
    files = []
    for source in sources:
        try:
            status = source.stat()
        except OSError:
            return None
        files.append({"path": str(source), "size": status.st_size,
                      "mtime_ns": status.st_mtime_ns, "inode": status.st_ino})
    return {"format_version": FORMAT_VERSION, "files": files, "options": options}


def entry_for(cache_dir: Path, sources: str | list[str], **options) -> Entry:
    """The cache entry for the file ``sources``, or for these files in this order, read with
    ``options`` (JSON-able values)."""
    paths = tuple(Path(source).resolve()
                  for source in ([sources] if isinstance(sources, str) else sources))
    name = hashlib.sha256(json.dumps([list(map(str, paths)), options],
                                     sort_keys=True).encode()).hexdigest()
    return Entry(paths, Path(cache_dir) / f"{name[:32]}.tokens", _key(paths, options))


def load(entry: Entry) -> tuple[np.ndarray, dict] | None:
    """The cached tokens (memory-mapped, read-only) and stored info, or None on a miss."""
    if entry.key is None:
        return None
    try:
        with open(entry.path, "rb") as file:
            size = regular_file_size(file)
            saved = json.loads(file.readline(MAX_INFO_BYTES))
            if saved["key"] != entry.key:
                return None
            header = read_header(file, size - file.tell())
            if (header.shape != (saved["length"],) or header.dtype.str != saved["dtype"]
                    or header.fortran_order):
                return None
            offset = file.tell()
            crc = saved.pop("crc32")
            if _crc32_of_rest(file, _crc32_of_fields(saved)) != crc:
                return None
            tokens = np.memmap(file, header.dtype, "r", offset=offset, shape=header.shape)
        return tokens, saved["info"]
    except Exception:  # whatever the damage: a miss, and the entry is written again
        return None


def _crc32_of_fields(saved: dict) -> int:
    """The CRC-32 of an entry's JSON fields but its CRC, written out the same way whatever
    the order of the keys."""
    return zlib.crc32(json.dumps(saved, sort_keys=True).encode())


def _crc32_of_rest(file, crc: int) -> int:
    """The CRC-32 of the file from its position on, continuing from ``crc``, read a block at
    a time (not through the memory map, whose pages would then all count in this process's
    memory)."""
    while block := file.read(READ_SIZE):
        crc = zlib.crc32(block, crc)
    return crc


def store(entry: Entry, tokens: np.ndarray, info: dict) -> bool:
    """Cache ``tokens`` (1-D) with ``info`` if the file is unchanged since ``entry`` was
    made. Returns whether it was stored. ``info`` must come back from JSON as it went in
    (string keys; strings, numbers, lists): the CRC-32 is taken of it before it is written
    and of what is read back."""
    if entry.key is None or not entry.is_current():
        return False
    saved = {"key": entry.key, "length": len(tokens), "dtype": tokens.dtype.str, "info": info}
    saved["crc32"] = zlib.crc32(np.ascontiguousarray(tokens), _crc32_of_fields(saved))
    line = json.dumps(saved).encode()
    line += b" " * (-(len(line) + 1) % ALIGNMENT) + b"\n"

    def write(file):
        file.write(line)
        np.save(file, tokens, allow_pickle=False)

    try:
        write_atomically(entry.path, write)
    except CharrnnError:  # the folder or the disk cannot take it: go on without
        return False
    return True
