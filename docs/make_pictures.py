"""Make the pictures of `charrnn show` in docs/commands.md, the --find table in
benchmarks/RESULTS.md, and measure the HTML page at 100,000 characters.

    python docs/make_pictures.py                      # the shipped model, all of Shakespeare
    python docs/make_pictures.py --checkpoint m.npz --chars 200000

Run from anywhere; it runs this checkout's charrnn (``python -m charrnn``) and
needs headless Chromium (``apt-get install chromium``). It writes
docs/show-terminal.png (the surprise view), docs/show-unit.png (the unit
--find found for position in line), docs/show-page.png (the HTML page, one
character's guesses open), rewrites what lies between the show-find and
show-measured markers in benchmarks/RESULTS.md (the --find table; the warm-up check, page
size and times), and prints it.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
RESULTS = REPO / "benchmarks" / "RESULTS.md"
SHAKESPEARE = REPO / "data" / "tinyshakespeare.txt"
PASSAGE_LINES = (2001, 2024)  # lines of Shakespeare in the pictures
PAGE_CHARS = 100_000
LINKED_CHAR = 150  # the character whose guesses the page's picture shows
WARMUP_CHECK_CHARS = 40_000


def charrnn(*args, env=None) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "charrnn", *map(str, args)], cwd=REPO,
                            capture_output=True, text=True, env={**os.environ, **(env or {})})
    if result.returncode != 0:
        sys.exit(f"charrnn {' '.join(map(str, args))} failed:\n{result.stderr}")
    return result


def chromium_screenshot(url: str, png: Path, width: int, height: int) -> float:
    """Screenshot ``url`` with headless Chromium; returns the seconds it took."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                        "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={profile}", f"--screenshot={png}",
                        f"--window-size={width},{height}", url],
                       check=True, capture_output=True)
    return time.perf_counter() - start


