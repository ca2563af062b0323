"""Which initialisation learns fastest: held-out loss after a fixed number of steps in charrnn.

Every candidate trains in charrnn's own loop (``Trainer.train_step``), with
the same settings, on the same windows, from each seed; only the initial
weights differ. The held-out loss is charrnn's ``score_tokens`` on the last
100,000 characters of each text (``heldout.py``), halfway and at the end.

    PYTHONPATH=. python benchmarks/init_sweep.py \\
        --text data/tinyshakespeare.txt --text austen.txt --seeds 1,2,3 --steps 400 --jobs 2

Candidates (E embedding size, H hidden size, D a layer's input size):

- fan-in: embedding N(0, 1); input weights U(+-1/sqrt(D)), recurrent and
  output weights U(+-1/sqrt(H)); biases 0 but the forget gate's, 1.
- pytorch: PyTorch's defaults: embedding N(0, 1); every LSTM weight
  U(+-1/sqrt(H)) (so the first layer's input weights are half as large when
  E = 64 and H = 256); the LSTM's two biases U(+-1/sqrt(H)) each (charrnn's
  one bias is their sum); the output layer's weight and bias U(+-1/sqrt(H)).
- pytorch-forget1: pytorch with 1 added to the forget gate's bias.
- pytorch-bias2x: pytorch, and Adam moves the LSTM biases twice as far as it
  moves charrnn's other parameters. Not an initialisation but the other
  effect of PyTorch's two biases: both get the same gradient and Adam moves
  each by a full step, so their sum moves two.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor

import click
import numpy as np
from heldout import held_out_corpus, held_out_loss, trainer_from

from charrnn.nn.model import ModelConfig, Params
from charrnn.nn.optim import Adam
from charrnn.training.settings import TrainSettings

FORGET = 1  # the forget gate's block in charrnn's packing i, f, o, g


def uniform(rng: np.random.Generator, shape, bound: float) -> np.ndarray:
    return rng.uniform(-bound, bound, shape)


def fan_in_init(config: ModelConfig, rng: np.random.Generator) -> Params:
    H = config.hidden_size
    params = {}
    for name, shape in config.param_shapes().items():
        if name == "embedding":
            params[name] = rng.normal(0.0, 1.0, shape)
        elif name.endswith("bias"):
            params[name] = np.zeros(shape)
        else:
            params[name] = uniform(rng, shape, 1 / np.sqrt(shape[0] if "input" in name else H))
    add_forget_bias(params, config)
    return params


def pytorch_init(config: ModelConfig, rng: np.random.Generator) -> Params:
    bound = 1 / np.sqrt(config.hidden_size)
    params = {}
    for name, shape in config.param_shapes().items():
        if name == "embedding":
            params[name] = rng.normal(0.0, 1.0, shape)
        elif name.endswith(".bias") and name != "output.bias":  # bias_ih + bias_hh
            params[name] = uniform(rng, shape, bound) + uniform(rng, shape, bound)
        else:
            params[name] = uniform(rng, shape, bound)
    return params


def pytorch_forget1_init(config: ModelConfig, rng: np.random.Generator) -> Params:
    params = pytorch_init(config, rng)
    add_forget_bias(params, config)
    return params


def add_forget_bias(params: Params, config: ModelConfig) -> None:
    H = config.hidden_size
    for layer in range(config.num_layers):
        params[config.layer_prefix(layer) + "bias"][FORGET * H: (FORGET + 1) * H] += 1.0


CANDIDATES = {"fan-in": fan_in_init, "pytorch": pytorch_init,
              "pytorch-forget1": pytorch_forget1_init, "pytorch-bias2x": pytorch_init}
BIAS_RATES = {"pytorch-bias2x": 2.0}  # the LSTM biases' learning rate, times the others'


def scale_bias_rate(optimizer: Adam, rate: float) -> None:
    """Make ``optimizer`` (used by one process: ``threads=1``) move every recurrent
    layer's bias ``rate`` times as far as its other parameters."""
    def update_(params, grads, lr=None, grad_scale=1.0):
        step_size = optimizer.next_step_size(lr)
        for name, param in params.items():
            scale = rate if name.endswith(".bias") and name != "output.bias" else 1.0
            optimizer.update_arrays_(param, grads[name], optimizer.first_moment[name],
                                     optimizer.second_moment[name], optimizer._scratch[name],
                                     scale * step_size, grad_scale)
    optimizer.update_ = update_


def one_run(text: str, init: str, seed: int, settings: TrainSettings, config_args: dict) -> dict:
    """Train one candidate from one seed; its held-out loss halfway and at the end."""
    corpus = held_out_corpus(text)
    config = ModelConfig(corpus.vocab.size, **config_args)
    rng = np.random.default_rng(seed)
    params = {name: array.astype(np.float32) for name, array in
              CANDIDATES[init](config, rng).items()}
    trainer = trainer_from(params, corpus, config, settings, rng)
    if init in BIAS_RATES:
        scale_bias_rate(trainer.optimizer, BIAS_RATES[init])
    held_out = {}
    while trainer.position.step < settings.max_steps:
        trainer.train_step()
        if trainer.position.step in (settings.max_steps // 2, settings.max_steps):
            held_out[trainer.position.step] = round(held_out_loss(trainer.model, corpus), 4)
    return {"text": text, "init": init, "seed": seed, "held_out": held_out}


def print_table(rows: list[dict], steps: int) -> None:
    click.echo(f"\n{'init':<16} " + " ".join(f"{os.path.basename(text):>30}"
                                            for text in dict.fromkeys(r["text"] for r in rows)))
    for init in dict.fromkeys(row["init"] for row in rows):
        cells = []
        for text in dict.fromkeys(row["text"] for row in rows):
            losses = [row["held_out"][steps] for row in rows
                      if row["init"] == init and row["text"] == text]
            cells.append(f"{np.mean(losses):.4f} ({' '.join(f'{x:.3f}' for x in losses)})")
        click.echo(f"{init:<16} " + " ".join(f"{cell:>30}" for cell in cells))


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--text", "texts", multiple=True, default=["data/tinyshakespeare.txt"],
              show_default=True, help="A text file to train on (repeat for several).")
@click.option("--inits", default=",".join(CANDIDATES), show_default=True,
              help="Comma-separated candidates.")
@click.option("--seeds", default="1,2,3", show_default=True)
@click.option("--steps", default=400, show_default=True)
@click.option("--jobs", default=1, show_default=True, help="Runs at a time (processes).")
def main(texts, inits, seeds, steps, jobs):
    settings = TrainSettings(seq_length=64, batch_size=64, lr=3e-3, lr_schedule="constant",
                             clip=5.0, max_steps=steps, threads=1)  # --jobs runs side by side
    config_args = {"embedding_size": 64, "hidden_size": 256, "num_layers": 2}
    # Seed by seed, so that a sweep cut short still compares every candidate on every text.
    tasks = [(text, init, int(seed)) for seed in seeds.split(",") for text in texts
             for init in inits.split(",")]
    with ProcessPoolExecutor(jobs) as pool:
        futures = [pool.submit(one_run, *task, settings, config_args) for task in tasks]
        rows = []
        for future in futures:
            rows.append(future.result())
            click.echo(json.dumps(rows[-1]), err=True)
    print_table(rows, steps)


if __name__ == "__main__":
    main()
