"""One LSTM layer with coupled input and forget gates (CIFG): forward and backward.

Shape letters as in ``lstm.py``. One gate decides both what to forget and what to
add, so there is no input gate: three gate blocks instead of four, their 3H columns
packed in the order f (forget), o (output), g (candidate):

    a   = x_t Wx + h_{t-1} Wh + b          (B, 3H)
    f, o = sigmoid(a[:, :2H])              each (B, H)
    g   = tanh(a[:, 2H:])
    c_t = f * c_{t-1} + (1 - f) * g
    h_t = o * tanh(c_t)

A quarter fewer weights than an LSTM of the same width. It is an LSTM whose input
gate's weights and bias are the negated forget gate's, since 1 - sigmoid(a) =
sigmoid(-a): ``as_lstm_weights`` writes it so. Resets (``carry``) as in ``lstm.py``.
"""

from __future__ import annotations

import numpy as np

from charrnn.nn.layers import Workspace, gate_blocks, gate_values, weight_gradients
from charrnn.nn.lstm import (LSTMCache, LSTMStepper, backpropagate_steps, cell_gradient_,
                             gate_slopes_, halve_sigmoid_columns, lstm_forward, squash_)

GATE_ORDER = ("forget", "output", "candidate")
NUM_GATES = len(GATE_ORDER)
UNIT_KINDS = ("cell", "hidden", "forget", "output")  # for cifg_unit_values; cell first


def new_state_(gates: tuple[np.ndarray, ...], c_prev: np.ndarray, c: np.ndarray,
               tanh_c: np.ndarray, h: np.ndarray) -> None:
    """c = f * c_prev + (1 - f) * g and h = o * tanh(c), from the gates (f, o, g), each
    (B, H) (see ``layers.gate_blocks``), and c_prev (B, H), into c, tanh_c and h (B, H);
    c may be c_prev."""
    forget_gate, output_gate, candidate = gates
    np.subtract(c_prev, candidate, out=c)  # c = g + f * (c_prev - g)
    c *= forget_gate
    c += candidate
    np.tanh(c, out=tanh_c)
    np.multiply(output_gate, tanh_c, out=h)


def activate_(a: np.ndarray, c_prev: np.ndarray, c: np.ndarray, tanh_c: np.ndarray,
              h: np.ndarray) -> None:
    """``lstm.activate_`` for three gate blocks: a (B, 3H), its f and o columns halved,
    becomes the gates f, o, g; c, tanh_c and h (B, H) the new state."""
    squash_(a, NUM_GATES)
    new_state_(gate_blocks(a, NUM_GATES), c_prev, c, tanh_c, h)


def cifg_forward(x, h0, c0, Wx, Wh, b, carry=None, workspace: Workspace | None = None):
    """Run the layer over a window: as ``lstm.lstm_forward``, with Wx: (D, 3H),
    Wh: (H, 3H), b: (3H,). The cache is an ``LSTMCache`` whose gates are f, o, g (T, B, 3H)."""
    return lstm_forward(x, h0, c0, Wx, Wh, b, carry, workspace,
                        num_gates=NUM_GATES, activate=activate_)


def cifg_unit_values(cache: LSTMCache, h: np.ndarray, kind: str) -> np.ndarray:
    """As ``lstm.lstm_unit_values``, without an input gate: "cell" is tanh(c_t), "hidden" is
    h_t, "forget" and "output" are the gates; each (T, B, H)."""
    if kind == "cell":
        return cache.tanh_c
    if kind == "hidden":
        return h
    return gate_values(cache.gates, GATE_ORDER, kind)


def cifg_backward(dh, cache: LSTMCache, Wx, Wh):
    """Backpropagate through the window.

    dh: (T, B, H) gradient of the loss with respect to the layer's outputs.
    Returns dx: (T, B, D), dWx: (D, 3H), dWh: (H, 3H), db: (3H,), and the gradient of
    the initial state (dh0, dc0), each (B, H).
    """
    da, initial_state_gradient = backpropagate_steps(dh, cache, Wh, step_back_, NUM_GATES)
    return (*weight_gradients(cache.x, cache.h_prev, da, da, Wx, cache.workspace),
            initial_state_gradient)


def step_back_(da, dc, dh, gates, tanh_c, c_prev, work: Workspace) -> None:
    """One step back through a CIFG cell, as ``lstm.backpropagate_steps`` asks: da (B, 3H),
    gates (B, 3H), the rest (B, H)."""
    H = dh.shape[-1]
    f, o, g = gates[:, :H], gates[:, H: 2 * H], gates[:, 2 * H:]
    df, do, dg = da[:, :H], da[:, H: 2 * H], da[:, 2 * H:]
    dc_t = cell_gradient_(dh, tanh_c, o, dc, work)
    # Gradient with respect to each gate's value, then through its nonlinearity.
    np.subtract(c_prev, g, out=df)  # df = dc_t * (c_prev - g)
    df *= dc_t
    np.multiply(dh, tanh_c, out=do)
    np.subtract(1, f, out=dg)  # dg = dc_t * (1 - f)
    dg *= dc_t
    da *= gate_slopes_(gates, work.array("slopes", gates.shape, gates.dtype), NUM_GATES)
    np.multiply(dc_t, f, out=dc)


def cifg_step(x, state, Wx, Wh, b):
    """One time step for generation: x (B, D), state (h, c) each (B, H) -> new (h, c)."""
    h_prev, c_prev = state
    a = halve_sigmoid_columns(x @ Wx + h_prev @ Wh + b, num_gates=NUM_GATES)  # as activate_ wants
    h, c, tanh_c = (np.empty_like(c_prev) for _ in range(3))
    activate_(a, c_prev, c, tanh_c, h)
    return h, c


class CIFGStepper(LSTMStepper):
    """A CIFG layer run one step at a time (see ``lstm.LSTMStepper``)."""

    num_gates = NUM_GATES
    update_state = staticmethod(new_state_)


def as_lstm_weights(Wx, Wh, b):
    """The weights (D, 4H), (H, 4H) and (4H,) of the plain LSTM (``lstm.py``'s gate order)
    that computes what this CIFG layer computes: its input gate's columns are the negated
    forget gate's, so that i = sigmoid(-a_f) = 1 - f. Equal up to float rounding."""
    def expand(weight):
        forget, output, candidate = np.split(weight, NUM_GATES, axis=-1)
        return np.concatenate([-forget, forget, output, candidate], axis=-1)

    return expand(Wx), expand(Wh), expand(b)
