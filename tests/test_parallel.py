"""Training steps on several worker processes: the same math as one process, the same bits
for a given number of shards whatever the number of workers and however they start, and no
shared memory left behind."""

from __future__ import annotations

import multiprocessing
from multiprocessing import shared_memory

import numpy as np
import pytest

from charrnn.data.vocab import START_ID
from charrnn.nn.cells import CELLS
from charrnn.nn.model import Model, ModelConfig, init_params
from charrnn.nn.optim import Adam, global_norm
from charrnn.training.parallel import Workers, WorkerStopped, split

START_METHODS = multiprocessing.get_all_start_methods()  # every one this platform offers


@pytest.fixture
def workers_of():
    """Makes Workers and closes them after the test."""
    made = []

    def make(model, num_workers, optimizer=None, num_shards=None, method=None):
        made.append(Workers(model, optimizer or Adam(model.params, 1e-2), num_workers,
                            num_shards or num_workers, method))
        return made[-1]

    yield make
    for workers in made:
        workers.close()


def small_model(rng, cell="lstm", dtype=np.float32):
    config = ModelConfig(vocab_size=11, embedding_size=6, hidden_size=16, num_layers=2, cell=cell)
    return Model(config, init_params(config, rng, dtype))


def batch_with_resets(rng, T=9, B=7, vocab_size=11):
    """Token windows where some rows restart a sequence and some targets are not scored,
    more of them in the last rows, so the workers' rows differ in how many are scored."""
    inputs = rng.integers(2, vocab_size, (T, B))
    targets = rng.integers(1, vocab_size, (T, B))
    inputs[4, 1] = START_ID
    targets[3, 1] = START_ID
    targets[:6, B - 1] = START_ID
    targets[2:, B - 2] = START_ID
    return inputs, targets


def random_state(rng, model, B):
    return [tuple(rng.normal(size=array.shape).astype(model.dtype) for array in layer)
            for layer in model.zero_state(B)]


def test_split_covers_the_range_evenly():
    assert split(7, 3) == [slice(0, 2), slice(2, 4), slice(4, 7)]
    assert split(4, 4) == [slice(0, 1), slice(1, 2), slice(2, 3), slice(3, 4)]


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("num_workers, num_shards", [(1, 3), (2, 2), (3, 3)])
def test_workers_compute_the_loss_and_gradients_of_one_thread(rng, workers_of, cell,
                                                              num_workers, num_shards):
    """The loss is the mean over every scored target of the batch (not a mean of the
    shards' means), and the gradients are those of that loss."""
    model = small_model(rng, cell)
    inputs, targets = batch_with_resets(rng)
    state = random_state(rng, model, inputs.shape[1])
    alone = Model(model.config, {name: p.copy() for name, p in model.params.items()})
    expected_loss, expected_grads, expected_state = alone.loss_and_gradients(
        inputs, targets, state)

    workers = workers_of(model, num_workers, num_shards=num_shards)
    loss, grads, new_state = workers.loss_and_gradients(inputs, targets, state)

    assert loss == pytest.approx(expected_loss, rel=1e-6)
    assert set(grads) == set(model.params)
    for name, grad in grads.items():
        scale = np.abs(expected_grads[name]).max()
        np.testing.assert_allclose(grad, expected_grads[name], rtol=0, atol=1e-5 * scale,
                                   err_msg=name)
    for layer, expected_layer in zip(new_state, expected_state):
        for array, expected in zip(layer, expected_layer):
            np.testing.assert_allclose(array, expected, rtol=0, atol=1e-6)
    assert workers.global_norm(grads) == pytest.approx(global_norm(expected_grads), rel=1e-5)
    with pytest.raises(ValueError, match="read-only"):
        grads["embedding"] += 1  # which would leave the norm taken with the sum stale


