"""Reading big texts: chunked decoding, the two-pass layout, and the cache of encoded corpora."""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn.cli import cli
from charrnn.data import cache, corpus
from charrnn.data.corpus import build_corpus, encode_text, load_corpus, split_corpus
from charrnn.data.sources import InvalidBytes, decode_text, decoded_pieces
from charrnn.data.vocab import END_ID, START_ID, Vocabulary
from charrnn.errors import CharrnnError


def chunks_of(data: bytes, size: int) -> list[bytes]:
    return [data[start: start + size] for start in range(0, len(data), size)]


def decode_in_chunks(data: bytes, size: int, **options) -> str:
    return "".join(decoded_pieces(chunks_of(data, size), "x.txt", **options))


def reference_corpus(text: str, records: bool, delimiter: str, val_fraction: float):
    """The layout as charrnn first computed it, the whole text in memory, one record at a time."""
    vocab = Vocabulary.from_text(text)
    pieces = [r for r in text.split(delimiter) if r] if records else [text]

    def sequence(parts):
        ids = [[START_ID, *vocab.encode(part)[0].tolist(), END_ID] for part in parts]
        return [token for piece in ids for token in piece]

    if records:
        num_val = int(len(pieces) * val_fraction)
        return vocab, sequence(pieces[: len(pieces) - num_val]), sequence(pieces[len(pieces) - num_val:])
    tokens = sequence(pieces)
    num_val = int(len(text) * val_fraction)
    cut = len(tokens) - num_val
    return vocab, tokens[:cut], tokens[cut - 1:] if num_val else []


# -- decoding in chunks ------------------------------------------------------

@pytest.mark.parametrize("size", [1, 2, 3, 5, 64])
def test_line_ends_and_characters_split_between_chunks(size):
    data = "\ufeffa\r\nb\rc\r\r\n\u00e9\u20ac\U0001f34c\r".encode("utf-8")
    assert decode_in_chunks(data, size) == "a\nb\nc\n\n\u00e9\u20ac\U0001f34c\n"


def test_a_crlf_split_between_two_chunks_is_one_line_end():
    assert "".join(decoded_pieces([b"one\r", b"\ntwo\r", b"", b"\n"], "x")) == "one\ntwo\n"


def test_only_a_byte_order_mark_at_the_start_is_dropped():
    data = "\ufeffa\ufeff".encode("utf-8")
    assert decode_in_chunks(data, 1) == "a\ufeff"
    assert decode_in_chunks(data, 2) == decode_text(data, "x")


@pytest.mark.parametrize("data, offset", [
    (b"hello wor\xffld", 9),  # in the third chunk
    (b"abcde\xe2\x82(xyz", 5),  # a broken character that starts in one chunk, ends in the next
    (b"abcdefg\xe2\x82", 7),  # a character cut short by the end of the file
])
def test_invalid_bytes_in_a_later_chunk_give_their_offset_in_the_file(data, offset):
    with pytest.raises(InvalidBytes, match=f"^x.txt: not valid utf-8 at byte {offset}$"):
        decode_in_chunks(data, 4)
    with pytest.raises(InvalidBytes, match=f"^x: not valid utf-8 at byte {offset}$"):
        decode_text(data, "x")


def test_replacement_and_other_encodings_in_chunks():
    assert decode_in_chunks(b"ab\xffcd\xe2\x82", 3, errors="replace") == "ab\ufffdcd\ufffd"
    assert decode_in_chunks("h\u00e9llo".encode("utf-16"), 3, encoding="utf-16") == "h\u00e9llo"
    with pytest.raises(CharrnnError, match="unknown encoding"):
        decode_in_chunks(b"abc", 2, encoding="no-such-codec")


# -- the two-pass layout -----------------------------------------------------

texts = st.text(st.sampled_from("ab\n\r|\u00e9\u20ac\U0001f34c\ufeff"), max_size=60)


@settings(max_examples=300, deadline=None)
@given(text=texts, size=st.integers(1, 9), records=st.booleans(),
       delimiter=st.sampled_from(["\n", "||", "a\n", "aa"]), val_fraction=st.sampled_from([0.1, 0.3]))
