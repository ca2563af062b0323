"""The character language model: embedding, a stack of LSTM layers, softmax output.

Shape letters as in ``lstm.py``, plus V (vocabulary size) and E (embedding
size). Token arrays are time-major: (T, B).

Parameters live in a flat dict whose keys name them everywhere: in the
gradients, in the optimizer state and in the checkpoint.

    embedding             (V, E)
    lstm{l}.input_weight  (D_l, 4H)   D_0 = E, D_l = H above the first layer
    lstm{l}.hidden_weight (H, 4H)
    lstm{l}.bias          (4H,)       forget-gate block initialised to 1
    output.weight         (H, V)
    output.bias           (V,)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .lstm import Workspace, lstm_backward, lstm_cell_, lstm_forward, lstm_step
from .vocab import START_ID

Params = dict[str, np.ndarray]
State = list[tuple[np.ndarray, np.ndarray]]  # per layer (h, c), each (B, H)


@dataclass(frozen=True)
class ModelConfig:
    """The architecture: everything needed to rebuild a model from its weights."""

    vocab_size: int
    embedding_size: int = 64
    hidden_size: int = 256
    num_layers: int = 2

    def to_dict(self) -> dict:
        return asdict(self)

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """The name and shape of every parameter, in a fixed order."""
        V, E, H = self.vocab_size, self.embedding_size, self.hidden_size
        shapes = {"embedding": (V, E)}
        for layer in range(self.num_layers):
            input_size = E if layer == 0 else H
            shapes[f"lstm{layer}.input_weight"] = (input_size, 4 * H)
            shapes[f"lstm{layer}.hidden_weight"] = (H, 4 * H)
            shapes[f"lstm{layer}.bias"] = (4 * H,)
        shapes["output.weight"] = (H, V)
        shapes["output.bias"] = (V,)
        return shapes

    def num_params(self) -> int:
        return sum(int(np.prod(shape)) for shape in self.param_shapes().values())


def init_params(config: ModelConfig, rng: np.random.Generator, dtype=np.float32) -> Params:
    """Small random weights; zero biases except the forget gate's, which start at 1."""
    H = config.hidden_size
    params = {}
    for name, shape in config.param_shapes().items():
        if name == "embedding":
            values = rng.normal(0.0, 1.0, shape)
        elif name.endswith("bias"):
            values = np.zeros(shape)
        else:
            fan_in = shape[0] if name.endswith("input_weight") or name == "output.weight" else H
            bound = 1.0 / np.sqrt(fan_in)
            values = rng.uniform(-bound, bound, shape)
        if name.startswith("lstm") and name.endswith("bias"):
            values[H: 2 * H] = 1.0
        params[name] = values.astype(dtype)
    return params


def softmax_cross_entropy(logits: np.ndarray, targets: np.ndarray, scored: np.ndarray):
    """Summed negative log-likelihood of the scored targets, and its gradient.

    logits: (N, V); targets: (N,) token ids; scored: (N,) bool.
    Returns (total_loss, dlogits) where dlogits: (N, V) is the gradient of the
    total with respect to the logits (zero on unscored rows).
    """
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    sum_exp = exp.sum(axis=1, keepdims=True)
    rows = np.arange(targets.size)
    log_prob = shifted[rows, targets] - np.log(sum_exp[:, 0])
    total = -float(log_prob[scored].sum(dtype=np.float64))
    dlogits = exp
    dlogits /= sum_exp
    dlogits[rows, targets] -= 1
    dlogits *= scored[:, None]
    return total, dlogits


def embedding_gradient(tokens: np.ndarray, dx: np.ndarray, vocab_size: int) -> np.ndarray:
    """Sum the rows of dx (N, E) by token id (N,) into a (V, E) gradient.

    As one matrix product with the one-hot matrix of the tokens, several times
    faster than ``np.add.at`` here.
    """
    one_hot = np.zeros((tokens.size, vocab_size), dx.dtype)  # (N, V)
    one_hot[np.arange(tokens.size), tokens] = 1
    return one_hot.T @ dx


