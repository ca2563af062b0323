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


def gate_blocks(a: np.ndarray, num_gates: int) -> tuple[np.ndarray, ...]:
    """The ``num_gates`` blocks of H columns of a (..., G*H), in order, as views (..., H)."""
    H = a.shape[-1] // num_gates
    return tuple(a[..., gate * H: (gate + 1) * H] for gate in range(num_gates))


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


TRANSPOSED_ROWS = 8


def transpose_(matrix: np.ndarray, out: np.ndarray) -> np.ndarray:
    """matrix (K, N) transposed into ``out`` (N, K), contiguous.

    Copied TRANSPOSED_ROWS rows of the matrix at a time: numpy then makes the
    copy several times faster than in one call (at 256 x 1024 float32, on one
    core of the AMD EPYC, 0.17 ms against 0.77; 8 rows were the fastest of 4 to 64).
    """
    for start in range(0, len(matrix), TRANSPOSED_ROWS):
        out[:, start: start + TRANSPOSED_ROWS] = matrix[start: start + TRANSPOSED_ROWS].T
    return out


def add_hidden_product_(h: np.ndarray, weight_t: np.ndarray, product_t: np.ndarray,
                        out: np.ndarray) -> np.ndarray:
    """out += h @ W for h (B, H), from weight_t, W's transpose made contiguous (G*H, H).

    The product is made as W^T h^T into product_t (G*H, B): OpenBLAS runs a
    product of a few rows much faster this way round (at B = 16, H = 256, on
    one core of the AMD EPYC: 110 us against 185 us for h @ W; W^T must be
    contiguous, a transposed view is as slow as h @ W); adding the transposed
    result costs 12 us. An LSTM layer's forward pass over a window of 64 steps
    took 17.9 ms instead of 21.5 (medians of 60 alternating runs).
    """
    np.matmul(weight_t, h.T, out=product_t)
    out += product_t.T
    return out


FEW_ROWS = 4


def matmul_rows_(x: np.ndarray, weight: np.ndarray, out: np.ndarray,
                 transposed: bool = False) -> np.ndarray:
    """x (B, K) @ weight (K, N) into out (B, N); with ``transposed``, the same product
    transposed: weight (N, K) @ x (K, B) into out (N, B), B being the batch.

    OpenBLAS is several times slower on a matrix product of 2 to 4 rows of the
    batch than on that many matrix-vector products, so a few rows go one at a time.
    """
    batch_size = x.shape[1] if transposed else len(x)
    if 1 < batch_size <= FEW_ROWS:
        for row in range(batch_size):
            if transposed:
                np.matmul(weight, x[:, row], out=out[:, row])
            else:
                np.matmul(x[row], weight, out=out[row])
    elif transposed:
        np.matmul(weight, x, out=out)
    else:
        np.matmul(x, weight, out=out)
    return out


class LayerStepper:
    """One recurrent layer run one step at a time for generation: the base of each cell's.

    A stepper holds the layer's weights as the cell wants them for stepping,
    made once (make a new stepper after the weights change), and the state of
    B rows. The model's ``Stepper`` keeps the rows of every layer in one
    column array and gives each layer its own with ``bind``: [x, 1, h]
    (B, D + 1 + H), in which x is the one-hot row of the token (V,) in the
    first layer and, above it, the h of the layer below, so that a layer
    reads its input where the layer below left it. ``step(tokens)`` feeds
    token ids (B,) to the first layer; a layer above steps with no argument.
    A step leaves the new h in the layer's rows of the column.

    A subclass sets ``input_size`` (D) and ``hidden_size`` (H), names its
    state arrays in ``state_names`` (h first), keeps them as attributes of
    those names, and makes its work arrays for B rows in ``_allocate``.
    """

    state_names: tuple[str, ...] = ("h",)
    input_size: int
    hidden_size: int

    def bind(self, xh: np.ndarray) -> None:
        """Take the layer's rows [x, 1, h] (B, D + 1 + H) of the column array; the state is
        then undefined until set."""
        self.xh = xh
        self.h = xh[:, self.input_size + 1:]
        self._allocate(len(xh))

    def _allocate(self, batch_size: int) -> None:
        raise NotImplementedError

    @property
    def state(self) -> tuple[np.ndarray, ...]:
        """A copy of the state, each (B, H)."""
        return tuple(getattr(self, name).copy() for name in self.state_names)

    @state.setter
    def state(self, values: tuple[np.ndarray, ...]) -> None:
        """Take this state, each (B, H), for the B rows bound."""
        for name, value in zip(self.state_names, values):
            getattr(self, name)[...] = value