def test_layout_in_chunks_equals_the_layout_in_memory(text, size, records, delimiter, val_fraction):
    data = text.encode("utf-8")
    whole = decode_text(data, "x")
    encoded = encode_text(lambda: decoded_pieces(chunks_of(data, size), "x"),
                          delimiter if records else None)
    if not ([record for record in whole.split(delimiter) if record] if records else whole):
        with pytest.raises(CharrnnError, match="empty|no records"):
            split_corpus(encoded, records=records, val_fraction=val_fraction)
        return
    got = split_corpus(encoded, records=records, val_fraction=val_fraction)
    vocab, train_tokens, val_tokens = reference_corpus(whole, records, delimiter, val_fraction)
    assert got.vocab == vocab
    assert got.train_tokens.tolist() == train_tokens and got.val_tokens.tolist() == val_tokens
    assert got.train_tokens.dtype == vocab.dtype
    assert got.num_chars == len(whole)
    assert got.checksum == hashlib.sha256(whole.encode("utf-8")).hexdigest()


def test_resuming_translates_ids_to_the_checkpoint_vocabulary():
    checkpoint_vocab = Vocabulary(tuple("\nabcxyz"))
    got = build_corpus("ab\nca\n", records=True, delimiter="\n", val_fraction=0.5,
                       vocab=checkpoint_vocab)
    assert got.vocab == checkpoint_vocab
    assert checkpoint_vocab.decode(got.train_tokens) == "ab"
    assert got.val_tokens.tolist() == [START_ID, 5, 3, END_ID]  # "ca"


def test_a_delimiter_the_checkpoint_lacks_is_not_an_unknown_character():
    vocab = Vocabulary(tuple("ab"))
    got = build_corpus("a|b", records=True, delimiter="|", val_fraction=0.1, vocab=vocab)
    assert vocab.decode(got.train_tokens) == "ab"
    with pytest.raises(CharrnnError, match="1 characters .* '|'"):
        build_corpus("a|b", records=False, delimiter="|", val_fraction=0.1, vocab=vocab)


# -- files and the cache -----------------------------------------------------

@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes("first line\r\nsecond \u00e9\nthird\n".encode("utf-8"))
    return path


@pytest.fixture
def count_encodings(monkeypatch):
    calls = []
    real_encode_texts = corpus.encode_texts

    def counting_encode_texts(*args, **kwargs):
        calls.append(args)
        return real_encode_texts(*args, **kwargs)

    monkeypatch.setattr(corpus, "encode_texts", counting_encode_texts)
    return calls


def load(path, cache_dir, **options):
    options = {"records": True, "delimiter": "\n", "val_fraction": 0.34, **options}
    return load_corpus(str(path), cache_dir=cache_dir, chunk_size=5, **options)


def same_corpus(one, other) -> bool:
    return (one.vocab == other.vocab and one.checksum == other.checksum
            and one.num_chars == other.num_chars
            and np.array_equal(one.train_tokens, other.train_tokens)
            and np.array_equal(one.val_tokens, other.val_tokens))


def test_a_file_loads_as_its_text_would(text_file, tmp_path):
    text = decode_text(text_file.read_bytes(), "x")
    for records in (False, True):
        expected = build_corpus(text, records=records, delimiter="\n", val_fraction=0.34)
        assert same_corpus(load(text_file, None, records=records), expected)


def test_a_second_load_maps_the_cached_tokens(text_file, tmp_path, count_encodings):
    first = load(text_file, tmp_path / "cache")
    second = load(text_file, tmp_path / "cache")
    assert len(count_encodings) == 1
    assert isinstance(second.train_tokens, np.memmap) and not second.train_tokens.flags.writeable
    assert same_corpus(first, second)
    load(text_file, tmp_path / "cache", records=False)  # another layout is another entry
    assert len(count_encodings) == 2


