"""Sampling speed: characters per second for one stream and for 64 streams drawn together,
through the library and through ``charrnn sample``, against the bound the matrix products set.

A 2-layer, 512-unit model with random weights (speed does not depend on what
the weights learned). The <END> bias is set very low so that every sample runs
to its full length.

    PYTHONPATH=. python benchmarks/sample_speed.py

"bound" is the speed if a step did only its matrix products and nothing
else: each layer's recurrent product, the input product of every layer above
the first (the first looks its input projection up in a table) and the output
layer, one after the other as a step makes them, each in the faster of its
two layouts (rows @ W, or W^T @ rows^T with W^T contiguous; timed alone). For
one stream these are matrix-vector products whose speed is that of reading
the weights from memory.

"command line" runs ``python -m charrnn sample`` on the model saved as a
checkpoint, its output read through a pipe. A run's start (Python, NumPy, the
checkpoint) takes a fixed time whatever the length, so its speed is given two
ways: "marginal", the extra characters of a long run over a one-character run
divided by the extra seconds, and "whole run", the long run's characters over
its seconds. The library figure is ``generate`` in this process.

Each of ``--rounds`` rounds measures the bound, the library and the command
line one after the other; the table gives medians over the rounds, and each
speed's fraction of the bound is the median of the rounds' fractions.

"steady" compares the typical step with the typical product sequence: the
library's speed from the median time of its steps (each step timed alone,
from one stream's character to the next, or one batch's) against the bound
from the median time of single product sequences. The other figures divide a
whole run's characters by its seconds, so every pause of the run counts
(under ``chrt -f 10`` the kernel still gives other processes 50 ms of each
second), while the bound is the best of three short bursts that a pause seldom
hits: on a busy machine steady shows what the code does, and the others what a
user gets.
"""

from __future__ import annotations

import json
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np

from charrnn.data.vocab import END_ID, Vocabulary
from charrnn.generation.sampling import Sampling, generate
from charrnn.nn.model import Model, ModelConfig, init_params
from charrnn.saving.checkpoint import Checkpoint, save_checkpoint


def random_model(hidden_size: int, num_layers: int, vocab: Vocabulary) -> Model:
    config = ModelConfig(vocab_size=vocab.size, embedding_size=64, hidden_size=hidden_size,
                         num_layers=num_layers)
    model = Model(config, init_params(config, np.random.default_rng(0)))
    model.params["output.bias"][END_ID] = -1e4  # never end early
    return model


def library_speeds(model: Model, vocab: Vocabulary, num_samples: int,
                   length: int) -> tuple[float, float]:
    """Characters drawn per second by ``generate``, all samples together: over the whole
    run, and from the median step (see the module's docstring)."""
    drawn, step_seconds = 0, []
    start = step_start = time.perf_counter()
    for piece in generate(model, vocab, Sampling(length=length, temperature=1.0), seed=1,
                          num_samples=num_samples):
        drawn += len(piece.text)
        if piece.index == num_samples - 1:  # a step's last piece: no sample ends early
            now = time.perf_counter()
            step_seconds.append(now - step_start)
            step_start = now
    return (drawn / (time.perf_counter() - start),
            num_samples / statistics.median(step_seconds))


def command_line_seconds(checkpoint: Path, num_samples: int, length: int) -> tuple[int, float]:
    """Characters written by ``charrnn sample`` (newlines not counted), and its seconds."""
    command = [sys.executable, "-m", "charrnn", "sample", str(checkpoint), "--seed", "1",
               "--num-samples", str(num_samples), "--length", str(length)]
    start = time.perf_counter()
    output = subprocess.run(command, check=True, capture_output=True).stdout
    seconds = time.perf_counter() - start
    return len(output) - output.count(b"\n"), seconds


def command_line_speeds(checkpoint: Path, num_samples: int, length: int) -> tuple[float, float]:
    """(marginal, whole run) chars/s of ``charrnn sample`` (see the module's docstring)."""
    short_chars, short_seconds = command_line_seconds(checkpoint, num_samples, 1)
    chars, seconds = command_line_seconds(checkpoint, num_samples, length)
    return (chars - short_chars) / (seconds - short_seconds), chars / seconds


def fastest_layout(rows: np.ndarray, weight: np.ndarray, calls: int):
    """rows (B, K) @ weight (K, N) as a function of no arguments, in the faster of its two
    layouts, each timed alone."""
    weight_t, rows_t = np.ascontiguousarray(weight.T), np.ascontiguousarray(rows.T)
    out = np.empty((len(rows), weight.shape[1]), weight.dtype)
    out_t = np.empty((weight.shape[1], len(rows)), weight.dtype)
    layouts = (lambda: np.matmul(rows, weight, out=out),
               lambda: np.matmul(weight_t, rows_t, out=out_t))
    return min(layouts, key=lambda product: best_seconds([product], calls))


