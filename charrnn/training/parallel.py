"""Training steps on several cores: the batch cut into shards, shared between worker processes.

The B rows of the batch are cut into S shards (``TrainSettings.shards``),
contiguous and as even as can be. Each shard's forward and backward pass
writes its gradients into an array of its own, always with OpenBLAS on one
thread; the shards' gradients are then summed in shard order (shard 0's,
plus shard 1's, ...), their norm taken of the sum, and the Adam update made.
W workers compute the shards, worker k those of ``split(S, W)[k]`` one after
the other: worker 0 is the calling process; workers 1, 2, ... are processes
started when the ``Workers`` are made. Each worker makes the update of its
own contiguous part of the parameters.

So the weights depend on S, never on W: every shard is computed by the same
calls whoever computes it, the sum runs in shard order, the norm is taken
in this process, and the update is elementwise. With dropout, each shard
draws its masks from a generator seeded from the training generator
(S > 1), or from that generator itself (S = 1).

The arrays live in one block of memory the processes share
(``multiprocessing.shared_memory``, which a worker finds by its name), laid
out as ``StepMemory`` says. Nothing of it outlives the run: the block is
unlinked when the workers are closed, collected, or at exit, and if this
process is killed, Python's resource tracker unlinks it once the workers,
which end when this process hangs up, have ended too.

Why processes and not threads: NumPy lets go of the GIL inside each call,
but a step is thousands of calls on small arrays (one time step's (B_k, 4H)
gates at a time), and two threads hand the GIL to each other at every call.
On the project's 2-core machine two threads were slower than one: 58k
against 84k chars/s at 2 x 128 (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import secrets
import signal
import sys
import weakref
from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np
from threadpoolctl import ThreadpoolController, threadpool_limits

from charrnn.data.vocab import START_ID
from charrnn.errors import CharrnnError
from charrnn.nn.model import Model, ModelConfig, Params, State
from charrnn.nn.optim import Adam, global_norm

# What tells a BLAS library how many threads to start, for the worker processes.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS",
                         "VECLIB_MAXIMUM_THREADS")


def split(size: int, parts: int) -> list[slice]:
    """``parts`` contiguous slices that cover range(size), as even as can be."""
    bounds = [size * part // parts for part in range(parts + 1)]
    return [slice(start, end) for start, end in zip(bounds, bounds[1:])]


def views(flat: np.ndarray, shapes: dict[str, tuple[int, ...]]) -> Params:
    """Arrays of ``shapes``, by name, laid one after the other in ``flat``."""
    arrays, start = {}, 0
    for name, shape in shapes.items():
        size = math.prod(shape)
        arrays[name] = flat[start: start + size].reshape(shape)
        start += size
    return arrays


def start_method() -> str:
    """How worker processes start: "forkserver" on Linux, "spawn" elsewhere.

    Neither forks the training process, whose BLAS threads make a fork unsafe
    (and which Windows cannot fork). A forkserver worker is forked from a
    small server that has imported charrnn once, single-threaded: the first
    start costs what a spawned worker does, later ones a few milliseconds (see
    docs/platforms.md). macOS has forkserver too, but its system libraries
    are not fork-safe once loaded, so there each worker is a fresh
    interpreter, as on Windows.
    """
    if sys.platform.startswith("linux") and "forkserver" in multiprocessing.get_all_start_methods():
        return "forkserver"
    return "spawn"


class WorkerStopped(CharrnnError):
    """A worker process ended (killed, or out of memory) while training needed it."""


@dataclass(frozen=True)
class Layout:
    """Where a step's arrays lie in its memory, and what a worker needs to use them:
    rows (3 + S, P) of the model's dtype, P the number of parameters. Row 0 holds the
    parameters, rows 1 and 2 Adam's first and second moments, row 3 + k shard k's
    gradients (row 3 then their sum); each row lays the parameters out by ``shapes``."""

    config: ModelConfig
    shapes: dict[str, tuple[int, ...]]  # by name, in the model's order
    dtype: str
    num_shards: int
    adam: tuple[float, float, float]  # beta1, beta2, eps

    @property
    def rows(self) -> tuple[int, int]:
        return 3 + self.num_shards, sum(math.prod(shape) for shape in self.shapes.values())

    @property
    def nbytes(self) -> int:
        return math.prod(self.rows) * np.dtype(self.dtype).itemsize


def new_block(nbytes: int) -> shared_memory.SharedMemory:
    """A new block of shared memory, named after this process (charrnn_<pid>_<random>)."""
    while True:
        try:
            return shared_memory.SharedMemory(f"charrnn_{os.getpid()}_{secrets.token_hex(4)}",
                                              create=True, size=max(nbytes, 1))
        except FileExistsError:  # the random part was taken: draw again
            continue


class StepMemory:
    """A step's arrays (see ``Layout``), in a block shared by name when ``shared``, else in
    this process alone; made from a model and its optimizer, whose parameters and moments
    become views of it until ``release`` gives them back as arrays of their own."""

    def __init__(self, model: Model, optimizer: Adam, num_shards: int, shared: bool):
        self.model, self.optimizer = model, optimizer
        self.layout = Layout(model.config, {name: p.shape for name, p in model.params.items()},
                             model.dtype.str, num_shards,
                             (optimizer.beta1, optimizer.beta2, optimizer.eps))
        self.block = new_block(self.layout.nbytes) if shared else None
        self.rows = (np.zeros(self.layout.rows, model.dtype) if self.block is None
                     else np.ndarray(self.layout.rows, model.dtype, buffer=self.block.buf))
        for row, arrays in zip(self.rows, self._kept()):
            for name, view in views(row, self.layout.shapes).items():
                view[...] = arrays[name]
                arrays[name] = view
        # This process's other views, set by Workers: its share, and the summed gradients.
        self.share: Share | None = None
        self.grads: Params | None = None

    def _kept(self) -> tuple[Params, Params, Params]:
        """The dicts whose arrays live in rows 0, 1 and 2."""
        return (self.model.params, self.optimizer.first_moment, self.optimizer.second_moment)

    def release(self) -> None:
        """Give the model and the optimizer arrays of their own again, and unlink the block.
        Every other view of it must be gone by then."""
        if self.rows is None:
            return
        for arrays in self._kept():
            for name, array in arrays.items():
                arrays[name] = array.copy()
        self.rows = self.share = self.grads = None
        if self.block is not None:
            self.block.unlink()
            self.block.close()


class Share:
    """One worker's part of a step: its shards' forward and backward passes, and its part of
    the update; over the rows (3 + S, P) of ``Layout``."""

    def __init__(self, model: Model, optimizer: Adam, rows: np.ndarray, part: slice):
        self.model, self.optimizer, self.part = model, optimizer, part
        self.params, self.first, self.second = rows[0], rows[1], rows[2]
        self.total = rows[3]  # (P,): shard 0's gradients, then the sum of all
        self.shard_grads = [views(grads, {name: p.shape for name, p in model.params.items()})
                            for grads in rows[3:]]
        self.scratch = np.empty(part.stop - part.start, rows.dtype)  # (P_k,)

    @classmethod
    def attached(cls, block: shared_memory.SharedMemory, layout: Layout, part: slice) -> Share:
        """A worker process's share, over the arrays in ``block``."""
        rows = np.ndarray(layout.rows, layout.dtype, buffer=block.buf)
        model = Model(layout.config, views(rows[0], layout.shapes))
        return cls(model, Adam({}, 0.0, *layout.adam), rows, part)

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
        self.optimizer.update_arrays_(self.params[part], self.total[part], self.first[part],
                                      self.second[part], self.scratch, step_size, grad_scale)


