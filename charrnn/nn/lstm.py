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

Where ``carry[t]`` is 0 for a row, that row starts a fresh sequence at step t:
its h_{t-1} and c_{t-1} are taken as zero and no gradient flows back past it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from charrnn.nn.layers import (SumStepper, Workspace, add_hidden_product_, gate_blocks,
                                gate_values, transpose_, weight_gradients)

GATE_ORDER = ("input", "forget", "output", "candidate")
NUM_GATES = len(GATE_ORDER)
UNIT_KINDS = ("cell", "hidden", "input", "forget", "output")  # for lstm_unit_values; cell first


def _per_gate(shape: tuple[int, ...], dtype, sigmoid_value: float, tanh_value: float,
              num_gates: int) -> np.ndarray:
    """A read-only array of ``shape`` (..., 4H): ``sigmoid_value`` on the i, f, o columns and
    ``tanh_value`` on g. Made full-sized rather than broadcast from one row, because numpy
    combines two arrays of the same shape about twice as fast. A variant with ``num_gates``
    blocks (its candidate last, sigmoid gates before it) gets its own layout."""
    H = shape[-1] // num_gates
    row = np.concatenate([np.full(shape[-1] - H, sigmoid_value),
                          np.full(H, tanh_value)]).astype(dtype)
    array = np.ascontiguousarray(np.broadcast_to(row, shape))
    array.flags.writeable = False
    return array


@lru_cache(maxsize=32)
def _gate_affine(shape: tuple[int, ...], dtype,
                 num_gates: int = NUM_GATES) -> tuple[np.ndarray, np.ndarray]:
    """scale (1/2 on i, f, o; 1 on g) and shift (1/2 on i, f, o; 0 on g), each of ``shape``.

    ``scale * tanh(s) + shift`` turns tanh(a / 2) into sigmoid(a) on the i, f, o
    columns and leaves tanh(a) on g, so the gates need one tanh over all 4H columns.
    """
    return (_per_gate(shape, dtype, 0.5, 1.0, num_gates),
            _per_gate(shape, dtype, 0.5, 0.0, num_gates))


def halve_sigmoid_columns(weight: np.ndarray, out: np.ndarray | None = None,
                          num_gates: int = NUM_GATES) -> np.ndarray:
    """A (..., 4H) weight or bias with the i, f, o columns halved, into ``out`` or a new array.

    Pre-activations made with it are a / 2 on those columns, ready for
    sigmoid(a) = tanh(a / 2) / 2 + 1/2. Halving is exact in binary floating point,
    so this gives the same numbers as halving the pre-activations.
    """
    scale, _ = _gate_affine(weight.shape[-1:], weight.dtype, num_gates)
    return np.multiply(weight, scale, out=out)


def activate_(a: np.ndarray, c_prev: np.ndarray, c: np.ndarray, tanh_c: np.ndarray,
              h: np.ndarray) -> None:
    """Turn pre-activations into gates in place and write the new state.

    a: (B, 4H) pre-activations whose i, f, o columns are halved (see
    ``halve_sigmoid_columns``), overwritten with the gates i, f, o, g.
    c_prev: (B, H) cell state entering the step.
    c, tanh_c, h: (B, H) outputs: new cell state, its tanh, new hidden state.
    """
    squash_(a)
    new_state_(gate_blocks(a, NUM_GATES), c_prev, c, tanh_c, h)


def squash_(a: np.ndarray, num_gates: int = NUM_GATES) -> None:
    """Gate values in place of pre-activations a (B, G*H) whose sigmoid columns are halved:
    sigmoid on every block but the last, tanh on the last (the candidate)."""
    scale, shift = _gate_affine(a.shape, a.dtype, num_gates)
    # Whole contiguous rows are much faster in numpy than the strided 3H block.
    np.tanh(a, out=a)
    a *= scale
    a += shift


