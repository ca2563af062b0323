"""What every recurrent layer shares: reusable work arrays, a stable sigmoid, and the
gradients of a layer's weights summed over a window.

Shape letters as in ``lstm.py``; G is the number of gates (4 for an LSTM).
"""

from __future__ import annotations

import numpy as np


class Workspace:
    """Named arrays kept from one window to the next.

    A window's big arrays (the gates alone are T * B * 4H numbers) would
    otherwise be allocated afresh at every step, and the operating system
    would zero their pages each time. An array is made again only when its
    shape or dtype changes.
    """

    def __init__(self):
        self._arrays: dict[str, np.ndarray] = {}

    def array(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An uninitialised array of this shape and dtype, the same one as last time if it fits."""
        array = self._arrays.get(name)
        if array is None or array.shape != shape or array.dtype != dtype:
            array = self._arrays[name] = np.empty(shape, dtype)
        return array


def sigmoid_(a: np.ndarray) -> np.ndarray:
    """Logistic sigmoid in place, as 0.5 * tanh(a / 2) + 0.5: no overflow for any a."""
    a *= 0.5
    np.tanh(a, out=a)
    a *= 0.5
    a += 0.5
    return a


def gate_values(gates: np.ndarray, gate_order: tuple[str, ...], name: str) -> np.ndarray:
    """The block of one gate, (T, B, H), as a view of a window's gate values (T, B, G*H)
    packed in ``gate_order``."""
    H = gates.shape[-1] // len(gate_order)
    index = gate_order.index(name)
    return gates[..., index * H: (index + 1) * H]


def weight_gradients(x, h_prev, dax, dah, Wx, workspace: Workspace):
    """The gradients of a layer's weights, each summed over all T steps in one matrix
    product, and of its inputs.

    x: (T, B, D) inputs; h_prev: (T, B, H) hidden state entering each step;
    dax, dah: (T, B, G*H) gradients of the pre-activations made from the input
    and from the hidden state (the same array for all but a GRU).
    Returns dx: (T, B, D), dWx: (D, G*H), dWh: (H, G*H), db: (G*H,), all arrays of
    the workspace.
    """
    T, B, D = x.shape
    H = h_prev.shape[-1]
    dax = dax.reshape(T * B, -1)
    dah = dah.reshape(T * B, -1)
    columns, dtype = dax.shape[1], dax.dtype
    dWx = np.matmul(x.reshape(T * B, D).T, dax, out=workspace.array("dWx", (D, columns), dtype))
    dWh = np.matmul(h_prev.reshape(T * B, H).T, dah,
                    out=workspace.array("dWh", (H, columns), dtype))
    # Column sums as a product: a few times faster than dax.sum(axis=0).
    db = np.matmul(np.ones(T * B, dtype), dax, out=workspace.array("db", (columns,), dtype))
    dx = workspace.array("dx", (T, B, D), dtype)
    np.matmul(dax, Wx.T, out=dx.reshape(T * B, D))
    return dx, dWx, dWh, db


FEW_ROWS = 4


def matmul_rows_(x: np.ndarray, weight: np.ndarray, out: np.ndarray) -> np.ndarray:
    """x (B, K) @ weight (K, N) into out (B, N).

    OpenBLAS is several times slower on a matrix product of 2 to 4 rows than on
    that many vector-matrix products, so a few rows go one at a time.
    """
    if 1 < len(x) <= FEW_ROWS:
        for row in range(len(x)):
            np.matmul(x[row], weight, out=out[row])
    else:
        np.matmul(x, weight, out=out)
    return out


class LayerStepper:
    """One recurrent layer run one step at a time for generation: the base of each cell's.

    A stepper holds the layer's state for B rows and its weights as the cell
    wants them for stepping, made once (make a new stepper after the weights
    change). ``step(x)`` takes the input of every row, token ids (B,) for the
    first layer (its input projection is looked up in a table made once for
    every token, embedding @ Wx + b (V, G*H)) and the layer below's output
    (B, D) above it, and returns h (B, H): an array of the stepper's own that
    its next step overwrites.

    A subclass names its state arrays in ``state_names`` (h first), keeps them
    as attributes of those names, and makes them and its work arrays, for a
    batch size, in ``_allocate``.
    """

    state_names: tuple[str, ...] = ("h",)

    def _allocate(self, batch_size: int) -> None:
        raise NotImplementedError

    @property
    def state(self) -> tuple[np.ndarray, ...]:
        """A copy of the state, each (B, H)."""
        return tuple(getattr(self, name).copy() for name in self.state_names)

    @state.setter
    def state(self, values: tuple[np.ndarray, ...]) -> None:
        """Take this state, each (B', H), for B' rows."""
        if len(values[0]) != len(getattr(self, self.state_names[0])):
            self._allocate(len(values[0]))
        for name, value in zip(self.state_names, values):
            getattr(self, name)[...] = value

    def reset(self, batch_size: int) -> None:
        """A zero state for ``batch_size`` rows."""
        self._allocate(batch_size)
        for name in self.state_names:
            getattr(self, name)[...] = 0

    def select(self, rows: np.ndarray) -> None:
        """Keep the rows picked by ``rows`` (indices, or a boolean mask (B,)), in that order."""
        self.state = tuple(getattr(self, name)[rows] for name in self.state_names)


class SumStepper(LayerStepper):
    """A stepper for cells whose pre-activations are a = x Wx + h Wh + b (LSTM, RNN).

    Above the first layer, x, h and a 1 sit side by side in one array
    [x, h, 1] (B, D + H + 1), and Wx, Wh and b are stacked into one
    (D + H + 1, G*H) matrix, so that a step's pre-activations are one matrix
    product, bias included. ``weight``, ``bias`` and ``table`` are the
    stepper's own arrays, which a subclass may change in place; ``a`` holds
    the pre-activations.
    """

    def __init__(self, Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray,
                 embedding: np.ndarray | None = None):
        self.hidden_size = Wh.shape[0]
        if embedding is None:
            self.input_size = Wx.shape[0]
            self.weight = np.concatenate([Wx, Wh, b[None]])  # (D + H + 1, G*H)
            self.table = None
        else:  # [x, h, 1] is [h]
            self.input_size = 0
            self.weight = Wh.copy()  # (H, G*H)
            self.table = embedding @ Wx + b  # (V, G*H)
        self.reset(1)

    def _allocate(self, batch_size: int) -> None:
        dtype = self.weight.dtype
        self.xh = np.ones((batch_size, len(self.weight)), dtype)  # [x, h, 1]
        self.h = self.xh[:, self.input_size: self.input_size + self.hidden_size]
        self.a = np.empty((batch_size, self.weight.shape[1]), dtype)

    def preactivations(self, x: np.ndarray) -> np.ndarray:
        """a (B, G*H) for the input x: token ids (B,) for the first layer, else (B, D)."""
        if self.table is None:
            self.xh[:, : self.input_size] = x
            return matmul_rows_(self.xh, self.weight, self.a)
        matmul_rows_(self.xh, self.weight, self.a)
        self.a += self.table[x]
        return self.a
