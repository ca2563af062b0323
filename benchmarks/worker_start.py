"""What starting the training workers costs, by start method.

For each start method this platform offers, a fresh Python makes ``Workers``
for the default 2 x 256 model ``--repeats`` times and reports, for the first
and (median) for the later ones: the seconds to make them, to the first
answer of every worker (a one-character step), and to close them. The first
make of a fork server's workers includes starting the server.

    PYTHONPATH=. python benchmarks/worker_start.py
"""

from __future__ import annotations

import json
import multiprocessing
import statistics
import subprocess
import sys
import time

import click
import numpy as np

from charrnn.nn.model import Model, ModelConfig, init_params
from charrnn.nn.optim import Adam
from charrnn.training.parallel import Workers


def time_makes(method: str, workers: int, repeats: int) -> list[tuple[float, float, float]]:
    """(made, answered, closed) seconds of each of ``repeats`` makes, in this process."""
    config = ModelConfig(vocab_size=67, embedding_size=64, hidden_size=256, num_layers=2)
    rng = np.random.default_rng(0)
    inputs, targets = rng.integers(2, 67, (1, workers)), rng.integers(2, 67, (1, workers))
    rows = []
    for _ in range(repeats):
        model = Model(config, init_params(config, rng))
        start = time.perf_counter()
        made = Workers(model, Adam(model.params, 1e-3), workers, workers, method)
        made_at = time.perf_counter()
        made.loss_and_gradients(inputs, targets, model.zero_state(workers))
        answered_at = time.perf_counter()
        made.close()
        rows.append((made_at - start, answered_at - start, time.perf_counter() - answered_at))
    return rows


@click.command()
@click.option("--workers", default=2, show_default=True, help="Workers made each time.")
@click.option("--repeats", default=6, show_default=True, help="Makes per start method.")
@click.option("--method", hidden=True, help="Time this method here and print JSON.")
def main(workers, repeats, method):
    """Print each start method's costs as JSON lines and a short table."""
    if method:
        click.echo(json.dumps(time_makes(method, workers, repeats)))
        return
    click.echo("| start method | first: made, answered | later: made, answered, closed |")
    click.echo("|---|---:|---:|")
    for name in multiprocessing.get_all_start_methods():
        result = subprocess.run([sys.executable, __file__, "--method", name, "--workers",
                                 str(workers), "--repeats", str(repeats)],
                                capture_output=True, text=True, check=True)
        rows = json.loads(result.stdout)
        later = [statistics.median(column) for column in zip(*rows[1:])]
        click.echo(f"| {name} | {rows[0][0]:.3f} s, {rows[0][1]:.3f} s | {later[0]:.3f} s, "
                   f"{later[1]:.3f} s, {later[2]:.3f} s |")


if __name__ == "__main__":
    main()
