"""Sampling speed: characters per second for one stream and for 64 streams drawn together.

A 2-layer, 512-unit model with random weights (speed does not depend on what
the weights learned). The <END> bias is set very low so that every sample runs
to its full length.

    PYTHONPATH=. python benchmarks/sample_speed.py
"""

from __future__ import annotations

import json
import string
import time

import click
import numpy as np

from charrnn.data.vocab import END_ID, Vocabulary
from charrnn.generation.sampling import generate
from charrnn.nn.model import Model, ModelConfig, init_params


def random_model(hidden_size: int, num_layers: int, vocab: Vocabulary) -> Model:
    config = ModelConfig(vocab_size=vocab.size, embedding_size=64, hidden_size=hidden_size,
                         num_layers=num_layers)
    model = Model(config, init_params(config, np.random.default_rng(0)))
    model.params["output.bias"][END_ID] = -1e4  # never end early
    return model


def chars_per_second(model: Model, vocab: Vocabulary, num_samples: int, length: int,
                     repeats: int) -> float:
    """Best of ``repeats`` runs of ``generate``: characters drawn per second, all samples together."""
    best = 0.0
    for repeat in range(repeats):
        start = time.perf_counter()
        drawn = sum(len(piece.text) for piece in generate(
            model, vocab, seed=repeat, num_samples=num_samples, length=length))
        best = max(best, drawn / (time.perf_counter() - start))
    return best


def matrix_product_bound(model: Model, num_samples: int, repeats: int) -> float:
    """Characters per second if a step took only its matrix products and nothing else.

    Per step: each layer's recurrent product, the input product of every layer
    above the first (the first looks its input projection up in a table), and
    the output layer. For one stream these are matrix-vector products whose
    speed is that of reading the weights from memory.
    """
    config, p = model.config, model.params
    weights = [p[f"lstm{layer}.hidden_weight"] for layer in range(config.num_layers)]
    weights += [p[f"lstm{layer}.input_weight"] for layer in range(1, config.num_layers)]
    weights.append(p["output.weight"])
    rows = np.random.default_rng(0).standard_normal((num_samples, config.hidden_size),
                                                    dtype=np.float32)
    calls = 200 if num_samples == 1 else 20
    best = float("inf")
    for _ in range(repeats * 3):
        start = time.perf_counter()
        for _ in range(calls):
            for weight in weights:
                rows @ weight
        best = min(best, (time.perf_counter() - start) / calls)
    return num_samples / best


@click.command()
@click.option("--hidden-size", default=512, show_default=True)
@click.option("--num-layers", default=2, show_default=True)
@click.option("--length", default=3000, show_default=True, help="Characters per single stream.")
@click.option("--batch-length", default=400, show_default=True,
              help="Characters per sample when 64 are drawn together.")
@click.option("--repeats", default=3, show_default=True)
def main(hidden_size, num_layers, length, batch_length, repeats):
    """Print sampling throughput as JSON lines and a short table."""
    vocab = Vocabulary.from_text(string.ascii_letters + " \n!$&',-.3:;?")
    model = random_model(hidden_size, num_layers, vocab)
    rows = []
    for num_samples, sample_length in ((1, length), (64, batch_length)):
        speed = chars_per_second(model, vocab, num_samples, sample_length, repeats)
        bound = matrix_product_bound(model, num_samples, repeats)
        row = {"hidden_size": hidden_size, "num_layers": num_layers, "vocab_size": vocab.size,
               "streams": num_samples, "chars_per_sec": round(speed),
               "matrix_product_bound": round(bound)}
        print(json.dumps(row))
        rows.append(row)
    print(f"\n{'streams':>8} {'chars/s':>10} {'bound':>10}   (bound: matrix products alone)")
    for row in rows:
        print(f"{row['streams']:>8} {row['chars_per_sec']:>10,} {row['matrix_product_bound']:>10,}")


if __name__ == "__main__":
    main()
