"""One LSTM layer over a window of time steps: forward and backward.

Shape letters, used throughout:
    T  time steps in the window
    B  rows of the batch (parallel streams)
    D  input features (the embedding size, or the hidden size of the layer below)
    H  hidden units

The four gates come from one fused affine transform whose 4H columns are
packed in the order i (input), f (forget), o (output), g (candidate):

    a   = x_t Wx + h_{t-1} Wh + b          (B, 4H)
    i, f, o = sigmoid(a[:, :3H])           each (B, H)
    g   = tanh(a[:, 3H:])
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

Where ``keep[t]`` is 0 for a row, that row starts a fresh sequence at step t:
its h_{t-1} and c_{t-1} are taken as zero and no gradient flows back past it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GATE_ORDER = ("input", "forget", "output", "candidate")


def sigmoid_(a: np.ndarray) -> np.ndarray:
    """Logistic sigmoid in place, as 0.5 * tanh(a / 2) + 0.5: no overflow for any a."""
    a *= 0.5
    np.tanh(a, out=a)
    a *= 0.5
    a += 0.5
    return a


def activate_(a: np.ndarray, c_prev: np.ndarray, c: np.ndarray, tanh_c: np.ndarray,
              h: np.ndarray) -> None:
    """Turn pre-activations into gates in place and write the new state.

    a: (B, 4H) pre-activations, overwritten with the gates i, f, o, g.
    c_prev: (B, H) cell state entering the step.
    c, tanh_c, h: (B, H) outputs: new cell state, its tanh, new hidden state.
    """
    hidden_size = c.shape[-1]
    sigmoid_(a[:, : 3 * hidden_size])
    candidate = a[:, 3 * hidden_size:]
    np.tanh(candidate, out=candidate)
    input_gate = a[:, :hidden_size]
    forget_gate = a[:, hidden_size: 2 * hidden_size]
    output_gate = a[:, 2 * hidden_size: 3 * hidden_size]
    np.multiply(forget_gate, c_prev, out=c)
    np.multiply(input_gate, candidate, out=tanh_c)  # tanh_c as scratch for i * g
    c += tanh_c
    np.tanh(c, out=tanh_c)
    np.multiply(output_gate, tanh_c, out=h)


@dataclass
class LSTMCache:
    """What the backward pass needs from the forward pass."""

    x: np.ndarray  # (T, B, D) inputs
    h_prev: np.ndarray  # (T, B, H) hidden state entering each step, after resets
    c_prev: np.ndarray  # (T, B, H) cell state entering each step, after resets
    gates: np.ndarray  # (T, B, 4H) gate values i, f, o, g
    tanh_c: np.ndarray  # (T, B, H) tanh of each step's new cell state
    keep: np.ndarray | None  # (T, B, 1) 0 where a row's state was reset, or None


def lstm_forward(x, h0, c0, Wx, Wh, b, keep=None):
    """Run the layer over a window.

    x: (T, B, D); h0, c0: (B, H) state entering the window; Wx: (D, 4H);
    Wh: (H, 4H); b: (4H,); keep: (T, B, 1) or None.
    Returns h: (T, B, H), the final state (h_T, c_T), and an LSTMCache.
    """
    T, B, D = x.shape
    H = Wh.shape[0]
    dtype = Wh.dtype
    # Input projections of all T steps in one matrix product.
    gates = np.matmul(x.reshape(T * B, D), Wx).reshape(T, B, 4 * H)
    gates += b
    h = np.empty((T + 1, B, H), dtype)  # h[t + 1] is the output of step t
    c = np.empty((T + 1, B, H), dtype)
    h[0], c[0] = h0, c0
    if keep is None:
        h_prev, c_prev = h[:-1], c[:-1]
    else:
        h_prev, c_prev = np.empty((T, B, H), dtype), np.empty((T, B, H), dtype)
    tanh_c = np.empty((T, B, H), dtype)
    recurrent = np.empty((B, 4 * H), dtype)
    for t in range(T):
        if keep is not None:
            np.multiply(h[t], keep[t], out=h_prev[t])
            np.multiply(c[t], keep[t], out=c_prev[t])
        np.matmul(h_prev[t], Wh, out=recurrent)
        gates[t] += recurrent
        activate_(gates[t], c_prev[t], c[t + 1], tanh_c[t], h[t + 1])
    cache = LSTMCache(x=x, h_prev=h_prev, c_prev=c_prev, gates=gates, tanh_c=tanh_c, keep=keep)
    return h[1:], (h[T].copy(), c[T].copy()), cache


def _local_derivatives(cache: LSTMCache):
    """Per-step factors of the backward pass, computed for all T steps at once.

    Returns (dc_per_dh, da_per_d): dc_per_dh (T, B, H) turns dh_t into its
    share of dc_t; da_per_d (T, B, 4, H) turns dc_t (for i, f, g) or dh_t
    (for o) into the gradient of each gate's pre-activation.
    """
    T, B, H = cache.tanh_c.shape
    gates = cache.gates.reshape(T, B, 4, H)
    i, f, o, g = gates[:, :, 0], gates[:, :, 1], gates[:, :, 2], gates[:, :, 3]
    tanh_c = cache.tanh_c
    dc_per_dh = o * (1 - tanh_c * tanh_c)
    da_per_d = np.empty_like(gates)
    da_per_d[:, :, 0] = g * i * (1 - i)
    da_per_d[:, :, 1] = cache.c_prev * f * (1 - f)
    da_per_d[:, :, 2] = tanh_c * o * (1 - o)
    da_per_d[:, :, 3] = i * (1 - g * g)
    return dc_per_dh, da_per_d


def lstm_backward(dh, cache: LSTMCache, Wx, Wh):
    """Backpropagate through the window (no gradient flows into the initial state's past).

    dh: (T, B, H) gradient of the loss with respect to the layer's outputs.
    Returns dx: (T, B, D) and the parameter gradients dWx: (D, 4H),
    dWh: (H, 4H), db: (4H,).
    """
    T, B, H = dh.shape
    D = cache.x.shape[-1]
    forget_gate = cache.gates.reshape(T, B, 4, H)[:, :, 1]
    dc_per_dh, da_per_d = _local_derivatives(cache)
    da = np.empty((T, B, 4, H), dh.dtype)  # gradient of the pre-activations
    dh_t = np.empty((B, H), dh.dtype)
    dc_t = np.empty((B, H), dh.dtype)
    dh_next = np.zeros((B, H), dh.dtype)  # flows from step t + 1 into h_t
    dc_next = np.zeros((B, H), dh.dtype)  # flows from step t + 1 into c_t
    for t in reversed(range(T)):
        np.add(dh[t], dh_next, out=dh_t)
        np.multiply(dh_t, dc_per_dh[t], out=dc_t)
        dc_t += dc_next
        np.multiply(da_per_d[t, :, 0:2], dc_t[:, None, :], out=da[t, :, 0:2])  # i, f
        np.multiply(da_per_d[t, :, 2], dh_t, out=da[t, :, 2])  # o
        np.multiply(da_per_d[t, :, 3], dc_t, out=da[t, :, 3])  # g
        np.multiply(dc_t, forget_gate[t], out=dc_next)
        np.matmul(da[t].reshape(B, 4 * H), Wh.T, out=dh_next)
        if cache.keep is not None:
            dc_next *= cache.keep[t]
            dh_next *= cache.keep[t]
    # Weight gradients summed over all T steps, each in one matrix product.
    da = da.reshape(T * B, 4 * H)
    dWx = cache.x.reshape(T * B, D).T @ da
    dWh = cache.h_prev.reshape(T * B, H).T @ da
    db = da.sum(axis=0)
    dx = (da @ Wx.T).reshape(T, B, D)
    return dx, dWx, dWh, db


def lstm_step(x, state, Wx, Wh, b):
    """One time step for generation: x (B, D), state (h, c) each (B, H) -> new (h, c)."""
    h_prev, c_prev = state
    a = x @ Wx
    a += h_prev @ Wh
    a += b
    h, c, tanh_c = np.empty_like(h_prev), np.empty_like(c_prev), np.empty_like(c_prev)
    activate_(a, c_prev, c, tanh_c, h)
    return h, c
