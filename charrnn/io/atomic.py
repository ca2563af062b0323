"""Writing a file atomically: a temporary file in the same folder, fsync, rename, so a
crash never leaves a half-written file where the old one was."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from charrnn.errors import CharrnnError


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
    probe.unlink(missing_ok=True)  # another run writing the same path may have removed it


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