def new_state_(gates: tuple[np.ndarray, ...], c_prev: np.ndarray, c: np.ndarray,
               tanh_c: np.ndarray, h: np.ndarray) -> None:
    """c = f * c_prev + i * g and h = o * tanh(c), from the gates (i, f, o, g), each (B, H)
    (see ``gate_blocks``), and c_prev (B, H), into c, tanh_c and h (B, H); c may be c_prev."""
    input_gate, forget_gate, output_gate, candidate = gates
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
    carry: np.ndarray | None  # (T, B, 1) 0 where a row's state was reset, or None
    workspace: Workspace  # where the forward pass's arrays live; the backward pass adds its own


def lstm_forward(x, h0, c0, Wx, Wh, b, carry=None, workspace: Workspace | None = None, *,
                 num_gates: int = NUM_GATES, activate=activate_):
    """Run the layer over a window.

    x: (T, B, D); h0, c0: (B, H) state entering the window; Wx: (D, 4H);
    Wh: (H, 4H); b: (4H,); carry: (T, B, 1) or None.
    Returns h: (T, B, H), the final state (h_T, c_T), and an LSTMCache.
    With a ``workspace`` (one per layer), h and the cache live in arrays reused
    by the next call with that workspace. A variant of the LSTM (``peephole.py``,
    ``cifg.py``) runs this loop with its own ``num_gates`` blocks of columns and its
    own step ``activate(a, c_prev, c, tanh_c, h)`` (as ``activate_``).
    """
    T, B, D = x.shape
    H = Wh.shape[0]
    dtype = Wh.dtype
    work = Workspace() if workspace is None else workspace
    Wx = halve_sigmoid_columns(Wx, work.array("Wx_halved", Wx.shape, dtype), num_gates)
    b = halve_sigmoid_columns(b, work.array("b_halved", b.shape, dtype), num_gates)
    # Wh^T (G*H, H) made contiguous for add_hidden_product_, its sigmoid rows (all but the
    # candidate's) halved.
    Wh_t = transpose_(Wh, work.array("Wh_t_halved", Wh.T.shape, dtype))
    Wh_t[:-H] *= 0.5
    # Input projections of all T steps in one matrix product.
    gates = work.array("gates", (T, B, num_gates * H), dtype)
    np.matmul(x.reshape(T * B, D), Wx, out=gates.reshape(T * B, num_gates * H))
    gates += b
    h = work.array("h", (T + 1, B, H), dtype)  # h[t + 1] is the output of step t
    c = work.array("c", (T + 1, B, H), dtype)
    h[0], c[0] = h0, c0
    if carry is None:
        h_prev, c_prev = h[:-1], c[:-1]
    else:
        h_prev, c_prev = work.array("h_prev", (T, B, H), dtype), work.array("c_prev", (T, B, H), dtype)
    tanh_c = work.array("tanh_c", (T, B, H), dtype)
    recurrent_t = work.array("recurrent_t", (num_gates * H, B), dtype)
    for t in range(T):
        if carry is not None:
            np.multiply(h[t], carry[t], out=h_prev[t])
            np.multiply(c[t], carry[t], out=c_prev[t])
        add_hidden_product_(h_prev[t], Wh_t, recurrent_t, out=gates[t])
        activate(gates[t], c_prev[t], c[t + 1], tanh_c[t], h[t + 1])
    cache = LSTMCache(x=x, h_prev=h_prev, c_prev=c_prev, gates=gates, tanh_c=tanh_c, carry=carry,
                      workspace=work)
    return h[1:], (h[T].copy(), c[T].copy()), cache


def lstm_unit_values(cache: LSTMCache, h: np.ndarray, kind: str) -> np.ndarray:
    """One kind of value of every unit at every step of a window, (T, B, H), read from the
    forward pass: "cell" is tanh(c_t), "hidden" is h_t (the layer's output ``h``, (T, B, H)),
    "input", "forget" and "output" are the gates. Views of the forward pass's arrays."""
    if kind == "cell":
        return cache.tanh_c
    if kind == "hidden":
        return h
    return gate_values(cache.gates, GATE_ORDER, kind)


