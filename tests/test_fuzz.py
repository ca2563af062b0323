"""Fuzzing: damaged and crafted checkpoints, corpus cache entries and training texts.

A case passes when charrnn does its job, or exits with status 1 or 2 and one
line on stderr: never a traceback, and never unbounded memory. Most cases run
in this process through CliRunner, with the peak allocation of the loading
(of a checkpoint or a cache entry) measured by tracemalloc, to which numpy
reports its arrays; some run as real processes under an address-space limit
(RLIMIT_AS).

Every case is made from its own seed, which is in the test's name, so a
failure reproduces with ``-k``. The default run tries a few dozen cases;
``-m slow`` a few thousand.
"""

from __future__ import annotations

import io
import json
import resource
import subprocess
import sys
import traceback
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TINY_TEXT, train_tiny
from damage import (flip_bits, metadata_bytes, npy_bytes, npy_header, read_members, read_metadata,
                    truncate, write_members, zero_run)

import charrnn.cli.sample
from charrnn.cli import cli
from charrnn.data.corpus import load_corpus
from charrnn.errors import CharrnnError
from charrnn.saving.checkpoint import load_checkpoint, save_checkpoint
from charrnn.saving.export import for_sampling

MEMORY_LIMIT = 128 << 20  # bytes loading a case may allocate; the tiny model needs 1 MB
ADDRESS_LIMIT = 1 << 30  # bytes of address space for a case run as a process
FAST_CASES = 24
SLOW_CASES = 1500


def seeds(fast: int, slow: int) -> list:
    """``fast`` seeds for the default run, then ``slow`` more marked slow."""
    return [*range(fast), *(pytest.param(seed, marks=pytest.mark.slow)
                            for seed in range(fast, fast + slow))]


# -- checking an outcome ---------------------------------------------------------------------

