"""The LSTM variants against the LSTM in a time budget: held-out loss and training speed.

Each cell (``--cell lstm``, ``lstm-peephole``, ``lstm-cifg``) trains with
``charrnn train --max-time T`` and the defaults of a T-second run, on the
first 95% of each corpus, and is scored with ``charrnn eval`` on the held-out
last 5%, exactly as a user would run it:

    python benchmarks/lstm_variants.py --seconds 120 --seeds 1,2,3 \\
        --corpus data/tinyshakespeare.txt --corpus austen.txt

(austen.txt as ``benchmarks/texts.py`` makes it.) The cells of one corpus and
seed train at the same time, one process each with ``--threads 1`` and
OPENBLAS_NUM_THREADS=1 (the script sets it), so that they share the machine
alike, whatever else runs on it: each gets the same share of the cores, and
a cell that needs less work per step makes more steps in it. Training speed
is characters per second of training time (steps x batch x window / seconds,
validation included).
Prints a Markdown row per run as it ends and a JSON line per run on stderr,
then a summary per corpus and cell: the mean held-out loss over the seeds,
the median speed, and both against the LSTM's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sweep_defaults import CORPUS, charrnn, held_out_file

CELLS = ("lstm", "lstm-peephole", "lstm-cifg")


def train_and_score(corpus: Path, held_out: Path, cell: str, seed: int, seconds: float,
                    directory: Path) -> dict:
    checkpoint = directory / f"{corpus.stem}-{cell}-{seed}.npz"
    started = time.monotonic()
    charrnn("train", str(corpus), "--out", str(checkpoint), "--cell", cell, "--seed", str(seed),
            "--max-time", str(seconds), "--threads", "1")
    wall = time.monotonic() - started
    training = json.loads(charrnn("info", "--json", str(checkpoint)).stdout)["training"]
    score = json.loads(charrnn("eval", "--json", str(checkpoint), str(held_out)).stdout)
    window = training["window"]
    chars = training["steps"] * window["batch_size"] * window["seq_length"]
    return {"corpus": corpus.name, "cell": cell, "seed": seed, "steps": training["steps"],
            "train_seconds": round(training["seconds"], 1), "wall_seconds": round(wall, 1),
            "chars_per_second": round(chars / training["seconds"]),
            "held_out": round(score["nats_per_char"], 4)}


def summary(results: list[dict]) -> list[str]:
    """Markdown rows: per corpus and cell, the mean held-out loss, the median speed, and
    both against the LSTM of the same corpus."""
    rows = ["| corpus | cell | seeds | held-out nats/char (mean, each) | against lstm | "
            "chars/s (median) | speed against lstm |", "|---|---|---:|---|---:|---:|---:|"]
    for corpus in dict.fromkeys(result["corpus"] for result in results):
        by_cell = {cell: [r for r in results if r["corpus"] == corpus and r["cell"] == cell]
                   for cell in CELLS}
        baseline = by_cell["lstm"]
        for cell, runs in by_cell.items():
            if not runs:
                continue
            losses = [run["held_out"] for run in sorted(runs, key=lambda run: run["seed"])]
            speed = statistics.median(run["chars_per_second"] for run in runs)
            loss_gap = speed_ratio = "-"
            if baseline:
                baseline_loss = statistics.mean(run["held_out"] for run in baseline)
                baseline_speed = statistics.median(run["chars_per_second"] for run in baseline)
                loss_gap = f"{statistics.mean(losses) - baseline_loss:+.4f}"
                speed_ratio = f"{speed / baseline_speed:.2f}"
            each = ", ".join(f"{loss:.4f}" for loss in losses)
            rows.append(f"| {corpus} | {cell} | {len(runs)} | {statistics.mean(losses):.4f} "
                        f"({each}) | {loss_gap} | {speed:,.0f} | {speed_ratio} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, required=True, help="the time budget T")
    parser.add_argument("--corpus", type=Path, action="append",
                        help="a text to train on (repeat for several); tinyshakespeare if none")
    parser.add_argument("--cells", default=",".join(CELLS), help="comma-separated cells")
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds")
    args = parser.parse_args()
    corpora = args.corpus or [CORPUS]
    cells, seeds = args.cells.split(","), [int(seed) for seed in args.seeds.split(",")]
    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # the runs' environment

    with tempfile.TemporaryDirectory() as temporary, \
            ThreadPoolExecutor(max_workers=len(cells)) as pool:
        directory = Path(temporary)
        print("| corpus | cell | seed | steps | train s | chars/s | held-out nats/char |")
        print("|---|---|---:|---:|---:|---:|---:|", flush=True)
        results = []
        for corpus in corpora:
            folder = directory / corpus.stem
            folder.mkdir()
            held_out = held_out_file(corpus, folder)
            for seed in seeds:  # the cells at once
                results += pool.map(train_and_score, *zip(*[
                    (corpus, held_out, cell, seed, args.seconds, folder) for cell in cells]))
                for result in results[-len(cells):]:
                    print(json.dumps(result), file=sys.stderr, flush=True)
                    print(f"| {result['corpus']} | {result['cell']} | {result['seed']} | "
                          f"{result['steps']} | {result['train_seconds']} | "
                          f"{result['chars_per_second']:,} | {result['held_out']:.4f} |",
                          flush=True)
    print(f"\n{args.seconds:g} s per run, the {len(cells)} cells at once, one thread each\n")
    print("\n".join(summary(results)))


if __name__ == "__main__":
    main()
