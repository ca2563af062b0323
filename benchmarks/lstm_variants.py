"""The LSTM variants against the LSTM in a time budget: held-out loss and training speed.

Each cell (``--cell lstm``, ``lstm-peephole``, ``lstm-cifg``) trains with
``charrnn train`` and the defaults of a T-second run on the first 95% of
each corpus, and is scored with ``charrnn eval`` on the held-out last 5%,
exactly as a user would run it:

    python benchmarks/lstm_variants.py --seconds 120 --lstm-steps 1160 --seeds 1,2,3 \\
        --corpus data/tinyshakespeare.txt --corpus austen.txt

(austen.txt as ``benchmarks/texts.py`` makes it.) On a machine busy with
other work a wall-clock budget is unfair and, there, very short, so the
budget is counted in steps: the LSTM gets ``--lstm-steps``, the steps it
makes in T seconds on a quiet machine, and each variant the steps that cost
the same time, ``lstm_steps x (LSTM's step time / its step time)``. The
step times are measured first, in this process, with the cells in turn
(one training step each: forward, backward and Adam, at the recipe's sizes,
one thread), so that all meet the same load: the median of the rounds after
a warm-up round. Training speed is characters per second of those steps.

The runs of one corpus and seed train at the same time, one process each
with ``--threads 1`` and OPENBLAS_NUM_THREADS=1 (the script sets it). Prints
the step times, a Markdown row per run as it ends and a JSON line per run
on stderr, then a summary per corpus and cell: the mean held-out loss over
the seeds, its steps and speed, both against the LSTM's.
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

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # this process's and the runs' (before numpy loads)

import numpy as np  # noqa: E402

from charrnn.nn.model import Model, ModelConfig, init_params  # noqa: E402
from charrnn.nn.optim import Adam  # noqa: E402
from charrnn.training.settings import recipe  # noqa: E402
from sweep_defaults import CORPUS, charrnn, held_out_file, recipe_options  # noqa: E402

CELLS = ("lstm", "lstm-peephole", "lstm-cifg")
VOCAB_SIZE = 67  # tinyshakespeare's 65 characters and <START>, <END>; Austen's is 83


def step_seconds(cells: list[str], seconds: float, rounds: int = 15, steps: int = 2) -> dict:
    """The median time of one training step of each cell, the cells measured in turn."""
    chosen = recipe(None, None, seconds)
    rng = np.random.default_rng(0)
    inputs = rng.integers(2, VOCAB_SIZE, (chosen.seq_length, chosen.batch_size))
    targets = rng.integers(2, VOCAB_SIZE, inputs.shape)
    models = {}
    for cell in cells:
        config = ModelConfig(VOCAB_SIZE, hidden_size=chosen.hidden_size, cell=cell)
        model = Model(config, init_params(config, rng))
        models[cell] = model, Adam(model.params, chosen.lr)
    times = {cell: [] for cell in cells}
    for _ in range(rounds):
        for cell, (model, optimizer) in models.items():
            started = time.perf_counter()
            for _ in range(steps):
                _, grads, _ = model.loss_and_gradients(inputs, targets,
                                                       model.zero_state(chosen.batch_size))
                optimizer.update_(model.params, grads)
            times[cell].append((time.perf_counter() - started) / steps)
    return {cell: statistics.median(values[1:]) for cell, values in times.items()}


def train_and_score(corpus: Path, held_out: Path, cell: str, seed: int, seconds: float,
                    steps: int, directory: Path) -> dict:
    checkpoint = directory / f"{cell}-{seed}.npz"
    charrnn("train", str(corpus), "--out", str(checkpoint), "--seed", str(seed),
            "--max-steps", str(steps), *recipe_options(seconds), "--cell", cell, "--threads", "1")
    score = json.loads(charrnn("eval", "--json", str(checkpoint), str(held_out)).stdout)
    return {"corpus": corpus.name, "cell": cell, "seed": seed, "steps": steps,
            "held_out": round(score["nats_per_char"], 4)}


def summary(results: list[dict], speeds: dict[str, float]) -> list[str]:
    """Markdown rows: per corpus and cell, the mean held-out loss, and the loss and speed
    against the LSTM's."""
    rows = ["| corpus | cell | steps | chars/s | speed against lstm | held-out nats/char "
            "(mean; each seed) | against lstm |", "|---|---|---:|---:|---:|---|---:|"]
    for corpus in dict.fromkeys(result["corpus"] for result in results):
        losses = {cell: [r["held_out"] for r in sorted(results, key=lambda r: r["seed"])
                         if r["corpus"] == corpus and r["cell"] == cell] for cell in speeds}
        for cell, cell_losses in losses.items():
            steps = next(r["steps"] for r in results if r["cell"] == cell)
            gap = statistics.mean(cell_losses) - statistics.mean(losses["lstm"])
            each = ", ".join(f"{loss:.4f}" for loss in cell_losses)
            rows.append(f"| {corpus} | {cell} | {steps:,} | {speeds[cell]:,.0f} | "
                        f"{speeds[cell] / speeds['lstm']:.2f} | "
                        f"{statistics.mean(cell_losses):.4f} ({each}) | {gap:+.4f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, required=True, help="the time budget T")
    parser.add_argument("--lstm-steps", type=int, required=True,
                        help="the steps the LSTM makes in T seconds on a quiet machine")
    parser.add_argument("--corpus", type=Path, action="append",
                        help="a text to train on (repeat for several); tinyshakespeare if none")
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds")
    parser.add_argument("--step-times", help="each cell's step time in ms, as an earlier run "
                        "measured it (lstm=633,lstm-peephole=703,lstm-cifg=429), not measured "
                        "again: to add seeds to that run")
    parser.add_argument("--cells", default=",".join(CELLS),
                        help="comma-separated cells to train (lstm always among them)")
    args = parser.parse_args()
    corpora = args.corpus or [CORPUS]
    seeds = [int(seed) for seed in args.seeds.split(",")]
    cells = list(dict.fromkeys(["lstm", *args.cells.split(",")]))
    if not set(cells) <= set(CELLS):
        parser.error(f"--cells: each is one of {', '.join(CELLS)}")

    if args.step_times:
        times = {cell: float(ms) / 1000 for cell, ms in
                 (pair.split("=") for pair in args.step_times.split(","))}
    else:
        times = step_seconds(cells, args.seconds)
    chosen = recipe(None, None, args.seconds)
    speeds = {cell: chosen.batch_size * chosen.seq_length / time for cell, time in times.items()}
    budgets = {cell: round(args.lstm_steps * times["lstm"] / times[cell]) for cell in cells}
    print("one training step, one thread: " + ", ".join(
        f"{cell} {times[cell] * 1000:.0f} ms ({budgets[cell]} steps)" for cell in cells) + "\n")
    print("| corpus | cell | seed | steps | held-out nats/char |")
    print("|---|---|---:|---:|---:|", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as temporary, \
            ThreadPoolExecutor(max_workers=len(cells)) as pool:
        for corpus in corpora:
            folder = Path(temporary) / corpus.stem
            folder.mkdir()
            held_out = held_out_file(corpus, folder)
            for seed in seeds:  # the cells at once
                results += pool.map(train_and_score, *zip(*[
                    (corpus, held_out, cell, seed, args.seconds, budgets[cell], folder)
                    for cell in cells]))
                for result in results[-len(cells):]:
                    print(json.dumps(result), file=sys.stderr, flush=True)
                    print(f"| {result['corpus']} | {result['cell']} | {result['seed']} | "
                          f"{result['steps']:,} | {result['held_out']:.4f} |", flush=True)
    print(f"\nthe budget of {args.seconds:g} s: the LSTM's {args.lstm_steps:,} steps\n")
    print("\n".join(summary(results, {cell: speeds[cell] for cell in cells})))


if __name__ == "__main__":
    main()
