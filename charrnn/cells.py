"""The recurrent cells a model can stack (LSTM, GRU, vanilla RNN) behind one interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import gru, lstm, rnn


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
    num_gates: int  # the fused weights have num_gates * H columns (the module's GATE_ORDER)
    state_names: tuple[str, ...]
    forward: Callable
    backward: Callable
    step: Callable
    unit_kinds: tuple[str, ...]  # the first is the one to look at by default
    unit_values: Callable
    stepper: type


CELLS = {
    "lstm": Cell("lstm", lstm.NUM_GATES, ("h", "c"), lstm.lstm_forward, lstm.lstm_backward,
                 lstm.lstm_step, lstm.UNIT_KINDS, lstm.lstm_unit_values, lstm.LSTMStepper),
    "gru": Cell("gru", gru.NUM_GATES, ("h",), gru.gru_forward, gru.gru_backward, gru.gru_step,
                gru.UNIT_KINDS, gru.gru_unit_values, gru.GRUStepper),
    "rnn": Cell("rnn", rnn.NUM_GATES, ("h",), rnn.rnn_forward, rnn.rnn_backward, rnn.rnn_step,
                rnn.UNIT_KINDS, rnn.rnn_unit_values, rnn.RNNStepper),
}
