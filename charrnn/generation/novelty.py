"""Records that are new, not copies of the training text (``sample --novel``).

A records model's checkpoint keeps the hashes of its training records
(``known_records.py``). A sample copies one when its whole text, the prime
and what was drawn after it, is one of them. ``novel_samples`` draws again
every sample that copies a record, up to MAX_DRAWS times, all those still
wanted at once.
"""

from __future__ import annotations

from charrnn.data.known_records import KnownRecords
from charrnn.data.vocab import Vocabulary
from charrnn.generation.sampling import Sample, Sampling, generate_rows, sample_rng, whole_samples
from charrnn.nn.model import Model

MAX_DRAWS = 100  # per sample, before giving up on it


def novel_samples(model: Model, vocab: Vocabulary, known: KnownRecords,
                  sampling: Sampling = Sampling(), *, seed: int, num_samples: int,
                  prime: str = "") -> list[Sample | None]:
    """``num_samples`` samples at each of ``sampling``'s temperatures, numbered as ``generate`` numbers them,
    none of whose texts (prime included) is in ``known``: each sample that copies a known
    record is drawn again, up to MAX_DRAWS times in all. None for a sample that never drew
    a new record."""
    wanted = [(temperature, index) for temperature in sampling.temperatures
              for index in range(num_samples)]
    found: list[Sample | None] = [None] * len(wanted)
    pending = list(range(len(wanted)))  # the samples still copying
    for draw in range(MAX_DRAWS):
        pieces = generate_rows(model, vocab, [wanted[k][0] for k in pending],
                               [sample_rng(seed, wanted[k][1], draw) for k in pending],
                               sampling, prime)
        copies = []
        for k, sample in zip(pending, whole_samples(pieces, len(pending))):
            if prime + sample.text in known:
                copies.append(k)
            else:
                found[k] = sample
        pending = copies
        if not pending:
            break
    return found
