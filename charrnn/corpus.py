"""Reading a text and laying it out as token windows for training and scoring.

Two layouts:

- stream: the whole text is one sequence ``<START> text <END>``.
- records: the text is split at a delimiter (newline by default), empty
  records are dropped, and each record becomes ``<START> record <END>``;
  the records follow one another in one sequence.

Either sequence is cut into B parallel contiguous streams, and each stream
into windows of T steps. Windows are time-major (T, B); the target of each
input is the next token.

A file is read and decoded in chunks, twice: the first pass counts its
characters and records, the second encodes them into a token array made to
size, so a big text is never held whole as a Python string (``load_corpus``;
``cache.py`` keeps the token array for the next run).
"""

from __future__ import annotations

import codecs
import hashlib
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from . import cache
from .errors import CharrnnError
from .vocab import END_ID, NUM_SPECIAL, START_ID, UNKNOWN_ID, Vocabulary, code_points

CHUNK_SIZE = 2 << 20  # bytes read and decoded at a time: the work on one takes ~20x that memory
BLOCK_SIZE = 2 << 20  # tokens scanned at a time in a token array (each takes 8 bytes as an index)


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
        raise CharrnnError(
            f"{name}: not valid {error.encoding} at byte {offset - num_held + error.start} "
            f"(use --encoding to name the file's encoding, or --errors replace)") from None
    except UnicodeError as error:  # e.g. UTF-16 without a byte-order mark
        raise CharrnnError(f"{name}: cannot be decoded ({error})") from None


def _decoded_chunks(chunks: Iterable[bytes], name: str, encoding: str, errors: str) -> Iterator[str]:
    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        raise CharrnnError(f"unknown encoding {encoding!r}") from None
    if not codec._is_text_encoding:  # such as rot13 or base64: not bytes to text
        raise CharrnnError(f"{encoding!r} is not a text encoding")
    decoder = codec.incrementaldecoder(errors)
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


def decoded_pieces(chunks: Iterable[bytes], name: str, encoding: str = "utf-8",
                   errors: str = "strict") -> Iterator[str]:
    """Decode a text given as chunks of bytes, a piece at a time: drop a byte-order mark, turn
    CRLF and CR line ends into LF.

    Characters and line ends may be split between chunks; the pieces joined
    are the text. An invalid byte is an error that gives its offset in the
    whole text.
    """
    return _normalised(_decoded_chunks(chunks, name, encoding, errors))


def decode_text(data: bytes, name: str, encoding: str = "utf-8", errors: str = "strict") -> str:
    """Decode bytes to text: drop a byte-order mark, turn CRLF and CR line ends into LF."""
    return "".join(decoded_pieces([data], name, encoding, errors))


def read_text(source: str, encoding: str = "utf-8", errors: str = "strict") -> str:
    """The text of a file, or of standard input for ``-``."""
    return decode_text(read_bytes(source), source_name(source), encoding, errors)


def records_in_pieces(pieces: Iterable[str], delimiter: str) -> Iterator[list[str]]:
    """The non-empty records of a text given in pieces, in lists: after each piece, the
    records it completes.

    The text after the last delimiter seen is carried into the next piece, so
    a record or a delimiter split between pieces is found whole.
    """
    rest = ""
    for piece in pieces:
        *complete, rest = (rest + piece).split(delimiter)
        yield [record for record in complete if record]
    if rest:
        yield [rest]


def split_records(text: str, delimiter: str = "\n") -> list[str]:
    """The non-empty records of a text."""
    return [record for records in records_in_pieces([text], delimiter) for record in records]


def sequence_tokens(pieces: list[str], vocab: Vocabulary) -> tuple[np.ndarray, int]:
    """Each piece as ``<START> piece <END>``, all in one token array.

    Characters outside the vocabulary are dropped; returns (tokens, number dropped).
    """
    ids = vocab.lookup(code_points("".join(pieces)))  # (C,) the pieces one after another
    bounds = np.cumsum([0, *map(len, pieces)])  # (P + 1,) where each piece starts in ids
    known = ids != UNKNOWN_ID
    num_dropped = len(ids) - int(np.count_nonzero(known))
    if num_dropped:
        known_before = np.concatenate(([0], np.cumsum(known)))  # (C + 1,)
        bounds = known_before[bounds]
        ids = ids[known]
    # <START> goes before each piece's first id and <END> after its last.
    positions = np.stack([bounds[:-1], bounds[1:]], axis=1).ravel()  # (2P,)
    markers = np.tile(np.array([START_ID, END_ID], vocab.dtype), len(pieces))  # (2P,)
    return np.insert(ids, positions, markers), num_dropped


