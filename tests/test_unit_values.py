"""What a model's units did, read from the training forward pass, against a step-by-step run."""

from __future__ import annotations

import numpy as np
import pytest

from charrnn.data.vocab import START_ID
from charrnn.nn.cells import CELLS
from charrnn.nn.model import Model, ModelConfig, init_params


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def stepped_values(model: Model, tokens: np.ndarray) -> dict[str, list[np.ndarray]]:
    """Each kind of unit value, (T, B, H) per layer, from ``Model.step`` one token at a time;
    gates recomputed from each step's entering state by the textbook formulas."""
    T, B = tokens.shape
    H = model.config.hidden_size
    state = model.zero_state(B)
    kinds = {kind: [[] for _ in state] for kind in model.cell.unit_kinds}
    for t in range(T):
        keep = (tokens[t] != START_ID)[:, None]
        entering = [tuple(part * keep for part in layer) for layer in state]
        _, state = model.step(tokens[t], entering)
        layer_input = model.params["embedding"][tokens[t]]
        for layer, (before, after) in enumerate(zip(entering, state)):
            Wx, Wh, b = model.layer_weights(layer)[:3]
            a = layer_input @ Wx + b
            recurrent = before[0] @ Wh
            values = {"hidden": after[0]}
            if model.config.cell.startswith("lstm"):
                values["cell"] = np.tanh(after[1])
                a += recurrent
            if model.config.cell == "lstm":
                values.update(input=sigmoid(a[:, :H]), forget=sigmoid(a[:, H: 2 * H]),
                              output=sigmoid(a[:, 2 * H: 3 * H]))
            elif model.config.cell == "lstm-peephole":
                P = model.layer_weights(layer)[3]
                values.update(input=sigmoid(a[:, :H] + P[0] * before[1]),
                              forget=sigmoid(a[:, H: 2 * H] + P[1] * before[1]),
                              output=sigmoid(a[:, 2 * H: 3 * H] + P[2] * after[1]))
            elif model.config.cell == "lstm-cifg":
                values.update(forget=sigmoid(a[:, :H]), output=sigmoid(a[:, H: 2 * H]))
            elif model.config.cell == "gru":
                values.update(reset=sigmoid(a[:, :H] + recurrent[:, :H]),
                              update=sigmoid(a[:, H: 2 * H] + recurrent[:, H: 2 * H]))
            for kind in kinds:
                kinds[kind][layer].append(values[kind])
            layer_input = after[0]
    return {kind: [np.stack(steps) for steps in layers] for kind, layers in kinds.items()}


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_unit_values_equal_a_step_by_step_run(rng, cell):
    config = ModelConfig(vocab_size=9, embedding_size=5, hidden_size=6, num_layers=2, cell=cell)
    model = Model(config, init_params(config, rng, np.float64))
    tokens = rng.integers(2, config.vocab_size, (12, 3))
    tokens[0], tokens[7, 1] = START_ID, START_ID  # a reset in the middle of one row
    expected = stepped_values(model, tokens)
    assert set(expected) == set(model.cell.unit_kinds)
    for kind in model.cell.unit_kinds:
        _, _, _, values = model.predictions(tokens, tokens, model.zero_state(3), kind)
        for layer in range(config.num_layers):
            np.testing.assert_allclose(values[layer], expected[kind][layer], rtol=1e-10,
                                       atol=1e-12, err_msg=f"{cell} {kind} layer {layer}")


def test_predictions_give_the_losses_and_distributions(rng):
    config = ModelConfig(vocab_size=9, embedding_size=5, hidden_size=6, num_layers=2)
    model = Model(config, init_params(config, rng, np.float64))
    tokens = rng.integers(2, config.vocab_size, (6, 2))
    losses, probs, _, values = model.predictions(tokens[:-1], tokens[1:], model.zero_state(2))
    assert values == []
    picked = probs[np.arange(probs.shape[0]), tokens[1:].ravel()]
    np.testing.assert_allclose(losses.ravel(), -np.log(picked), rtol=1e-10)
