"""One LSTM layer with peephole connections: forward and backward.

Shape letters as in ``lstm.py``, whose gate order (i, f, o, g) and packed weights
this layer keeps. The gates also look at the cell state (Gers and Schmidhuber, 2000),
each through a per-unit (diagonal) weight vector, the rows of P (3, H):
i and f at c_{t-1}, o at c_t.

    a   = x_t Wx + h_{t-1} Wh + b          (B, 4H)
    i   = sigmoid(a_i + P[0] * c_{t-1})    (B, H)
    f   = sigmoid(a_f + P[1] * c_{t-1})
    g   = tanh(a_g)
    c_t = f * c_{t-1} + i * g
    o   = sigmoid(a_o + P[2] * c_t)
    h_t = o * tanh(c_t)

No torch.nn module holds a peephole weight. Resets (``carry``) as in ``lstm.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from charrnn.nn.layers import Workspace, weight_gradients
from charrnn.nn.lstm import (LSTMCache, LSTMStepper, activate_, backpropagate_steps,
                             cell_gradient_, gate_slopes_, halve_sigmoid_columns, lstm_forward)

PEEPHOLES = ("input", "forget", "output")  # the rows of P
UNIT_KINDS = ("cell", "hidden", "input", "forget", "output")  # as an LSTM's


def peephole_activate_(a: np.ndarray, c_prev: np.ndarray, c: np.ndarray, tanh_c: np.ndarray,
                       h: np.ndarray, peephole: np.ndarray, output_scratch: np.ndarray) -> None:
    """``lstm.activate_`` with the peepholes.

    a: (B, 4H) pre-activations without the peepholes, i, f, o columns halved,
    overwritten with the gates i, f, o, g. peephole: (3, H) P, halved too.
    c_prev: (B, H); c, tanh_c, h: (B, H) outputs (c may be c_prev);
    output_scratch: (B, H) work array.
    """
    H = c.shape[-1]
    np.multiply(peephole[0], c_prev, out=h)  # h as scratch
    a[:, :H] += h
    np.multiply(peephole[1], c_prev, out=h)
    a[:, H: 2 * H] += h
    output = a[:, 2 * H: 3 * H]
    output_scratch[...] = output  # o waits for c_t, which activate_ makes
    activate_(a, c_prev, c, tanh_c, h)  # right i, f, g and c_t; o and h made again below
    np.multiply(peephole[2], c, out=h)
    output_scratch += h
    np.tanh(output_scratch, out=output)  # sigmoid(2 s) = tanh(s) / 2 + 1/2
    output *= 0.5
    output += 0.5
    np.multiply(output, tanh_c, out=h)


@dataclass
class PeepholeCache(LSTMCache):
    """What the backward pass needs: an LSTM's, and the peephole weights."""

    peephole: np.ndarray  # (3, H) P, not halved


def peephole_forward(x, h0, c0, Wx, Wh, b, peephole, carry=None,
                     workspace: Workspace | None = None):
    """Run the layer over a window: as ``lstm.lstm_forward``, with peephole: (3, H) P."""
    B = x.shape[1]
    work = Workspace() if workspace is None else workspace
    halved = np.multiply(peephole, 0.5, out=work.array("peephole_halved", peephole.shape,
                                                        peephole.dtype))
    output_scratch = work.array("output_scratch", (B, peephole.shape[1]), peephole.dtype)
    activate = partial(peephole_activate_, peephole=halved, output_scratch=output_scratch)
    h, final_state, cache = lstm_forward(x, h0, c0, Wx, Wh, b, carry, work, activate=activate)
    return h, final_state, PeepholeCache(**vars(cache), peephole=peephole)


def peephole_backward(dh, cache: PeepholeCache, Wx, Wh):
    """Backpropagate through the window.

    dh: (T, B, H) gradient of the loss with respect to the layer's outputs.
    Returns dx: (T, B, D), dWx: (D, 4H), dWh: (H, 4H), db: (4H,), dP: (3, H), and the
    gradient of the initial state (dh0, dc0), each (B, H).
    """
    step_back = partial(step_back_, peephole=cache.peephole)
    da, initial_state_gradient = backpropagate_steps(dh, cache, Wh, step_back)
    return (*weight_gradients(cache.x, cache.h_prev, da, da, Wx, cache.workspace),
            _peephole_gradient(da, cache), initial_state_gradient)


