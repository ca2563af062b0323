"""Training steps on several cores: the rows of the batch split between worker processes.

Worker 0 is the calling process; workers 1, 2, ... are processes forked when
the ``Workers`` are made. Each runs the model forward and backward on its own
rows of the batch (B_k of the B streams), with OpenBLAS on one thread. The
parameters, the Adam moments and each worker's gradients live in memory the
processes share, each kind as one flat array (P,) of which every parameter is
a view. After the forward and backward passes the workers' gradients are
summed, their norm taken and the Adam update made, each of these split
between the workers by contiguous parts of the flat arrays.

Why processes and not threads: NumPy lets go of the GIL inside each call,
but a step is thousands of calls on small arrays (one time step's (B_k, 4H)
gates at a time), and two threads hand the GIL to each other at every call.
On the project's 2-core machine two threads were slower than one: 58k
against 84k chars/s at 2 x 128 (see benchmarks/RESULTS.md).

Every sum runs in a fixed order (worker 0's gradients, then worker 1's, ...),
so a number of workers and a seed always give the same weights, to the bit.
They are not the same weights as with another number of workers: the sums
are rounded differently, and each worker draws its own dropout masks.
"""

from __future__ import annotations

import math
import mmap
import multiprocessing
import signal
import weakref

import numpy as np
from threadpoolctl import ThreadpoolController, threadpool_limits

from charrnn.data.vocab import START_ID
from charrnn.errors import CharrnnError
from charrnn.nn.model import Model, Params, State
from charrnn.nn.optim import Adam, global_norm


