"""The vocabulary: the distinct characters of a text plus two special tokens.

Token ids are fixed: 0 is ``<START>``, 1 is ``<END>``, and the characters
follow in code-point order, so the same text always gives the same ids.

``<START>`` begins a sequence: the model is fed it to generate from scratch,
and a ``<START>`` input resets the recurrent state. ``<END>`` is the model
saying the sequence is complete.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

START = "<START>"
END = "<END>"
START_ID = 0
END_ID = 1
NUM_SPECIAL = 2
UNKNOWN_ID = START_ID  # marks a character outside the vocabulary: no character has this id


def code_points(text: str) -> np.ndarray:
    """The Unicode code points of ``text`` as a uint32 array, without a Python loop."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned integer type that holds every token id."""
    if vocab_size <= 1 << 8:
        return np.dtype(np.uint8)
    if vocab_size <= 1 << 16:
        return np.dtype(np.uint16)
    return np.dtype(np.uint32)


@dataclass(frozen=True)
class Vocabulary:
    """The characters a model knows, in code-point order."""

    chars: tuple[str, ...]

    @classmethod
    def from_text(cls, text: str) -> Vocabulary:
        return cls.from_counts(np.bincount(code_points(text)))

    @classmethod
    def from_counts(cls, counts: np.ndarray) -> Vocabulary:
        """The characters whose code points have a non-zero count in ``counts``."""
        return cls(tuple(chr(cp) for cp in np.flatnonzero(counts)))

    @property
    def size(self) -> int:
        """Number of tokens: the characters plus ``<START>`` and ``<END>``."""
        return len(self.chars) + NUM_SPECIAL

    @property
    def dtype(self) -> np.dtype:
        return token_dtype(self.size)

    def token(self, token_id: int) -> str:
        """The text of one token: a character, or the name of a special token."""
        if token_id == START_ID:
            return START
        if token_id == END_ID:
            return END
        return self.chars[token_id - NUM_SPECIAL]

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of ``text`` that are not in the vocabulary, sorted."""
        known = set(self.chars)
        return sorted(set(text) - known)

    def lookup(self, points: np.ndarray) -> np.ndarray:
        """The token id of each code point, of dtype ``self.dtype``; UNKNOWN_ID where the
        vocabulary lacks the character."""
        if points.size == 0:
            return np.zeros(0, self.dtype)
        table = np.full(int(points.max()) + 1, UNKNOWN_ID, self.dtype)  # (max code point + 1,)
        char_points = code_points("".join(self.chars))
        char_ids = np.arange(NUM_SPECIAL, self.size)
        in_table = char_points < len(table)
        table[char_points[in_table]] = char_ids[in_table]
        return table[points]

    def encode(self, text: str) -> tuple[np.ndarray, int]:
        """Token ids of the characters of ``text`` that are in the vocabulary.

        Characters outside the vocabulary are dropped; the second value
        counts them. Returns ids of dtype ``self.dtype``.
        """
        ids = self.lookup(code_points(text))
        known = ids != UNKNOWN_ID
        num_unknown = len(ids) - int(np.count_nonzero(known))
        if num_unknown:
            ids = ids[known]
        return ids, num_unknown

    def decode(self, ids) -> str:
        """The text of a sequence of ids; special tokens are left out."""
        return "".join(self.chars[i - NUM_SPECIAL] for i in ids if i >= NUM_SPECIAL)
