"""Vocabulary, text decoding and the window layout."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn.data.corpus import build_corpus, records_in_pieces
from charrnn.data.sources import decode_text, read_text
from charrnn.data.vocab import END_ID, START_ID, Vocabulary
from charrnn.data.windows import Windows, fit_window
from charrnn.errors import CharrnnError, counted


def test_vocabulary_is_sorted_by_code_point_after_the_special_tokens():
    vocab = Vocabulary.from_text("banana 🍌 é")
    assert vocab.chars == (" ", "a", "b", "n", "é", "🍌")
    assert vocab.size == 8
    assert [vocab.token(i) for i in range(3)] == ["<START>", "<END>", " "]
    ids, unknown = vocab.encode("ban🍌")
    assert ids.tolist() == [4, 3, 5, 7] and unknown == 0
    assert ids.dtype == np.uint8


def test_counts_in_messages_agree_with_their_number():
    assert counted(1, "character") == "1 character"
    assert [counted(n, "thread") for n in (0, 2, 1234)] == ["0 threads", "2 threads", "1,234 threads"]


def test_unknown_characters_are_dropped_and_counted():
    vocab = Vocabulary.from_text("abc")
    ids, unknown = vocab.encode("axbyyc")
    assert vocab.decode(ids) == "abc" and unknown == 3
    assert vocab.unknown("axbyyc") == ["x", "y"]


def test_large_vocabularies_use_wider_token_ids():
    text = "".join(chr(0x4E00 + i) for i in range(300))
    vocab = Vocabulary.from_text(text)
    ids, _ = vocab.encode(text)
    assert ids.dtype == np.uint16 and vocab.decode(ids) == text


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_encode_then_decode_is_the_identity(text):
    vocab = Vocabulary.from_text(text)
    ids, unknown = vocab.encode(text)
    assert unknown == 0
    assert vocab.decode(ids) == text
    assert len(ids) == len(text)


def test_decode_text_handles_bom_and_line_endings():
    assert decode_text("\ufeffa\r\nb\rc\n".encode("utf-8"), "x") == "a\nb\nc\n"


def test_invalid_utf8_names_the_byte_offset():
    with pytest.raises(CharrnnError, match="^x.txt: not valid utf-8 at byte 3$"):
        decode_text(b"abc\xff\xfe", "x.txt")
    assert decode_text(b"abc\xff", "x", errors="replace") == "abc\ufffd"
    assert decode_text("héllo".encode("latin-1"), "x", encoding="latin-1") == "héllo"


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "missing.txt", "no such file"),
    (lambda tmp: tmp, "is a directory"),
])
def test_unreadable_paths_give_one_clear_error(tmp_path, make, message):
    with pytest.raises(CharrnnError, match=message):
        read_text(str(make(tmp_path)))


def test_stream_split_holds_out_the_end_of_the_text():
    text = "abcdefghij" * 10  # 100 characters
    corpus = build_corpus(text, records=False, delimiter="\n", val_fraction=0.1)
    vocab = corpus.vocab
    assert corpus.train_tokens[0] == START_ID and corpus.val_tokens[-1] == END_ID
    assert vocab.decode(corpus.train_tokens) == text[:91]  # overlap of one character
    assert vocab.decode(corpus.val_tokens) == text[90:]


def test_records_split_holds_out_the_last_records():
    corpus = build_corpus("one\ntwo\n\nthree\nfour\n", records=True, delimiter="\n",
                          val_fraction=0.25)
    vocab = corpus.vocab
    pieces = ["one\nt", "wo\n\nthr", "ee\n"]  # records and delimiters split between pieces
    assert list(records_in_pieces(pieces, "\n")) == [["one"], ["two"], ["three"]]
    assert [vocab.token(int(i)) for i in corpus.val_tokens] == [
        "<START>", "f", "o", "u", "r", "<END>"]
    assert (corpus.train_tokens == START_ID).sum() == 3


def test_resuming_on_text_with_new_characters_names_them():
    vocab = Vocabulary.from_text("abc")
    with pytest.raises(CharrnnError, match="2 characters .* 'xz'"):
        build_corpus("abxcz", records=False, delimiter="\n", val_fraction=0.1, vocab=vocab)


@pytest.mark.parametrize("text", ["", "\n\n"])
def test_empty_text_is_refused(text):
    with pytest.raises(CharrnnError, match="empty|no records"):
        build_corpus(text, records=bool(text), delimiter="\n", val_fraction=0.1)


def test_fit_window_shrinks_rows_before_steps():
    assert fit_window(1001, 10, 100) == (10, 100)
    assert fit_window(501, 10, 100) == (5, 100)
    assert fit_window(51, 10, 100) == (1, 50)
    assert fit_window(2, 64, 100) == (1, 1)
    with pytest.raises(CharrnnError):
        fit_window(1, 64, 100)


def test_windows_are_contiguous_streams_with_next_token_targets():
    tokens = np.arange(26)
    windows = Windows(tokens, batch_size=2, window_length=4)
    assert windows.num_windows == 3  # 25 targets -> 2 streams of 12 -> 3 windows of 4
    inputs, targets = windows.window(1)
    assert inputs.T.tolist() == [[4, 5, 6, 7], [16, 17, 18, 19]]
    np.testing.assert_array_equal(targets, inputs + 1)


def test_padded_windows_cover_every_target_once():
    tokens = np.arange(2, 25)  # 22 targets
    windows = Windows(tokens, batch_size=3, window_length=5, pad=True)
    targets = np.concatenate([windows.window(i)[1].T for i in range(windows.num_windows)], 1)
    scored = targets[targets != START_ID]
    assert sorted(scored.tolist()) == list(range(3, 25))


def test_character_classes():
    from charrnn.nn.scoring import character_class

    assert [character_class(c) for c in ["a", "É", "7", " ", "\n", ",", "€", "<END>", "\x00"]] == [
        "lowercase", "uppercase", "digit", "space", "newline", "punctuation", "punctuation",
        "<END>", "other"]