class TextTally:
    """Running totals over the pieces of a text: code-point counts, length, and the SHA-256 of
    its UTF-8 bytes, which identifies a corpus in a checkpoint."""

    def __init__(self):
        self.counts = np.zeros(0, np.int64)  # (largest code point + 1,)
        self.sha256 = hashlib.sha256()
        self.num_chars = 0

    def add(self, piece: str) -> None:
        piece_counts = np.bincount(code_points(piece))
        if len(piece_counts) > len(self.counts):
            self.counts = np.pad(self.counts, (0, len(piece_counts) - len(self.counts)))
        self.counts[: len(piece_counts)] += piece_counts
        self.sha256.update(piece.encode("utf-8", "surrogatepass"))
        self.num_chars += len(piece)

    def passing(self, pieces: Iterable[str]) -> Iterator[str]:
        """The pieces, each added to the tally as it goes by."""
        for piece in pieces:
            self.add(piece)
            yield piece


@dataclass
class EncodedText:
    """A text laid out as one token sequence, with the vocabulary made from it."""

    vocab: Vocabulary
    tokens: np.ndarray  # (N,) <START> text <END>, or <START> record <END> for each record
    checksum: str
    num_chars: int
    num_records: int  # 1 in stream mode, 0 for an empty text


def layout_parts(pieces: Iterable[str], vocab: Vocabulary,
                 delimiter: str | None) -> Iterator[np.ndarray]:
    """The token sequence of a text given in pieces, in parts: ``<START> text <END>`` with no
    delimiter, else ``<START> record <END>`` for each non-empty record."""
    if delimiter is None:
        yield np.array([START_ID], vocab.dtype)
        for piece in pieces:
            yield vocab.encode(piece)[0]
        yield np.array([END_ID], vocab.dtype)
    else:
        for records in records_in_pieces(pieces, delimiter):
            yield sequence_tokens(records, vocab)[0]


def _layout_size(pieces: Iterable[str], delimiter: str | None) -> tuple[int, int]:
    """The number of records and of tokens in the layout of a text given in pieces."""
    if delimiter is None:
        num_chars = sum(map(len, pieces))
        return int(num_chars > 0), num_chars + 2
    num_records = num_tokens = 0
    for records in records_in_pieces(pieces, delimiter):
        num_records += len(records)
        num_tokens += sum(map(len, records)) + 2 * len(records)
    return num_records, num_tokens


def encode_text(read_pieces: Callable[[], Iterable[str]], delimiter: str | None) -> EncodedText:
    """Lay out a text that ``read_pieces()`` gives a piece at a time, reading it twice.

    The first pass counts the characters and the records, the second encodes
    them into a token array made to size, so the whole text is never held
    at once. ``delimiter`` None is the stream layout, else the records layout.
    """
    tally = TextTally()
    num_records, num_tokens = _layout_size(tally.passing(read_pieces()), delimiter)
    vocab = Vocabulary.from_counts(tally.counts)
    tokens = np.empty(num_tokens, vocab.dtype)  # (N,)
    filled = 0
    for part in layout_parts(read_pieces(), vocab, delimiter):
        if filled + len(part) > num_tokens:  # the file grew between the passes
            break
        tokens[filled: filled + len(part)] = part
        filled += len(part)
    if filled != num_tokens:
        raise CharrnnError("the training text changed while it was being read")
    return EncodedText(vocab, tokens, tally.sha256.hexdigest(), tally.num_chars, num_records)


