"""A cache of encoded training texts, so that a second run on a big file starts at once.

Where: ``$XDG_CACHE_HOME/charrnn/corpora`` (``~/.cache/charrnn/corpora`` by
default), not beside the text, whose folder may be read-only or shared.

What: for each file, decoding and layout (encoding, errors, delimiter), one
entry of two files named after a hash of the file's absolute path and those
options, so a changed file replaces its entry instead of adding one:

- ``<name>.npy``: the token array, loaded memory-mapped (``mmap_mode="r"``,
  ``allow_pickle=False``), so only the pages in use take memory;
- ``<name>.json``: the key (path, size, modification time and inode of the
  file, and the options), the array's length and dtype, and what the caller
  stores with it (the vocabulary, checksum and counts).

An entry is used only when its key matches the file as it is now, so an
edited file is read again. Both files are written atomically, the array
first; the JSON, written last, is what makes the entry valid. Anything
missing, stale or unreadable is a miss, never an error, and a cache that
cannot be written is skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checkpoint import write_atomically

FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "charrnn" / "corpora"


@dataclass(frozen=True)
class Entry:
    """Where the tokens of one file, read with given options, are cached, and the key that
    says whether they are still current."""

    source: Path  # the file, as an absolute path
    tokens_path: Path  # .npy
    info_path: Path  # .json
    key: dict

    def is_current(self) -> bool:
        return self.key == _key(self.source, self.key["options"])


def _key(source: Path, options: dict) -> dict | None:
    """What identifies the file's content and how it was read; None if it cannot be read."""
    try:
        status = source.stat()
    except OSError:
        return None
    return {"format_version": FORMAT_VERSION, "path": str(source), "size": status.st_size,
            "mtime_ns": status.st_mtime_ns, "inode": status.st_ino, "options": options}


def entry_for(cache_dir: Path, source: str, **options) -> Entry:
    """The cache entry for the file ``source`` read with ``options`` (JSON-able values)."""
    path = Path(source).resolve()
    name = hashlib.sha256(json.dumps([str(path), options], sort_keys=True).encode()).hexdigest()
    return Entry(path, Path(cache_dir) / f"{name[:32]}.npy", Path(cache_dir) / f"{name[:32]}.json",
                 _key(path, options))


def load(entry: Entry) -> tuple[np.ndarray, dict] | None:
    """The cached tokens (memory-mapped, read-only) and stored info, or None on a miss."""
    if entry.key is None:
        return None
    try:
        saved = json.loads(entry.info_path.read_text(encoding="utf-8"))
        if saved["key"] != entry.key:
            return None
        tokens = np.load(entry.tokens_path, mmap_mode="r", allow_pickle=False)
        if tokens.shape != (saved["length"],) or tokens.dtype.str != saved["dtype"]:
            return None
        return tokens, saved["info"]
    except (OSError, EOFError, ValueError, KeyError, TypeError):
        return None


def store(entry: Entry, tokens: np.ndarray, info: dict) -> bool:
    """Cache ``tokens`` (1-D) with ``info`` (JSON-able) if the file is unchanged since
    ``entry`` was made. Returns whether it was stored."""
    if entry.key is None or not entry.is_current():
        return False
    saved = {"key": entry.key, "length": len(tokens), "dtype": tokens.dtype.str, "info": info}
    try:
        entry.info_path.unlink(missing_ok=True)  # the entry stays invalid until both are written
        write_atomically(entry.tokens_path, lambda file: np.save(file, tokens, allow_pickle=False))
        write_atomically(entry.info_path, lambda file: file.write(json.dumps(saved).encode()))
    except OSError:
        return False
    return True