def step_back_(da, dc, dh, gates, tanh_c, c_prev, work: Workspace, peephole) -> None:
    """One step back through a peephole LSTM cell, as ``lstm.backpropagate_steps`` asks:
    da (B, 4H), gates (B, 4H), peephole (3, H) P, the rest (B, H)."""
    H = dh.shape[-1]
    i, f, o, g = gates[:, :H], gates[:, H: 2 * H], gates[:, 2 * H: 3 * H], gates[:, 3 * H:]
    di, df, do, dg = da[:, :H], da[:, H: 2 * H], da[:, 2 * H: 3 * H], da[:, 3 * H:]
    slopes = gate_slopes_(gates, work.array("slopes", gates.shape, gates.dtype))
    peeped = work.array("peeped", dh.shape, dh.dtype)  # a gradient through a peephole
    # o's pre-activation first: it looks at c_t, so its gradient flows into c_t too.
    np.multiply(dh, tanh_c, out=do)
    do *= slopes[:, 2 * H: 3 * H]
    slopes[:, 2 * H: 3 * H] = 1  # applied
    dc_t = cell_gradient_(dh, tanh_c, o, dc, work)
    np.multiply(do, peephole[2], out=peeped)
    dc_t += peeped
    # Gradient with respect to the other gates' values, then through their nonlinearity.
    np.multiply(dc_t, g, out=di)
    np.multiply(dc_t, c_prev, out=df)
    np.multiply(dc_t, i, out=dg)
    da *= slopes
    # dc_{t-1} = dc_t * f + da_i * P_i + da_f * P_f
    np.multiply(dc_t, f, out=dc)
    np.multiply(di, peephole[0], out=peeped)
    dc += peeped
    np.multiply(df, peephole[1], out=peeped)
    dc += peeped


def _peephole_gradient(da: np.ndarray, cache: PeepholeCache) -> np.ndarray:
    """dP (3, H), summed over the window: each gate's pre-activation gradient (da, (T, B, 4H))
    times the cell state it looked at."""
    H = cache.peephole.shape[1]
    i, f = cache.gates[..., :H], cache.gates[..., H: 2 * H]
    candidate = cache.gates[..., 3 * H:]
    c = f * cache.c_prev + i * candidate  # (T, B, H) c_t, as the forward pass made it
    looked_at = (cache.c_prev, cache.c_prev, c)
    return np.stack([np.einsum("tbh,tbh->h", da[..., row * H: (row + 1) * H], cell_state)
                     for row, cell_state in enumerate(looked_at)])


def peephole_step(x, state, Wx, Wh, b, peephole):
    """One time step for generation: x (B, D), state (h, c) each (B, H) -> new (h, c)."""
    h_prev, c_prev = state
    a = halve_sigmoid_columns(x @ Wx + h_prev @ Wh + b)  # as peephole_activate_ wants, and P
    h, c, tanh_c, scratch = (np.empty_like(c_prev) for _ in range(4))
    peephole_activate_(a, c_prev, c, tanh_c, h, peephole * 0.5, scratch)
    return h, c


class PeepholeStepper(LSTMStepper):
    """A peephole LSTM layer run one step at a time (see ``lstm.LSTMStepper``)."""

    def __init__(self, Wx, Wh, b, peephole, embedding=None):
        self.peephole = peephole * 0.5  # (3, H), halved like the sigmoid columns
        super().__init__(Wx, Wh, b, embedding)

    def _allocate(self, batch_size: int) -> None:
        super()._allocate(batch_size)
        self.output_scratch = np.empty_like(self.c)

    def step(self, tokens: np.ndarray | None = None) -> None:
        peephole_activate_(self.preactivations(tokens), self.c, self.c, self.tanh_c, self.h,
                           self.peephole, self.output_scratch)

