"""Scoring: the batched scorer gives what one sequential pass gives."""

from __future__ import annotations

import pytest
from conftest import SHAKESPEARE

from charrnn.data.corpus import text_tokens
from charrnn.nn.scoring import score_text, score_tokens
from charrnn.saving.checkpoint import load_checkpoint
from charrnn.saving.shipped import pretrained_model


@pytest.fixture(scope="module")
def shipped():
    return load_checkpoint(pretrained_model())


def test_batched_scoring_is_within_a_thousandth_of_one_sequential_pass(shipped):
    text = SHAKESPEARE.read_text(encoding="utf-8")[-6000:]
    tokens, _ = text_tokens(text, shipped.vocab, None)
    sequential = score_tokens(shipped.model, tokens, batch_size=1).nats_per_char
    batched = score_tokens(shipped.model, tokens, batch_size=32).nats_per_char
    assert abs(batched - sequential) < 0.001
    # Streams that start cold, mid-text, score worse: what the warm-up is for.
    cold = score_tokens(shipped.model, tokens, batch_size=32, warmup=0).nats_per_char
    assert cold - sequential > 0.005


def test_score_text_counts_what_it_scored_and_skipped(shipped):
    scored = score_text(shipped.model, shipped.vocab, "ab\n\ncd\u2603\n", "\n", by_token=True)
    assert (scored.num_sequences, scored.num_chars, scored.num_skipped) == (2, 4, 1)
    assert scored.score.num_scored == 6 == scored.score.count_by_token.sum()
    assert scored.score.total_loss == pytest.approx(scored.score.loss_by_token.sum())
