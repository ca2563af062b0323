"""The recurrent cells a model can stack (LSTM, GRU, vanilla RNN) behind one interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from charrnn.nn import gru, lstm, rnn


@dataclass(frozen=True)
class Cell:
    """One kind of recurrent layer.

    forward(x, *state, Wx, Wh, b, carry, workspace) -> (h (T, B, H), final state, cache)
        carry (T, B, 1): 0 where a row starts afresh (its state entering the step is zero)
    backward(dh, cache, Wx, Wh) -> (dx, dWx, dWh, db, gradient of the initial state)
    step(x, state, Wx, Wh, b) -> new state (plain numpy; a reference for ``stepper``)
    stepper(Wx, Wh, b, embedding=None) -> a ``recurrent.LayerStepper``: the layer for
        generation, one fast step at a time (``embedding`` given for the first layer)
    unit_values(cache, h, kind) -> (T, B, H) one of ``unit_kinds`` at every step of the
        forward pass that made ``cache`` and ``h`` (views of its arrays)
    A state is a tuple of (B, H) arrays named by ``state_names``, h first.
    """

    name: str
    gate_order: tuple[str, ...]  # the blocks of H columns of the fused weights, in order
    state_names: tuple[str, ...]
    forward: Callable
    backward: Callable
    step: Callable
    stepper: type
    unit_kinds: tuple[str, ...]  # the first is the one to look at by default
    unit_values: Callable

    @property
    def num_gates(self) -> int:
        return len(self.gate_order)


CELLS = {
    "lstm": Cell("lstm", lstm.GATE_ORDER, ("h", "c"), lstm.lstm_forward, lstm.lstm_backward,
                 lstm.lstm_step, lstm.LSTMStepper, lstm.UNIT_KINDS, lstm.lstm_unit_values),
    "gru": Cell("gru", gru.GATE_ORDER, ("h",), gru.gru_forward, gru.gru_backward, gru.gru_step,
                gru.GRUStepper, gru.UNIT_KINDS, gru.gru_unit_values),
    "rnn": Cell("rnn", rnn.GATE_ORDER, ("h",), rnn.rnn_forward, rnn.rnn_backward, rnn.rnn_step,
                rnn.RNNStepper, rnn.UNIT_KINDS, rnn.rnn_unit_values),
}
