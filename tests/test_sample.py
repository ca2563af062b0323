"""Sampling: reproducible, batched like one at a time, and written in order."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from charrnn.cli.output import OrderedWriter
from charrnn.data.vocab import END_ID, START_ID
from charrnn.generation.sampling import (LARGEST_UNIFORM, Piece, RecentTokens, Sampler, Sampling,
                                         generate)
from charrnn.saving.checkpoint import load_checkpoint
from charrnn.saving.shipped import pretrained_model


def draw(logits: np.ndarray, uniforms: np.ndarray, temperature: float = 1.0,
         sampling: Sampling = Sampling(), seen: np.ndarray | None = None) -> np.ndarray:
    """One token per row of ``logits`` (N, V), all at one temperature, with ``uniforms`` (N,)
    in [0, 1), as ``Sampler.choose`` draws them."""
    return Sampler(sampling, np.full(len(logits), temperature)).choose(
        logits, np.minimum(uniforms, LARGEST_UNIFORM), seen)


ONE_AT_80 = Sampling(length=80, temperature=1.0)


def texts(pieces, num_samples):
    out = [""] * num_samples
    for piece in pieces:
        out[piece.index] += piece.text
    return out


def test_same_seed_same_text_other_seed_other_text(tiny_checkpoint):
    loaded = load_checkpoint(tiny_checkpoint)
    run = lambda seed: texts(generate(loaded.model, loaded.vocab, Sampling(length=200, temperature=1.0),
                                      seed=seed), 1)
    assert run(7) == run(7)
    assert run(7) != run(8)


def test_batched_samples_match_samples_drawn_alone(tiny_checkpoint):
    loaded = load_checkpoint(tiny_checkpoint)
    together = texts(generate(loaded.model, loaded.vocab, ONE_AT_80, seed=3, num_samples=4), 4)
    first = texts(generate(loaded.model, loaded.vocab, ONE_AT_80, seed=3, num_samples=1), 1)
    assert together[0] == first[0]
    assert len(set(together)) > 1


def test_length_limits_each_sample(tiny_checkpoint):
    loaded = load_checkpoint(tiny_checkpoint)
    pieces = list(generate(loaded.model, loaded.vocab, Sampling(length=5), seed=1,
                           num_samples=3))
    for sample, text in enumerate(texts(pieces, 3)):
        ends = [p for p in pieces if p.index == sample and p.done]
        assert len(ends) == 1
        assert len(text) == 5 or ends[0].stop_reason == "end"


def test_draw_never_returns_start_and_inverts_the_cumulative_sum():
    logits = np.log(np.array([[0.5, 0.2, 0.3, 0.0001]]))
    assert draw(logits, np.array([0.0]), 0).tolist() == [2]  # argmax ignores <START>
    assert draw(logits, np.array([0.0])).tolist() == [END_ID]
    assert draw(logits, np.array([0.5])).tolist() == [2]
    assert draw(logits, np.array([0.99999999])).tolist() == [3]
    rng = np.random.default_rng(0)
    draws = draw(np.repeat(logits, 20000, axis=0), rng.random(20000))
    assert START_ID not in draws
    assert np.mean(draws == END_ID) == pytest.approx(0.2 / 0.5001, abs=0.02)


def test_low_temperature_concentrates_the_draw():
    logits = np.log(np.array([[1e-9, 0.3, 0.7]]))
    rng = np.random.default_rng(0)
    cold = draw(np.repeat(logits, 5000, axis=0), rng.random(5000), 0.1)
    assert np.mean(cold == 2) > 0.99


def test_ordered_writer_streams_the_first_and_holds_the_rest():
    written = []
    writer = OrderedWriter(written.append, 3, prefix=">")
    for piece in [Piece(0, "a"), Piece(1, "x"), Piece(2, "q"), Piece(2, "", True, "end"),
                  Piece(0, "b"), Piece(1, "y"), Piece(0, "", True, "end"),
                  Piece(1, "", True, "length")]:
        writer.feed(piece)
    assert "".join(written) == ">ab\n>xy\n>q\n"
    assert written[:3] == [">", "a", "b"]  # streamed, not held


def test_top_k_and_top_p_never_draw_excluded_tokens():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(1, 12)) * 2
    many = np.repeat(logits, 4000, axis=0)
    probs = np.exp(logits[0, 1:]) / np.exp(logits[0, 1:]).sum()  # without <START>
    ranked = np.argsort(-probs) + 1
    top3 = set(ranked[:3].tolist())
    assert set(draw(many, rng.random(4000), 1.0, Sampling(top_k=3)).tolist()) == top3
    # Nucleus: the smallest prefix of the ranking whose mass reaches 0.6.
    cumulative = np.cumsum(np.sort(probs)[::-1])
    nucleus = set(ranked[: int(np.searchsorted(cumulative, 0.6)) + 1].tolist())
    drawn = set(draw(many, rng.random(4000), 1.0, Sampling(top_p=0.6)).tolist())
    assert drawn == nucleus and len(nucleus) < 11
    assert set(draw(many, rng.random(4000), 2.0, Sampling(top_k=1)).tolist()) == {int(ranked[0])}


def test_stop_strings_end_a_sample_and_are_kept(tiny_checkpoint):
    loaded = load_checkpoint(tiny_checkpoint)
    pieces = list(generate(loaded.model, loaded.vocab,
                           Sampling(length=300, temperature=0.5, stop=("at",)), seed=2,
                           num_samples=3))
    for sample, text in enumerate(texts(pieces, 3)):
        end = [p for p in pieces if p.index == sample and p.done][0]
        if end.stop_reason == "stop":
            assert text.endswith("at") and text.count("at") == 1
    assert any(p.stop_reason == "stop" for p in pieces)


def test_log_prob_is_the_models_probability_of_the_sample(tiny_checkpoint):
    from charrnn.generation.sampling import log_softmax, primed_start

    loaded = load_checkpoint(tiny_checkpoint)
    pieces = list(generate(loaded.model, loaded.vocab, Sampling(length=30, temperature=1.5),
                           seed=5))
    tokens, _ = loaded.vocab.encode("".join(p.text for p in pieces))
    ended = pieces[-1].stop_reason == "end"
    stepper, logits = primed_start(loaded.model, loaded.vocab, "")
    expected = 0.0
    for token in list(tokens) + ([END_ID] if ended else []):
        expected += log_softmax(logits)[0, token]
        logits = stepper.step(np.array([token]))
    assert pieces[-1].log_prob == pytest.approx(expected, rel=1e-9)


def test_extreme_temperatures_stay_well_defined():
    logits = np.log(np.array([[1e-9, 0.2, 0.5, 0.3]]))
    rng = np.random.default_rng(0)
    tiny = draw(np.repeat(logits, 100, axis=0), rng.random(100), 1e-320)
    assert set(tiny.tolist()) == {2}  # as good as 0: the likeliest
    hot = draw(np.repeat(logits, 3000, axis=0), rng.random(3000), float("inf"))
    assert set(hot.tolist()) == {1, 2, 3}  # uniform, and never <START>
    assert abs(np.mean(hot == 1) - 1 / 3) < 0.05


def repeat_rate(text: str, n: int = 20) -> float:
    """The share of the text's n-character strings that already occurred earlier in it."""
    grams = [text[i: i + n] for i in range(len(text) - n + 1)]
    return 1 - len(set(grams)) / len(grams)


