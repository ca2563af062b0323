"""The recurrent cells a model can stack (LSTM, GRU, vanilla RNN) behind one interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .gru import gru_backward, gru_forward, gru_step
from .lstm import lstm_backward, lstm_forward, lstm_step
from .rnn import rnn_backward, rnn_forward, rnn_step


@dataclass(frozen=True)
class Cell:
    """One kind of recurrent layer.

    forward(x, *state, Wx, Wh, b, keep, workspace) -> (h (T, B, H), final state, cache)
    backward(dh, cache, Wx, Wh) -> (dx, dWx, dWh, db)
    step(x, state, Wx, Wh, b) -> new state
    A state is a tuple of (B, H) arrays named by ``state_names``, h first.
    """

    name: str
    num_gates: int  # the fused weights have num_gates * H columns
    state_names: tuple[str, ...]
    forward: Callable
    backward: Callable
    step: Callable


CELLS = {
    "lstm": Cell("lstm", 4, ("h", "c"), lstm_forward, lstm_backward, lstm_step),
    "gru": Cell("gru", 3, ("h",), gru_forward, gru_backward, gru_step),
    "rnn": Cell("rnn", 1, ("h",), rnn_forward, rnn_backward, rnn_step),
}
