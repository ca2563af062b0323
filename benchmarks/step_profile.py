"""Where one worker's training step goes: its parts, and its matrix products by shape.

``charrnn train`` cuts a step's batch into shards, which its workers compute
(``parallel.py``): with a shard per worker (2 and 2 by default), each runs
the forward and backward pass on B / workers rows with OpenBLAS on one
thread, then updates its part of the parameters. This times that share
of a step at a given size in one process, by parts (each layer's forward
and backward pass, the output layer with the softmax and the loss, the Adam
update of 1 / workers of the parameters) and, within them, every matrix
product by its shape, the rest being NumPy's elementwise work and Python.

Times are CPU seconds of this process (``time.process_time``): on a machine
shared with other work they count what the step itself ran, not the waits.
Medians over ``--steps`` steps, after two left out.

    PYTHONPATH=. python benchmarks/step_profile.py                 # the default step
    PYTHONPATH=. python benchmarks/step_profile.py --hidden-size 512 --batch-size 64
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections import defaultdict

import click
import numpy as np
from threadpoolctl import threadpool_limits

from charrnn.nn import layers, lstm, model as model_module
from charrnn.nn.model import Model, ModelConfig, init_params
from charrnn.nn.optim import Adam

VOCAB_SIZE = 67  # 65 characters, <START> and <END>


class Timings:
    """CPU seconds by name, summed over the calls of one step."""

    def __init__(self):
        self.step: dict[str, float] = defaultdict(float)
        self.steps: list[dict[str, float]] = []
        self.calls: dict[str, int] = defaultdict(int)

    def timed(self, name: str, function):
        def run(*args, **kwargs):
            start = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.step[name] += time.process_time() - start
                self.calls[name] += 1
        return run

    def end_step(self) -> None:
        self.steps.append(dict(self.step))
        self.step.clear()

    def median_ms(self, name: str) -> float:
        return 1e3 * statistics.median(step.get(name, 0.0) for step in self.steps)


class TimedNumpy:
    """numpy, for a module that calls ``np.matmul``: each product timed under its shape."""

    def __init__(self, timings: Timings):
        self.timings = timings

    def __getattr__(self, name):
        return getattr(np, name)

    def matmul(self, a, b, out=None):
        name = f"matmul {a.shape} @ {b.shape}"
        return self.timings.timed(name, np.matmul)(a, b, out=out)


def flops(name: str) -> int:
    """2 m k n of a product named by ``TimedNumpy``."""
    a, b = (eval(shape) for shape in name.removeprefix("matmul ").split(" @ "))  # noqa: S307
    return 2 * int(np.prod(a)) * b[-1]


@click.command()
@click.option("--hidden-size", default=256, show_default=True)
@click.option("--num-layers", default=2, show_default=True)
@click.option("--batch-size", default=32, show_default=True)
@click.option("--seq-length", default=64, show_default=True)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1),
              help="Workers sharing the step: this times one worker's share.")
@click.option("--steps", default=20, show_default=True)
def main(hidden_size, num_layers, batch_size, seq_length, workers, steps):
    threadpool_limits(1, "blas")
    rows = batch_size // workers
    config = ModelConfig(VOCAB_SIZE, 64, hidden_size, num_layers)
    model = Model(config, init_params(config, np.random.default_rng(0)))
    timings = Timings()
    for module in (lstm, layers, model_module):
        module.np = TimedNumpy(timings)
    model.cell = dataclasses.replace(model.cell,
                                     forward=timings.timed("forward", model.cell.forward),
                                     backward=timings.timed("backward", model.cell.backward))
    model_module.softmax_cross_entropy_ = timings.timed("softmax and loss",
                                                        model_module.softmax_cross_entropy_)
    # This worker's part of the Adam update: 1 / workers of all the parameters.
    share = {"part": np.zeros(config.num_params() // workers, np.float32)}
    share_grads = {"part": np.full_like(share["part"], 1e-3)}
    optimizer = Adam(share, 2e-3)
    update = timings.timed("Adam update", optimizer.update_)
    tokens = np.random.default_rng(0).integers(2, VOCAB_SIZE, (seq_length + 1, rows))
    state = model.zero_state(rows)
    grads = {name: np.empty_like(param) for name, param in model.params.items()}

    def step():
        model.loss_and_gradients(tokens[:-1], tokens[1:], state, grads=grads)
        update(share, share_grads, 2e-3)

    step = timings.timed("step", step)
    for index in range(steps + 2):
        step()
        timings.end_step()
        if index == 1:
            timings.steps.clear()
    whole = timings.median_ms("step")
    click.echo(f"one worker's share of a step: {rows} rows of {batch_size}, {seq_length} steps, "
               f"{num_layers} x {hidden_size}, {workers} workers: {whole:.1f} ms "
               f"(CPU, median of {steps})")
    parts = ("forward", "backward", "softmax and loss", "Adam update")
    for name in parts:
        click.echo(f"  {name:<22} {timings.median_ms(name):7.2f} ms")
    rest = whole - sum(timings.median_ms(name) for name in parts)
    click.echo(f"  {'the rest':<22} {rest:7.2f} ms")
    products = sorted((name for name in timings.calls if name.startswith("matmul")),
                      key=timings.median_ms, reverse=True)
    total = sum(timings.median_ms(name) for name in products)
    click.echo(f"matrix products: {total:.1f} ms ({total / whole:.0%}); the rest of the step "
               f"(elementwise work, Python): {whole - total:.1f} ms")
    for name in products:
        per_step = timings.calls[name] // (steps + 2)
        ms = timings.median_ms(name)
        click.echo(f"  {name.removeprefix('matmul '):<30} {per_step:4d} calls {ms:7.2f} ms "
                   f"{flops(name) * per_step / ms / 1e6:6.1f} GFLOP/s")


if __name__ == "__main__":
    main()
