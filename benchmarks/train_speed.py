"""Training speed: characters per second, and how close that is to the machine's GEMM speed.

For each configuration this times full training steps (forward, backward,
gradient clipping and an Adam update on the next window of a random token
stream), counts the matrix-product FLOPs of one step, and measures float32
GEMM speed at the step's own matrix shapes. The ratio of the two FLOP rates
says how much of the step is spent outside matrix products.

    PYTHONPATH=. python benchmarks/train_speed.py
    PYTHONPATH=. python benchmarks/train_speed.py --torch   # side by side with PyTorch

A step is what ``charrnn train`` runs: the batch cut into ``--shards``
shards (default: training's), which ``--threads`` workers (default: the
cores available, as for training, at most one per shard) share, each with
OpenBLAS on one thread; ``--threads 1`` times one process computing every
shard in turn. ``--torch`` runs the same
configurations with torch.nn.LSTM on the CPU, on every core available. Each
configuration is timed in ``--rounds`` rounds (two warm-up steps left out of
each), charrnn and PyTorch taking turns, so that both sides see the same
load on a shared machine; the figures are medians over the rounds, and the
ratio is the median of the rounds' ratios.
PyTorch is not a charrnn dependency; install it in a separate virtual
environment.
"""

from __future__ import annotations

import importlib.util
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable

import click
import numpy as np

from charrnn.data.windows import Windows
from charrnn.nn.cells import CELLS
from charrnn.nn.model import Model, ModelConfig, init_params
from charrnn.nn.optim import Adam, clip_scale
from charrnn.training.parallel import Workers
from charrnn.training.settings import DEFAULT_SHARDS, available_cores

VOCAB_SIZE = 67  # 65 characters, <START> and <END>
EMBEDDING_SIZE = 64
BLAS_ENVIRONMENT = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


@dataclass(frozen=True)
class Setup:
    name: str
    hidden_size: int
    batch_size: int
    seq_length: int
    num_layers: int = 2
    cell: str = "lstm"

    @property
    def chars_per_step(self) -> int:
        return self.batch_size * self.seq_length


SETUPS = (Setup("a", 128, 50, 50), Setup("b", 256, 64, 100), Setup("c", 512, 64, 100),
          Setup("d", 256, 32, 64),  # d: the shape of ``charrnn train``'s default step
          Setup("e", 256, 32, 64, cell="lstm-cifg"))  # d's step of the CIFG LSTM


# -- FLOPs and GEMM speed ----------------------------------------------------

def step_gemms(setup: Setup) -> list[tuple[int, int, int]]:
    """Every matrix product (m, k, n) of one training step: (m, k) @ (k, n)."""
    T, B, H, E, V = (setup.seq_length, setup.batch_size, setup.hidden_size,
                     EMBEDDING_SIZE, VOCAB_SIZE)
    G = CELLS[setup.cell].num_gates * H  # the gates' columns
    gemms = []
    for layer in range(setup.num_layers):
        D = E if layer == 0 else H
        gemms += [(T * B, D, G)]  # input projections of all steps
        gemms += [(B, H, G)] * T  # recurrent products, forward
        gemms += [(B, G, H)] * T  # recurrent products, backward
        gemms += [(D, T * B, G), (H, T * B, G)]  # dWx, dWh
        gemms += [(T * B, G, D)]  # dx
    gemms += [(T * B, H, V), (H, T * B, V), (T * B, V, H)]  # logits, dW, dh of the output layer
    return gemms


def gemm_flops(m: int, k: int, n: int) -> int:
    return 2 * m * k * n


def training_flops(setup: Setup) -> int:
    """Matrix-product FLOPs of one training step (elementwise work not counted)."""
    return sum(gemm_flops(*shape) for shape in step_gemms(setup))


def gemm_seconds(m: int, k: int, n: int, repeats: int = 5) -> float:
    """Best time of one float32 (m, k) @ (k, n) product."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    out = np.empty((m, n), np.float32)
    calls = max(1, int(2e8 / gemm_flops(m, k, n)))  # about 0.2 GFLOP per timing
    np.matmul(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            np.matmul(a, b, out=out)
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def gemm_peak(setup: Setup) -> float:
    """FLOP/s of the step's matrix products alone, each timed at its own shape."""
    counts: dict[tuple[int, int, int], int] = {}
    for shape in step_gemms(setup):
        counts[shape] = counts.get(shape, 0) + 1
    seconds = sum(count * gemm_seconds(*shape) for shape, count in counts.items())
    return training_flops(setup) / seconds


# -- timing training steps ---------------------------------------------------

