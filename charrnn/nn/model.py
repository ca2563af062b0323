"""The character language model: embedding, a stack of recurrent layers, softmax output.

Shape letters as in ``lstm.py``, plus V (vocabulary size) and E (embedding
size). Token arrays are time-major: (T, B). The layers are LSTM (or its peephole
or CIFG variant), GRU or vanilla RNN cells (``cells.py``); G is the cell's number
of gates (4, 3 for a CIFG or a GRU, 1).

Parameters live in a flat dict whose keys name them everywhere: in the
gradients, in the optimizer state and in the checkpoint. With the cell's
name as prefix (lstm, lstm-peephole, lstm-cifg, gru or rnn):

    embedding              (V, E)
    {cell}{l}.input_weight  (D_l, G*H)   D_0 = E, D_l = H above the first layer
    {cell}{l}.hidden_weight (H, G*H)
    {cell}{l}.bias          (G*H,)       one bias per gate unit (see ``init_params``)
    {cell}{l}.peephole_weight (3, H)     a peephole LSTM's only (``cells.Cell.unit_weights``)
    output.weight          (H, V)
    output.bias            (V,)

Dropout, when training asks for it, is applied to the output of every
recurrent layer (inverted dropout: kept units are scaled by 1 / (1 - p)).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from charrnn.data.vocab import START_ID
from charrnn.nn.cells import CELLS
from charrnn.nn.layers import Workspace, matmul_rows_

Params = dict[str, np.ndarray]
State = list[tuple[np.ndarray, ...]]  # per layer: (h, c) for an LSTM, (h,) otherwise; each (B, H)


@dataclass(frozen=True)
class ModelConfig:
    """The architecture: everything needed to rebuild a model from its weights."""

    vocab_size: int
    embedding_size: int = 64
    hidden_size: int = 256
    num_layers: int = 2
    cell: str = "lstm"

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"unknown cell {self.cell!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def layer_prefix(self, layer: int) -> str:
        return f"{self.cell}{layer}."

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """The name and shape of every parameter, in a fixed order."""
        V, E, H = self.vocab_size, self.embedding_size, self.hidden_size
        cell = CELLS[self.cell]
        columns = cell.num_gates * H
        shapes = {"embedding": (V, E)}
        for layer in range(self.num_layers):
            prefix = self.layer_prefix(layer)
            shapes[prefix + "input_weight"] = (E if layer == 0 else H, columns)
            shapes[prefix + "hidden_weight"] = (H, columns)
            shapes[prefix + "bias"] = (columns,)
            for name, rows in cell.unit_weights:
                shapes[prefix + name] = (rows, H)
        shapes["output.weight"] = (H, V)
        shapes["output.bias"] = (V,)
        return shapes

    def num_params(self) -> int:
        return sum(int(np.prod(shape)) for shape in self.param_shapes().values())


def init_params(config: ModelConfig, rng: np.random.Generator, dtype=np.float32) -> Params:
    """PyTorch's default initialisation: the embedding N(0, 1); every other weight and
    bias U(+-1/sqrt(H)), but a recurrent layer's bias, which is the sum of two such draws
    (PyTorch's two biases, bias_ih + bias_hh, act as charrnn's one).

    Chosen by measurement in charrnn's own loop (``benchmarks/init_sweep.py``, 2 x 256,
    400 steps, three seeds, ``benchmarks/VS_PYTORCH.md``): against fan-in bounds with zero
    biases and an LSTM forget bias of 1, it learned faster on both tinyshakespeare and
    Jane Austen's novels.
    """
    bound = 1.0 / np.sqrt(config.hidden_size)
    params = {}
    for name, shape in config.param_shapes().items():
        if name == "embedding":
            values = rng.normal(0.0, 1.0, shape)
        elif name.endswith(".bias") and name != "output.bias":
            values = rng.uniform(-bound, bound, shape) + rng.uniform(-bound, bound, shape)
        else:
            values = rng.uniform(-bound, bound, shape)
        params[name] = values.astype(dtype)
    return params


def softmax_cross_entropy_(logits: np.ndarray, targets: np.ndarray, scored: np.ndarray):
    """Negative log-likelihood of each scored target, and the softmax it came from, made
    in place of the logits.

    logits: (N, V), overwritten; targets: (N,) token ids; scored: (N,) bool.
    Returns (losses, probs): losses (N,) in float64, zero on unscored rows;
    probs (N, V), the softmax of the logits (the logits' array), from which the
    gradient of the summed loss is ``probs - onehot(targets)`` on the scored rows.
    """
    logits -= logits.max(axis=1, keepdims=True)
    rows = np.arange(targets.size)
    target_logits = logits[rows, targets]
    probs = np.exp(logits, out=logits)
    sum_exp = probs.sum(axis=1, keepdims=True)
    probs /= sum_exp
    losses = np.log(sum_exp[:, 0], dtype=np.float64) - target_logits
    losses[~scored] = 0.0
    return losses, probs


def embedding_gradient_(tokens: np.ndarray, dx: np.ndarray, out: np.ndarray,
                        workspace: Workspace) -> np.ndarray:
    """Sum the rows of dx (N, E) by token id (N,) into ``out`` (V, E).

    As one matrix product with the one-hot matrix of the tokens, several times
    faster than ``np.add.at`` here.
    """
    one_hot = workspace.array("one_hot", (tokens.size, out.shape[0]), dx.dtype)  # (N, V)
    one_hot.fill(0)
    one_hot[np.arange(tokens.size), tokens] = 1
    return np.matmul(one_hot.T, dx, out=out)


class Model:
    """A character language model: its architecture and its parameters.

    Each layer, and the embedding and output layers, keep their big work arrays
    from one window to the next (see ``recurrent.Workspace``), so one Model must
    not run two windows at once (from several threads).
    """

    def __init__(self, config: ModelConfig, params: Params):
        self.config = config
        self.params = params
        self.cell = CELLS[config.cell]
        self.workspaces = [Workspace() for _ in range(config.num_layers)]
        self.workspace = Workspace()  # of the embedding and output layers

    @property
    def dtype(self) -> np.dtype:
        return self.params["output.weight"].dtype

    def zero_state(self, batch_size: int) -> State:
        shape = (batch_size, self.config.hidden_size)
        return [tuple(np.zeros(shape, self.dtype) for _ in self.cell.state_names)
                for _ in range(self.config.num_layers)]

    def layer_weights(self, layer: int) -> tuple[np.ndarray, ...]:
        """The layer's (input_weight, hidden_weight, bias, ...), as ``cell.weight_names``."""
        prefix = self.config.layer_prefix(layer)
        return tuple(self.params[prefix + name] for name in self.cell.weight_names)

    def _forward(self, inputs: np.ndarray, state: State, dropout: float = 0.0,
                 rng: np.random.Generator | None = None):
        """Run the window.

        Returns the top layer's outputs (T, B, H), the new state, the layers'
        caches and the dropout masks (T, B, H) applied to each layer's output
        (None without dropout).
        """
        # A <START> input begins a fresh sequence: that row's state is reset.
        starts = inputs == START_ID
        carry = (~starts)[:, :, None].astype(self.dtype) if starts.any() else None
        embedding = self.params["embedding"]
        layer_input = self.workspace.array("embedded", (*inputs.shape, embedding.shape[1]),
                                           embedding.dtype)  # (T, B, E)
        np.take(embedding, inputs, axis=0, out=layer_input)
        new_state, caches, masks = [], [], []
        for layer in range(self.config.num_layers):
            layer_input, final_state, cache = self.cell.forward(
                layer_input, *state[layer], *self.layer_weights(layer), carry,
                self.workspaces[layer])
            mask = None
            if dropout > 0:
                mask = (rng.random(layer_input.shape) >= dropout).astype(self.dtype)
                mask /= 1 - dropout
                layer_input = layer_input * mask
            new_state.append(final_state)
            caches.append(cache)
            masks.append(mask)
        return layer_input, new_state, caches, masks

    def final_state(self, inputs: np.ndarray, state: State) -> State:
        """Run the window only for the state it leaves. inputs: (T, B) token ids."""
        return self._forward(inputs, state)[1]

    def _logits(self, top: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """(T, B, H) -> (T * B, V), into ``out`` or a new array."""
        H = self.config.hidden_size
        logits = np.matmul(top.reshape(-1, H), self.params["output.weight"], out=out)
        logits += self.params["output.bias"]
        return logits

    def target_losses(self, inputs: np.ndarray, targets: np.ndarray, state: State):
        """Forward pass only. inputs, targets: (T, B) token ids.

        Returns (losses, new_state): losses (T, B) float64 holds each target's
        negative log-likelihood, 0 where the target is <START> (padding, or
        the step after an <END>), which is never scored.
        """
        losses, _, new_state, _ = self.predictions(inputs, targets, state)
        return losses, new_state

    def predictions(self, inputs: np.ndarray, targets: np.ndarray, state: State,
                    unit_kind: str | None = None):
        """Forward pass only, with what the model predicted and, for looking inside it, what
        its units did. inputs, targets: (T, B) token ids; unit_kind: one of the cell's
        ``unit_kinds`` (an LSTM's "cell", "forget", ...), or None.

        Returns (losses, probs, new_state, unit_values): losses (T, B) as in
        ``target_losses``; probs (T * B, V) the predicted distributions; per layer,
        the ``unit_kind`` of value of its units after each step (T, B, H), as views
        of work arrays that the model's next forward pass overwrites (empty without
        a unit_kind).
        """
        top, new_state, caches, _ = self._forward(inputs, state)
        scored = (targets != START_ID).ravel()
        losses, probs = softmax_cross_entropy_(self._logits(top), targets.ravel(), scored)
        unit_values = []
        if unit_kind is not None:
            outputs = [cache.x for cache in caches[1:]] + [top]  # a layer's output feeds the next
            unit_values = [self.cell.unit_values(cache, h, unit_kind)
                           for cache, h in zip(caches, outputs)]
        return losses.reshape(targets.shape), probs, new_state, unit_values

    def loss_and_gradients(self, inputs: np.ndarray, targets: np.ndarray, state: State,
                           dropout: float = 0.0, rng: np.random.Generator | None = None,
                           num_scored: int | None = None, grads: Params | None = None):
        """Mean loss per scored target over the window, and its gradient for every parameter.

        inputs, targets: (T, B) token ids; state: the state entering the window;
        dropout: the probability of dropping each layer output, drawn from ``rng``;
        num_scored: what the summed loss is divided by, when these rows are part of a
        bigger batch (the number of scored targets in the whole batch); by default
        the number scored here; grads: arrays to write the gradients into (the
        names and shapes of ``params``), by default new ones.
        Returns (mean_loss, grads, new_state).
        """
        T, B = inputs.shape
        H, V = self.config.hidden_size, self.config.vocab_size
        top, new_state, caches, masks = self._forward(inputs, state, dropout, rng)
        scored = (targets != START_ID).ravel()
        if num_scored is None:
            num_scored = max(int(scored.sum()), 1)
        if grads is None:
            grads = {name: np.empty_like(param) for name, param in self.params.items()}
        work = self.workspace
        logits = self._logits(top, work.array("logits", (T * B, V), self.dtype))
        losses, dlogits = softmax_cross_entropy_(logits, targets.ravel(), scored)
        dlogits[np.arange(targets.size), targets.ravel()] -= 1
        dlogits *= scored[:, None] / num_scored

        np.matmul(top.reshape(T * B, H).T, dlogits, out=grads["output.weight"])
        np.sum(dlogits, axis=0, out=grads["output.bias"])
        dh = work.array("dh", (T, B, H), self.dtype)
        np.matmul(dlogits, self.params["output.weight"].T, out=dh.reshape(T * B, H))
        for layer in reversed(range(self.config.num_layers)):
            Wx, Wh = self.layer_weights(layer)[:2]
            if masks[layer] is not None:
                dh *= masks[layer]
            dh, *weight_grads, _ = self.cell.backward(dh, caches[layer], Wx, Wh)
            prefix = self.config.layer_prefix(layer)
            for name, grad in zip(self.cell.weight_names, weight_grads, strict=True):
                np.copyto(grads[prefix + name], grad)
        embedding_gradient_(inputs.ravel(), dh.reshape(T * B, -1), grads["embedding"], work)
        return float(losses.sum()) / num_scored, grads, new_state

    def step(self, tokens: np.ndarray, state: State):
        """One step of generation. tokens: (B,) -> logits (B, V) and the new state."""
        layer_input = self.params["embedding"][tokens]  # (B, E)
        new_state = []
        for layer in range(self.config.num_layers):
            layer_state = self.cell.step(layer_input, state[layer], *self.layer_weights(layer))
            new_state.append(layer_state)
            layer_input = layer_state[0]
        logits = layer_input @ self.params["output.weight"] + self.params["output.bias"]
        return logits, new_state

    def stepper(self, batch_size: int = 1) -> Stepper:
        """A Stepper of this model for ``batch_size`` rows, from a zero state."""
        return Stepper(self, batch_size)


class Stepper:
    """Runs the model one step at a time for generation, faster than ``Model.step``.

    It holds the state of B rows and, per layer, the cell's ``LayerStepper``
    with its weights prepared once and its arrays made once: a step of one row
    is a few matrix-vector products and a few array operations per layer.
    Made from the parameters as they are now: make a new one after they
    change. Computes what ``Model.step`` does, up to float rounding.

    The layers' rows sit in one column array: [x_0, 1, h_0, 1, h_1, ..., 1]
    (B, V + sum(1 + H) + 1), the first layer's one-hot x followed, for each
    layer, by a 1 and its h. A layer reads its rows [x, 1, h] (see
    ``layers.LayerStepper``), the one above it begins at its h, and the output
    layer reads the last [h, 1], its bias stacked under its weight: no layer's
    output is copied, and no bias added, between the products (at one row of a
    2 x 512 LSTM on the AMD EPYC, 1.4 us a step each; at 64 rows, 26-55 us for
    the copy and 7-10 for the bias).
    Like the layers' arrays, the column and the logits are stored transposed
    (see ``layers.SumStepper``).
    """

    def __init__(self, model: Model, batch_size: int = 1):
        embedding = model.params["embedding"]
        self.layers = [model.cell.stepper(*model.layer_weights(layer),
                                          embedding if layer == 0 else None)
                       for layer in range(model.config.num_layers)]
        output_weight = np.concatenate([model.params["output.weight"],
                                        model.params["output.bias"][None]])  # (H + 1, V)
        self.output_weight = np.ascontiguousarray(output_weight.T).T
        self.column_rows = self.layers[0].input_size + sum(
            1 + layer.hidden_size for layer in self.layers) + 1
        self.reset(batch_size)

    def _bind(self, batch_size: int) -> None:
        """A new column array for ``batch_size`` rows, each layer given its rows (its state
        then undefined), and new logits."""
        dtype = self.output_weight.dtype
        column = np.ones((self.column_rows, batch_size), dtype).T  # (B, rows), its 1s kept
        start = 0
        for layer in self.layers:
            h_start = start + layer.input_size + 1
            layer.bind(column[:, start: h_start + layer.hidden_size])
            start = h_start  # the layer above reads this layer's h as its x
        self.top = column[:, start:]  # [h, 1] of the top layer (B, H + 1)
        self.logits = np.empty((self.output_weight.shape[1], batch_size), dtype).T  # (B, V)

    def reset(self, batch_size: int) -> None:
        """A zero state for ``batch_size`` rows."""
        self._bind(batch_size)
        self.state = [tuple(np.zeros_like(getattr(layer, name)) for name in layer.state_names)
                      for layer in self.layers]

    @property
    def state(self) -> State:
        """A copy of the state, as ``Model.step`` takes it."""
        return [layer.state for layer in self.layers]

    @state.setter
    def state(self, state: State) -> None:
        """Take this state, each array (B', H), for B' rows."""
        if len(state[0][0]) != len(self.logits):
            self._bind(len(state[0][0]))
        for layer, layer_state in zip(self.layers, state):
            layer.state = layer_state

    def select(self, rows: np.ndarray) -> None:
        """Keep the rows picked by ``rows`` (indices, or a boolean mask (B,)), in that order."""
        self.state = [tuple(part[rows] for part in layer_state) for layer_state in self.state]

    def step(self, tokens: np.ndarray) -> np.ndarray:
        """Feed one token to every row: tokens (B,) -> logits (B, V), an array of the
        stepper's own that its next step overwrites."""
        first, *above = self.layers
        first.step(tokens)
        for layer in above:
            layer.step()
        return matmul_rows_(self.top.T, self.output_weight.T, self.logits.T, transposed=True).T