def terminal_picture(args: list, png: Path, width: int = 100) -> None:
    """Run charrnn as on a true-colour terminal of ``width`` columns and screenshot its
    output drawn by rich as an SVG."""
    from rich.console import Console
    from rich.text import Text

    output = charrnn(*args, env={"FORCE_COLOR": "1", "COLORTERM": "truecolor",
                                 "COLUMNS": str(width), "NO_COLOR": ""}).stdout
    console = Console(record=True, width=width, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor")
    console.print(Text.from_ansi(output), soft_wrap=True)
    svg = png.with_suffix(".svg")
    console.save_svg(str(svg), title=" ".join(["charrnn", *(Path(arg).name for arg in args)]))
    size = re.search(r'viewBox="0 0 ([\d.]+) ([\d.]+)"', svg.read_text())
    chromium_screenshot(svg.as_uri(), png, *(math.ceil(float(side)) for side in size.groups()))
    svg.unlink()


def timed(run) -> tuple[object, str]:
    """What ``run()`` returns, and how long it took: wall time, the CPU time of the commands
    it ran, and the machine's load meanwhile (a shared machine's figures vary with it)."""
    start, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    result = run()
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    return result, (f"{wall:.0f} s ({cpu_seconds:.0f} s of CPU; load average "
                    f"{os.getloadavg()[1]:.1f} on {os.cpu_count()} cores)")


def find_table(checkpoint: Path, text: Path) -> list[dict]:
    return [json.loads(line) for line in
            charrnn("show", checkpoint, text, "--find", "--json").stdout.splitlines()]


def markdown(rows: list[dict], checkpoint: Path, text: Path, chars: int) -> str:
    lines = [f"`charrnn show {checkpoint.relative_to(REPO)} {text.name} --find` "
             f"({chars:,} characters, {rows[0]['what']} values):", "",
             "| feature | best unit | r |", "|---|---|---:|"]
    for row in rows:
        unit = "–" if row["layer"] is None else f"{row['layer']}:{row['index']}"
        r = "not in the text" if row["r"] is None else f"{row['r']:+.2f}"
        lines.append(f"| {row['feature']} | {unit} | {r} |")
    return "\n".join(lines)


def replace_between_markers(path: Path, name: str, content: str) -> None:
    text = path.read_text()
    start_marker, end_marker = f"<!-- {name} -->", f"<!-- /{name} -->"
    start, end = text.index(start_marker) + len(start_marker), text.index(end_marker)
    path.write_text(text[:start] + "\n" + content + "\n" + text[end:])


def warmup_check(checkpoint: Path, text: str) -> tuple[float, float]:
    """The largest differences, in a character's surprise and in any cell, between reading
    ``text`` as show does (streams warmed up) and in one sequential pass."""
    sys.path.insert(0, str(REPO))
    from charrnn.data.corpus import text_tokens
    from charrnn.inspection.read_through import Unit, trace_tokens
    from charrnn.saving.checkpoint import load_checkpoint

    loaded = load_checkpoint(checkpoint)
    config = loaded.model.config
    tokens, _ = text_tokens(text, loaded.vocab, None)
    units = tuple(Unit(layer, index) for layer in range(config.num_layers)
                  for index in range(0, config.hidden_size, 8))
    sequential = trace_tokens(loaded.model, tokens, units, "cell", max_streams=1)
    streams = trace_tokens(loaded.model, tokens, units, "cell")
    return (float(np.nanmax(abs(streams.nats - sequential.nats))),
            float(np.nanmax(abs(streams.units - sequential.units))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path,
                        default=REPO / "checkpoints" / "pretrained-shakespeare.npz")
    parser.add_argument("--chars", type=int, default=None,
                        help="use only the first N characters of Shakespeare for --find")
    args = parser.parse_args()
    checkpoint = args.checkpoint.resolve()
    lines = SHAKESPEARE.read_text().splitlines(keepends=True)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        passage, page_text, find_text = work / "passage.txt", work / "page.txt", SHAKESPEARE
        passage.write_text("".join(lines[PASSAGE_LINES[0]: PASSAGE_LINES[1]]))
        page_text.write_text(SHAKESPEARE.read_text()[:PAGE_CHARS])
        if args.chars:
            find_text = work / "tinyshakespeare.txt"
            find_text.write_text(SHAKESPEARE.read_text()[: args.chars])

        rows, find_time = timed(lambda: find_table(checkpoint, find_text))
        table = markdown(rows, checkpoint, find_text, len(find_text.read_text()))
        replace_between_markers(RESULTS, "show-find", table)
        print(table)

        terminal_picture(["show", checkpoint, passage], DOCS / "show-terminal.png")
        line_unit = next(row for row in rows if row["feature"] == "position in line")
        terminal_picture(["show", checkpoint, passage, "--unit",
                          f"{line_unit['layer']}:{line_unit['index']}"], DOCS / "show-unit.png")

        page = work / "passage.html"
        charrnn("show", checkpoint, passage, "--html", page)
        chromium_screenshot(f"{page.as_uri()}#{LINKED_CHAR}", DOCS / "show-page.png", 1000, 640)

        big_page = work / "page.html"
        _, make_time = timed(lambda: charrnn("show", checkpoint, page_text, "--html", big_page))
        small = chromium_screenshot(page.as_uri(), work / "small.png", 1000, 640)
        big = chromium_screenshot(big_page.as_uri(), work / "big.png", 1000, 640)
        big_page_size, passage_text = big_page.stat().st_size, passage.read_text()
        surprise, cell = warmup_check(checkpoint, SHAKESPEARE.read_text()[:WARMUP_CHECK_CHARS])
    measured = "\n".join([
        f"- `--find` over {len(find_text.read_text()):,} characters: {find_time}.",
        f"- The HTML page of the first {PAGE_CHARS:,} characters: "
        f"{big_page_size / 1e6:.1f} MB, made in {make_time}; headless Chromium "
        f"opens and draws it in {big:.1f} s ({small:.1f} s for a page of "
        f"{len(passage_text):,} characters).",
        f"- Read in warmed-up streams rather than in one pass, the first "
        f"{WARMUP_CHECK_CHARS:,} characters: no surprise differs by more than "
        f"{surprise:.2g} nats, no cell by more than {cell:.2g}."])
    replace_between_markers(RESULTS, "show-measured", measured)
    print(measured, "wrote docs/show-terminal.png, docs/show-unit.png, docs/show-page.png and "
          "benchmarks/RESULTS.md's --find table and measured figures", sep="\n")


if __name__ == "__main__":
    main()