def split(size: int, parts: int) -> list[slice]:
    """``parts`` contiguous slices that cover range(size), as even as can be."""
    bounds = [size * part // parts for part in range(parts + 1)]
    return [slice(start, end) for start, end in zip(bounds, bounds[1:])]


def shared_zeros(size: int, dtype) -> np.ndarray:
    """A (size,) array of zeros in memory shared with the processes forked after it is made."""
    dtype = np.dtype(dtype)
    buffer = mmap.mmap(-1, max(size * dtype.itemsize, 1))  # anonymous, shared, zero-filled
    return np.frombuffer(buffer, dtype, count=size)


def views(flat: np.ndarray, shapes: dict[str, tuple[int, ...]]) -> Params:
    """Arrays of ``shapes``, by name, laid one after the other in ``flat``."""
    arrays, start = {}, 0
    for name, shape in shapes.items():
        size = math.prod(shape)
        arrays[name] = flat[start: start + size].reshape(shape)
        start += size
    return arrays


def move_to_shared(arrays: Params) -> np.ndarray:
    """Copy ``arrays`` into one flat shared array and put views of it in their place (in
    the same dict); returns the flat array."""
    flat = shared_zeros(sum(array.size for array in arrays.values()),
                        next(iter(arrays.values())).dtype)
    for name, view in views(flat, {name: array.shape for name, array in arrays.items()}).items():
        view[...] = arrays[name]
        arrays[name] = view
    return flat


class WorkerStopped(CharrnnError):
    """A worker process ended (killed, or out of memory) while training needed it."""


class Share:
    """One worker's part of a step: its rows' forward and backward pass, and its part of
    the gradients' sum, of their norm and of the update."""

    def __init__(self, model: Model, optimizer: Adam, params: np.ndarray,
                 moments: tuple[np.ndarray, np.ndarray], grads: list[np.ndarray], worker: int):
        self.model, self.optimizer = model, optimizer
        self.params, self.moments, self.all_grads = params, moments, grads
        self.grads = views(grads[worker], {name: p.shape for name, p in model.params.items()})
        self.part = split(params.size, len(grads))[worker]
        self.scratch = np.empty(self.part.stop - self.part.start, params.dtype)

    def forward_backward(self, inputs: np.ndarray, targets: np.ndarray, state: State,
                         dropout: float, seed: int | None, num_scored: int):
        """This worker's rows: their summed loss over ``num_scored`` and their new state;
        the gradients are left in this worker's shared gradient array."""
        rng = None if seed is None else np.random.default_rng(seed)
        loss, _, new_state = self.model.loss_and_gradients(inputs, targets, state, dropout, rng,
                                                           num_scored, self.grads)
        return loss, new_state

    def add_up(self) -> float:
        """Sum every worker's gradients into worker 0's, over this worker's part; returns
        the sum of the squares of that part of the total."""
        total = self.all_grads[0][self.part]
        for grads in self.all_grads[1:]:
            total += grads[self.part]
        return self.sum_squares()

    def sum_squares(self) -> float:
        values = self.all_grads[0][self.part]
        return float(np.vdot(values, values))

    def update(self, step_size: float, grad_scale: float) -> None:
        part = self.part
        first, second = self.moments
        self.optimizer.update_arrays_(self.params[part], self.all_grads[0][part], first[part],
                                      second[part], self.scratch, step_size, grad_scale)


def serve(connection, share: Share, parent_ends: list) -> None:
    """A worker process: run what the parent asks of ``share`` until it hangs up."""
    for end in parent_ends:  # so that the parent's end closes when the parent exits
        end.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent: it finishes the step
    threadpool_limits(limits=1, user_api="blas")
    while True:
        try:
            method, args, errors = connection.recv()
        except EOFError:
            return
        try:
            with np.errstate(**errors):
                reply = (True, getattr(share, method)(*args))
        except Exception as error:  # sent to the parent, which raises it
            reply = (False, error)
        connection.send(reply)


class Workers:
    """``num_workers`` processes that compute the training steps of one model together.

    Making them moves the model's parameters and the optimizer's moments into
    shared memory (``model.params`` and the optimizer's dicts then hold views
    of it). With one worker, everything runs in this process as without Workers.
    ``close`` ends the processes; so does garbage collection, and exit.
    """

    def __init__(self, model: Model, optimizer: Adam, num_workers: int):
        if num_workers < 1:
            raise ValueError("at least one worker is needed")
        self.model, self.optimizer, self.num_workers = model, optimizer, num_workers
        self._connections = []
        if num_workers == 1:
            return
        params = move_to_shared(model.params)
        moments = (move_to_shared(optimizer.first_moment), move_to_shared(optimizer.second_moment))
        grads = [shared_zeros(params.size, params.dtype) for _ in range(num_workers)]
        shares = [Share(model, optimizer, params, moments, grads, worker)
                  for worker in range(num_workers)]
        self._share = shares[0]
        # The summed gradients as returned: read-only, so that their norm, taken with
        # the sum, stays theirs.
        self.grads = views(grads[0].view(), {name: p.shape for name, p in model.params.items()})
        for grad in self.grads.values():
            grad.flags.writeable = False
        self._norm: float | None = None  # of self.grads, when they hold the latest sum
        self._blas = ThreadpoolController()
        context = multiprocessing.get_context("fork")
        processes = []
        for worker in range(1, num_workers):
            parent_end, child_end = context.Pipe()
            self._connections.append(parent_end)
            process = context.Process(target=serve, name=f"charrnn-worker-{worker}", daemon=True,
                                      args=(child_end, shares[worker], self._connections))
            process.start()
            child_end.close()
            processes.append(process)
        self._stop = weakref.finalize(self, stop_processes, self._connections, processes)

    def close(self) -> None:
        if self.num_workers > 1:
            self._stop()

    def _run(self, method: str, args: list[tuple]) -> list:
        """Every worker's ``Share.<method>(*args[k])`` at once, worker 0 here with OpenBLAS
        on one thread, all with NumPy's floating-point error handling as here; the results
        in worker order. The first error any worker met is raised after all have finished."""
        if not self._stop.alive:
            raise WorkerStopped("the training workers were closed")
        errors = np.geterr()
        try:
            for worker in range(1, self.num_workers):
                self._talk(worker, "send", (method, args[worker], errors))
            replies = [self._run_here(method, args[0])]
            replies += [self._talk(worker, "recv") for worker in range(1, self.num_workers)]
        except BaseException:  # the processes are out of step with this one: stop them
            self.close()
            raise
        for succeeded, result in replies:
            if not succeeded:
                raise result
        return [result for _, result in replies]

    def _run_here(self, method: str, args: tuple) -> tuple:
        try:
            with self._blas.limit(limits=1, user_api="blas"):
                return True, getattr(self._share, method)(*args)
        except Exception as error:
            return False, error

    def _talk(self, worker: int, verb: str, *message):
        """Send to, or receive from, a worker process."""
        try:
            return getattr(self._connections[worker - 1], verb)(*message)
        except (EOFError, OSError):
            raise WorkerStopped(f"training worker process {worker} ended unexpectedly") from None

    def loss_and_gradients(self, inputs: np.ndarray, targets: np.ndarray, state: State,
                           dropout: float = 0.0, rng: np.random.Generator | None = None):
        """What ``Model.loss_and_gradients`` computes, with the batch split between the workers.

        The loss is the mean over every scored target of the batch. Each worker
        draws its dropout masks from a generator seeded from ``rng``, anew at
        each call, so the run depends on ``rng``'s state alone.
        Returns (mean_loss, grads, new_state); grads are read-only views of shared
        memory, valid until the next call.
        """
        if self.num_workers == 1:
            return self.model.loss_and_gradients(inputs, targets, state, dropout, rng)
        rows = split(inputs.shape[1], self.num_workers)
        num_scored = max(int((targets != START_ID).sum()), 1)
        seeds = (rng.integers(2**63, size=len(rows)).tolist() if dropout > 0
                 else [None] * len(rows))
        results = self._run("forward_backward", [
            (inputs[:, part], targets[:, part], [tuple(array[part] for array in layer)
                                                 for layer in state],
             dropout, seed, num_scored)
            for part, seed in zip(rows, seeds)])
        self._norm = math.sqrt(sum(self._run("add_up", [()] * self.num_workers)))
        losses, states = zip(*results)
        new_state = [tuple(np.concatenate(arrays) for arrays in zip(*layers))
                     for layers in zip(*states)]
        return math.fsum(losses), self.grads, new_state

    def _shared(self, grads: Params) -> None:
        """Have ``grads`` in the shared gradients (they are already there when they came
        from ``loss_and_gradients``)."""
        if grads is not self.grads:
            for name, grad in grads.items():
                np.copyto(self._share.grads[name], grad)
            self._norm = None

    def global_norm(self, grads: Params) -> float:
        """The L2 norm of all gradients taken together: that of the latest
        ``loss_and_gradients``, taken as the workers summed them, or each worker summing
        squares over its part."""
        if self.num_workers == 1:
            return global_norm(grads)
        self._shared(grads)
        if self._norm is None:
            self._norm = math.sqrt(sum(self._run("sum_squares", [()] * self.num_workers)))
        return self._norm

    def update_(self, grads: Params, lr: float, grad_scale: float = 1.0) -> None:
        """One Adam update of the model's parameters by ``grads``, each worker updating
        its part."""
        if self.num_workers == 1:
            self.optimizer.update_(self.model.params, grads, lr, grad_scale)
            return
        self._shared(grads)
        step_size = self.optimizer.next_step_size(lr)
        self._run("update", [(step_size, grad_scale)] * self.num_workers)


def stop_processes(connections: list, processes: list) -> None:
    """Hang up on the worker processes, which then end, and wait for them."""
    for connection in connections:
        connection.close()
    for process in processes:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
