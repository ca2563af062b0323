"""The recurrent math: the LSTM forward against a naive per-gate loop, and every cell's
backward (LSTM, GRU, RNN, with resets and dropout) against finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from charrnn.lstm import lstm_forward
from charrnn.recurrent import sigmoid_
from charrnn.model import Model, ModelConfig, init_params
from charrnn.vocab import START_ID


def naive_lstm(x, h, c, Wx, Wh, b, keep):
    """Textbook LSTM, one gate at a time, for comparison."""
    H = Wh.shape[0]
    outputs = []
    for t in range(x.shape[0]):
        h, c = h * keep[t], c * keep[t]
        a = x[t] @ Wx + h @ Wh + b
        i = 1 / (1 + np.exp(-a[:, :H]))
        f = 1 / (1 + np.exp(-a[:, H:2 * H]))
        o = 1 / (1 + np.exp(-a[:, 2 * H:3 * H]))
        g = np.tanh(a[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
        outputs.append(h)
    return np.stack(outputs), h, c


def test_sigmoid_is_stable_and_exact():
    a = np.array([-1000.0, -30.0, -1.0, 0.0, 2.0, 1000.0])
    expected = 1 / (1 + np.exp(-np.clip(a, -700, 700)))
    with np.errstate(over="raise", invalid="raise"):
        result = sigmoid_(a.copy())
    np.testing.assert_allclose(result, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("with_reset", [False, True])
def test_forward_matches_naive_loop(rng, with_reset):
    T, B, D, H = 6, 3, 5, 4
    x = rng.normal(size=(T, B, D))
    h0, c0 = rng.normal(size=(B, H)), rng.normal(size=(B, H))
    Wx, Wh, b = rng.normal(size=(D, 4 * H)), rng.normal(size=(H, 4 * H)), rng.normal(size=4 * H)
    keep = np.ones((T, B, 1))
    if with_reset:
        keep[2, 1] = keep[4, 0] = 0
    h, (hT, cT), _ = lstm_forward(x, h0, c0, Wx, Wh, b, keep if with_reset else None)
    expected_h, expected_hT, expected_cT = naive_lstm(x, h0, c0, Wx, Wh, b, keep)
    np.testing.assert_allclose(h, expected_h, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(hT, expected_hT, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cT, expected_cT, rtol=1e-12, atol=1e-12)


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


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("with_reset, dropout", [(False, 0.0), (True, 0.0), (False, 0.3)])
def test_every_gradient_matches_finite_differences(rng, cell, with_reset, dropout):
    """Two layers, several time steps, a carried (non-zero) initial state, float64."""
    config = ModelConfig(vocab_size=7, embedding_size=3, hidden_size=4, num_layers=2, cell=cell)
    model = Model(config, init_params(config, rng, np.float64))
    T, B = 5, 3
    inputs = rng.integers(2, config.vocab_size, (T, B))
    targets = rng.integers(1, config.vocab_size, (T, B))
    if with_reset:
        inputs[2, 1] = START_ID  # row 1 starts a new sequence mid-window
        targets[1, 1] = START_ID  # ... and the target before it is not scored
    state = [tuple(rng.normal(size=part.shape) for part in layer)
             for layer in model.zero_state(B)]

    def loss_and_gradients():  # the same dropout masks every time
        return model.loss_and_gradients(inputs, targets, state, dropout,
                                        np.random.default_rng(99))

    _, grads, _ = loss_and_gradients()
    assert set(grads) == set(model.params)
    for name, param in model.params.items():
        numeric = numerical_gradient(lambda: loss_and_gradients()[0], param)
        assert relative_error(grads[name], numeric) < 1e-6, name


def test_dropout_changes_training_only(rng):
    config = ModelConfig(vocab_size=9, embedding_size=4, hidden_size=8, num_layers=2)
    model = Model(config, init_params(config, rng, np.float64))
    inputs, targets = rng.integers(2, 9, (6, 3)), rng.integers(1, 9, (6, 3))
    plain, _, _ = model.loss_and_gradients(inputs, targets, model.zero_state(3))
    dropped, _, _ = model.loss_and_gradients(inputs, targets, model.zero_state(3), 0.5, rng)
    total, count, _ = model.loss(inputs, targets, model.zero_state(3))
    assert plain == pytest.approx(total / count) and dropped != pytest.approx(plain)


def test_loss_and_loss_and_gradients_agree(rng):
    config = ModelConfig(vocab_size=9, embedding_size=4, hidden_size=5, num_layers=3)
    model = Model(config, init_params(config, rng, np.float64))
    inputs = rng.integers(0, 9, (7, 2))
    targets = rng.integers(0, 9, (7, 2))
    state = model.zero_state(2)
    mean_loss, _, state_a = model.loss_and_gradients(inputs, targets, state)
    total, count, state_b = model.loss(inputs, targets, state)
    assert count == int((targets != START_ID).sum())
    assert mean_loss == pytest.approx(total / count, rel=1e-12)
    for (h_a, c_a), (h_b, c_b) in zip(state_a, state_b):
        np.testing.assert_array_equal(h_a, h_b)
        np.testing.assert_array_equal(c_a, c_b)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_step_matches_window_forward(rng, cell):
    """Generating one step at a time computes the same as the training forward pass."""
    config = ModelConfig(vocab_size=9, embedding_size=4, hidden_size=5, num_layers=2, cell=cell)
    model = Model(config, init_params(config, rng, np.float64))
    inputs = rng.integers(2, 9, (6, 3))
    targets = rng.integers(1, 9, (6, 3))
    total, _, _ = model.loss(inputs, targets, model.zero_state(3))
    state, stepped_total = model.zero_state(3), 0.0
    for t in range(6):
        logits, state = model.step(inputs[t], state)
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        stepped_total -= log_probs[np.arange(3), targets[t]].sum()
    assert stepped_total == pytest.approx(total, rel=1e-10)


def test_forget_bias_starts_at_one(rng):
    config = ModelConfig(vocab_size=5, embedding_size=2, hidden_size=3, num_layers=2)
    params = init_params(config, rng)
    for layer in range(2):
        bias = params[f"lstm{layer}.bias"]
        np.testing.assert_array_equal(bias[3:6], 1.0)
        np.testing.assert_array_equal(np.delete(bias, range(3, 6)), 0.0)
        assert bias.dtype == np.float32
