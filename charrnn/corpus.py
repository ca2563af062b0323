"""Reading a text and laying it out as token windows for training and scoring.

Two layouts:

- stream: the whole text is one sequence ``<START> text <END>``.
- records: the text is split at a delimiter (newline by default), empty
  records are dropped, and each record becomes ``<START> record <END>``;
  the records follow one another in one sequence.

Either sequence is cut into B parallel contiguous streams, and each stream
into windows of T steps. Windows are time-major (T, B); the target of each
input is the next token.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import CharrnnError
from .vocab import END_ID, START_ID, Vocabulary


def source_name(source: str) -> str:
    return "standard input" if source == "-" else source


def read_bytes(source: str) -> bytes:
    """The bytes of a file, or of standard input for ``-``, with errors a user can read."""
    if source == "-":
        return sys.stdin.buffer.read()
    path = Path(source)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CharrnnError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise CharrnnError(f"{source}: is a directory, not a text file") from None
    except PermissionError:
        raise CharrnnError(f"{source}: permission denied") from None
    except OSError as error:
        raise CharrnnError(f"{source}: cannot read ({error.strerror})") from None


def decode_text(data: bytes, name: str, encoding: str = "utf-8", errors: str = "strict") -> str:
    """Decode bytes to text: drop a byte-order mark, turn CRLF and CR line ends into LF."""
    try:
        text = data.decode(encoding, errors)
    except UnicodeDecodeError as error:
        raise CharrnnError(
            f"{name}: not valid {error.encoding} at byte {error.start} "
            f"(use --encoding to name the file's encoding, or --errors replace)") from None
    except LookupError:
        raise CharrnnError(f"unknown encoding {encoding!r}") from None
    text = text.removeprefix("\ufeff")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def read_text(source: str, encoding: str = "utf-8", errors: str = "strict") -> str:
    """The text of a file, or of standard input for ``-``."""
    return decode_text(read_bytes(source), source_name(source), encoding, errors)


def checksum(text: str) -> str:
    """SHA-256 of the text's UTF-8 bytes: identifies a corpus in a checkpoint."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def split_records(text: str, delimiter: str = "\n") -> list[str]:
    """The non-empty records of a text."""
    return [record for record in text.split(delimiter) if record]


def sequence_tokens(pieces: list[str], vocab: Vocabulary) -> tuple[np.ndarray, int]:
    """Each piece as ``<START> piece <END>``, all in one token array.

    Characters outside the vocabulary are dropped; returns (tokens, number dropped).
    """
    encoded, dropped = [], 0
    for piece in pieces:
        ids, unknown = vocab.encode(piece)
        encoded += [np.array([START_ID], vocab.dtype), ids, np.array([END_ID], vocab.dtype)]
        dropped += unknown
    if not encoded:
        return np.zeros(0, vocab.dtype), dropped
    return np.concatenate(encoded), dropped


@dataclass
class Corpus:
    """A training text split into training and validation token sequences."""

    vocab: Vocabulary
    train_tokens: np.ndarray  # (N_train,)
    val_tokens: np.ndarray  # (N_val,), possibly empty
    checksum: str
    num_chars: int


def build_corpus(text: str, *, records: bool, delimiter: str, val_fraction: float,
                 vocab: Vocabulary | None = None) -> Corpus:
    """Lay out a text for training: the last ``val_fraction`` is held out for validation.

    In stream mode the split is by characters, in records mode by records.
    With ``vocab`` given (resuming), the text must not use characters outside it.
    """
    pieces = split_records(text, delimiter) if records else ([text] if text else [])
    if not pieces:
        raise CharrnnError("the training text is empty" if not text
                           else "the training text has no records")
    if vocab is None:
        vocab = Vocabulary.from_text(text)
    else:
        unknown = vocab.unknown("".join(pieces))
        if unknown:
            shown = "".join(unknown[:20]) + ("..." if len(unknown) > 20 else "")
            raise CharrnnError(f"the text has {len(unknown)} characters the checkpoint's "
                               f"vocabulary lacks: {shown!r}")
    if records:
        num_val = int(len(pieces) * val_fraction)
        train_pieces, val_pieces = pieces[: len(pieces) - num_val], pieces[len(pieces) - num_val:]
        train_tokens, _ = sequence_tokens(train_pieces, vocab)
        val_tokens, _ = sequence_tokens(val_pieces, vocab)
    else:
        tokens, _ = sequence_tokens(pieces, vocab)
        num_val = int(len(text) * val_fraction)
        cut = len(tokens) - num_val
        # The token at the cut is the last target of one part and the first input of the other.
        train_tokens, val_tokens = tokens[:cut], tokens[cut - 1:] if num_val else tokens[:0]
    return Corpus(vocab, train_tokens, val_tokens, checksum(text), len(text))


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

    def window(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The inputs and targets of window ``index``, each (T, B)."""
        steps = slice(index * self.seq_length, (index + 1) * self.seq_length)
        return (np.ascontiguousarray(self.inputs[:, steps].T),
                np.ascontiguousarray(self.targets[:, steps].T))


def default_corpus() -> str:
    """Path of the Shakespeare corpus that ships with charrnn.

    ``charrnn/data`` is a link to the repository's ``data/`` folder; an
    installed package holds a copy of its files.
    """
    return str(Path(__file__).parent / "data" / "tinyshakespeare.txt")
