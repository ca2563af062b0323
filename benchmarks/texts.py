"""Texts to benchmark on besides tinyshakespeare, made from files already on the machine.

The benchmarks read no network. Each text here is made from something a
package ships, the same every time, and written to stdout:

    # Jane Austen's six novels (4.1 M characters), from Debian's r-cran-janeaustenr,
    # unpacked without installing R:
    apt-get download r-cran-janeaustenr
    dpkg-deb -x r-cran-janeaustenr_*.deb /tmp/janeaustenr
    python benchmarks/texts.py austen /tmp/janeaustenr > austen.txt

    # The first 2 M characters of Python's standard library source (code, not prose):
    python benchmarks/texts.py python-stdlib > python.txt

The Austen text is one line per line of the printed novels, the novels in the
package's order (Emma, Mansfield Park, Northanger Abbey, Persuasion, Pride and
Prejudice, Sense and Sensibility): 81 distinct characters. The Python text
depends on the Python version that makes it (3.11.7 for the figures in
VS_PYTORCH.md): 222 distinct characters.
"""

from __future__ import annotations

import struct
import sys
import sysconfig
import zlib
from pathlib import Path

import click

AUSTEN_DATA = "usr/lib/R/site-library/janeaustenr/data/Rdata.rdb"
PYTHON_CHARS = 2_000_000
PYTHON_SKIPPED = {"test", "tests", "site-packages", "idlelib"}  # test data and bundled packages
R_STRING_VECTOR, R_STRING = 16, 9  # SEXP types in R's serialization format


def lazy_load_entries(data: bytes) -> list[bytes]:
    """The objects of an R lazy-load database (.rdb), each still serialized.

    The file is the objects one after another, each a 4-byte big-endian length
    and then its zlib-compressed serialization.
    """
    entries, offset = [], 0
    while offset < len(data):
        decompressor = zlib.decompressobj()
        entries.append(decompressor.decompress(data[offset + 4:]))
        offset = len(data) - len(decompressor.unused_data)
    return entries


def r_strings(serialized: bytes) -> list[str]:
    """The strings of a serialized R character vector (XDR format, version 3).

    The header is "X\\n", three integers and the native encoding's name; then
    the vector's flags and length, then each string's flags, byte count and
    bytes (count -1 for NA, read as an empty line).
    """
    words = lambda offset, count: struct.unpack_from(f">{count}i", serialized, offset)  # noqa: E731
    if serialized[:2] != b"X\n" or words(2, 1)[0] != 3:
        raise ValueError("not an R serialization of version 3 in XDR format")
    (encoding_length,) = words(14, 1)
    offset = 18 + encoding_length
    flags, count = words(offset, 2)
    if flags & 0xFF != R_STRING_VECTOR:
        raise ValueError("not a character vector")
    offset += 8
    strings = []
    for _ in range(count):
        flags, length = words(offset, 2)
        if flags & 0xFF != R_STRING:
            raise ValueError("a character vector holding something other than strings")
        offset += 8
        if length < 0:
            strings.append("")
        else:
            strings.append(serialized[offset: offset + length].decode("utf-8"))
            offset += length
    return strings


def austen_text(package_dir: Path) -> str:
    data = (package_dir / AUSTEN_DATA).read_bytes()
    return "\n".join("\n".join(r_strings(entry)) for entry in lazy_load_entries(data)) + "\n"


def python_stdlib_text(num_chars: int = PYTHON_CHARS) -> str:
    """The standard library's .py files in path order, outside test folders, cut at num_chars."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(path for path in root.rglob("*.py")
                   if not PYTHON_SKIPPED & set(path.relative_to(root).parts))
    pieces, size = [], 0
    for path in files:
        pieces.append(path.read_text(encoding="utf-8"))
        size += len(pieces[-1])
        if size >= num_chars:
            break
    return "".join(pieces)[:num_chars]


@click.group()
def main():
    """Write a benchmark text to stdout."""


@main.command()
@click.argument("package_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
def austen(package_dir):
    """Jane Austen's novels, from an unpacked r-cran-janeaustenr package."""
    sys.stdout.write(austen_text(package_dir))


@main.command("python-stdlib")
def python_stdlib():
    """The first 2 M characters of this Python's standard library source."""
    sys.stdout.write(python_stdlib_text())


if __name__ == "__main__":
    main()