def random_tokens(setup: Setup, num_windows: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(2, VOCAB_SIZE, num_windows * setup.chars_per_step + 1)


def time_steps(run_step, min_steps: int, min_seconds: float) -> list[float]:
    """Seconds of each call of run_step(index), after two warm-up calls."""
    run_step(0)
    run_step(1)
    times: list[float] = []
    while len(times) < min_steps or sum(times) < min_seconds:
        start = time.perf_counter()
        run_step(len(times) + 2)
        times.append(time.perf_counter() - start)
    return times


def charrnn_step(setup: Setup, threads: int,
                 shards: int) -> tuple[Callable[[int], None], Workers]:
    """The step of ``charrnn train`` (loss and gradients, their norm, a clipped Adam update)
    as run_step(index), and the workers it runs on (close them when done)."""
    config = ModelConfig(VOCAB_SIZE, EMBEDDING_SIZE, setup.hidden_size, setup.num_layers,
                         setup.cell)
    model = Model(config, init_params(config, np.random.default_rng(0)))
    optimizer = Adam(model.params, 2e-3)
    workers = Workers(model, optimizer, min(threads, shards), shards)
    windows = Windows(random_tokens(setup, 8), setup.batch_size, setup.seq_length)
    state = model.zero_state(setup.batch_size)

    def run_step(index):
        nonlocal state
        inputs, targets = windows.window(index % windows.num_windows)
        _, grads, state = workers.loss_and_gradients(inputs, targets, state)
        workers.update_(grads, 2e-3, clip_scale(workers.global_norm(grads), 5.0))

    return run_step, workers


def torch_step(setup: Setup) -> Callable[[int], None]:
    """The same step in PyTorch as run_step(index): embedding, nn.LSTM, linear,
    cross-entropy, Adam; a CIFG LSTM as nn.LSTM with its input gate tied to the negated
    forget gate (``vs_pytorch.couple_input_and_forget_``)."""
    import torch
    from vs_pytorch import couple_input_and_forget_

    torch.set_num_threads(available_cores())
    torch.manual_seed(0)
    H = setup.hidden_size
    embedding = torch.nn.Embedding(VOCAB_SIZE, EMBEDDING_SIZE)
    lstm = torch.nn.LSTM(EMBEDDING_SIZE, H, setup.num_layers)  # time-major, like charrnn
    if setup.cell == "lstm-cifg":
        couple_input_and_forget_(lstm)
    output = torch.nn.Linear(H, VOCAB_SIZE)
    params = [*embedding.parameters(), *lstm.parameters(), *output.parameters()]
    optimizer = torch.optim.Adam(params, lr=2e-3)
    windows = Windows(random_tokens(setup, 8), setup.batch_size, setup.seq_length)
    zeros = torch.zeros(setup.num_layers, setup.batch_size, H)
    state = (zeros, zeros)

    def run_step(index):
        nonlocal state
        inputs, targets = (torch.from_numpy(a.astype(np.int64))
                           for a in windows.window(index % windows.num_windows))
        top, (h, c) = lstm(embedding(inputs), state)
        loss = torch.nn.functional.cross_entropy(output(top).reshape(-1, VOCAB_SIZE),
                                                 targets.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        optimizer.step()
        state = (h.detach(), c.detach())

    return run_step


# -- reporting ---------------------------------------------------------------

def blas_description() -> str:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (install threadpoolctl to see which BLAS kernel runs)"
    for pool in threadpool_info():
        if pool["user_api"] == "blas":
            return (f"{pool['internal_api']} {pool.get('version')}, kernel "
                    f"{pool.get('architecture')}, {pool['num_threads']} threads")
    return "no BLAS library found by threadpoolctl"


def warn_about_blas_environment() -> None:
    set_variables = [name for name in BLAS_ENVIRONMENT if name in os.environ]
    if set_variables:
        unset = " ".join(f"-u {name}" for name in set_variables)
        click.echo(f"note: {', '.join(set_variables)} set in the environment changes which "
                   f"OpenBLAS kernel runs; for comparable figures run:\n"
                   f"  env {unset} PYTHONPATH=. python {' '.join(sys.argv)}", err=True)


def chars_per_sec(setup: Setup, times: list[float]) -> float:
    return setup.chars_per_step / statistics.median(times)


@click.command()
@click.option("--torch", "with_torch", is_flag=True,
              help="Also run PyTorch's nn.LSTM on the same configurations and print ratios.")
@click.option("--min-steps", default=8, show_default=True, help="Timed steps per configuration.")
@click.option("--min-seconds", default=5.0, show_default=True,
              help="Time at least this long per configuration.")
@click.option("--only", default="abcd", show_default=True,
              help="Which configurations to run (e: d's step of the CIFG LSTM).")
@click.option("--threads", type=click.IntRange(min=1), default=available_cores(),
              show_default="the cores available",
              help="Worker processes of the charrnn step.")
@click.option("--shards", type=click.IntRange(min=1), default=DEFAULT_SHARDS, show_default=True,
              help="Shards of each batch, as charrnn train's --shards.")
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timing rounds per configuration; with --torch, the two sides take turns.")
def main(with_torch, min_steps, min_seconds, only, threads, shards, rounds):
    """Print training throughput as JSON lines and a short table."""
    # Only look for PyTorch here: importing it now could slow the charrnn runs.
    if with_torch and importlib.util.find_spec("torch") is None:
        raise click.ClickException(
            "--torch needs PyTorch, which is not installed in this Python; install "
            "torch==2.13.0 (CPU) in a separate virtual environment and run this there")
    warn_about_blas_environment()
    click.echo(f"BLAS: {blas_description()}", err=True)
    setups = [setup for setup in SETUPS if setup.name in only]
    # Every configuration's workers start before PyTorch starts its threads.
    charrnn_steps = [charrnn_step(setup, threads, shards) for setup in setups]
    try:
        rows = [measure(setup, run_step, min(threads, shards), with_torch, rounds, min_steps,
                        min_seconds)
                for setup, (run_step, _) in zip(setups, charrnn_steps)]
    finally:
        for _, workers in charrnn_steps:
            workers.close()
    for row in rows:
        click.echo(json.dumps(row))
    print_table(rows, with_torch)


def measure(setup: Setup, charrnn_run, threads: int, with_torch: bool, rounds: int,
            min_steps: int, min_seconds: float) -> dict:
    """One configuration's figures: the median chars/s of each side over the rounds, and
    the median of each round's ratio (the two sides timed one after the other)."""
    torch_run = torch_step(setup) if with_torch else None
    speeds, torch_speeds, best = [], [], 0.0
    for _ in range(rounds):
        times = time_steps(charrnn_run, min_steps, min_seconds)
        speeds.append(chars_per_sec(setup, times))
        best = max(best, setup.chars_per_step / min(times))
        if torch_run is not None:
            torch_speeds.append(chars_per_sec(setup, time_steps(torch_run, min_steps,
                                                                 min_seconds)))
    speed, flops, peak = statistics.median(speeds), training_flops(setup), gemm_peak(setup)
    row = {
        "config": setup.name, "cell": setup.cell, "threads": threads,
        "layers": setup.num_layers, "hidden_size": setup.hidden_size,
        "batch_size": setup.batch_size, "seq_length": setup.seq_length,
        "chars_per_sec": round(speed), "rounds": [round(value) for value in speeds],
        "best_chars_per_sec": round(best),
        "step_seconds": round(setup.chars_per_step / speed, 4),
        "gflop_per_step": round(flops / 1e9, 2),
        "train_gflop_per_sec": round(flops * speed / setup.chars_per_step / 1e9, 1),
        "gemm_gflop_per_sec": round(peak / 1e9, 1),
        "fraction_of_gemm": round(flops * speed / setup.chars_per_step / peak, 2)}
    if torch_run is not None:
        row["torch_chars_per_sec"] = round(statistics.median(torch_speeds))
        row["torch_rounds"] = [round(value) for value in torch_speeds]
        row["charrnn_over_torch"] = round(statistics.median(
            [ours / theirs for ours, theirs in zip(speeds, torch_speeds)]), 3)
    return row


def print_table(rows: list[dict], with_torch: bool) -> None:
    header = f"\n{'config':<24} {'chars/s':>9} {'GFLOP/s':>8} {'GEMM GFLOP/s':>13} {'of GEMM':>8}"
    if with_torch:
        header += f" {'torch chars/s':>14} {'ratio':>6}"
    click.echo(header)
    for row in rows:
        name = f"{row['config']} {row['layers']}x{row['hidden_size']} " \
               f"{row['batch_size']}x{row['seq_length']} {row['cell']}"
        line = (f"{name:<24} {row['chars_per_sec']:>9,} {row['train_gflop_per_sec']:>8} "
                f"{row['gemm_gflop_per_sec']:>13} {row['fraction_of_gemm']:>8.0%}")
        if with_torch:
            line += f" {row['torch_chars_per_sec']:>14,} {row['charrnn_over_torch']:>6}"
        click.echo(line)


if __name__ == "__main__":
    main()
