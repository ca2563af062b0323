"""The records of a training text as a set, to tell a sampled record that copies one from a
new one.

A set holds each distinct record's 64-bit hash (BLAKE2b of its UTF-8
bytes), sorted: 8 bytes a record, whatever its length, and the same hash for
the same text whatever the model's vocabulary. Two different records share
a hash with a probability of about 1 in 2^64 per pair (about 3e-8 for a
million records), so a record reported as known is, in practice, one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

import numpy as np

from charrnn.data.vocab import END_ID, NUM_SPECIAL, Vocabulary, code_points

BLOCK_SIZE = 1 << 20  # tokens turned into text at a time
MAX_KEPT = 1 << 22  # records a checkpoint keeps at most: 32 MiB of hashes (see kept_records)


def record_hash(record: str) -> int:
    """The 64-bit hash of one record's text."""
    digest = hashlib.blake2b(record.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def records_of_tokens(tokens: np.ndarray, vocab: Vocabulary) -> Iterator[str]:
    """The text of every ``<START> record <END>`` in a records layout (1-D ``tokens``), in
    order, a block of tokens at a time."""
    char_points = code_points("".join(vocab.chars))
    # A code point that no character has stands for <START> and <END>: split there.
    separator = int(np.setdiff1d(np.arange(len(char_points) + 1), char_points)[0])
    # (V,) the code point of each token id: <START> and <END> come first.
    table = np.concatenate([np.full(NUM_SPECIAL, separator, np.uint32), char_points])
    rest = ""  # the start of a record that the previous block cut
    for start in range(0, len(tokens), BLOCK_SIZE):
        points = table[tokens[start: start + BLOCK_SIZE]]
        *complete, rest = (rest + points.tobytes().decode("utf-32-le", "surrogatepass")
                           ).split(chr(separator))
        yield from (record for record in complete if record)
    if rest:
        yield rest


class KnownRecords:
    """A set of records, kept as their sorted distinct hashes (``record_hash``)."""

    def __init__(self, hashes: np.ndarray):
        self.hashes = np.unique(np.asarray(hashes, np.uint64))  # (R,) sorted

    @classmethod
    def from_records(cls, records: Iterable[str]) -> KnownRecords:
        return cls(np.fromiter(map(record_hash, records), np.uint64))

    @classmethod
    def from_tokens(cls, tokens: np.ndarray, vocab: Vocabulary) -> KnownRecords:
        """The records of a records layout (see ``records_of_tokens``)."""
        return cls.from_records(records_of_tokens(tokens, vocab))

    def __len__(self) -> int:
        return len(self.hashes)

    def union(self, other: KnownRecords) -> KnownRecords:
        return KnownRecords(np.concatenate([self.hashes, other.hashes]))

    def __contains__(self, record: str) -> bool:
        key = np.uint64(record_hash(record))
        index = int(np.searchsorted(self.hashes, key))
        return index < len(self.hashes) and self.hashes[index] == key


def kept_records(token_arrays: Iterable[np.ndarray], vocab: Vocabulary,
                 earlier: KnownRecords | None = None) -> KnownRecords | None:
    """What a records model's checkpoint keeps of its training records: those of the
    records layouts ``token_arrays`` (the training and held-out parts of a text) and the
    ``earlier`` ones of the checkpoint it was resumed or fine-tuned from. None (nothing
    kept) beyond MAX_KEPT records."""
    token_arrays = list(token_arrays)
    count = sum(int(np.count_nonzero(tokens == END_ID)) for tokens in token_arrays)
    if count + (0 if earlier is None else len(earlier)) > MAX_KEPT:
        return None
    known = KnownRecords.from_records(record for tokens in token_arrays
                                      for record in records_of_tokens(tokens, vocab))
    return known if earlier is None else known.union(earlier)