class SumStepper(LayerStepper):
    """A stepper for cells whose pre-activations are a = x Wx + h Wh + b (LSTM, RNN).

    Wx, b and Wh are stacked into one (D + 1 + H, G*H) matrix, as x, 1 and h sit
    in the layer's rows [x, 1, h], so that a step's pre-activations are one
    matrix product, bias included. In the first layer, x is the one-hot row of
    the token (V,) and Wx every token's input projection, embedding @ Wx
    (V, G*H): looking the tokens up is part of the product (at 64 rows of a
    2 x 512 model, the 67 rows more in the product cost about 100 us a step,
    gathering and adding the rows of a table 200 us). One row is the
    exception: its product is h Wh alone, to which its token's row of
    ``table`` (embedding @ Wx + b) is added (42 us a step against 50 on the
    AMD EPYC).
    ``a`` holds the pre-activations.

    The stepper's arrays are stored transposed: ``weight``, ``xh``, ``h`` and
    ``a`` are views of contiguous (G*H, D + 1 + H), (D + 1 + H, B), (H, B) and
    (G*H, B) arrays, whose columns are the rows of the batch. The product is
    then made as W^T [x, 1, h]^T, which OpenBLAS runs faster than [x, 1, h] W
    (2 x 512 LSTM on two cores of the AMD EPYC: 1.58 ms against 1.79 for the
    upper layer's product at 64 rows, 61 us against 77 at one row), and a
    subclass's elementwise work on a block of units reads contiguous memory.
    """

    def __init__(self, Wx: np.ndarray, Wh: np.ndarray, b: np.ndarray,
                 embedding: np.ndarray | None = None):
        self.hidden_size = Wh.shape[0]
        self.one_hot = embedding is not None  # the input is token ids
        input_weight = embedding @ Wx if self.one_hot else Wx  # (V, G*H) or (D, G*H)
        if self.one_hot:
            self.table = input_weight + b  # for one row, each token's x Wx + b (V, G*H)
        self.input_size = len(input_weight)
        # W^T (G*H, D + 1 + H) of W = [Wx, b, Wh], each block transposed into its columns.
        weight_t = np.empty((Wh.shape[1], self.input_size + 1 + self.hidden_size), Wh.dtype)
        start = 0
        for block in (input_weight, b[None], Wh):
            transpose_(block, weight_t[:, start: start + len(block)])
            start += len(block)
        self.weight = weight_t.T
        # Wh^T (G*H, H), a view whose rows are strided: the product of one row fed a token
        # reads only these (a product of 513 columns, [b, Wh], took 3 us more than of 512).
        self.hidden_weight_t = self.weight.T[:, self.input_size + 1:]

    def _allocate(self, batch_size: int) -> None:
        self.a = np.empty((self.weight.shape[1], batch_size), self.weight.dtype).T  # (B, G*H)
        self.rows = np.arange(batch_size)

    def preactivations(self, tokens: np.ndarray | None = None) -> np.ndarray:
        """a (B, G*H): in the first layer, for the token ids (B,); above it, for the input the
        layer below left in the column."""
        if self.one_hot and len(tokens) == 1:
            return self._looked_up_preactivations(tokens[0])
        if self.one_hot:
            self.xh[:, : self.input_size] = 0
            self.xh[self.rows, tokens] = 1
        return matmul_rows_(self.xh.T, self.weight.T, self.a.T, transposed=True).T

    def _looked_up_preactivations(self, token: int) -> np.ndarray:
        """a (1, G*H) of a single row fed ``token``: h Wh, plus the token's row of the
        table."""
        a = self.a[0]  # (G*H,)
        np.matmul(self.hidden_weight_t, self.h[0], out=a)
        a += self.table[token]
        return self.a
