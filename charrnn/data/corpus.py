"""Laying out a text as one token sequence, and holding out its end for validation.

The words used here and after (``windows.py`` cuts the result into streams):

- a **record** is a non-empty stretch of text between two delimiters
  (newline by default);
- a **sequence** is ``<START> ... <END>`` around the whole text (the default
  layout) or around each record (the records layout);
- the **tokens** of a text are its sequences one after another, as token ids.

Several files are laid out one after another, each on its own. Each file is
read twice, a piece at a time (``text.py``): the first pass counts its
characters and records and makes the vocabulary, the second encodes them
into a token array made to size, so a big text is never held whole as a
Python string (``load_corpus``; ``cache.py`` keeps the token array for the
next run).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from charrnn.data import cache
from charrnn.data.sources import (CHUNK_SIZE, DEFAULT_ENCODING, DEFAULT_ERRORS, chunk_reader,
                                  decoded_pieces, source_name)
from charrnn.data.vocab import END_ID, NUM_SPECIAL, START_ID, UNKNOWN_ID, Vocabulary, code_points
from charrnn.errors import CharrnnError, counted, shown_characters

BLOCK_SIZE = 2 << 20  # tokens scanned at a time in a token array (each takes 8 bytes as an index)


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


def sequence_tokens(texts: list[str], vocab: Vocabulary) -> tuple[np.ndarray, int]:
    """Each text as the sequence ``<START> text <END>``, all in one token array.

    Characters outside the vocabulary are dropped; returns (tokens, number dropped).
    """
    ids = vocab.lookup(code_points("".join(texts)))  # (C,) the texts one after another
    bounds = np.cumsum([0, *map(len, texts)])  # (P + 1,) where each text starts in ids
    known = ids != UNKNOWN_ID
    num_dropped = len(ids) - int(np.count_nonzero(known))
    if num_dropped:
        known_before = np.concatenate(([0], np.cumsum(known)))  # (C + 1,)
        bounds = known_before[bounds]
        ids = ids[known]
    # <START> goes before each text's first id and <END> after its last.
    positions = np.stack([bounds[:-1], bounds[1:]], axis=1).ravel()  # (2P,)
    markers = np.tile(np.array([START_ID, END_ID], vocab.dtype), len(texts))  # (2P,)
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

    def texts(self, texts: Iterable[Iterable[str]]) -> Iterator[Iterable[str]]:
        """The texts, with a mark between each and the next in the checksum (a byte that
        UTF-8 never uses), so that one text or the same cut in two differ."""
        for index, pieces in enumerate(texts):
            if index:
                self.sha256.update(b"\xff")
            yield pieces

    def passing(self, pieces: Iterable[str]) -> Iterator[str]:
        """The pieces, each added to the tally as it goes by."""
        for piece in pieces:
            self.add(piece)
            yield piece


@dataclass
class EncodedText:
    """A text laid out as tokens, with the vocabulary made from it."""

    vocab: Vocabulary
    tokens: np.ndarray  # (N,) one sequence for each text, or for each record
    checksum: str
    num_chars: int
    num_records: int  # the sequences: one for each non-empty text in the default layout


def layout_tokens(pieces: Iterable[str], vocab: Vocabulary,
                  delimiter: str | None) -> Iterator[tuple[np.ndarray, int]]:
    """The tokens of a text given in pieces, a few at a time, each with the number of
    characters dropped from them for being outside ``vocab``: the whole text as one sequence
    with no delimiter, else one sequence for each record."""
    if delimiter is None:
        yield np.array([START_ID], vocab.dtype), 0
        for piece in pieces:
            yield vocab.encode(piece)
        yield np.array([END_ID], vocab.dtype), 0
    else:
        for records in records_in_pieces(pieces, delimiter):
            yield sequence_tokens(records, vocab)


def text_tokens(text: str, vocab: Vocabulary,
                delimiter: str | None) -> tuple[np.ndarray, int]:
    """A text held in memory laid out in the ids of ``vocab`` (``layout_tokens``): its tokens
    and the number of characters dropped."""
    laid_out = list(layout_tokens([text], vocab, delimiter))
    tokens = np.concatenate([tokens for tokens, _ in laid_out] or [np.zeros(0, vocab.dtype)])
    return tokens, sum(num_dropped for _, num_dropped in laid_out)


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


def encode_texts(read_texts: Callable[[], Iterable[Iterable[str]]],
                 delimiter: str | None) -> EncodedText:
    """Lay out texts that ``read_texts()`` gives one after another, each a piece at a time,
    reading them twice.

    The first pass counts the characters and the records, the second encodes
    them into a token array made to size, so no text is ever held whole.
    ``delimiter`` None is the default layout, one sequence for each text
    (none for an empty one), else the records layout: the records of all the
    texts, none of them running from one text into the next.
    """
    tally = TextTally()
    sizes = [_layout_size(tally.passing(pieces), delimiter)  # (records, tokens) of each text
             for pieces in tally.texts(read_texts())]
    num_records = sum(text_records for text_records, _ in sizes)
    num_tokens = sum(text_tokens for text_records, text_tokens in sizes if text_records)
    vocab = Vocabulary.from_counts(tally.counts)
    tokens = np.empty(num_tokens, vocab.dtype)  # (N,)
    filled = 0
    for pieces, (text_records, _) in zip(read_texts(), sizes):
        if not text_records:
            continue
        for some_tokens, _ in layout_tokens(pieces, vocab, delimiter):
            if filled + len(some_tokens) > num_tokens:  # a file grew between the passes
                break
            tokens[filled: filled + len(some_tokens)] = some_tokens
            filled += len(some_tokens)
    if filled != num_tokens:
        raise CharrnnError("the training text changed while it was being read")
    return EncodedText(vocab, tokens, tally.sha256.hexdigest(), tally.num_chars, num_records)


def encode_text(read_pieces: Callable[[], Iterable[str]], delimiter: str | None) -> EncodedText:
    """Lay out one text that ``read_pieces()`` gives a piece at a time (``encode_texts``)."""
    return encode_texts(lambda: [read_pieces()], delimiter)


def token_counts(tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """How often each token id occurs in ``tokens``, counted a block at a time."""
    counts = np.zeros(vocab_size, np.int64)  # (V,)
    for start in range(0, len(tokens), BLOCK_SIZE):
        counts += np.bincount(tokens[start: start + BLOCK_SIZE], minlength=vocab_size)
    return counts


def recode(encoded: EncodedText, vocab: Vocabulary, extend: bool = False) -> EncodedText:
    """The same token sequence in the ids of ``vocab`` (resuming from a checkpoint), or with
    ``extend`` of ``vocab`` and the characters the text uses outside it (fine-tuning).

    Without ``extend``, refuses a text that uses characters outside
    ``vocab``; a delimiter that only separates records does not count.
    """
    if vocab == encoded.vocab:
        return encoded
    old_chars = encoded.vocab.chars
    char_ids = vocab.lookup(code_points("".join(old_chars)))  # (V_old - 2,) new id of each char
    char_used = token_counts(encoded.tokens, encoded.vocab.size)[NUM_SPECIAL:] > 0  # (V_old - 2,)
    unknown = [old_chars[i] for i in np.flatnonzero(char_used & (char_ids == UNKNOWN_ID))]
    if unknown and extend:
        vocab = Vocabulary(tuple(sorted(vocab.chars + tuple(unknown))))  # code-point order
        char_ids = vocab.lookup(code_points("".join(old_chars)))
    elif unknown:
        raise CharrnnError(f"the text has {counted(len(unknown), 'character')} the checkpoint's "
                           f"vocabulary lacks: {shown_characters(unknown)}")
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

    In the default layout the split is by characters, in the records layout
    by records. Both halves are views of ``encoded.tokens``.
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
        # The token at the cut is the last target of one half and the first input of the other.
        train_tokens, val_tokens = tokens[:cut], tokens[cut - 1:] if num_val else tokens[:0]
    return Corpus(encoded.vocab, train_tokens, val_tokens, encoded.checksum, encoded.num_chars)


def build_corpus(text: str, *, records: bool, delimiter: str, val_fraction: float,
                 vocab: Vocabulary | None = None, extend_vocab: bool = False) -> Corpus:
    """Lay out a text held in memory for training (see ``load_corpus`` for files).

    With ``vocab`` given, the text is in its ids: it must not use characters
    outside it (resuming), or with ``extend_vocab`` those are added to it
    (fine-tuning).
    """
    encoded = encode_text(lambda: [text], delimiter if records else None)
    if vocab is not None:
        encoded = recode(encoded, vocab, extend_vocab)
    return split_corpus(encoded, records=records, val_fraction=val_fraction)


def load_corpus(sources: str | Sequence[str], *, records: bool, delimiter: str,
                val_fraction: float, vocab: Vocabulary | None = None, extend_vocab: bool = False,
                encoding: str = DEFAULT_ENCODING, errors: str = DEFAULT_ERRORS,
                cache_dir: Path | None = None,
                chunk_size: int = CHUNK_SIZE) -> Corpus:
    """Read, decode and lay out a file, or several one after another (``encode_texts``), or
    standard input for ``-`` (alone), for training.

    Each file is read ``chunk_size`` bytes at a time, twice, and never held
    whole as text. With ``cache_dir``, the laid-out tokens of the files are
    kept there and memory-mapped by later loads of the same unchanged files.
    With ``vocab`` given, the text is in its ids, as for ``build_corpus``.
    """
    sources = [sources] if isinstance(sources, str) else list(sources)
    if "-" in sources and len(sources) > 1:
        raise CharrnnError("standard input (-) cannot be read with other files")
    layout_delimiter = delimiter if records else None
    entry = None
    if cache_dir is not None and sources != ["-"]:
        entry = cache.entry_for(cache_dir, sources, encoding=encoding, errors=errors,
                                delimiter=layout_delimiter)
    encoded = _from_cache(entry) if entry is not None else None
    if encoded is None:
        readers = [(chunk_reader(source, chunk_size), source_name(source)) for source in sources]
        encoded = encode_texts(
            lambda: (decoded_pieces(read_chunks(), name, encoding, errors)
                     for read_chunks, name in readers),
            layout_delimiter)
        if entry is not None:
            cache.store(entry, encoded.tokens, _cache_info(encoded))
    if vocab is not None:
        encoded = recode(encoded, vocab, extend_vocab)
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