def token_counts(tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """How often each token id occurs in ``tokens``, counted a block at a time."""
    counts = np.zeros(vocab_size, np.int64)  # (V,)
    for start in range(0, len(tokens), BLOCK_SIZE):
        counts += np.bincount(tokens[start: start + BLOCK_SIZE], minlength=vocab_size)
    return counts


def recode(encoded: EncodedText, vocab: Vocabulary) -> EncodedText:
    """The same token sequence in the ids of ``vocab`` (resuming from a checkpoint).

    Refuses a text that uses characters outside ``vocab``; a delimiter that
    only separates records does not count.
    """
    if vocab == encoded.vocab:
        return encoded
    old_chars = encoded.vocab.chars
    char_ids = vocab.lookup(code_points("".join(old_chars)))  # (V_old - 2,) new id of each char
    char_used = token_counts(encoded.tokens, encoded.vocab.size)[NUM_SPECIAL:] > 0  # (V_old - 2,)
    unknown = [old_chars[i] for i in np.flatnonzero(char_used & (char_ids == UNKNOWN_ID))]
    if unknown:
        shown = "".join(unknown[:20]) + ("..." if len(unknown) > 20 else "")
        raise CharrnnError(f"the text has {len(unknown)} characters the checkpoint's "
                           f"vocabulary lacks: {shown!r}")
    new_ids = np.concatenate([np.array([START_ID, END_ID], vocab.dtype), char_ids])  # (V_old,)
    tokens = np.empty(len(encoded.tokens), vocab.dtype)  # (N,)
    for start in range(0, len(tokens), BLOCK_SIZE):
        tokens[start: start + BLOCK_SIZE] = new_ids[encoded.tokens[start: start + BLOCK_SIZE]]
    return replace(encoded, vocab=vocab, tokens=tokens)


def start_of_last_records(tokens: np.ndarray, count: int) -> int:
    """The position of the ``<START>`` of the last ``count`` records in a records layout."""
    end = len(tokens)
    while count and end:
        start = max(0, end - BLOCK_SIZE)
        starts = np.flatnonzero(tokens[start:end] == START_ID)
        if len(starts) >= count:
            return start + int(starts[-count])
        count -= len(starts)
        end = start
    return end


@dataclass
class Corpus:
    """A training text split into training and validation token sequences."""

    vocab: Vocabulary
    train_tokens: np.ndarray  # (N_train,)
    val_tokens: np.ndarray  # (N_val,), possibly empty
    checksum: str
    num_chars: int


def split_corpus(encoded: EncodedText, *, records: bool, val_fraction: float) -> Corpus:
    """Hold out the last ``val_fraction`` of a laid-out text for validation.

    In stream mode the split is by characters, in records mode by records.
    The parts are views of ``encoded.tokens``.
    """
    if encoded.num_records == 0:
        raise CharrnnError("the training text is empty" if encoded.num_chars == 0
                           else "the training text has no records")
    tokens = encoded.tokens
    if records:
        cut = start_of_last_records(tokens, int(encoded.num_records * val_fraction))
        train_tokens, val_tokens = tokens[:cut], tokens[cut:]
    else:
        num_val = int(encoded.num_chars * val_fraction)
        cut = len(tokens) - num_val
        # The token at the cut is the last target of one part and the first input of the other.
        train_tokens, val_tokens = tokens[:cut], tokens[cut - 1:] if num_val else tokens[:0]
    return Corpus(encoded.vocab, train_tokens, val_tokens, encoded.checksum, encoded.num_chars)


def build_corpus(text: str, *, records: bool, delimiter: str, val_fraction: float,
                 vocab: Vocabulary | None = None) -> Corpus:
    """Lay out a text held in memory for training (see ``load_corpus`` for files).

    With ``vocab`` given (resuming), the text must not use characters outside it.
    """
    encoded = encode_text(lambda: [text], delimiter if records else None)
    if vocab is not None:
        encoded = recode(encoded, vocab)
    return split_corpus(encoded, records=records, val_fraction=val_fraction)


def load_corpus(source: str, *, records: bool, delimiter: str, val_fraction: float,
                vocab: Vocabulary | None = None, encoding: str = "utf-8", errors: str = "strict",
                cache_dir: Path | None = None, chunk_size: int = CHUNK_SIZE) -> Corpus:
    """Read, decode and lay out a file (or standard input for ``-``) for training.

    The file is read ``chunk_size`` bytes at a time, twice, and never held
    whole as text. With ``cache_dir``, the laid-out tokens of a file are
    kept there and memory-mapped by later loads of the unchanged file.
    With ``vocab`` given (resuming), the text must not use characters outside it.
    """
    layout_delimiter = delimiter if records else None
    entry = None
    if cache_dir is not None and source != "-":
        entry = cache.entry_for(cache_dir, source, encoding=encoding, errors=errors,
                                delimiter=layout_delimiter)
    encoded = _from_cache(entry) if entry is not None else None
    if encoded is None:
        read_chunks = chunk_reader(source, chunk_size)
        encoded = encode_text(
            lambda: decoded_pieces(read_chunks(), source_name(source), encoding, errors),
            layout_delimiter)
        if entry is not None:
            cache.store(entry, encoded.tokens, _cache_info(encoded))
    if vocab is not None:
        encoded = recode(encoded, vocab)
    return split_corpus(encoded, records=records, val_fraction=val_fraction)


def _cache_info(encoded: EncodedText) -> dict:
    return {"vocabulary": list(encoded.vocab.chars), "checksum": encoded.checksum,
            "num_chars": encoded.num_chars, "num_records": encoded.num_records}


def _from_cache(entry: cache.Entry) -> EncodedText | None:
    """The encoded text kept in the cache, or None if it is missing, stale or damaged."""
    found = cache.load(entry)
    if found is None:
        return None
    tokens, info = found
    try:
        vocab = Vocabulary(tuple(info["vocabulary"]))
        encoded = EncodedText(vocab, tokens, str(info["checksum"]), int(info["num_chars"]),
                              int(info["num_records"]))
    except (KeyError, TypeError, ValueError):
        return None
    chars_valid = all(isinstance(char, str) and len(char) == 1 for char in vocab.chars)
    return encoded if chars_valid and tokens.dtype == vocab.dtype else None


def fit_window(num_tokens: int, batch_size: int, seq_length: int) -> tuple[int, int]:
    """The largest (batch_size, seq_length), no larger than asked, that gives one window.

    A window of B rows and T steps needs B * T + 1 tokens; rows are given up
    before steps. Raises CharrnnError if there are fewer than two tokens.
    """
    num_targets = num_tokens - 1
    if num_targets < 1:
        raise CharrnnError("the training text is too short: it needs at least one character")
    seq_length = min(seq_length, num_targets)
    batch_size = min(batch_size, num_targets // seq_length)
    return batch_size, seq_length


class Windows:
    """A token sequence cut into B parallel contiguous streams and windows of T steps.

    With ``pad`` the sequence is padded so that every target falls in some
    window (the last window may be shorter, and padded targets are <START>,
    which is never scored): for scoring. Without it, the ragged end is
    dropped and every window has T steps: for training.
    """

    def __init__(self, tokens: np.ndarray, batch_size: int, seq_length: int, pad: bool = False):
        num_targets = len(tokens) - 1
        if pad:
            stream_length = -(-num_targets // batch_size)
            padded = np.full(batch_size * stream_length + 1, START_ID, tokens.dtype)
            padded[: len(tokens)] = tokens
            tokens = padded
            self.num_windows = -(-stream_length // seq_length)
        else:
            stream_length = num_targets // batch_size
            self.num_windows = stream_length // seq_length
        span = batch_size * stream_length
        self.inputs = tokens[:span].reshape(batch_size, stream_length)  # (B, L)
        self.targets = tokens[1: span + 1].reshape(batch_size, stream_length)  # (B, L)
        self.batch_size, self.seq_length = batch_size, seq_length

    @property
    def stream_length(self) -> int:
        """L: the steps in each stream."""
        return self.inputs.shape[1]

    def window(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The inputs and targets of window ``index``, each (T, B)."""
        return self.span(index * self.seq_length, self.seq_length)

    def span(self, start: int, length: int) -> tuple[np.ndarray, np.ndarray]:
        """The inputs and targets of ``length`` steps from step ``start``, each (length, B)."""
        steps = slice(start, start + length)
        return (np.ascontiguousarray(self.inputs[:, steps].T),
                np.ascontiguousarray(self.targets[:, steps].T))


def default_corpus() -> str:
    """Path of the Shakespeare corpus that ships with charrnn.

    ``charrnn/data`` is a link to the repository's ``data/`` folder; an
    installed package holds a copy of its files.
    """
    return str(Path(__file__).parent / "data" / "tinyshakespeare.txt")