def test_a_changed_file_is_read_again(text_file, tmp_path, count_encodings):
    first = load(text_file, tmp_path / "cache")
    text_file.write_text("other words\n", encoding="utf-8")
    stat = text_file.stat()
    os.utime(text_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    second = load(text_file, tmp_path / "cache")
    assert len(count_encodings) == 2
    assert second.checksum != first.checksum
    assert same_corpus(second, build_corpus("other words\n", records=True, delimiter="\n",
                                            val_fraction=0.34))


def damage_line(contents: bytes) -> bytes:
    line, rest = contents.split(b"\n", 1)
    return line.replace(b'"length": ', b'"length": 1') + b"\n" + rest


def damage_vocabulary(contents: bytes) -> bytes:
    """The stored vocabulary's last character replaced by another (still a vocabulary), the
    line padded to its old length."""
    line, rest = contents.split(b"\n", 1)
    saved = json.loads(line)
    saved["info"]["vocabulary"][-1] = "\u2603"
    changed = json.dumps(saved).encode()
    return changed + b" " * (len(line) - len(changed)) + b"\n" + rest


@pytest.mark.parametrize("damage", [
    lambda contents: b"garbage",
    lambda contents: contents[:-3],  # truncated
    lambda contents: b"",
    lambda contents: b"{not json\n" + contents.split(b"\n", 1)[1],
    lambda contents: b'{"key": 3}\n' + contents.split(b"\n", 1)[1],
    damage_line,  # a length that does not match the array
    lambda contents: contents[:-1] + bytes([contents[-1] ^ 1]),  # a flipped bit in the tokens
    lambda contents: contents.replace(b"'shape': (", b"'shape': (9"),
    damage_vocabulary,
])
def test_a_damaged_cache_entry_is_rebuilt(text_file, tmp_path, count_encodings, damage):
    cache_dir = tmp_path / "cache"
    expected = load(text_file, cache_dir)
    [entry] = cache_dir.iterdir()
    contents = entry.read_bytes()
    assert damage(contents) != contents
    entry.write_bytes(damage(contents))
    assert same_corpus(load(text_file, cache_dir), expected)
    assert len(count_encodings) == 2
    assert same_corpus(load(text_file, cache_dir), expected)  # rebuilt, and used again
    assert len(count_encodings) == 2


def test_writers_racing_on_one_entry_leave_it_whole(text_file, tmp_path):
    """Runs filling one entry at once: a reader meanwhile finds nothing or one writer's whole
    entry, never a mix, and one whole entry is left, with no temporary files."""
    entry = cache.entry_for(tmp_path / "cache", str(text_file), delimiter="\n")
    failures = []

    def write(writer: int):
        tokens = np.full(1 << 20, writer, np.uint8)
        for _ in range(20):
            if not cache.store(entry, tokens, {"writer": writer}):
                failures.append(f"writer {writer} could not store")

    writers = [threading.Thread(target=write, args=(writer,)) for writer in (1, 2)]
    for writer in writers:
        writer.start()
    found = []
    while any(writer.is_alive() for writer in writers):
        if (loaded := cache.load(entry)) is not None:
            tokens, info = loaded
            found.append(bool((tokens == info["writer"]).all()))
    for writer in writers:
        writer.join()
    tokens, info = cache.load(entry)
    assert (tokens == info["writer"]).all() and all(found) and not failures
    assert [path.name for path in (tmp_path / "cache").iterdir()] == [entry.path.name]


def test_a_cache_that_cannot_be_written_is_skipped(text_file, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    assert same_corpus(load(text_file, blocker), load(text_file, None))


def test_standard_input_is_never_cached(text_file, tmp_path, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(text_file.read_bytes())))
    got = load("-", tmp_path / "cache")
    assert same_corpus(got, load(text_file, None))
    assert not (tmp_path / "cache").exists()


def test_cache_entries_are_keyed_by_path_and_options(text_file, tmp_path):
    one = cache.entry_for(tmp_path, str(text_file), delimiter="\n")
    assert one == cache.entry_for(tmp_path, str(text_file), delimiter="\n")
    assert one.path != cache.entry_for(tmp_path, str(text_file), delimiter=None).path
    assert cache.load(one) is None
    assert cache.store(one, np.arange(5, dtype=np.uint8), {"n": 5})
    tokens, info = cache.load(one)
    assert tokens.tolist() == [0, 1, 2, 3, 4] and info == {"n": 5}


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "missing.txt", "missing.txt: no such file"),
    (lambda tmp: tmp, "is a directory"),
])
def test_unreadable_files_give_one_clear_error(tmp_path, make, message):
    with pytest.raises(CharrnnError, match=message):
        load(make(tmp_path), tmp_path / "cache")


def test_a_second_train_command_uses_the_cache(text_file, tmp_path, count_encodings):
    arguments = ["train", str(text_file), "--out", str(tmp_path / "model.npz"), "--max-steps", "1",
                 "--hidden-size", "8", "--num-layers", "1", "--embedding-size", "4"]
    runner = CliRunner()
    assert runner.invoke(cli, arguments).exit_code == 0
    assert runner.invoke(cli, arguments).exit_code == 0
    assert runner.invoke(cli, [*arguments[:4], "--resume", str(tmp_path / "model.npz"),
                               "--max-steps", "2"]).exit_code == 0
    assert len(count_encodings) == 1
    assert len(list(cache.default_cache_dir().iterdir())) == 1
