"""One vanilla tanh RNN layer over a window of time steps: forward and backward.

Shape letters as in ``lstm.py``:

    h_t = tanh(x_t Wx + h_{t-1} Wh + b)      (B, H)

Where ``carry[t]`` is 0 for a row, that row's h_{t-1} is taken as zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charrnn.nn.layers import SumStepper, Workspace, weight_gradients

GATE_ORDER = ("hidden",)  # one block of H columns: h_t before its tanh
NUM_GATES = len(GATE_ORDER)
UNIT_KINDS = ("hidden",)  # for rnn_unit_values


@dataclass
class RNNCache:
    """What the backward pass needs from the forward pass."""

    x: np.ndarray  # (T, B, D) inputs
    h_prev: np.ndarray  # (T, B, H) hidden state entering each step, after resets
    h: np.ndarray  # (T, B, H) outputs
    carry: np.ndarray | None  # (T, B, 1) 0 where a row's state was reset, or None


def rnn_forward(x, h0, Wx, Wh, b, carry=None, workspace: Workspace | None = None):
    """Run the layer over a window.

    x: (T, B, D); h0: (B, H); Wx: (D, H); Wh: (H, H); b: (H,); carry: (T, B, 1) or None.
    Returns h: (T, B, H), the final state (h_T,) and an RNNCache. With a
    ``workspace`` (one per layer), h and the cache live in arrays reused by the
    next call with that workspace.
    """
    T, B, D = x.shape
    H = Wh.shape[0]
    work = Workspace() if workspace is None else workspace
    h = work.array("h", (T + 1, B, H), Wh.dtype)  # h[t + 1] is the output of step t
    h[0] = h0
    np.matmul(x.reshape(T * B, D), Wx, out=h[1:].reshape(T * B, H))
    h[1:] += b
    h_prev = h[:-1] if carry is None else work.array("h_prev", (T, B, H), Wh.dtype)
    recurrent = work.array("recurrent", (B, H), Wh.dtype)
    for t in range(T):
        if carry is not None:
            np.multiply(h[t], carry[t], out=h_prev[t])
        np.matmul(h_prev[t], Wh, out=recurrent)
        h[t + 1] += recurrent
        np.tanh(h[t + 1], out=h[t + 1])
    return h[1:], (h[T].copy(),), RNNCache(x, h_prev, h[1:], carry)


def rnn_unit_values(cache: RNNCache, h: np.ndarray, kind: str) -> np.ndarray:
    """The hidden state h_t of every unit at every step, (T, B, H): the only kind ("hidden")."""
    return h


def rnn_backward(dh, cache: RNNCache, Wx, Wh):
    """Backpropagate through the window.

    dh: (T, B, H) gradient of the loss with respect to the layer's outputs.
    Returns dx: (T, B, D), dWx: (D, H), dWh: (H, H), db: (H,), and the gradient of the
    initial state (dh0,), (B, H).
    """
    T, B, H = dh.shape
    dtanh = 1 - cache.h * cache.h  # (T, B, H)
    da = np.empty((T, B, H), dh.dtype)  # gradient of the pre-activations
    dh_next = np.zeros((B, H), dh.dtype)
    for t in reversed(range(T)):
        np.add(dh[t], dh_next, out=da[t])
        da[t] *= dtanh[t]
        np.matmul(da[t], Wh.T, out=dh_next)
        if cache.carry is not None:
            dh_next *= cache.carry[t]
    return (*weight_gradients(cache.x, cache.h_prev, da, da, Wx, Workspace()), (dh_next,))


def rnn_step(x, state, Wx, Wh, b):
    """One time step for generation: x (B, D), state (h,) with h (B, H) -> new (h,)."""
    (h_prev,) = state
    a = x @ Wx
    a += h_prev @ Wh
    a += b
    return (np.tanh(a, out=a),)


class RNNStepper(SumStepper):
    """A vanilla RNN layer run one step at a time (see ``layers.LayerStepper``)."""

    def step(self, tokens: np.ndarray | None = None) -> None:
        np.tanh(self.preactivations(tokens), out=self.h)