def test_the_update_split_between_workers_is_the_whole_update(rng, workers_of):
    """Adam is elementwise, so each worker updating parts of every parameter gives the
    same bits as one update of the whole; clipping folded into it too."""
    model = small_model(rng)
    grads = {name: rng.normal(size=p.shape).astype(p.dtype) for name, p in model.params.items()}
    alone_params = {name: p.copy() for name, p in model.params.items()}
    together, alone = Adam(model.params, 1e-2), Adam(alone_params, 1e-2)
    workers = workers_of(model, 3, together)
    assert workers.global_norm(grads) == pytest.approx(global_norm(grads), rel=1e-6)
    for lr, grad_scale in [(1e-2, 1.0), (5e-3, 0.25)]:
        workers.update_(grads, lr, grad_scale)
        alone.update_(alone_params, grads, lr, grad_scale)
    assert together.step == alone.step == 2
    for name, param in model.params.items():
        np.testing.assert_array_equal(param, alone_params[name], err_msg=name)
        np.testing.assert_array_equal(together.second_moment[name], alone.second_moment[name])


def test_a_grad_scale_is_the_same_as_scaled_gradients(rng):
    model = small_model(rng, dtype=np.float64)
    grads = {name: rng.normal(size=p.shape) for name, p in model.params.items()}
    scaled_params = {name: p.copy() for name, p in model.params.items()}
    Adam(model.params, 1e-2).update_(model.params, grads, grad_scale=0.3)
    Adam(scaled_params, 1e-2).update_(scaled_params, {n: 0.3 * g for n, g in grads.items()})
    for name, param in model.params.items():
        np.testing.assert_allclose(param, scaled_params[name], rtol=1e-12, err_msg=name)


def train_steps(rng_seed: int, num_workers: int, num_shards: int, dropout: float,
                steps: int = 4, method: str | None = None) -> dict:
    """A few steps of training with dropout from a fresh model; the final weights."""
    rng = np.random.default_rng(rng_seed)
    model = small_model(rng)
    workers = Workers(model, Adam(model.params, 1e-2), num_workers, num_shards, method)
    state = model.zero_state(7)
    try:
        for _ in range(steps):
            inputs, targets = batch_with_resets(rng)
            _, grads, state = workers.loss_and_gradients(inputs, targets, state, dropout, rng)
            workers.update_(grads, 1e-2, min(1.0, 0.5 / workers.global_norm(grads)))
    finally:
        workers.close()
    return model.params


@pytest.mark.parametrize("num_workers", [1, 2, 3])
def test_a_seed_and_a_number_of_shards_give_the_same_bits_whatever_the_workers(num_workers):
    """Three shards of 7 rows (2, 2 and 3 rows), computed by one, two or three workers."""
    expected = train_steps(5, 1, 3, 0.3)
    weights = train_steps(5, num_workers, 3, 0.3)
    for name, param in weights.items():
        np.testing.assert_array_equal(param, expected[name], err_msg=name)


@pytest.mark.parametrize("method", START_METHODS)
def test_every_start_method_gives_the_same_bits(method):
    expected = train_steps(5, 1, 3, 0.3)
    weights = train_steps(5, 2, 3, 0.3, method=method)
    for name, param in weights.items():
        np.testing.assert_array_equal(param, expected[name], err_msg=name)


def test_another_number_of_shards_rounds_differently():
    three, two = train_steps(5, 2, 3, 0.0), train_steps(5, 2, 2, 0.0)
    assert any(not np.array_equal(param, two[name]) for name, param in three.items())


def test_dropout_masks_differ_between_shards_and_steps(rng, workers_of):
    """Each shard draws its own masks: with identical rows, the rows come out different."""
    model = small_model(rng)
    inputs, targets = rng.integers(2, 11, (9, 1)), rng.integers(2, 11, (9, 1))
    inputs, targets = np.repeat(inputs, 2, axis=1), np.repeat(targets, 2, axis=1)
    workers = workers_of(model, 1, num_shards=2)
    state = model.zero_state(2)
    plain, _, _ = workers.loss_and_gradients(inputs, targets, state)
    first, _, [_, (top_h, _)] = workers.loss_and_gradients(inputs, targets, state, 0.5, rng)
    again, _, _ = workers.loss_and_gradients(inputs, targets, state, 0.5, rng)
    assert first != again and first != plain
    assert not np.array_equal(top_h[0], top_h[1])  # the top layer saw different masks


