"""Reading a text: the bytes of a file or of standard input, decoded.

A text is read as **chunks** (bytes, CHUNK_SIZE at a time) and decoded into
**pieces** (str): a character or a line end may be split between chunks, and
the pieces joined are the text. Decoding drops a byte-order mark and turns
CRLF and CR line ends into LF.
"""

from __future__ import annotations

import codecs
import io
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from charrnn.errors import CharrnnError

CHUNK_SIZE = 2 << 20  # bytes read and decoded at a time: the work on one takes ~20x that memory
SNIFF_SIZE = 8000  # bytes at the start of a file in a folder that tell whether it is text
DEFAULT_ENCODING = "utf-8"  # of every text read, unless --encoding says otherwise
ERROR_HANDLERS = ("strict", "replace", "ignore")  # what --errors may do with invalid bytes
DEFAULT_ERRORS = ERROR_HANDLERS[0]


class InvalidBytes(CharrnnError):
    """The text holds bytes that are not valid in its encoding."""


def source_name(source: str) -> str:
    return "standard input" if source == "-" else source


def _read_error(source: str, error: OSError) -> CharrnnError:
    if isinstance(error, FileNotFoundError):
        return CharrnnError(f"{source}: no such file")
    if isinstance(error, IsADirectoryError):
        return CharrnnError(f"{source}: is a directory, not a text file")
    if isinstance(error, PermissionError):
        return CharrnnError(f"{source}: permission denied")
    return CharrnnError(f"{source}: cannot read ({error.strerror})")


def read_stdin() -> bytes:
    if sys.stdin is None:
        raise CharrnnError("standard input is closed")
    return sys.stdin.buffer.read()


def read_bytes(source: str) -> bytes:
    """The bytes of a file, or of standard input for ``-``, with errors a user can read."""
    if source == "-":
        return read_stdin()
    try:
        return Path(source).read_bytes()
    except OSError as error:
        raise _read_error(source, error) from None


def chunk_reader(source: str, chunk_size: int = CHUNK_SIZE) -> Callable[[], Iterator[bytes]]:
    """A function that reads the bytes of ``source`` again, ``chunk_size`` at a time, at each call.

    A file is read from disk at each call; standard input (``-``), which
    can be read only once, is read whole now and kept in memory.
    """
    if source == "-":
        data = read_stdin()
        return lambda: (data[start: start + chunk_size] for start in range(0, len(data), chunk_size))

    def read_file() -> Iterator[bytes]:
        try:
            with open(source, "rb") as file:
                while chunk := file.read(chunk_size):
                    yield chunk
        except OSError as error:
            raise _read_error(source, error) from None

    return read_file


def _decode_chunk(decoder: codecs.IncrementalDecoder, chunk: bytes, offset: int, name: str,
                  final: bool = False) -> str:
    """Decode one chunk; ``offset`` is the number of bytes given to the decoder before it."""
    num_held = len(decoder.getstate()[0])  # bytes of an unfinished character, kept from before
    try:
        return decoder.decode(chunk, final)
    except UnicodeDecodeError as error:
        raise InvalidBytes(
            f"{name}: not valid {error.encoding} at byte {offset - num_held + error.start}"
        ) from None
    except UnicodeError as error:  # e.g. UTF-16 without a byte-order mark
        raise CharrnnError(f"{name}: cannot be decoded ({error})") from None


def _decoder(encoding: str, errors: str) -> codecs.IncrementalDecoder:
    """An incremental decoder for a text encoding; anything else is refused."""
    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        raise CharrnnError(f"unknown encoding {encoding!r}") from None
    try:
        io.TextIOWrapper(io.BytesIO(), encoding=encoding)
    except LookupError:  # such as rot13 or base64: not bytes to text
        raise CharrnnError(f"{encoding!r} is not a text encoding") from None
    return codec.incrementaldecoder(errors)


def _decoded_chunks(chunks: Iterable[bytes], name: str, encoding: str, errors: str) -> Iterator[str]:
    decoder = _decoder(encoding, errors)
    offset = 0
    for chunk in chunks:
        yield _decode_chunk(decoder, chunk, offset, name)
        offset += len(chunk)
    yield _decode_chunk(decoder, b"", offset, name, final=True)