def test_repetition_penalty_breaks_the_loop_of_greedy_decoding():
    loaded = load_checkpoint(pretrained_model())
    run = lambda sampling: "".join(p.text for p in generate(
        loaded.model, loaded.vocab, replace(sampling, length=600, temperature=0), seed=0))
    looping = run(Sampling())
    assert repeat_rate(looping) > 0.7  # "That thou art the state of the state of the state ..."
    windowed = repeat_rate(run(Sampling(repetition_penalty=1.3)))
    assert windowed < 0.1
    # Over the whole text, every common character is soon penalised alike, and it loops again.
    assert repeat_rate(run(Sampling(repetition_penalty=1.3, repetition_window=0))) > 0.2


def test_repetition_penalty_divides_positive_logits_and_multiplies_negative_ones():
    positive = np.array([[0.0, 0.0, 2.0, 1.8, 0.0]])
    negative = np.array([[0.0, -5.0, -1.0, -1.2, -5.0]])
    seen = np.array([[False, False, True, False, False]])
    for logits, penalty, expected in ((positive, 1.2, 3), (positive, 1.1, 2),  # 2/1.1 > 1.8
                                      (negative, 1.3, 3), (negative, 1.1, 2)):  # -1.1 > -1.2
        sampling = Sampling(repetition_penalty=penalty)
        assert draw(logits, np.zeros(1), 0, sampling, seen).tolist() == [expected]
        assert draw(logits, np.zeros(1), 0, sampling, ~seen).tolist() == [2]