def gate_slopes_(gates: np.ndarray, out: np.ndarray, num_gates: int = NUM_GATES) -> np.ndarray:
    """Derivative of each gate with respect to its pre-activation, from the gate values.

    gates, out: (B, 4H). sigmoid' = s (1 - s) on i, f, o and tanh' = 1 - g^2 on g,
    both written as (m - gates) * gates + n with m = 1, 1, 1, 0 and n = 0, 0, 0, 1.
    """
    sigmoid_mask, tanh_mask = _slope_masks(gates.shape, gates.dtype, num_gates)
    np.subtract(sigmoid_mask, gates, out=out)
    out *= gates
    out += tanh_mask
    return out


@lru_cache(maxsize=32)
def _slope_masks(shape: tuple[int, ...], dtype,
                 num_gates: int = NUM_GATES) -> tuple[np.ndarray, np.ndarray]:
    """m (1 on i, f, o; 0 on g) and n = 1 - m, each of ``shape``, for ``gate_slopes_``."""
    return (_per_gate(shape, dtype, 1.0, 0.0, num_gates),
            _per_gate(shape, dtype, 0.0, 1.0, num_gates))


def lstm_backward(dh, cache: LSTMCache, Wx, Wh):
    """Backpropagate through the window (no gradient flows into the initial state's past).

    dh: (T, B, H) gradient of the loss with respect to the layer's outputs.
    Returns dx: (T, B, D), the parameter gradients dWx: (D, 4H), dWh: (H, 4H),
    db: (4H,), and the gradient of the initial state (dh0, dc0), each (B, H).
    """
    da, initial_state_gradient = backpropagate_steps(dh, cache, Wh, lstm_step_back_)
    return (*weight_gradients(cache.x, cache.h_prev, da, da, Wx, cache.workspace),
            initial_state_gradient)


def backpropagate_steps(dh, cache: LSTMCache, Wh, step_back_, num_gates: int = NUM_GATES):
    """The loop back through the window's steps, for the LSTM and its variants.

    dh: (T, B, H) gradient of the loss with respect to the layer's outputs.
    step_back_(da_t, dc, dh_t, gates, tanh_c, c_prev, work) goes back through one
    step's cell: from dh_t (B, H), the gradient reaching h_t, and dc (B, H), the
    gradient reaching c_t from step t + 1, it writes da_t (B, G*H), the gradient of
    the step's pre-activations, and overwrites dc with the gradient reaching c_{t-1}.
    Returns da (T, B, G*H) and the gradient of the initial state (dh0, dc0), each (B, H).
    """
    T, B, H = dh.shape
    dtype = dh.dtype
    work = cache.workspace
    da = work.array("da", (T, B, num_gates * H), dtype)  # gradient of the pre-activations
    dh_t = work.array("dh_t", (B, H), dtype)
    # A contiguous copy of Wh.T: OpenBLAS multiplies by it faster than by the transposed view.
    Wh_t = transpose_(Wh, work.array("Wh_t", Wh.T.shape, dtype))
    dh_next = np.zeros((B, H), dtype)  # flows from step t + 1 into h_t
    dc_next = np.zeros((B, H), dtype)  # flows from step t + 1 into c_t
    for t in reversed(range(T)):
        np.add(dh[t], dh_next, out=dh_t)
        step_back_(da[t], dc_next, dh_t, cache.gates[t], cache.tanh_c[t], cache.c_prev[t], work)
        np.matmul(da[t], Wh_t, out=dh_next)
        if cache.carry is not None:
            dc_next *= cache.carry[t]
            dh_next *= cache.carry[t]
    return da, (dh_next, dc_next)


