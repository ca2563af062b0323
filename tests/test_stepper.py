"""The generation Stepper computes what Model.step (and so the training forward pass,
see test_cells) computes, for every cell, batch size and row selection."""

from __future__ import annotations

import numpy as np
import pytest

from charrnn.nn.cells import CELLS
from charrnn.nn.model import Model, ModelConfig, init_params

CELLS = sorted(CELLS)


def small_model(cell: str, rng, dtype=np.float64, num_layers: int = 3) -> Model:
    config = ModelConfig(vocab_size=9, embedding_size=4, hidden_size=5, num_layers=num_layers,
                         cell=cell)
    model = Model(config, init_params(config, rng, dtype))
    for name, value in model.params.items():  # biases away from zero, so a lost one shows
        if name.endswith("bias"):
            value += rng.normal(0, 0.5, value.shape).astype(dtype)
    return model


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("batch_size", [1, 3, 6])
@pytest.mark.parametrize("num_layers", [1, 3])
def test_stepper_matches_model_step(rng, cell, batch_size, num_layers):
    model = small_model(cell, rng, num_layers=num_layers)
    stepper = model.stepper(batch_size)
    state = model.zero_state(batch_size)
    for t in range(8):
        tokens = rng.integers(0, 9, batch_size)
        expected, state = model.step(tokens, state)
        np.testing.assert_allclose(stepper.step(tokens), expected, rtol=1e-12, atol=1e-12)
        for ours, theirs in zip(stepper.state, state):
            for a, b in zip(ours, theirs):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_select_and_state_keep_the_right_rows(rng, cell):
    model = small_model(cell, rng)
    stepper = model.stepper(4)
    state = model.zero_state(4)
    for tokens in rng.integers(0, 9, (3, 4)):
        stepper.step(tokens)
        _, state = model.step(tokens, state)
    rows = np.array([3, 1, 1])
    stepper.select(rows)
    state = [tuple(part[rows] for part in layer) for layer in state]
    saved = stepper.state
    tokens = rng.integers(0, 9, 3)
    expected, _ = model.step(tokens, state)
    np.testing.assert_allclose(stepper.step(tokens), expected, rtol=1e-12, atol=1e-12)
    stepper.step(tokens)  # moves on ...
    stepper.state = saved  # ... and back
    np.testing.assert_allclose(stepper.step(tokens), expected, rtol=1e-12, atol=1e-12)
    stepper.select(np.array([True, False, True]))
    assert stepper.step(tokens[:2]).shape == (2, 9)


@pytest.mark.parametrize("cell", CELLS)
def test_stepper_leaves_the_model_alone_and_works_in_float32(rng, cell):
    model = small_model(cell, rng, np.float32)
    before = {name: value.copy() for name, value in model.params.items()}
    stepper = model.stepper(2)
    state = model.zero_state(2)
    for tokens in rng.integers(0, 9, (5, 2)):
        expected, state = model.step(tokens, state)
        logits = stepper.step(tokens)
        assert logits.dtype == np.float32
        np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    for name, value in model.params.items():
        np.testing.assert_array_equal(value, before[name])


@pytest.mark.parametrize("cell", CELLS)
def test_stepper_matches_the_training_forward_pass(rng, cell):
    model = small_model(cell, rng)
    inputs, targets = rng.integers(2, 9, (6, 3)), rng.integers(1, 9, (6, 3))
    losses, _ = model.target_losses(inputs, targets, model.zero_state(3))
    total = losses.sum()
    stepper, stepped_total = model.stepper(3), 0.0
    for t in range(6):
        logits = stepper.step(inputs[t])
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        stepped_total -= log_probs[np.arange(3), targets[t]].sum()
    assert stepped_total == pytest.approx(total, rel=1e-10)
