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