def cell_gradient_(dh: np.ndarray, tanh_c: np.ndarray, output_gate: np.ndarray,
                   dc_next: np.ndarray, work: Workspace) -> np.ndarray:
    """dc_t = dh_t * o * (1 - tanh(c_t)^2) + dc_next, each (B, H), in a work array: the
    gradient reaching c_t through h_t and from step t + 1."""
    dc = work.array("dc_t", dh.shape, dh.dtype)
    np.multiply(tanh_c, tanh_c, out=dc)
    np.subtract(1, dc, out=dc)
    dc *= output_gate
    dc *= dh
    dc += dc_next
    return dc


def lstm_step_back_(da, dc, dh, gates, tanh_c, c_prev, work: Workspace) -> None:
    """One step back through an LSTM cell, as ``backpropagate_steps`` asks: da (B, 4H),
    gates (B, 4H), the rest (B, H)."""
    H = dh.shape[-1]
    i, f, o, g = gates[:, :H], gates[:, H: 2 * H], gates[:, 2 * H: 3 * H], gates[:, 3 * H:]
    di, df, do, dg = da[:, :H], da[:, H: 2 * H], da[:, 2 * H: 3 * H], da[:, 3 * H:]
    dc_t = cell_gradient_(dh, tanh_c, o, dc, work)
    # Gradient with respect to each gate's value, then through its nonlinearity.
    np.multiply(dc_t, g, out=di)
    np.multiply(dc_t, c_prev, out=df)
    np.multiply(dh, tanh_c, out=do)
    np.multiply(dc_t, i, out=dg)
    da *= gate_slopes_(gates, work.array("slopes", gates.shape, gates.dtype))
    np.multiply(dc_t, f, out=dc)


def lstm_step(x, state, Wx, Wh, b):
    """One time step for generation: x (B, D), state (h, c) each (B, H) -> new (h, c)."""
    h_prev, c_prev = state
    a = x @ Wx
    a += h_prev @ Wh
    a += b
    return lstm_cell_(a, c_prev)


def lstm_cell_(a, c_prev):
    """The new state (h, c), each (B, H), from pre-activations a (B, 4H), which are overwritten."""
    H = c_prev.shape[-1]
    a[:, : 3 * H] *= 0.5  # as activate_ expects (exact, like halving the weights)
    h, c, tanh_c = np.empty_like(c_prev), np.empty_like(c_prev), np.empty_like(c_prev)
    activate_(a, c_prev, c, tanh_c, h)
    return h, c


class LSTMStepper(SumStepper):
    """An LSTM layer run one step at a time (see ``layers.LayerStepper``), its sigmoid
    columns halved once in the weights (see ``halve_sigmoid_columns``)."""

    state_names = ("h", "c")
    num_gates = NUM_GATES  # a variant (``cifg.py``) sets its own, and its own update_state
    update_state = staticmethod(new_state_)

    def __init__(self, Wx, Wh, b, embedding=None):
        super().__init__(Wx, Wh, b, embedding)
        self.weight.T[: -self.hidden_size] *= 0.5  # its sigmoid columns, stored as rows
        if self.one_hot:
            self.table[:, : -self.hidden_size] *= 0.5

    def _allocate(self, batch_size: int) -> None:
        super()._allocate(batch_size)
        # Transposed like the base class's arrays, so that elementwise work reads in order.
        self.c = np.empty((self.hidden_size, batch_size), self.weight.dtype).T  # (B, H)
        self.tanh_c = np.empty_like(self.c)
        self.sigmoid_columns = self.a[:, : -self.hidden_size]  # i, f, o: all but g
        self.gates = gate_blocks(self.a, self.num_gates)  # views of a, made once

    def step(self, tokens: np.ndarray | None = None) -> None:
        np.tanh(self.preactivations(tokens), out=self.a)
        # sigmoid = tanh(a / 2) / 2 + 1/2 with scalars, not activate_'s whole-width
        # constants: after a step's matrix products have filled the caches, reading
        # fewer arrays matters more than contiguous rows.
        self.sigmoid_columns *= 0.5
        self.sigmoid_columns += 0.5
        self.update_state(self.gates, self.c, self.c, self.tanh_c, self.h)
