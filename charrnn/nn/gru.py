"""One GRU layer over a window of time steps: forward and backward.

Shape letters as in ``lstm.py``. The three gates come from one fused affine
transform whose 3H columns are packed in the order r (reset), z (update),
n (candidate); the bias is on the input side:

    ax  = x_t Wx + b                       (B, 3H)
    ah  = h_{t-1} Wh                       (B, 3H)
    r   = sigmoid(ax_r + ah_r)
    z   = sigmoid(ax_z + ah_z)
    n   = tanh(ax_n + r * ah_n)
    h_t = (1 - z) * n + z * h_{t-1}

Where ``carry[t]`` is 0 for a row, that row's h_{t-1} is taken as zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charrnn.nn.layers import (LayerStepper, Workspace, gate_values, matmul_rows_, sigmoid_,
                               weight_gradients)

GATE_ORDER = ("reset", "update", "candidate")
NUM_GATES = len(GATE_ORDER)
UNIT_KINDS = ("hidden", "reset", "update")  # for gru_unit_values


def _gru_cell_(ax: np.ndarray, ah: np.ndarray, h_prev: np.ndarray, h: np.ndarray) -> None:
    """Gates in place and the new hidden state.

    ax: (B, 3H) input pre-activations, overwritten with the gates r, z, n.
    ah: (B, 3H) recurrent pre-activations (its n block is kept: backward needs it).
    h_prev: (B, H) hidden state entering the step; h: (B, H) output.
    """
    H = h.shape[-1]
    reset_update = ax[:, : 2 * H]
    reset_update += ah[:, : 2 * H]
    sigmoid_(reset_update)
    candidate = ax[:, 2 * H:]
    np.multiply(ax[:, :H], ah[:, 2 * H:], out=h)  # h as scratch for r * ah_n
    candidate += h
    np.tanh(candidate, out=candidate)
    # h = n + z * (h_prev - n)
    np.subtract(h_prev, candidate, out=h)
    h *= ax[:, H: 2 * H]
    h += candidate


@dataclass
class GRUCache:
    """What the backward pass needs from the forward pass."""

    x: np.ndarray  # (T, B, D) inputs
    h_prev: np.ndarray  # (T, B, H) hidden state entering each step, after resets
    gates: np.ndarray  # (T, B, 3H) gate values r, z, n
    recurrent_candidate: np.ndarray  # (T, B, H) ah_n, the recurrent part of n before r
    carry: np.ndarray | None  # (T, B, 1) 0 where a row's state was reset, or None


def gru_forward(x, h0, Wx, Wh, b, carry=None, workspace: Workspace | None = None):
    """Run the layer over a window.

    x: (T, B, D); h0: (B, H); Wx: (D, 3H); Wh: (H, 3H); b: (3H,); carry: (T, B, 1) or None.
    Returns h: (T, B, H), the final state (h_T,) and a GRUCache. With a
    ``workspace`` (one per layer), h and the cache live in arrays reused by the
    next call with that workspace.
    """
    T, B, D = x.shape
    H = Wh.shape[0]
    dtype = Wh.dtype
    work = Workspace() if workspace is None else workspace
    gates = work.array("gates", (T, B, NUM_GATES * H), dtype)
    np.matmul(x.reshape(T * B, D), Wx, out=gates.reshape(T * B, NUM_GATES * H))
    gates += b
    h = work.array("h", (T + 1, B, H), dtype)  # h[t + 1] is the output of step t
    h[0] = h0
    h_prev = h[:-1] if carry is None else work.array("h_prev", (T, B, H), dtype)
    recurrent_candidate = work.array("recurrent_candidate", (T, B, H), dtype)
    recurrent = work.array("recurrent", (B, NUM_GATES * H), dtype)
    for t in range(T):
        if carry is not None:
            np.multiply(h[t], carry[t], out=h_prev[t])
        np.matmul(h_prev[t], Wh, out=recurrent)
        recurrent_candidate[t] = recurrent[:, 2 * H:]
        _gru_cell_(gates[t], recurrent, h_prev[t], h[t + 1])
    cache = GRUCache(x, h_prev, gates, recurrent_candidate, carry)
    return h[1:], (h[T].copy(),), cache


def gru_unit_values(cache: GRUCache, h: np.ndarray, kind: str) -> np.ndarray:
    """One kind of value of every unit at every step of a window, (T, B, H), read from the
    forward pass: "hidden" is h_t (the layer's output ``h``), "reset" and "update" the gates."""
    return h if kind == "hidden" else gate_values(cache.gates, GATE_ORDER, kind)


def gru_backward(dh, cache: GRUCache, Wx, Wh):
    """Backpropagate through the window.

    dh: (T, B, H) gradient of the loss with respect to the layer's outputs.
    Returns dx: (T, B, D), dWx: (D, 3H), dWh: (H, 3H), db: (3H,), and the gradient of
    the initial state (dh0,), (B, H).
    """
    T, B, H = dh.shape
    gates = cache.gates.reshape(T, B, NUM_GATES, H)
    r, z, n = gates[:, :, 0], gates[:, :, 1], gates[:, :, 2]
    # Per-step factors for all T steps at once.
    dn_per_dh = (1 - z) * (1 - n * n)  # d(pre-activation of n) / dh_t
    dz_per_dh = (cache.h_prev - n) * z * (1 - z)  # d(pre-activation of z) / dh_t
    dr_per_dan = cache.recurrent_candidate * r * (1 - r)  # d(pre-activation of r) / d(pre n)

    dax = np.empty((T, B, NUM_GATES, H), dh.dtype)  # gradient of the input pre-activations
    dah = np.empty((T, B, NUM_GATES, H), dh.dtype)  # ... and of the recurrent ones
    dh_t = np.empty((B, H), dh.dtype)
    dh_next = np.zeros((B, H), dh.dtype)
    for t in reversed(range(T)):
        np.add(dh[t], dh_next, out=dh_t)
        np.multiply(dh_t, dn_per_dh[t], out=dax[t, :, 2])
        np.multiply(dax[t, :, 2], dr_per_dan[t], out=dax[t, :, 0])
        np.multiply(dh_t, dz_per_dh[t], out=dax[t, :, 1])
        dah[t, :, :2] = dax[t, :, :2]
        np.multiply(dax[t, :, 2], r[t], out=dah[t, :, 2])
        np.matmul(dah[t].reshape(B, NUM_GATES * H), Wh.T, out=dh_next)
        dh_next += dh_t * z[t]
        if cache.carry is not None:
            dh_next *= cache.carry[t]
    return (*weight_gradients(cache.x, cache.h_prev, dax, dah, Wx, Workspace()), (dh_next,))


def gru_step(x, state, Wx, Wh, b):
    """One time step for generation: x (B, D), state (h,) with h (B, H) -> new (h,)."""
    (h_prev,) = state
    ax = x @ Wx
    ax += b
    h = np.empty_like(h_prev)
    _gru_cell_(ax, h_prev @ Wh, h_prev, h)
    return (h,)


class GRUStepper(LayerStepper):
    """A GRU layer run one step at a time (see ``layers.LayerStepper``). Its input and
    recurrent products stay apart, since r multiplies only the recurrent part of n, and it
    keeps h in arrays of its own (its step reads h_{t-1} while it writes h_t), copied to
    its rows of the column after each step."""

    def __init__(self, Wx, Wh, b, embedding=None):
        self.input_weight, self.hidden_weight, self.bias = Wx, Wh, b
        self.table = None if embedding is None else embedding @ Wx + b  # (V, 3H)
        self.input_size = len(Wx) if embedding is None else len(embedding)
        self.hidden_size = len(Wh)

    def bind(self, xh: np.ndarray) -> None:
        self.x = xh[:, : self.input_size]  # (B, D): the layer below's h
        self.column_h = xh[:, self.input_size + 1:]  # (B, H): read by the layer above
        self._allocate(len(xh))

    def _allocate(self, batch_size: int) -> None:
        shape, dtype = (batch_size, self.hidden_size), self.hidden_weight.dtype
        self.h, self.h_next = np.empty(shape, dtype), np.empty(shape, dtype)
        self.ax = np.empty((batch_size, self.hidden_weight.shape[1]), dtype)
        self.ah = np.empty_like(self.ax)

    def step(self, tokens: np.ndarray | None = None) -> None:
        if self.table is None:
            matmul_rows_(self.x, self.input_weight, self.ax)
            self.ax += self.bias
        else:
            np.take(self.table, tokens, axis=0, out=self.ax)
        matmul_rows_(self.h, self.hidden_weight, self.ah)
        _gru_cell_(self.ax, self.ah, self.h, self.h_next)
        self.h, self.h_next = self.h_next, self.h
        self.column_h[...] = self.h
