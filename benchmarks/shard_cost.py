"""What cutting the batch into shards costs one core.

One process, OpenBLAS on one thread: the training step (loss and gradients,
their norm, a clipped Adam update) on the whole batch by the model and the
optimizer alone, against the step of one worker computing 1, 2 or 4 shards
in turn; the steps take turns, and each is timed in CPU time (this process's
alone, so that other processes on a shared machine count less), median of
the rounds after the first.

    PYTHONPATH=. python benchmarks/shard_cost.py --hidden-size 256 --batch-size 32 --seq-length 64
"""

from __future__ import annotations

import statistics
import time

import click
import numpy as np
from threadpoolctl import threadpool_limits

from charrnn.nn.model import Model, ModelConfig, init_params
from charrnn.nn.optim import Adam, clip_scale, global_norm
from charrnn.training.parallel import Workers


@click.command()
@click.option("--hidden-size", default=256, show_default=True)
@click.option("--batch-size", default=32, show_default=True)
@click.option("--seq-length", default=64, show_default=True)
@click.option("--rounds", default=15, show_default=True)
def main(hidden_size, batch_size, seq_length, rounds):
    """Print each step's median CPU time and its ratio to the whole batch's."""
    config = ModelConfig(vocab_size=67, embedding_size=64, hidden_size=hidden_size, num_layers=2)
    rng = np.random.default_rng(0)
    inputs = rng.integers(2, 67, (seq_length, batch_size))  # (T, B)
    targets = rng.integers(2, 67, (seq_length, batch_size))

    def whole_batch():
        model = Model(config, init_params(config, np.random.default_rng(0)))
        optimizer = Adam(model.params, 1e-3)

        def step():
            _, grads, _ = model.loss_and_gradients(inputs, targets, model.zero_state(batch_size))
            optimizer.update_(model.params, grads, 1e-3, clip_scale(global_norm(grads), 5.0))
        return step

    def sharded(shards: int):
        model = Model(config, init_params(config, np.random.default_rng(0)))
        workers = Workers(model, Adam(model.params, 1e-3), 1, shards)

        def step():
            _, grads, _ = workers.loss_and_gradients(inputs, targets,
                                                     model.zero_state(batch_size))
            workers.update_(grads, 1e-3, clip_scale(workers.global_norm(grads), 5.0))
        return step

    steps = {"whole batch": whole_batch(), **{f"{shards} shards": sharded(shards)
                                              for shards in (1, 2, 4)}}
    times: dict[str, list[float]] = {name: [] for name in steps}
    with threadpool_limits(limits=1, user_api="blas"):
        for _ in range(rounds):
            for name, step in steps.items():
                start = time.process_time()
                step()
                times[name].append(time.process_time() - start)
    base = statistics.median(times["whole batch"][1:])
    for name, values in times.items():
        median = statistics.median(values[1:])
        click.echo(f"{name}: {median * 1000:.1f} ms ({median / base:.3f})")


if __name__ == "__main__":
    main()
