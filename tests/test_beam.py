"""Beam search: greedy at width 1, the best of every width up to its own, exact when wide
enough, and honest log-probabilities."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from charrnn.data.vocab import END_ID, Vocabulary
from charrnn.generation.beam import _search, beam_search
from charrnn.generation.sampling import Sampling, generate, log_softmax, primed_start
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
    params = init_params(config, np.random.default_rng(16), np.float64)
    params["output.weight"] *= 8  # sharper, more varied choices
    return [(trained.model, trained.vocab), (Model(config, params), vocab)]


@pytest.mark.parametrize("which, prime", [(0, ""), (0, "the "), (1, ""), (1, "a bed ")])
def test_width_one_is_greedy_decoding(models, which, prime):
    model, vocab = models[which]
    assert set(prime) <= set(vocab.chars)
    beam = beam_search(model, vocab, width=1, length=40, prime=prime)
    greedy = list(generate(model, vocab, Sampling(length=40, temperature=0), seed=0,
                           prime=prime))
    assert vocab.decode(beam.tokens) == "".join(piece.text for piece in greedy)
    assert beam.ended == (greedy[-1].stop_reason == "end")


def plain_search(model, vocab, width, length):
    """One beam of one width, as textbooks have it."""
    stepper, logits = primed_start(model, vocab, "")
    return _search(stepper, logits, width, length)


def test_plain_beam_search_is_not_monotone_here_so_every_width_up_to_w_is_tried(models):
    model, vocab = models[1]
    plain = {width: plain_search(model, vocab, width, 25).log_prob for width in (3, 5)}
    assert plain[5] < plain[3]  # the fixture's premise
    beam = beam_search(model, vocab, width=5, length=25)
    assert beam.log_prob == max(plain_search(model, vocab, w, 25).log_prob for w in range(1, 6))
    assert beam.log_prob == pytest.approx(
        sequence_log_prob(model, vocab, "", beam.tokens, beam.ended), abs=1e-6)


def test_a_beam_wider_than_every_candidate_finds_the_most_likely_text(models):
    """Against exhaustive search: every text of up to 5 characters over a 2-letter vocabulary
    that ends in <END>, and every one that reaches the length limit."""
    vocab = Vocabulary(tuple("ab"))
    config = ModelConfig(vocab.size, embedding_size=3, hidden_size=5, num_layers=1)
    params = init_params(config, np.random.default_rng(3), np.float64)
    params["output.weight"] *= 4
    model, length = Model(config, params), 5
    letters = vocab.encode("ab")[0].tolist()
    candidates = [(tokens, n < length) for n in range(length + 1)
                  for tokens in itertools.product(letters, repeat=n)]
    best = max(sequence_log_prob(model, vocab, "", tokens, ended) for tokens, ended in candidates)
    beam = beam_search(model, vocab, width=2 ** length, length=length)
    assert beam.log_prob == pytest.approx(best, abs=1e-9)