def check_outcome(result, case: str) -> None:
    """Success, or exit status 1 or 2 with one line on stderr; never a traceback."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        pytest.fail(f"{case}: {''.join(traceback.format_exception(*result.exc_info))}")
    assert result.exit_code in (0, 1, 2), (case, result.exit_code, result.stderr)
    if result.exit_code:
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("charrnn: error: "), (case, lines)
        assert len(lines[0]) < 400, (case, lines)


def run(arguments: list, case: str):
    result = CliRunner().invoke(cli, [str(argument) for argument in arguments])
    check_outcome(result, case)
    return result


def peak_allocation(function, *args) -> int:
    """Bytes allocated at the peak of ``function(*args)`` (tracemalloc slows it about 5x)."""
    tracemalloc.start()
    try:
        function(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_LIMIT, ADDRESS_LIMIT))


def run_process(arguments: list, case: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run ``python -m charrnn`` under the address-space limit, with its own corpus cache."""
    process = subprocess.run(
        [sys.executable, "-m", "charrnn", *map(str, arguments)], capture_output=True, text=True,
        preexec_fn=limit_address_space, timeout=600,
        env={"PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(tmp_path / "xdg"),
             "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert process.returncode in (0, 1, 2), (case, process.returncode, process.stderr[-3000:])
    assert "Traceback" not in process.stderr, (case, process.stderr[-3000:])
    if process.returncode:
        lines = process.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("charrnn: error: "), (case, lines)
    return process


# -- checkpoints -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def base_checkpoints(tmp_path_factory) -> list[bytes]:
    """The files damaged: a resumable checkpoint (40 steps), and its export in float16."""
    folder = tmp_path_factory.mktemp("base")
    resumable = train_tiny(TINY_TEXT, folder / "resumable.npz", eval_every=10)
    exported = for_sampling(load_checkpoint(resumable))
    exported.model.params = {name: value.astype(np.float16)
                             for name, value in exported.model.params.items()}
    save_checkpoint(folder / "exported.npz", exported)
    return [resumable.read_bytes(), (folder / "exported.npz").read_bytes()]


def rezipped(change):
    """A damage made to the archive's members, written back as a valid zip."""
    def damage(data: bytes, rng: np.random.Generator) -> bytes:
        members = read_members(io.BytesIO(data))
        compression = change(members, rng)
        damaged = io.BytesIO()
        write_members(damaged, members, compression or zipfile.ZIP_STORED)
        return damaged.getvalue()
    damage.__name__ = change.__name__
    return damage


def some_member(members: dict, rng) -> str:
    return sorted(members)[rng.integers(len(members))]


def flipped_bits(data, rng):
    return flip_bits(data, rng, int(rng.integers(1, 9)))


def truncated(data, rng):
    return truncate(data, rng)


def zeroed(data, rng):
    return zero_run(data, rng)


def flipped_in_a_header_in_place(data, rng):
    """Bits flipped in one array's .npy header, the zip's CRC left stale (the measured case)."""
    headers = [index for index in range(len(data)) if data.startswith(b"\x93NUMPY", index)]
    start = headers[rng.integers(len(headers))]
    damaged = bytearray(data)
    for position in rng.integers(start, start + 128, int(rng.integers(1, 4))):
        damaged[position] ^= 1 << int(rng.integers(8))
    return bytes(damaged)


@rezipped
def flipped_in_a_header(members, rng):
    name = some_member(members, rng)
    header = flip_bits(members[name][:128], rng, int(rng.integers(1, 4)))
    members[name] = header + members[name][128:]


DESCRS = ["<f2", "<f4", "<f8", ">f4", "<i4", "|u1", "|b1", "<c8", "<U4", "|V8", "|O", "<M8[s]",
          [("a", "<f4"), ("b", "<i2")], "<f4 ", "float32", 7]


def random_shape(rng) -> tuple:
    dims = int(rng.integers(0, 4))
    choices = [0, 1, 3, 7, 16, 64, 400_000, 2**31, 2**62, -1]
    return tuple(int(choices[rng.integers(len(choices))]) for _ in range(dims))


@rezipped
def crafted_header(members, rng):
    """A header saying anything; the data kept, or made to the size it claims when small."""
    name = some_member(members, rng)
    descr = DESCRS[rng.integers(len(DESCRS))]
    shape = random_shape(rng)
    try:
        header = npy_header(descr, shape, bool(rng.integers(2)))
        claimed = np.dtype(descr).itemsize * int(np.prod(shape, dtype=object))
    except (TypeError, ValueError):
        header, claimed = npy_header("<f4", shape), None
    keep = claimed is None or not 0 <= claimed <= 1 << 20 or rng.integers(2)
    members[name] = header + (members[name][128:] if keep else bytes(claimed))


@rezipped
def retyped(members, rng):
    name = some_member(members, rng)
    array = np.load(io.BytesIO(members[name]))
    dtype = ["<f2", "<f4", "<f8", ">f8", "<i8", "|u1", "|b1", "<c16"][rng.integers(8)]
    members[name] = npy_bytes(array.astype(dtype))


@rezipped
def huge_shape(members, rng):
    name = some_member(members, rng)
    shape = (int(rng.integers(1, 400_001)),) * int(rng.integers(2, 4))
    members[name] = npy_header("<f4", shape) + members[name][128:]


def random_json(rng, depth: int = 0):
    """A JSON value of any type, mostly not the one expected where it lands."""
    kinds = [lambda: None, lambda: True, lambda: -1, lambda: 10**30, lambda: 10**400,
             lambda: 1e308, lambda: float("nan"), lambda: "x", lambda: "\ud800"]
    if depth < 3:
        kinds += [lambda: [random_json(rng, depth + 1) for _ in range(rng.integers(3))],
                  lambda: {"k": random_json(rng, depth + 1)}]
    return kinds[rng.integers(len(kinds))]()


def places(value, path=()):
    """Every path to a value in a JSON tree."""
    yield path
    children = (value.items() if isinstance(value, dict)
                else enumerate(value) if isinstance(value, list) else ())
    for key, child in children:
        yield from places(child, (*path, key))


def change_metadata(change):
    @rezipped
    def damage(members, rng):
        metadata = read_metadata(members)
        metadata = change(metadata, rng)
        members["metadata.npy"] = metadata_bytes(metadata)
    damage.__name__ = change.__name__
    return damage


def replace_at(metadata, path, value):
    if not path:
        return value
    parent = metadata
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return metadata


@change_metadata
def metadata_of_wrong_types(metadata, rng):
    paths = list(places(metadata))
    return replace_at(metadata, paths[rng.integers(len(paths))], random_json(rng))


@change_metadata
def metadata_missing_a_key(metadata, rng):
    paths = [path for path in places(metadata) if path and isinstance(path[-1], str)]
    path = paths[rng.integers(len(paths))]
    parent = metadata
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return metadata


@change_metadata
def metadata_too_deep(metadata, rng):
    depth = [17, 40, 900, 5000, 100_000][rng.integers(5)]
    paths = list(places(metadata))
    metadata = replace_at(metadata, paths[rng.integers(len(paths))], "deep")
    return json.dumps(metadata).replace('"deep"', "[" * depth + "]" * depth).encode()


@change_metadata
def metadata_huge(metadata, rng):
    size = int(rng.integers(1 << 19, 2 << 20))
    value = ["x" * size, list(range(size // 8)), {str(i): i for i in range(size // 16)}][
        rng.integers(3)]
    paths = list(places(metadata))
    return replace_at(metadata, paths[rng.integers(len(paths))], value)


@change_metadata
def metadata_not_json(metadata, rng):
    text = json.dumps(metadata).encode()
    return [b"", b"\xff\xfe", text[: rng.integers(len(text))], text.replace(b"}", b"]", 1),
            b"9" * 5000, b"NaN"][rng.integers(6)]


@rezipped
def members_rearranged(members, rng):
    name = some_member(members, rng)
    kind = rng.integers(5)
    if kind == 0:
        del members[name]
    elif kind == 1:
        members["param/extra.npy"] = members[name]
    elif kind == 2:
        members[name.removesuffix(".npy") + ".txt"] = members.pop(name)
    elif kind == 3:
        members["other/extra.npy"] = npy_bytes(np.zeros((2, 3), np.float32))
    else:
        return zipfile.ZIP_DEFLATED


CHECKPOINT_DAMAGE = [flipped_bits, truncated, zeroed, flipped_in_a_header_in_place,
                     flipped_in_a_header, crafted_header, retyped, huge_shape,
                     metadata_of_wrong_types, metadata_missing_a_key, metadata_too_deep,
                     metadata_huge, metadata_not_json, members_rearranged]


def damaged_checkpoint(base_checkpoints, seed: int) -> tuple[str, bytes]:
    """The case of ``seed``: one kind of damage in turn, made at random."""
    rng = np.random.default_rng(seed)
    damage = CHECKPOINT_DAMAGE[seed % len(CHECKPOINT_DAMAGE)]
    base = base_checkpoints[rng.integers(len(base_checkpoints))]
    return f"seed {seed} ({damage.__name__})", damage(base, rng)


def load_or_refuse(path: Path, case: str) -> None:
    try:
        load_checkpoint(path)
    except CharrnnError as error:
        assert "\n" not in str(error), case


@pytest.mark.parametrize("seed", seeds(FAST_CASES, SLOW_CASES))
def test_a_damaged_checkpoint_is_one_line_or_works(tmp_path, base_checkpoints,
                                                   tiny_text_file, seed):
    """Loaded with bounded memory; then sampled from and resumed (as measured in issue 13),
    and looked at or scored."""
    case, data = damaged_checkpoint(base_checkpoints, seed)
    path = tmp_path / "damaged.npz"
    path.write_bytes(data)
    peak = peak_allocation(load_or_refuse, path, case)
    assert peak < MEMORY_LIMIT, f"{case}: loading allocated {peak:,} bytes"
    run(["sample", path, "--length", "20", "--seed", "0"], case)
    run(["train", tiny_text_file, "--resume", path, "--out", tmp_path / "resumed.npz",
         "--max-steps", "41"], case)
    run(["info", path] if seed % 2 else ["eval", path, tiny_text_file], case)


@pytest.mark.parametrize("seed", seeds(1, 40))
def test_a_damaged_checkpoint_in_a_process_under_a_memory_limit(tmp_path, base_checkpoints,
                                                                tiny_text_file, seed):
    case, data = damaged_checkpoint(base_checkpoints, 7 * seed + 3)  # headers and shapes first
    path = tmp_path / "damaged.npz"
    path.write_bytes(data)
    run_process(["sample", path, "--length", "20"], case, tmp_path)
    run_process(["train", tiny_text_file, "--resume", path, "--out", tmp_path / "resumed.npz",
                 "--max-steps", "41"], case, tmp_path)


def test_a_long_or_broken_message_is_still_one_line(monkeypatch, tmp_path):
    def refuse(path):
        raise CharrnnError("first line\nsecond line " + "x" * 5000)

    monkeypatch.setattr(charrnn.cli.sample, "load", refuse)
    result = CliRunner().invoke(cli, ["sample", str(tmp_path / "m.npz")])
    assert result.exit_code == 1
    expected = ("first line second line " + "x" * 5000)[:1000] + "..."
    assert result.stderr == f"charrnn: error: {expected}\n"


def test_the_measured_huge_header_is_one_line_in_a_process(tmp_path, base_checkpoints):
    """(400000, 400000) float32 is 596 GiB: refused, under a 1 GiB address-space limit."""
    path = tmp_path / "huge.npz"
    path.write_bytes(base_checkpoints[0])
    members = read_members(path)
    members["param/output.weight.npy"] = (npy_header("<f4", (400_000, 400_000))
                                          + members["param/output.weight.npy"][128:])
    write_members(path, members)
    process = run_process(["sample", path], "huge header", tmp_path)
    assert process.returncode == 1 and "header claims (400000, 400000)" in process.stderr


# -- the corpus cache ------------------------------------------------------------------------

def cache_entry_damage(data: bytes, other: bytes, rng) -> tuple[str, bytes]:
    line_end = data.index(b"\n") + 1
    kinds = {
        "flipped bits": lambda: flip_bits(data, rng, int(rng.integers(1, 9))),
        "flipped bits in the line": lambda: flip_bits(data[:line_end], rng, 2) + data[line_end:],
        "flipped bits in the header": lambda: (
            data[:line_end] + flip_bits(data[line_end: line_end + 128], rng, 2)
            + data[line_end + 128:]),
        "truncated": lambda: truncate(data, rng),
        "zeroed": lambda: zero_run(data, rng),
        "huge header": lambda: (data[:line_end] + npy_header("|u1", (2**40,))
                                + data[line_end + 128:]),
        "another file's entry": lambda: other,
        "tokens retyped": lambda: (data[:line_end] + npy_header("<u4", (7,)) + bytes(28)),
    }
    name = list(kinds)[rng.integers(len(kinds))]
    return name, kinds[name]()


@pytest.mark.parametrize("seed", seeds(12, 500))
def test_a_damaged_cache_entry_is_rebuilt_never_trusted(tmp_path, seed):
    rng = np.random.default_rng(seed)
    text = tmp_path / "text.txt"
    other = tmp_path / "other.txt"
    text.write_bytes(rng.integers(32, 127, int(rng.integers(1, 5000)), dtype=np.uint8).tobytes()
                     + b"\nend\n")
    other.write_text("something else\n")
    records = bool(rng.integers(2))
    options = {"records": records, "delimiter": "\n", "val_fraction": 0.1}

    def load(source, cache_dir):
        return load_corpus(str(source), cache_dir=cache_dir, **options)

    expected = load(text, None)
    load(other, tmp_path / "other-cache")
    load(text, tmp_path / "cache")
    [entry] = (tmp_path / "cache").iterdir()
    [other_entry] = (tmp_path / "other-cache").iterdir()
    kind, damaged = cache_entry_damage(entry.read_bytes(), other_entry.read_bytes(), rng)
    entry.write_bytes(damaged)
    got = []
    peak = peak_allocation(lambda: got.append(load(text, tmp_path / "cache")))
    got = got[0]
    case = f"seed {seed} ({kind})"
    assert got.vocab == expected.vocab and got.checksum == expected.checksum, case
    assert np.array_equal(got.train_tokens, expected.train_tokens), case
    assert np.array_equal(got.val_tokens, expected.val_tokens), case
    assert peak < MEMORY_LIMIT, f"{case}: {peak:,} bytes"


# -- training texts --------------------------------------------------------------------------

SURROGATES = "\ud800\udfff\udc80".encode("utf-8", "surrogatepass")


def random_text(rng) -> tuple[str, bytes, list[str]]:
    """A training text of one kind, and the options it is read with."""
    length = int(rng.integers(0, 3000))
    kind = rng.integers(5)
    errors = ["strict", "replace", "ignore"][rng.integers(3)]
    if kind == 0:
        return "random bytes", rng.bytes(length), ["--errors", errors]
    if kind == 1:
        pieces = [b"\0", b"a", b"\n", "é".encode()]
        data = b"".join(pieces[i] for i in rng.integers(0, len(pieces), length))
        return "NUL bytes", data, ["--errors", errors]
    if kind == 2:
        pieces = [b"a", b"b\n", SURROGATES, b"\xed\xa0"]
        data = b"".join(pieces[i] for i in rng.integers(0, len(pieces), length // 4 + 1))
        return "lone surrogates", data, ["--errors", "replace"]
    if kind == 3:
        text = "".join(chr(c) for c in rng.integers(0xD7F0, 0xE010, length // 4 + 1))
        encoding = ["utf-16", "utf-32", "utf-16-le"][rng.integers(3)]
        data = text.encode(encoding, "surrogatepass")
        return f"lone surrogates in {encoding}", data, ["--encoding", encoding, "--errors", "replace"]
    data = b"".join([b"a", b"\\ud800", b"\\n", b"\\x00"][i] for i in rng.integers(0, 4, length))
    return "escaped surrogates", data, ["--encoding", "unicode_escape", "--errors", errors]


@pytest.mark.parametrize("seed", seeds(12, 400))
def test_any_training_text_trains_or_is_one_line(tmp_path, seed):
    rng = np.random.default_rng(seed)
    kind, data, read_options = random_text(rng)
    case = f"seed {seed} ({kind})"
    text = tmp_path / "text.txt"
    text.write_bytes(data)
    out = tmp_path / "m.npz"
    records = ["--records"] if rng.integers(2) else []
    result = run(["train", text, "--out", out, "--max-steps", "2", "--hidden-size", "8",
                          "--embedding-size", "4", "--num-layers", "1", "--seq-length", "8",
                          "--batch-size", "2", *records, *read_options], case)
    if result.exit_code == 0:
        run(["sample", out, "--length", "30", "--seed", "0"], case)
        run(["info", out] if seed % 2 else ["eval", out, text, *read_options], case)


@pytest.mark.slow
@pytest.mark.parametrize("records", [False, True])
def test_a_single_50_mb_line_trains_under_the_memory_limit(tmp_path, records):
    text = tmp_path / "line.txt"
    rng = np.random.default_rng(0)
    text.write_bytes(rng.integers(97, 123, 50 << 20, dtype=np.uint8).tobytes())
    out = tmp_path / "m.npz"
    process = run_process(["train", text, "--out", out, "--max-steps", "2", "--hidden-size",
                           "16", *(["--records"] if records else [])], "50 MB line", tmp_path)
    assert process.returncode == 0
    run_process(["sample", out, "--length", "20"], "50 MB line", tmp_path)
