"""The recurrent math: every cell's forward pass against a naive per-gate loop, and every
backward pass against finite differences (on the weights, the inputs and the initial state,
with resets and dropout)."""

from __future__ import annotations

import numpy as np
import pytest

from charrnn.data.vocab import START_ID
from charrnn.nn.cells import CELLS
from charrnn.nn.layers import sigmoid_
from charrnn.nn.model import Model, ModelConfig, init_params


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def naive_lstm(x, state, Wx, Wh, b, carry):
    """Textbook LSTM, one gate at a time."""
    (h, c), H = state, Wh.shape[0]
    outputs = []
    for t in range(x.shape[0]):
        h, c = h * carry[t], c * carry[t]
        a = x[t] @ Wx + h @ Wh + b
        i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), sigmoid(a[:, 2 * H:3 * H])
        g = np.tanh(a[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs), (h, c)


def naive_peephole_lstm(x, state, Wx, Wh, b, P, carry):
    """Peephole LSTM, one gate at a time: i and f look at c_{t-1}, o at c_t."""
    (h, c), H = state, Wh.shape[0]
    outputs = []
    for t in range(x.shape[0]):
        h, c = h * carry[t], c * carry[t]
        a = x[t] @ Wx + h @ Wh + b
        i = sigmoid(a[:, :H] + P[0] * c)
        f = sigmoid(a[:, H:2 * H] + P[1] * c)
        g = np.tanh(a[:, 3 * H:])
        c = f * c + i * g
        o = sigmoid(a[:, 2 * H:3 * H] + P[2] * c)
        h = o * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs), (h, c)


def naive_cifg_lstm(x, state, Wx, Wh, b, carry):
    """LSTM with coupled input and forget gates (f, o, g), one gate at a time."""
    (h, c), H = state, Wh.shape[0]
    outputs = []
    for t in range(x.shape[0]):
        h, c = h * carry[t], c * carry[t]
        a = x[t] @ Wx + h @ Wh + b
        f, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H])
        g = np.tanh(a[:, 2 * H:])
        c = f * c + (1 - f) * g
        h = o * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs), (h, c)


def naive_gru(x, state, Wx, Wh, b, carry):
    """Textbook GRU (the bias on the input side), one gate at a time."""
    (h,), H = state, Wh.shape[0]
    outputs = []
    for t in range(x.shape[0]):
        h = h * carry[t]
        ax, ah = x[t] @ Wx + b, h @ Wh
        r = sigmoid(ax[:, :H] + ah[:, :H])
        z = sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H])
        n = np.tanh(ax[:, 2 * H:] + r * ah[:, 2 * H:])
        h = (1 - z) * n + z * h
        outputs.append(h)
    return np.stack(outputs), (h,)


def naive_rnn(x, state, Wx, Wh, b, carry):
    (h,) = state
    outputs = []
    for t in range(x.shape[0]):
        h = np.tanh(x[t] @ Wx + (h * carry[t]) @ Wh + b)
        outputs.append(h)
    return np.stack(outputs), (h,)


NAIVE = {"lstm": naive_lstm, "lstm-peephole": naive_peephole_lstm, "lstm-cifg": naive_cifg_lstm,
         "gru": naive_gru, "rnn": naive_rnn}
T, B, D, H = 6, 3, 5, 4


def layer_inputs(rng, cell_name: str, with_reset: bool):
    """Random float64 inputs, initial state and weights (Wx, Wh, b and any per-unit weights)
    for one layer, and its carry mask."""
    cell = CELLS[cell_name]
    x = rng.normal(size=(T, B, D))
    state = tuple(rng.normal(size=(B, H)) for _ in cell.state_names)
    G = cell.num_gates
    weights = (rng.normal(size=(D, G * H)), rng.normal(size=(H, G * H)), rng.normal(size=G * H),
               *[rng.normal(size=(rows, H)) for _, rows in cell.unit_weights])
    carry = np.ones((T, B, 1))
    if with_reset:
        carry[2, 1] = carry[4, 0] = 0
    return x, state, weights, (carry if with_reset else None)


def test_sigmoid_is_stable_and_exact():
    a = np.array([-1000.0, -30.0, -1.0, 0.0, 2.0, 1000.0])
    expected = 1 / (1 + np.exp(-np.clip(a, -700, 700)))
    with np.errstate(over="raise", invalid="raise"):
        result = sigmoid_(a.copy())
    np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("with_reset", [False, True])