def _normalised(pieces: Iterable[str]) -> Iterator[str]:
    """The pieces of a text with a leading byte-order mark dropped and CRLF and CR made LF.

    A CR that ends a piece is held back until the next piece shows whether
    an LF follows it, so a CRLF split between pieces is still one line end.
    """
    held_back = ""
    at_start = True
    for piece in pieces:
        piece = held_back + piece
        if at_start and piece:
            piece = piece.removeprefix("\ufeff")
            at_start = False
        held_back = "\r" if piece.endswith("\r") else ""
        piece = piece[: len(piece) - len(held_back)]
        yield piece.replace("\r\n", "\n").replace("\r", "\n") if "\r" in piece else piece
    yield held_back.replace("\r", "\n")


def decoded_pieces(chunks: Iterable[bytes], name: str, encoding: str = DEFAULT_ENCODING,
                   errors: str = DEFAULT_ERRORS) -> Iterator[str]:
    """Decode a text given as chunks of bytes, a piece at a time: drop a byte-order mark, turn
    CRLF and CR line ends into LF.

    Characters and line ends may be split between chunks; the pieces joined
    are the text. An invalid byte is an error that gives its offset in the
    whole text.
    """
    return _normalised(_decoded_chunks(chunks, name, encoding, errors))


def decode_text(data: bytes, name: str, encoding: str = DEFAULT_ENCODING, errors: str = DEFAULT_ERRORS) -> str:
    """Decode bytes to text: drop a byte-order mark, turn CRLF and CR line ends into LF."""
    return "".join(decoded_pieces([data], name, encoding, errors))


def read_text(source: str, encoding: str = DEFAULT_ENCODING, errors: str = DEFAULT_ERRORS) -> str:
    """The text of a file, or of standard input for ``-``."""
    return decode_text(read_bytes(source), source_name(source), encoding, errors)


def not_text(path: str, encoding: str = DEFAULT_ENCODING, errors: str = DEFAULT_ERRORS) -> str | None:
    """Why the file at ``path`` is not taken for a text file, or None if it is: its first
    SNIFF_SIZE bytes must decode in ``encoding`` and hold no NUL character (as git and grep
    tell text from binary). Only the head is read; later bytes are checked in training."""
    decoder = _decoder(encoding, errors)  # an unusable encoding is an error, not a reason
    try:
        with open(path, "rb") as file:
            head = file.read(SNIFF_SIZE)
    except OSError as error:
        raise _read_error(path, error) from None
    try:
        text = _decode_chunk(decoder, head, 0, path)  # a character cut at the end waits
    except CharrnnError as error:
        return str(error).removeprefix(f"{path}: ")
    return "binary (a NUL byte near its start)" if "\0" in text else None


def text_files(folder: str, encoding: str = DEFAULT_ENCODING,
               errors: str = DEFAULT_ERRORS) -> tuple[list[str], dict[str, str]]:
    """The text files of a folder, sorted by name, and those skipped, with why.

    Taken: the regular files (or links to them) directly in the folder, not
    in its subfolders, whose names do not start with a dot (hidden files),
    and that pass ``not_text``. Skipped (with a reason): the files of that
    kind that do not.
    """
    try:
        paths = sorted(Path(folder).iterdir(), key=lambda path: path.name)
    except OSError as error:
        raise _read_error(folder, error) from None
    taken, skipped = [], {}
    for path in paths:
        if path.name.startswith(".") or not path.is_file():
            continue
        reason = not_text(str(path), encoding, errors)
        if reason is None:
            taken.append(str(path))
        else:
            skipped[str(path)] = reason
    return taken, skipped


def training_files(sources: Sequence[str], encoding: str = DEFAULT_ENCODING,
                   errors: str = DEFAULT_ERRORS) -> tuple[list[str], dict[str, str]]:
    """The files named by ``sources``, in order: a folder stands for its text files
    (``text_files``), anything else for itself. Returns them, and the files of folders
    skipped, with why. A folder with no text file is an error."""
    files, skipped = [], {}
    for source in sources:
        if source == "-" or not Path(source).is_dir():
            files.append(source)
            continue
        taken, not_taken = text_files(source, encoding, errors)
        if not taken:
            raise CharrnnError(f"{source}: no text files in this folder")
        files += taken
        skipped.update(not_taken)
    return files, skipped


def default_corpus() -> str:
    """Path of the Shakespeare corpus that ships with charrnn.

    ``charrnn/texts`` is a link to the repository's ``data/`` folder; an
    installed package holds a copy of its files.
    """
    return str(Path(__file__).parents[1] / "texts" / "tinyshakespeare.txt")
