"""Training steps on several cores: the batch cut into shards, shared between worker processes.

The B rows of the batch are cut into S shards (``TrainSettings.shards``),
contiguous and as even as can be. Each shard's forward and backward pass
writes its gradients into an array of its own, always with OpenBLAS on one
thread; the shards' gradients are then summed in shard order (shard 0's,
plus shard 1's, ...), their norm taken of the sum, and the Adam update made.
W workers compute the shards, worker k those of ``split(S, W)[k]`` one after
the other: worker 0 is the calling process; workers 1, 2, ... are processes
forked when the ``Workers`` are made. The parameters, the Adam moments and
the shards' gradients live in memory the processes share, each kind as flat
arrays (P,) of which every parameter is a view, and each worker makes the
update of its own contiguous part of them.

So the weights depend on S, never on W: every shard is computed by the same
calls whoever computes it, the sum runs in shard order, the norm is taken
in this process, and the update is elementwise. With dropout, each shard
draws its masks from a generator seeded from the training generator
(S > 1), or from that generator itself (S = 1).

Why processes and not threads: NumPy lets go of the GIL inside each call,
but a step is thousands of calls on small arrays (one time step's (B_k, 4H)
gates at a time), and two threads hand the GIL to each other at every call.
On the project's 2-core machine two threads were slower than one: 58k
against 84k chars/s at 2 x 128 (see benchmarks/RESULTS.md).
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


def move_to_flat(arrays: Params, zeros=np.zeros) -> np.ndarray:
    """Copy ``arrays`` into one flat array made by ``zeros(size, dtype)`` and put views of
    it in their place (in the same dict); returns the flat array."""
    flat = zeros(sum(array.size for array in arrays.values()), next(iter(arrays.values())).dtype)
    for name, view in views(flat, {name: array.shape for name, array in arrays.items()}).items():
        view[...] = arrays[name]
        arrays[name] = view
    return flat


class WorkerStopped(CharrnnError):
    """A worker process ended (killed, or out of memory) while training needed it."""


class Share:
    """One worker's part of a step: its shards' forward and backward passes, and its part of
    the update."""

    def __init__(self, model: Model, optimizer: Adam, params: np.ndarray,
                 moments: tuple[np.ndarray, np.ndarray], shard_grads: list[np.ndarray],
                 part: slice):
        self.model, self.optimizer = model, optimizer
        self.params, self.moments, self.part = params, moments, part
        self.total = shard_grads[0]  # (P,): shard 0's gradients, then the sum of all
        shapes = {name: p.shape for name, p in model.params.items()}
        self.shard_grads = [views(grads, shapes) for grads in shard_grads]
        self.scratch = np.empty(part.stop - part.start, params.dtype)  # (P_k,)

    def forward_backward(self, shards: list[tuple]) -> list[tuple[float, State]]:
        """Each of ``shards``, (shard, inputs, targets, state, dropout, rng, num_scored), in
        turn: its rows' summed loss over num_scored and their new state, its gradients
        left in that shard's gradient array."""
        results = []
        for shard, inputs, targets, state, dropout, rng, num_scored in shards:
            loss, _, new_state = self.model.loss_and_gradients(
                inputs, targets, state, dropout, rng, num_scored, self.shard_grads[shard])
            results.append((loss, new_state))
        return results

    def update(self, step_size: float, grad_scale: float) -> None:
        """Adam's update of this worker's part of the parameters by the summed gradients."""
        part = self.part
        first, second = self.moments
        self.optimizer.update_arrays_(self.params[part], self.total[part], first[part],
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
    """``num_workers`` processes that compute the training steps of one model together,
    its batches cut into ``num_shards`` shards (at least one shard per worker).

    Making them moves the model's parameters and the optimizer's moments into
    flat arrays, shared when there is more than one worker (``model.params``
    and the optimizer's dicts then hold views of them). ``close`` ends the
    processes; so does garbage collection, and exit.
    """

    def __init__(self, model: Model, optimizer: Adam, num_workers: int, num_shards: int):
        if not 1 <= num_workers <= num_shards:
            raise ValueError("at least one worker is needed, and a shard for each")
        self.model, self.optimizer = model, optimizer
        self.num_workers, self.num_shards = num_workers, num_shards
        zeros = shared_zeros if num_workers > 1 else np.zeros
        params = move_to_flat(model.params, zeros)
        moments = (move_to_flat(optimizer.first_moment, zeros),
                   move_to_flat(optimizer.second_moment, zeros))
        self._shard_grads = [zeros(params.size, params.dtype) for _ in range(num_shards)]
        shares = [Share(model, optimizer, params, moments, self._shard_grads, part)
                  for part in split(params.size, num_workers)]
        self._share, self._shards_of = shares[0], split(num_shards, num_workers)
        # The summed gradients as returned: read-only, so that their norm stays theirs.
        self.grads = views(self._shard_grads[0].view(),
                           {name: p.shape for name, p in model.params.items()})
        for grad in self.grads.values():
            grad.flags.writeable = False
        self._norm: float | None = None  # of self.grads, when they hold the latest sum
        self._blas = ThreadpoolController()
        self._connections, processes = [], []
        context = multiprocessing.get_context("fork")
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
        self._stop()

    def _run(self, method: str, args: list[tuple]) -> list:
        """Every worker's ``Share.<method>(*args[k])`` at once, all with OpenBLAS on one
        thread and NumPy's floating-point error handling as here; the results in worker
        order. The first error any worker met is raised after all have finished."""
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
        """What ``Model.loss_and_gradients`` computes, with the batch cut into the shards.

        The loss is the mean over every scored target of the batch. With one
        shard, the dropout masks are drawn from ``rng``; with more, each shard
        draws them from a generator seeded from ``rng``, anew at each call, so the
        run depends on ``rng``'s state alone.
        Returns (mean_loss, grads, new_state); grads are read-only views of the
        workers' memory, valid until the next call.
        """
        rows = split(inputs.shape[1], self.num_shards)
        if rows[0].stop == 0:
            raise ValueError(f"a batch of {inputs.shape[1]} rows has too few for "
                             f"{self.num_shards} shards")
        num_scored = max(int((targets != START_ID).sum()), 1)
        if self.num_shards == 1:
            generators = [rng]
        elif dropout > 0:
            generators = [np.random.default_rng(seed)
                          for seed in rng.integers(2**63, size=self.num_shards).tolist()]
        else:
            generators = [None] * self.num_shards
        shards = [(shard, inputs[:, part], targets[:, part],
                   [tuple(array[part] for array in layer) for layer in state],
                   dropout, generator, num_scored)
                  for shard, (part, generator) in enumerate(zip(rows, generators))]
        results = [result for worker_results in self._run(
                       "forward_backward", [(shards[part],) for part in self._shards_of])
                   for result in worker_results]
        total = self._shard_grads[0]
        for grads in self._shard_grads[1:]:  # in shard order, whoever computed them
            total += grads
        self._norm = None
        losses, states = zip(*results)
        new_state = [tuple(np.concatenate(arrays) for arrays in zip(*layers))
                     for layers in zip(*states)]
        return math.fsum(losses), self.grads, new_state

    def _shared(self, grads: Params) -> None:
        """Have ``grads`` in the summed gradients (they are already there when they came
        from ``loss_and_gradients``)."""
        if grads is not self.grads:
            for name, grad in grads.items():
                np.copyto(self._share.shard_grads[0][name], grad)
            self._norm = None

    def global_norm(self, grads: Params) -> float:
        """The L2 norm of all gradients taken together (``optim.global_norm``, with
        OpenBLAS on one thread)."""
        self._shared(grads)
        if self._norm is None:
            with self._blas.limit(limits=1, user_api="blas"):
                self._norm = global_norm(self.grads)
        return self._norm

    def update_(self, grads: Params, lr: float, grad_scale: float = 1.0) -> None:
        """One Adam update of the model's parameters by ``grads``, each worker updating
        its part."""
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
