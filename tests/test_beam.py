"""Beam search: greedy at width 1, never worse when wider, and honest log-probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from charrnn.data.vocab import END_ID, Vocabulary
from charrnn.generation.beam import beam_search
from charrnn.generation.sampling import generate, log_softmax, primed_start
from charrnn.nn.model import Model, ModelConfig, init_params
from charrnn.saving.checkpoint import load_checkpoint


def sequence_log_prob(model, vocab, prime, tokens, ended):
    stepper, logits = primed_start(model, vocab, prime)
    total = 0.0
    for token in list(tokens) + ([END_ID] if ended else []):
        total += log_softmax(logits)[0, token]
        logits = stepper.step(np.array([token]))
    return total


@pytest.fixture(scope="module")
def models(tiny_checkpoint):
    """A trained model, and a random one on which plain beam search is not monotone in the
    width (width 5 finds a less likely text than width 3 from this seed)."""
    trained = load_checkpoint(tiny_checkpoint)
    vocab = Vocabulary(tuple("abcde\n "))
    config = ModelConfig(vocab.size, embedding_size=4, hidden_size=6, num_layers=2)
    params = init_params(config, np.random.default_rng(24), np.float64)
    params["output.weight"] *= 8  # sharper, more varied choices
    return [(trained.model, trained.vocab), (Model(config, params), vocab)]


@pytest.mark.parametrize("which, prime", [(0, ""), (0, "the "), (1, ""), (1, "a bed ")])
def test_width_one_is_greedy_decoding(models, which, prime):
    model, vocab = models[which]
    assert set(prime) <= set(vocab.chars)
    beam = beam_search(model, vocab, width=1, length=40, prime=prime)
    greedy = list(generate(model, vocab, seed=0, temperature=0, length=40, prime=prime))
    assert vocab.decode(beam.tokens) == "".join(piece.text for piece in greedy)
    assert beam.ended == (greedy[-1].stop_reason == "end")


@pytest.mark.parametrize("which", [0, 1])
def test_wider_beams_are_never_less_likely(models, which):
    model, vocab = models[which]
    log_probs = []
    for width in (1, 2, 3, 5, 8):
        beam = beam_search(model, vocab, width=width, length=25)
        assert beam.log_prob == pytest.approx(
            sequence_log_prob(model, vocab, "", beam.tokens, beam.ended), abs=1e-6)
        log_probs.append(beam.log_prob)
    assert log_probs == sorted(log_probs)