def test_forward_matches_a_naive_loop(rng, cell, with_reset):
    x, state, weights, carry = layer_inputs(rng, cell, with_reset)
    h, final, _ = CELLS[cell].forward(x, *state, *weights, carry)
    expected_h, expected_final = NAIVE[cell](x, state, *weights,
                                             np.ones((T, B, 1)) if carry is None else carry)
    np.testing.assert_allclose(h, expected_h, rtol=1e-12, atol=1e-12)
    for got, expected in zip(final, expected_final, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def numerical_gradient(f, array, eps=1e-5):
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + eps
        plus = f()
        array[index] = saved - eps
        minus = f()
        array[index] = saved
        grad[index] = (plus - minus) / (2 * eps)
    return grad


def relative_error(a, b):
    return np.abs(a - b).max() / max(np.abs(a).max() + np.abs(b).max(), 1e-12)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("with_reset", [False, True])
def test_layer_gradients_match_finite_differences(rng, cell, with_reset):
    """The gradients of one layer's inputs, initial state and weights, float64."""
    x, state, weights, carry = layer_inputs(rng, cell, with_reset)
    projection = rng.normal(size=(T, B, H))  # the loss is sum(h * projection)

    def loss():
        h, _, _ = CELLS[cell].forward(x, *state, *weights, carry)
        return float((h * projection).sum())

    _, _, cache = CELLS[cell].forward(x, *state, *weights, carry)
    dx, *dweights, dstate = CELLS[cell].backward(projection, cache, *weights[:2])
    for name, analytic, array in [("x", dx, x),
                                  *zip(CELLS[cell].weight_names, dweights, weights, strict=True),
                                  *[(f"initial {name}", d, s) for name, d, s in
                                    zip(CELLS[cell].state_names, dstate, state, strict=True)]]:
        assert relative_error(analytic, numerical_gradient(loss, array)) < 1e-6, name


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("with_reset, dropout", [(False, 0.0), (True, 0.0), (False, 0.3)])
def test_every_parameter_gradient_matches_finite_differences(rng, cell, with_reset, dropout):
    """The whole model: two layers, a carried (non-zero) initial state, float64."""
    config = ModelConfig(vocab_size=7, embedding_size=3, hidden_size=4, num_layers=2, cell=cell)
    model = Model(config, init_params(config, rng, np.float64))
    inputs = rng.integers(2, config.vocab_size, (5, 3))
    targets = rng.integers(1, config.vocab_size, (5, 3))
    if with_reset:
        inputs[2, 1] = START_ID  # row 1 starts a new sequence mid-window
        targets[1, 1] = START_ID  # ... and the target before it is not scored
    state = [tuple(rng.normal(size=part.shape) for part in layer)
             for layer in model.zero_state(3)]

    def loss_and_gradients():  # the same dropout masks every time
        return model.loss_and_gradients(inputs, targets, state, dropout,
                                        np.random.default_rng(99))

    _, grads, _ = loss_and_gradients()
    assert set(grads) == set(model.params)
    for name, param in model.params.items():
        numeric = numerical_gradient(lambda: loss_and_gradients()[0], param)
        assert relative_error(grads[name], numeric) < 1e-6, name


def test_dropout_zeroes_outputs_and_scales_the_rest(rng):
    """Inverted dropout: each output is dropped, or kept and scaled by 1 / (1 - p)."""
    config = ModelConfig(vocab_size=9, embedding_size=4, hidden_size=50, num_layers=1)
    model = Model(config, init_params(config, rng, np.float64))
    inputs = rng.integers(2, 9, (6, 20))
    plain, _, _, _ = model._forward(inputs, model.zero_state(20))
    dropped, _, _, _ = model._forward(inputs, model.zero_state(20), 0.25, rng)
    kept = dropped != 0
    np.testing.assert_allclose(dropped[kept], plain[kept] / 0.75, rtol=1e-12)
    assert abs(kept.mean() - 0.75) < 0.02


def test_the_training_loss_is_the_mean_of_the_scored_targets_losses(rng):
    config = ModelConfig(vocab_size=9, embedding_size=4, hidden_size=5, num_layers=3)
    model = Model(config, init_params(config, rng, np.float64))
    inputs = rng.integers(0, 9, (7, 2))  # <START> inputs reset rows, <START> targets are skipped
    targets = rng.integers(0, 9, (7, 2))
    mean_loss, _, training_state = model.loss_and_gradients(inputs, targets,
                                                            model.zero_state(2))
    losses, scoring_state = model.target_losses(inputs, targets, model.zero_state(2))
    scored = targets != START_ID
    assert 0 < scored.sum() < scored.size and (losses[~scored] == 0).all()
    assert mean_loss == pytest.approx(losses[scored].mean(), rel=1e-12)
    for training, scoring in zip(training_state, scoring_state, strict=True):
        for a, b in zip(training, scoring, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_step_matches_window_forward(rng, cell):
    """Generating one step at a time computes the same as the training forward pass."""
    config = ModelConfig(vocab_size=9, embedding_size=4, hidden_size=5, num_layers=2, cell=cell)
    model = Model(config, init_params(config, rng, np.float64))
    inputs = rng.integers(2, 9, (6, 3))
    targets = rng.integers(1, 9, (6, 3))
    losses, _ = model.target_losses(inputs, targets, model.zero_state(3))
    state, stepped_total = model.zero_state(3), 0.0
    for t in range(6):
        logits, state = model.step(inputs[t], state)
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        stepped_total -= log_probs[np.arange(3), targets[t]].sum()
    assert stepped_total == pytest.approx(losses.sum(), rel=1e-10)


def test_initialisation_is_pytorchs_default(rng):
    """Every weight and bias U(+-1/sqrt(H)), a recurrent layer's bias the sum of two such
    draws (within +-2/sqrt(H), not uniform: denser in the middle), the embedding N(0, 1)."""
    config = ModelConfig(vocab_size=50, embedding_size=8, hidden_size=64, num_layers=2)
    params = init_params(config, rng)
    bound = 1 / 8
    for name, value in params.items():
        assert value.dtype == np.float32, name
        if name == "embedding":
            assert abs(value.std() - 1) < 0.1
        elif name.startswith("lstm") and name.endswith(".bias"):
            assert np.abs(value).max() <= 2 * bound and np.abs(value).max() > bound
            assert np.mean(np.abs(value) < bound) > 0.6  # a triangular law: 3/4 within one bound
        else:
            assert np.abs(value).max() <= bound and np.abs(value).max() > 0.9 * bound, name