class Model:
    """A character LSTM language model: its architecture and its parameters.

    Each layer keeps its big work arrays from one window to the next (see
    ``lstm.Workspace``), so one Model must not run two windows at once (from
    several threads).
    """

    def __init__(self, config: ModelConfig, params: Params):
        self.config = config
        self.params = params
        self.workspaces = [Workspace() for _ in range(config.num_layers)]

    @property
    def dtype(self) -> np.dtype:
        return self.params["output.weight"].dtype

    def zero_state(self, batch_size: int) -> State:
        shape = (batch_size, self.config.hidden_size)
        return [(np.zeros(shape, self.dtype), np.zeros(shape, self.dtype))
                for _ in range(self.config.num_layers)]

    def _layer_weights(self, layer: int):
        p = self.params
        return (p[f"lstm{layer}.input_weight"], p[f"lstm{layer}.hidden_weight"],
                p[f"lstm{layer}.bias"])

    def _forward(self, inputs: np.ndarray, state: State):
        """Run the window; returns the top layer's outputs (T, B, H), the new state, caches."""
        # A <START> input begins a fresh sequence: that row's state is reset.
        starts = inputs == START_ID
        keep = (~starts)[:, :, None].astype(self.dtype) if starts.any() else None
        layer_input = self.params["embedding"][inputs]  # (T, B, E)
        new_state, caches = [], []
        for layer in range(self.config.num_layers):
            Wx, Wh, b = self._layer_weights(layer)
            h0, c0 = state[layer]
            layer_input, final_state, cache = lstm_forward(layer_input, h0, c0, Wx, Wh, b, keep,
                                                           self.workspaces[layer])
            new_state.append(final_state)
            caches.append(cache)
        return layer_input, new_state, caches

    def _logits(self, top: np.ndarray) -> np.ndarray:
        """(T, B, H) -> (T * B, V)."""
        H = self.config.hidden_size
        return top.reshape(-1, H) @ self.params["output.weight"] + self.params["output.bias"]

    def loss(self, inputs: np.ndarray, targets: np.ndarray, state: State):
        """Forward pass only. inputs, targets: (T, B) token ids.

        Returns (total_loss, num_scored, new_state). A target that is
        <START> (padding, or the step after an <END>) is not scored.
        """
        top, new_state, _ = self._forward(inputs, state)
        scored = (targets != START_ID).ravel()
        total, _ = softmax_cross_entropy(self._logits(top), targets.ravel(), scored)
        return total, int(scored.sum()), new_state

    def loss_and_gradients(self, inputs: np.ndarray, targets: np.ndarray, state: State):
        """Mean loss per scored target over the window, and its gradient for every parameter.

        inputs, targets: (T, B) token ids; state: the state entering the window.
        Returns (mean_loss, grads, new_state); grads has the keys of ``params``.
        """
        T, B = inputs.shape
        top, new_state, caches = self._forward(inputs, state)
        scored = (targets != START_ID).ravel()
        num_scored = max(int(scored.sum()), 1)
        total, dlogits = softmax_cross_entropy(self._logits(top), targets.ravel(), scored)
        dlogits /= num_scored

        grads = {
            "output.weight": top.reshape(T * B, -1).T @ dlogits,
            "output.bias": dlogits.sum(axis=0),
        }
        dh = (dlogits @ self.params["output.weight"].T).reshape(T, B, -1)
        for layer in reversed(range(self.config.num_layers)):
            Wx, Wh, _ = self._layer_weights(layer)
            dh, dWx, dWh, db = lstm_backward(dh, caches[layer], Wx, Wh)
            grads[f"lstm{layer}.input_weight"] = dWx
            grads[f"lstm{layer}.hidden_weight"] = dWh
            grads[f"lstm{layer}.bias"] = db
        grads["embedding"] = embedding_gradient(inputs.ravel(), dh.reshape(T * B, -1),
                                                self.config.vocab_size)
        return total / num_scored, grads, new_state

    def step(self, tokens: np.ndarray, state: State):
        """One step of generation. tokens: (B,) -> logits (B, V) and the new state."""
        layer_input = self.params["embedding"][tokens]  # (B, E)
        new_state = []
        for layer in range(self.config.num_layers):
            h, c = lstm_step(layer_input, state[layer], *self._layer_weights(layer))
            new_state.append((h, c))
            layer_input = h
        logits = layer_input @ self.params["output.weight"] + self.params["output.bias"]
        return logits, new_state


class Stepper:
    """Runs the model one step at a time for generation, faster than ``Model.step``.

    The first layer's input projection is looked up in a table made once for
    every token, embedding @ Wx0 + b0 (V, 4H), so that layer needs only its
    recurrent product. Made from the parameters as they are now: make a new
    one after they change. Computes what ``Model.step`` does, up to float
    rounding.
    """

    def __init__(self, model: Model):
        self.model = model
        p = model.params
        self.token_projection = p["embedding"] @ p["lstm0.input_weight"] + p["lstm0.bias"]

    def step(self, tokens: np.ndarray, state: State):
        """tokens: (B,) -> logits (B, V) and the new state, like ``Model.step``."""
        p = self.model.params
        new_state = []
        for layer, (h_prev, c_prev) in enumerate(state):
            if layer == 0:
                a = self.token_projection[tokens]  # (B, 4H)
            else:
                a = rows_times(new_state[-1][0], p[f"lstm{layer}.input_weight"])
                a += p[f"lstm{layer}.bias"]
            a += rows_times(h_prev, p[f"lstm{layer}.hidden_weight"])
            new_state.append(lstm_cell_(a, c_prev))
        logits = rows_times(new_state[-1][0], p["output.weight"])
        logits += p["output.bias"]
        return logits, new_state


FEW_ROWS = 4


def rows_times(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """x (B, K) @ weight (K, N) -> (B, N).

    OpenBLAS is several times slower on a matrix product of 2 to 4 rows than on
    that many vector-matrix products, so a few rows go one at a time.
    """
    if 1 < len(x) <= FEW_ROWS:
        return np.stack([row @ weight for row in x])
    return x @ weight
