"""Beam search: the most likely continuation, rather than a random one.

A beam of width W keeps the W most probable partial texts; each step
extends every one by every character and keeps the W most probable
extensions. An extension by <END> is a finished text. The search stops when
no unfinished text can still beat the best finished one (log-probabilities
only fall as a text grows), or at the length limit, where unfinished texts
count as they are.

Beam search is not monotone in W by itself: a wider beam can prune the path
a narrower one would have kept. ``beam_search`` therefore also runs every
narrower width and returns the best text of all, so widening the beam never
gives a less likely text. Width 1 is greedy decoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from charrnn.data.vocab import END_ID, Vocabulary
from charrnn.generation.sampling import log_softmax, primed_start
from charrnn.nn.model import Model


@dataclass(frozen=True)
class Beam:
    tokens: tuple[int, ...]  # the generated tokens, without <END>
    log_prob: float  # natural log of the model's probability of the tokens (and <END>)
    ended: bool  # whether the model drew <END>


def _search(stepper, logits, width: int, length: int) -> Beam:
    """One beam search of the given width from the stepper's state, whose next-token
    logits (1, V) are ``logits``."""
    live_tokens = [()]  # the unfinished texts
    live_scores = np.zeros(1)
    best_finished: Beam | None = None
    for _ in range(length):
        scores = live_scores[:, None] + log_softmax(logits)  # (live, V)
        flat = scores.ravel()
        count = min(width, int(np.isfinite(flat).sum()))
        chosen = np.argpartition(-flat, count - 1)[:count]
        chosen = chosen[np.argsort(-flat[chosen], kind="stable")]
        parents, tokens = np.divmod(chosen, scores.shape[1])
        ended = tokens == END_ID
        if ended.any():
            first = np.flatnonzero(ended)[0]  # chosen is sorted: the best finished one
            candidate = Beam(live_tokens[parents[first]], float(flat[chosen[first]]), True)
            if best_finished is None or candidate.log_prob > best_finished.log_prob:
                best_finished = candidate
        keep = ~ended
        if not keep.any():
            return best_finished
        parents, tokens = parents[keep], tokens[keep]
        live_scores = flat[chosen[keep]]
        if best_finished is not None and live_scores[0] <= best_finished.log_prob:
            return best_finished  # no unfinished text can catch up
        live_tokens = [live_tokens[p] + (int(t),) for p, t in zip(parents, tokens)]
        stepper.select(parents)
        logits = stepper.step(tokens)
    at_limit = Beam(live_tokens[0], float(live_scores[0]), False)
    if best_finished is None or at_limit.log_prob > best_finished.log_prob:
        return at_limit
    return best_finished


def beam_search(model: Model, vocab: Vocabulary, *, width: int, length: int,
                prime: str = "") -> Beam:
    """The most probable continuation of ``prime`` found by beams of width 1 to ``width``."""
    stepper, logits = primed_start(model, vocab, prime)
    start, logits = stepper.state, logits.copy()
    results = []
    for w in range(1, width + 1):
        stepper.state = start
        results.append(_search(stepper, logits, w, length))
    return max(results, key=lambda beam: beam.log_prob)