def serve(connection, block_name: str, layout: Layout, part: slice,
          inherited: list) -> None:
    """A worker process: run what the parent asks of its share until the parent hangs up.

    ``inherited``: the parent's ends of the other workers' pipes, which a forked
    worker holds copies of; closed, so that each closes when the parent exits.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent: it finishes the step
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked while starting
    for end in inherited:
        end.close()
    threadpool_limits(limits=1, user_api="blas")
    block = shared_memory.SharedMemory(block_name)
    try:
        answer(connection, Share.attached(block, layout, part))
    finally:
        block.close()  # the share, and its views of the block, went with answer()


def answer(connection, share: Share) -> None:
    """Run ``share``'s methods as the parent asks, until it hangs up."""
    while True:
        try:
            method, args, errors = connection.recv()
        except EOFError:
            return
        try:
            with np.errstate(**errors):
                reply = (True, getattr(share, method)(*args))
        except Exception as error:  # sent to the parent, which raises it
            reply = (False, error.with_traceback(None))
        try:
            connection.send(reply)
        except OSError:  # the parent is gone
            return


@contextlib.contextmanager
def workers_starting():
    """While worker processes start: Ctrl-C held back from them (blocked, where the platform
    can block signals, until they ignore it; this process takes it after), and their BLAS
    told to start with the one thread each uses."""
    saved = {name: os.environ.get(name) for name in BLAS_THREAD_VARIABLES}
    os.environ.update(dict.fromkeys(BLAS_THREAD_VARIABLES, "1"))
    mask = (signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            if hasattr(signal, "pthread_sigmask") else None)
    try:
        yield
    finally:
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def start_workers(memory: StepMemory, parts: list[slice], method: str) -> tuple[list, list]:
    """Processes for workers 1, 2, ... (those of ``parts[1:]``), started by ``method``; their
    pipes' parent ends and the processes."""
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload([__name__])
    connections, processes = [], []
    with workers_starting():
        for worker, part in enumerate(parts[1:], start=1):
            parent_end, child_end = context.Pipe()
            connections.append(parent_end)
            inherited = connections[:] if method == "fork" else []
            process = context.Process(target=serve, name=f"charrnn-worker-{worker}",
                                      daemon=True, args=(child_end, memory.block.name,
                                                         memory.layout, part, inherited))
            process.start()
            child_end.close()
            processes.append(process)
    return connections, processes