def test_a_batch_needs_a_row_for_each_shard(rng, workers_of):
    model = small_model(rng)
    workers = workers_of(model, 1, num_shards=3)
    with pytest.raises(ValueError, match="2 rows has too few for 3 shards"):
        workers.loss_and_gradients(*batch_with_resets(rng, B=2), model.zero_state(2))


def test_workers_handle_floating_point_errors_as_the_caller_asks(rng, workers_of):
    """np.errstate holds for one thread: the workers take the caller's."""
    model = small_model(rng)
    grads = {name: np.zeros_like(p) for name, p in model.params.items()}
    grads["embedding"][-1, -1] = np.inf  # in the last worker's part: inf / inf there
    workers = workers_of(model, 2)
    with np.errstate(invalid="raise"), pytest.raises(FloatingPointError):
        workers.update_(grads, 1e-2)


def block_exists(name: str) -> bool:
    """Whether the shared memory block ``name`` is still there to attach to."""
    try:
        shared_memory.SharedMemory(name).close()
    except FileNotFoundError:
        return False
    return True


def worker_processes() -> list:
    return [child for child in multiprocessing.active_children()
            if child.name.startswith("charrnn-worker-")]


@pytest.mark.parametrize("method", START_METHODS)
def test_a_worker_process_that_ends_is_a_clear_error(rng, method):
    model = small_model(rng)
    inputs, targets = batch_with_resets(rng)
    workers = Workers(model, Adam(model.params, 1e-2), 2, 2, method)
    block = workers._memory.block.name
    [process] = worker_processes()
    process.kill()
    process.join()
    with pytest.raises(WorkerStopped, match="worker process 1 ended unexpectedly"):
        workers.loss_and_gradients(inputs, targets, model.zero_state(7))
    with pytest.raises(WorkerStopped, match="closed"):
        workers.loss_and_gradients(inputs, targets, model.zero_state(7))
    assert not block_exists(block)


@pytest.mark.parametrize("method", START_METHODS)
def test_an_error_in_a_worker_is_raised_here(rng, workers_of, method):
    """The worker goes on; closing the workers then frees their memory."""
    model = small_model(rng)
    inputs, targets = batch_with_resets(rng)
    workers = workers_of(model, 2, method=method)
    bad = inputs.copy()
    bad[0, -1] = 99  # no such character: in the second shard, the worker process's
    with pytest.raises(IndexError):
        workers.loss_and_gradients(bad, targets, model.zero_state(7))
    loss, _, _ = workers.loss_and_gradients(inputs, targets, model.zero_state(7))
    assert np.isfinite(loss)
    block = workers._memory.block.name
    workers.close()
    assert not block_exists(block)


@pytest.mark.parametrize("method", START_METHODS)
def test_closing_ends_the_worker_processes_and_frees_their_memory(rng, method):
    """The model and the optimizer keep their values, in arrays of their own."""
    model = small_model(rng)
    optimizer = Adam(model.params, 1e-2)
    before = {name: param.copy() for name, param in model.params.items()}
    workers = Workers(model, optimizer, 3, 3, method)
    assert len(worker_processes()) == 2
    block = workers._memory.block.name
    assert block_exists(block)
    workers.close()
    assert not worker_processes() and not block_exists(block)
    for name, param in model.params.items():
        np.testing.assert_array_equal(param, before[name])
        assert param.flags.owndata and optimizer.second_moment[name].flags.owndata


def test_workers_collected_free_their_memory(rng):
    model = small_model(rng)
    workers = Workers(model, Adam(model.params, 1e-2), 2, 2)
    block = workers._memory.block.name
    del workers
    assert not worker_processes() and not block_exists(block)
