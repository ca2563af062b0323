"""Training steps on several cores: the rows of the batch split between worker threads.

Each worker runs the model forward and backward on its own rows of the batch
(B_k of the B streams), in its own ``Model`` over the shared parameters (so
with its own work arrays), with its own gradient arrays. NumPy's elementwise
functions and OpenBLAS release the GIL, so the workers run at the same time;
OpenBLAS is held to one thread each while they do. Then the workers' gradients
are summed, the global norm taken and the Adam update made, each of these
split between the workers by parts of every parameter.

Every sum runs in a fixed order (worker 0's, then worker 1's, ...), so a
number of workers and a seed always give the same weights, to the bit. They
are not the same weights as with another number of workers: the sums are
rounded differently, and dropout masks are drawn per worker.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

import numpy as np
from threadpoolctl import ThreadpoolController

from .model import Model, Params, State
from .optim import Adam, flat, global_norm
from .vocab import START_ID

Result = TypeVar("Result")


def split(size: int, parts: int) -> list[slice]:
    """``parts`` contiguous slices that cover range(size), as even as can be."""
    bounds = [size * part // parts for part in range(parts + 1)]
    return [slice(start, end) for start, end in zip(bounds, bounds[1:])]


class Workers:
    """``num_workers`` threads that compute training steps of one model together.

    The threads live as long as the Workers (``close`` ends them). With one
    worker, everything runs on the calling thread exactly as without Workers.
    """

    def __init__(self, model: Model, num_workers: int):
        if num_workers < 1:
            raise ValueError("at least one worker is needed")
        self.model = model
        self.num_workers = num_workers
        # Worker 0 is the model itself and runs on the calling thread.
        self.replicas = [model] + [Model(model.config, model.params)
                                   for _ in range(num_workers - 1)]
        self._executor = (ThreadPoolExecutor(num_workers - 1, "charrnn-worker")
                          if num_workers > 1 else None)
        self._blas = ThreadpoolController() if num_workers > 1 else None
        # The part of every parameter's flattened values each worker sums and updates.
        self._parts = {name: split(param.size, num_workers)
                       for name, param in model.params.items()}

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()

    def _run(self, task: Callable[[int], Result]) -> list[Result]:
        """task(k) for every worker k at once, with OpenBLAS on one thread and NumPy's
        floating-point error handling as on the calling thread; the results in worker order."""
        errors = np.geterr()  # np.errstate holds for one thread only

        def as_called(worker: int) -> Result:
            with np.errstate(**errors):
                return task(worker)

        with self._blas.limit(limits=1, user_api="blas"):
            futures = [self._executor.submit(as_called, worker)
                       for worker in range(1, self.num_workers)]
            first = task(0)
            return [first] + [future.result() for future in futures]

    def loss_and_gradients(self, inputs: np.ndarray, targets: np.ndarray, state: State,
                           dropout: float = 0.0, rng: np.random.Generator | None = None):
        """What ``Model.loss_and_gradients`` computes, with the batch split between the workers.

        The loss is the mean over every scored target of the batch. Each worker
        draws its dropout masks from a generator seeded from ``rng``, drawn anew
        at each call, so the run depends on ``rng``'s state alone.
        Returns (mean_loss, grads, new_state); grads are the first worker's
        arrays, valid until the next call.
        """
        if self.num_workers == 1:
            return self.model.loss_and_gradients(inputs, targets, state, dropout, rng)
        rows = split(inputs.shape[1], self.num_workers)
        num_scored = max(int((targets != START_ID).sum()), 1)
        rngs = ([np.random.default_rng(seed) for seed in rng.integers(2**63, size=len(rows))]
                if dropout > 0 else [None] * len(rows))

        def forward_backward(worker: int):
            part = rows[worker]
            part_state = [tuple(array[part] for array in layer) for layer in state]
            return self.replicas[worker].loss_and_gradients(
                inputs[:, part], targets[:, part], part_state, dropout, rngs[worker], num_scored)

        losses, grads, states = zip(*self._run(forward_backward))
        total = grads[0]

        def add_up(worker: int) -> None:
            for name, parts in self._parts.items():
                summed = flat(total[name])[parts[worker]]
                for other in grads[1:]:
                    summed += flat(other[name])[parts[worker]]

        self._run(add_up)
        new_state = [tuple(np.concatenate(arrays) for arrays in zip(*layers))
                     for layers in zip(*states)]
        return math.fsum(losses), total, new_state

    def global_norm(self, grads: Params) -> float:
        """The L2 norm of all gradients taken together, each worker summing squares over
        its parts."""
        if self.num_workers == 1:
            return global_norm(grads)

        def sum_squares(worker: int) -> float:
            total = 0.0
            for name, parts in self._parts.items():
                values = flat(grads[name])[parts[worker]]
                total += float(np.vdot(values, values))
            return total

        return math.sqrt(sum(self._run(sum_squares)))

    def update_(self, optimizer: Adam, grads: Params, lr: float, grad_scale: float = 1.0) -> None:
        """One Adam update of the model's parameters, each worker updating its parts."""
        if self.num_workers == 1:
            optimizer.update_(self.model.params, grads, lr, grad_scale)
            return
        step_size = optimizer.next_step_size(lr)
        params = self.model.params

        def update_parts(worker: int) -> None:
            for name, parts in self._parts.items():
                optimizer.update_part_(name, params[name], grads[name], step_size, grad_scale,
                                       parts[worker])

        self._run(update_parts)