def best_seconds(products: list, calls: int, repeats: int = 3) -> float:
    """The best time of one call of every function in ``products``, one after the other."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            for product in products:
                product()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def median_seconds(products: list, calls: int) -> float:
    """The median time of ``calls`` calls of every function in ``products``, one after the
    other, each such sequence timed alone."""
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        for product in products:
            product()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def matrix_product_bounds(model: Model, num_samples: int, steps: int) -> tuple[float, float]:
    """Characters per second if a step took only its matrix products (see the docstring):
    a step's products one after the other, as a step reads its weights. The best of
    three short bursts, and from the median of ``steps`` single sequences (steady)."""
    config, p = model.config, model.params
    weights = [p[f"lstm{layer}.hidden_weight"] for layer in range(config.num_layers)]
    weights += [p[f"lstm{layer}.input_weight"] for layer in range(1, config.num_layers)]
    weights.append(p["output.weight"])
    rows = np.random.default_rng(0).standard_normal((num_samples, config.hidden_size),
                                                    dtype=np.float32)
    calls = 200 if num_samples == 1 else 20
    products = [fastest_layout(rows, weight, calls) for weight in weights]
    return (num_samples / best_seconds(products, calls),
            num_samples / median_seconds(products, steps))


FRACTIONS = {"library": "bound", "marginal": "bound", "whole_run": "bound",
             "steady": "steady_bound"}  # each speed and the bound it is a fraction of


def fraction_of_bound(speeds: list[float], bounds: list[float]) -> float:
    """The median over the rounds of each round's speed as a fraction of its bound."""
    return round(statistics.median(speed / bound for speed, bound in zip(speeds, bounds)), 3)


@click.command()
@click.option("--hidden-size", default=512, show_default=True)
@click.option("--num-layers", default=2, show_default=True)
@click.option("--length", default=10000, show_default=True,
              help="Characters per single stream.")
@click.option("--batch-length", default=1000, show_default=True,
              help="Characters per sample when 64 are drawn together.")
@click.option("--rounds", default=3, show_default=True, type=click.IntRange(min=1))
def main(hidden_size, num_layers, length, batch_length, rounds):
    """Print sampling throughput as JSON lines and a short table."""
    vocab = Vocabulary.from_text(string.ascii_letters + " \n!$&',-.3:;?")
    model = random_model(hidden_size, num_layers, vocab)
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        checkpoint = Path(directory) / "model.npz"
        save_checkpoint(checkpoint, Checkpoint(model, vocab))
        for num_samples, sample_length in ((1, length), (64, batch_length)):
            measured: dict[str, list[float]] = {name: [] for name in (
                "bound", "library", "marginal", "whole_run", "steady_bound", "steady")}
            for _ in range(rounds):
                for name, value in zip(("bound", "steady_bound"), matrix_product_bounds(
                        model, num_samples, sample_length)):
                    measured[name].append(value)
                for name, value in zip(("library", "steady"), library_speeds(
                        model, vocab, num_samples, sample_length)):
                    measured[name].append(value)
                for name, value in zip(("marginal", "whole_run"), command_line_speeds(
                        checkpoint, num_samples, sample_length)):
                    measured[name].append(value)
            row = {"hidden_size": hidden_size, "num_layers": num_layers,
                   "vocab_size": vocab.size, "streams": num_samples,
                   **{name: round(statistics.median(values))
                      for name, values in measured.items()},
                   **{f"{name}_of_bound": fraction_of_bound(measured[name], measured[bound])
                      for name, bound in FRACTIONS.items()},
                   "rounds": {name: [round(value) for value in values]
                              for name, values in measured.items()}}
            click.echo(json.dumps(row))
            rows.append(row)
    click.echo(f"\n{'streams':>8} {'bound':>8} {'library':>16} {'command line':>16} "
               f"{'whole run':>16} {'steady bound':>13} {'steady':>16}"
               "   (chars/s, fraction of the bound)")
    for row in rows:
        cells = "".join(f" {row[name]:>8,} {row[f'{name}_of_bound']:>6.0%} "
                        for name in ("library", "marginal", "whole_run"))
        click.echo(f"{row['streams']:>8} {row['bound']:>8,}{cells}"
                   f"{row['steady_bound']:>13,} {row['steady']:>8,} {row['steady_of_bound']:>6.0%}")


if __name__ == "__main__":
    main()
