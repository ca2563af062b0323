"""``generate`` draws exactly what a straightforward loop draws: the model's own ``step`` for
one sample at a time, and the draw as the sampling module's docstring describes it, from
the sample's own random numbers. For every cell, one stream and several together."""

from __future__ import annotations

import numpy as np
import pytest

from charrnn.data.vocab import END_ID, START_ID, Vocabulary
from charrnn.generation.sampling import LARGEST_UNIFORM, Sampling, generate, sample_rng
from charrnn.nn.cells import CELLS
from charrnn.nn.model import Model, ModelConfig, init_params

VOCAB = Vocabulary.from_text("abcdefgh \n")
LENGTH = 60


def sharp_model(cell: str, dtype=np.float64) -> Model:
    """A random 2-layer model whose logits are spread widely enough that its samples vary."""
    config = ModelConfig(vocab_size=VOCAB.size, embedding_size=6, hidden_size=16,
                         num_layers=2, cell=cell)
    model = Model(config, init_params(config, np.random.default_rng(5), dtype))
    model.params["output.weight"] *= 6
    model.params["output.bias"][END_ID] = -2.0  # samples end now and then, not at once
    return model


def reference_text(model: Model, temperature: float, seed: int, index: int) -> str:
    """Sample ``index`` of a draw seeded with ``seed``, one character at a time."""
    rng = sample_rng(seed, index)
    state = model.zero_state(1)
    logits, state = model.step(np.array([START_ID]), state)
    text = ""
    for _ in range(LENGTH):
        scaled = logits[0].astype(np.float64)  # (V,)
        scaled[START_ID] = -np.inf
        scaled /= temperature
        cumulative = np.cumsum(np.exp(scaled - scaled.max()))
        uniform = min(rng.random(), LARGEST_UNIFORM)
        token = int(np.searchsorted(cumulative, uniform * cumulative[-1], side="right"))
        if token == END_ID:
            break
        text += VOCAB.token(token)
        logits, state = model.step(np.array([token]), state)
    return text


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("num_samples", [1, 3, 7])
def test_generate_draws_what_a_plain_loop_over_model_step_draws(cell, num_samples):
    model = sharp_model(cell)
    texts = [""] * num_samples
    for piece in generate(model, VOCAB, Sampling(length=LENGTH, temperature=0.9), seed=11,
                          num_samples=num_samples):
        texts[piece.index] += piece.text
    expected = [reference_text(model, 0.9, 11, index) for index in range(num_samples)]
    assert texts == expected
    assert all(expected) and len(set(expected)) == num_samples


def test_the_reference_samples_end_at_end_and_at_the_length():
    model = sharp_model("lstm")
    lengths = {len(reference_text(model, 0.9, 11, index)) for index in range(7)}
    assert LENGTH in lengths and min(lengths) < LENGTH