def test_recent_tokens_forget_what_left_the_window():
    recent = RecentTokens(np.array([2, 3]), batch_size=2, vocab_size=6, window=3)
    assert recent.seen()[:, 2:4].all()
    recent.add(np.array([4, 5]))
    recent.add(np.array([4, 4]))  # the window is now 3, 4, 4 and 3, 5, 4
    assert recent.seen().tolist() == [[False, False, False, True, True, False],
                                      [False, False, False, True, True, True]]
    whole = RecentTokens(np.array([2, 3]), batch_size=1, vocab_size=6, window=0)
    for token in (4, 4, 4, 5):
        whole.add(np.array([token]))
    assert whole.seen()[0, 2:].all()


def test_min_p_draws_exactly_the_characters_above_the_floor():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(1, 14)) * 2
    probs = np.exp(logits[0, 1:]) / np.exp(logits[0, 1:]).sum()
    for min_p in (0.05, 0.3):
        expected = set((np.flatnonzero(probs >= min_p * probs.max()) + 1).tolist())
        drawn = draw(np.repeat(logits, 6000, axis=0), rng.random(6000), 1.0, Sampling(min_p=min_p))
        assert set(drawn.tolist()) == expected and len(expected) < 13
    hot = draw(np.repeat(logits, 6000, axis=0), rng.random(6000), 3.0, Sampling(min_p=0.3))
    assert len(set(hot.tolist())) > len(expected)  # relative to the tempered distribution


def test_each_temperature_of_a_list_draws_as_it_would_alone(tiny_checkpoint):
    loaded = load_checkpoint(tiny_checkpoint)
    listed = texts(generate(loaded.model, loaded.vocab,
                            Sampling(length=60, temperature=(0.0, 1.5)), seed=4, num_samples=2), 4)
    alone = texts(generate(loaded.model, loaded.vocab, Sampling(length=60, temperature=1.5),
                           seed=4, num_samples=2), 2)
    greedy = texts(generate(loaded.model, loaded.vocab, Sampling(length=60, temperature=0),
                           seed=4), 1)
    assert listed[2:] == alone and listed[:2] == greedy * 2
    assert alone[0] != alone[1] != greedy[0]


def test_a_seed_reproduces_samples_with_every_option(tiny_checkpoint):
    loaded = load_checkpoint(tiny_checkpoint)
    plain_sampling = Sampling(length=80, temperature=(0.7, 1.2))
    sampling = replace(plain_sampling, top_k=8, top_p=0.95, min_p=0.02, repetition_penalty=1.4,
                       repetition_window=10)
    run = lambda seed: texts(generate(loaded.model, loaded.vocab, sampling, seed=seed,
                                      num_samples=3, prime="the"), 6)
    assert run(3) == run(3) and run(3) != run(4)
    plain = texts(generate(loaded.model, loaded.vocab, plain_sampling, seed=3, num_samples=3,
                           prime="the"), 6)
    assert run(3) != plain
