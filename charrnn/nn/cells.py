"""The recurrent cells a model can stack (LSTM, its peephole and CIFG variants, GRU, vanilla
RNN) behind one interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from charrnn.errors import CharrnnError
from charrnn.nn import cifg, gru, lstm, peephole, rnn

WEIGHT_NAMES = ("input_weight", "hidden_weight", "bias")  # every cell's, in this order


@dataclass(frozen=True)
class Cell:
    """One kind of recurrent layer.

    A layer's weights are Wx (D, G*H), Wh (H, G*H), b (G*H,) and then one (rows, H)
    array for each of ``unit_weights`` (per-unit weights, such as peepholes).
    forward(x, *state, *weights, carry, workspace) -> (h (T, B, H), final state, cache)
        carry (T, B, 1): 0 where a row starts afresh (its state entering the step is zero)
    backward(dh, cache, Wx, Wh) -> (dx, gradient of each weight, gradient of the initial state)
    step(x, state, *weights) -> new state (plain numpy; a reference for ``stepper``)
    stepper(*weights, embedding=None) -> a ``layers.LayerStepper``: the layer for
        generation, one fast step at a time (``embedding`` given for the first layer)
    unit_values(cache, h, kind) -> (T, B, H) one of ``unit_kinds`` at every step of the
        forward pass that made ``cache`` and ``h`` (views of its arrays)
    A state is a tuple of (B, H) arrays named by ``state_names``, h first.
    """

    name: str
    noun: str  # how messages name a layer of it, with its article: "an LSTM", "a GRU", ...
    gate_order: tuple[str, ...]  # the blocks of H columns of the fused weights, in order
    state_names: tuple[str, ...]
    forward: Callable
    backward: Callable
    step: Callable
    stepper: type
    unit_kinds: tuple[str, ...]  # the first is the one to look at by default
    unit_values: Callable
    pytorch_module: str | None  # the torch.nn module that holds the layer exactly, if one does
    unit_weights: tuple[tuple[str, int], ...] = ()  # (name, rows) of each (rows, H) weight
    # (Wx, Wh, b) -> the same of the cell that ``pytorch_module`` holds (here: itself, or for a
    # CIFG the plain LSTM's), in that charrnn cell's gate order
    pytorch_weights: Callable = lambda Wx, Wh, b: (Wx, Wh, b)

    @property
    def num_gates(self) -> int:
        return len(self.gate_order)

    @property
    def weight_names(self) -> tuple[str, ...]:
        """The names of a layer's weights, in the order forward, step and stepper take them."""
        return WEIGHT_NAMES + tuple(name for name, _ in self.unit_weights)

    def require_pytorch_module(self) -> str:
        """The torch.nn module ("LSTM", "GRU" or "RNN") that holds this cell's layers (their
        weights from ``pytorch_weights``), for an export to PyTorch's names; a CharrnnError
        if none does."""
        if self.pytorch_module is None:
            raise CharrnnError(f"torch.nn has no layer that holds {self.noun}, so this model "
                               "has no PyTorch names: keep it in charrnn's own format")
        return self.pytorch_module


CELLS = {
    "lstm": Cell("lstm", "an LSTM", lstm.GATE_ORDER, ("h", "c"), lstm.lstm_forward,
                 lstm.lstm_backward, lstm.lstm_step, lstm.LSTMStepper, lstm.UNIT_KINDS,
                 lstm.lstm_unit_values, "LSTM"),
    "lstm-peephole": Cell("lstm-peephole", "a peephole LSTM", lstm.GATE_ORDER, ("h", "c"),
                          peephole.peephole_forward, peephole.peephole_backward,
                          peephole.peephole_step, peephole.PeepholeStepper, peephole.UNIT_KINDS,
                          lstm.lstm_unit_values, None,
                          unit_weights=(("peephole_weight", len(peephole.PEEPHOLES)),)),
    "lstm-cifg": Cell("lstm-cifg", "a CIFG LSTM", cifg.GATE_ORDER, ("h", "c"), cifg.cifg_forward,
                      cifg.cifg_backward, cifg.cifg_step, cifg.CIFGStepper, cifg.UNIT_KINDS,
                      cifg.cifg_unit_values, "LSTM", pytorch_weights=cifg.as_lstm_weights),
    "gru": Cell("gru", "a GRU", gru.GATE_ORDER, ("h",), gru.gru_forward, gru.gru_backward,
                gru.gru_step, gru.GRUStepper, gru.UNIT_KINDS, gru.gru_unit_values, "GRU"),
    "rnn": Cell("rnn", "an RNN", rnn.GATE_ORDER, ("h",), rnn.rnn_forward, rnn.rnn_backward,
                rnn.rnn_step, rnn.RNNStepper, rnn.UNIT_KINDS, rnn.rnn_unit_values, "RNN"),
}