class Workers:
    """``num_workers`` processes that compute the training steps of one model together,
    its batches cut into ``num_shards`` shards (at least one shard per worker).

    Making them moves the model's parameters and the optimizer's moments into
    a ``StepMemory``, shared when there is more than one worker: ``model.params``
    and the optimizer's dicts hold views of it until ``close``, which ends the
    processes and gives them arrays of their own again; so do garbage
    collection and exit. ``method`` is how the processes start (default:
    ``start_method()``).
    """

    def __init__(self, model: Model, optimizer: Adam, num_workers: int, num_shards: int,
                 method: str | None = None):
        if not 1 <= num_workers <= num_shards:
            raise ValueError("at least one worker is needed, and a shard for each")
        self.model, self.optimizer = model, optimizer
        self.num_workers, self.num_shards = num_workers, num_shards
        self._memory = memory = StepMemory(model, optimizer, num_shards, num_workers > 1)
        parts = split(memory.layout.rows[1], num_workers)
        self._blas = ThreadpoolController()
        self._norm: float | None = None  # of the gradients, when they hold the latest sum
        self._connections, processes = [], []
        self._stop = weakref.finalize(self, stop, self._connections, processes, memory)
        if num_workers > 1:
            self._connections[:], processes[:] = start_workers(memory, parts,
                                                               method or start_method())
        # The views of the memory in this process, all held by it, so that release() can
        # drop them: this process's share, and the summed gradients as returned, read-only
        # so that their norm stays theirs.
        memory.share = Share(model, optimizer, memory.rows, parts[0])
        memory.grads = views(memory.rows[3].view(), memory.layout.shapes)
        for grad in memory.grads.values():
            grad.flags.writeable = False

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
                return True, getattr(self._memory.share, method)(*args)
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
        workers' memory, valid until the next call (and not after ``close``).
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
                       "forward_backward",
                       [(shards[part],) for part in split(self.num_shards, self.num_workers)])
                   for result in worker_results]
        total, *others = self._memory.rows[3:]
        for grads in others:  # in shard order, whoever computed them
            total += grads
        self._norm = None
        losses, states = zip(*results)
        new_state = [tuple(np.concatenate(arrays) for arrays in zip(*layers))
                     for layers in zip(*states)]
        return math.fsum(losses), self._memory.grads, new_state

    def _summed(self, grads: Params) -> Params:
        """The summed gradients, made ``grads`` (they already are when they came from
        ``loss_and_gradients``)."""
        memory = self._memory
        if grads is not memory.grads:
            for name, grad in grads.items():
                np.copyto(memory.share.shard_grads[0][name], grad)
            self._norm = None
        return memory.grads

    def global_norm(self, grads: Params) -> float:
        """The L2 norm of all gradients taken together (``optim.global_norm``, with
        OpenBLAS on one thread)."""
        summed = self._summed(grads)
        if self._norm is None:
            with self._blas.limit(limits=1, user_api="blas"):
                self._norm = global_norm(summed)
        return self._norm

    def update_(self, grads: Params, lr: float, grad_scale: float = 1.0) -> None:
        """One Adam update of the model's parameters by ``grads``, each worker updating
        its part."""
        self._summed(grads)
        step_size = self.optimizer.next_step_size(lr)
        self._run("update", [(step_size, grad_scale)] * self.num_workers)


def stop(connections: list, processes: list, memory: StepMemory) -> None:
    """Hang up on the worker processes, which then end, wait for them, and release the
    memory."""
    for connection in connections:
        connection.close()
    for process in processes:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
    memory.release()
