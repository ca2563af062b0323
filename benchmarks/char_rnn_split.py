"""Lay a text out so that charrnn holds out what char-rnn holds out, to compare the two splits.

    python benchmarks/char_rnn_split.py data/tinyshakespeare.txt split/

char-rnn's loader (CharSplitLMMinibatchLoader.lua, with its defaults: batch
50, 50-step sequences, 95% to train) cuts the text to a whole number of
batches, lays it out as 50 rows and holds out the last 5% of the batches,
that is the end of every row: 50 pieces from all over the text. charrnn
holds out the end of its text. This writes, into the output folder:

- interleaved.txt: char-rnn's training part (the rows' beginnings, in order),
  then its held-out part (the rows' ends, in order), and interleaved_val.txt,
  that held-out part alone;
- contiguous.txt: the same cut text as it is, and contiguous_val.txt, its end
  of the same length;

and prints the --val-fraction that makes charrnn hold out exactly that many
characters of either file.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROWS, STEPS, TRAIN_FRACTION = 50, 50, 0.95  # char-rnn's batch_size, seq_length, split


def main(text_path: str, out_dir: str) -> None:
    text = Path(text_path).read_text(encoding="utf-8")
    length = len(text) // (ROWS * STEPS) * (ROWS * STEPS)
    text = text[:length]
    row_length = length // ROWS
    rows = [text[row * row_length:(row + 1) * row_length] for row in range(ROWS)]
    cut = int(row_length // STEPS * TRAIN_FRACTION) * STEPS  # where the held-out batches start
    held_out = "".join(row[cut:] for row in rows)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"interleaved.txt": "".join(row[:cut] for row in rows) + held_out,
             "interleaved_val.txt": held_out, "contiguous.txt": text,
             "contiguous_val.txt": text[-len(held_out):]}
    for name, content in files.items():
        (out / name).write_text(content, encoding="utf-8")
    # int(length * fraction) must come to len(held_out): aim half a character above it.
    print(f"{len(held_out):,} of {length:,} characters held out: "
          f"--val-fraction {(len(held_out) + 0.5) / length:.10f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
