"""charrnn against PyTorch with charrnn's own recipe: the held-out loss each reaches in a budget.

For a budget of S seconds, charrnn trains as ``charrnn train TEXT --max-time S``
would: with the recipe of an S-second run on that text (``settings.recipe``:
cell, width, batch, window, learning rate, dropout; the cosine schedule,
clipping). The recipe is then read back from charrnn's checkpoint, and
PyTorch (``nn.Embedding`` -> ``nn.LSTM`` -> ``nn.Linear``, each layer's
output dropped as charrnn drops it; a CIFG LSTM as ``nn.LSTM`` with its input
gate tied to the negated forget gate, see ``vs_pytorch.py``) trains the same
model with it, from the weights charrnn started from: the same windows of the
same streams in the same order, the state carried from window to window and
reset at every epoch and at <START>, the learning rate of charrnn's schedule
over PyTorch's own steps. Two twins do so (``--twin``): "pytorch" with
PyTorch's stock recipe (``torch.optim.Adam``, ``clip_grad_norm_``, both LSTM
biases trained), as a PyTorch user would write it, and "pytorch-matched"
with charrnn's (its Adam, its clipping, one bias), which differs from
charrnn's run only in the number of steps. Both make the steps of PyTorch's
stock speed. All are scored by charrnn in one pass over the end of the text
that ``charrnn train`` holds out (the last 5%). With ``--blind``, charrnn
also trains with the recipe its budget gives blind to the text
(tinyshakespeare's, as runs chose before they looked at the text's length),
where that differs from the text's.

Budgets are counted in steps, not seconds: the machine is shared, and a
wall-clock budget would measure the other users' load as much as either
side. Both sides' speeds at the recipe's step are measured first, in one run,
taking turns (``train_speed.py``'s steps, each side on every core, as a user
runs it); each side then trains for the steps it makes in S seconds at its
speed, S x chars/s / (B x T). Those runs give the same losses however busy
the machine is, so they run ``--jobs`` at a time, each on one core. Each
run's score is saved in ``--out-dir`` beside its checkpoint, so a command run
again makes only the runs it lacks (and resumes a charrnn run stopped
part-way).

    PYTHONPATH=. python benchmarks/same_recipe.py --text tinyshakespeare.txt \\
        --text austen.txt --seconds 120 --seconds 300 --seeds 1,2,3 --out-dir /tmp/same

Run it from a virtual environment that has PyTorch (never a charrnn
dependency); ``--rates FILE`` reuses the speeds of an earlier run
(``rates.json`` in its ``--out-dir``). On a machine busy with other work, the
speeds measured would be those of the load; measure them alone under
``chrt -f 10`` (``--measure-only``), which gives the measurement the cores as on
a quiet machine, then train with ``--rates`` at normal priority.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path

import click
import numpy as np
from sweep_defaults import recipe_flags
from threadpoolctl import threadpool_limits

from charrnn.data.corpus import Corpus, load_corpus
from charrnn.data.windows import Windows, fit_window
from charrnn.nn.model import Model, init_params
from charrnn.nn.optim import Adam
from charrnn.nn.scoring import score_tokens
from charrnn.saving.checkpoint import Checkpoint, load_checkpoint
from charrnn.training.schedules import Progress, learning_rate
from charrnn.training.settings import (DEFAULT_SHARDS, Recipe, TrainSettings, available_cores,
                                       recipe)
from charrnn.training.state import from_checkpoint, saved_settings

ROUNDS = 3  # of the speed measurement, each side timed once a round
# PyTorch's twins of a charrnn run, by name: whether each trains with PyTorch's stock recipe.
TWINS = {"pytorch": True, "pytorch-matched": False}


# -- steps in a budget ---------------------------------------------------------------

def training_chars(text: str) -> int:
    """The training tokens of ``text`` as ``charrnn train`` lays it out, which its recipe
    follows (``settings.recipe``)."""
    return len(load_corpus(text, records=False, delimiter="\n",
                           val_fraction=TrainSettings.val_fraction).train_tokens)


def measure_rates(chosen: Recipe, min_seconds: float) -> dict[str, float]:
    """Both sides' chars/s at the step of the recipe ``chosen``: medians of ROUNDS rounds,
    the sides taking turns, warm-up steps left out."""
    from train_speed import Setup, charrnn_step, time_steps, torch_step

    setup = Setup("recipe", chosen.hidden_size, chosen.batch_size, chosen.seq_length,
                  cell=chosen.cell)
    charrnn_run, workers = charrnn_step(setup, available_cores(), DEFAULT_SHARDS)
    torch_run = torch_step(setup)
    speeds: dict[str, list[float]] = {"charrnn": [], "pytorch": []}
    try:
        for _ in range(ROUNDS):
            for name, run_step in (("charrnn", charrnn_run), ("pytorch", torch_run)):
                times = time_steps(run_step, 8, min_seconds)
                speeds[name].append(setup.chars_per_step / statistics.median(times))
    finally:
        workers.close()
    click.echo(f"chars/s at the step {step_shape(chosen)}, by round: {json.dumps(speeds)}",
               err=True)
    return {name: statistics.median(values) for name, values in speeds.items()}


def step_shape(chosen: Recipe) -> str:
    """What a side's speed depends on in a recipe: "lstm-cifg 256x32x64" (cell, width,
    batch, window)."""
    return f"{chosen.cell} {chosen.hidden_size}x{chosen.batch_size}x{chosen.seq_length}"


def budget_steps(seconds: float, chosen: Recipe, chars_per_sec: float) -> int:
    return round(seconds * chars_per_sec / (chosen.batch_size * chosen.seq_length))


# -- one seed: charrnn, then PyTorch with the recipe from its checkpoint ----------------

def train_charrnn(text: str, options: list[str], steps: int, seed: int,
                  checkpoint: Path) -> None:
    """``charrnn train`` for ``steps`` steps with the recipe ``options``, on one core,
    validating only at the end. A run already there is kept if it made its steps, else
    resumed (bit for bit) from where it was stopped."""
    if checkpoint.exists():
        if from_checkpoint(load_checkpoint(checkpoint)).position.step >= steps:
            return
        start = [text, "--resume", str(checkpoint)]
    else:
        start = [text, "--out", str(checkpoint), "--seed", str(seed), *options]
    command = [sys.executable, "-m", "charrnn", "train", *start, "--max-steps", str(steps),
               "--eval-every", str(steps), "--threads", "1"]
    subprocess.run(command, check=True, capture_output=True,
                   env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})


def train_torch(checkpoint: Checkpoint, corpus: Corpus, steps: int, stock: bool) -> Model:
    """PyTorch trained for ``steps`` steps on ``corpus`` with the recipe and the initial
    weights of the charrnn run saved in ``checkpoint``: PyTorch's stock Adam and both LSTM
    biases, or (not ``stock``) charrnn's Adam and one bias (``vs_pytorch.TorchRun``)."""
    import torch
    from vs_pytorch import TorchRun

    torch.set_num_threads(1)
    settings = replace(saved_settings(checkpoint), max_steps=steps, max_epochs=None,
                       max_time=None)
    torch.manual_seed(settings.seed)  # its dropout masks
    config = checkpoint.model.config
    params = init_params(config, np.random.default_rng(settings.seed))  # as new_trainer does
    batch_size, longest = fit_window(len(corpus.train_tokens), settings.batch_size,
                                     settings.seq_length)
    windows = Windows(corpus.train_tokens, batch_size, longest)
    run = TorchRun(params, config, settings, batch_size, Adam(params, settings.lr), stock)
    epoch, offset = 0, 0
    for step in range(steps):
        if offset + longest > windows.stream_length:  # as Trainer._next_epoch
            epoch, offset = epoch + 1, 0
            run.state = run.zero_state
        inputs, targets = windows.span(offset, longest)
        epochs = epoch + offset / windows.stream_length
        run.step(inputs, targets, learning_rate(settings, Progress(step, epochs, 0.0)))
        offset += longest
    return Model(config, run.model.charrnn_params())


def one_seed(text: str, seconds: float, seed: int, steps: dict[str, int],
             options: dict[str, list[str]], twins: tuple[str, ...], out_dir: Path) -> dict:
    """charrnn's runs, each with its recipe's ``options`` ("charrnn": the text's recipe;
    "blind", if asked for: the budget's alone), then PyTorch's ``twins`` from the first
    one's recipe, all scored on the held-out text in one pass. A run already made, its
    score saved, is not made again; a charrnn run stopped part-way is resumed."""
    threadpool_limits(1, "blas")
    stem = f"{Path(text).stem}-{seconds:g}s-seed{seed}"
    checkpoints = {name: out_dir / (f"{stem}.npz" if name == "charrnn" else f"{stem}-{name}.npz")
                   for name in options}
    for name, path in checkpoints.items():
        train_charrnn(text, options[name], steps[name], seed, path)
    checkpoint = load_checkpoint(checkpoints["charrnn"])
    settings = saved_settings(checkpoint)
    corpus = load_corpus(text, records=settings.records, delimiter=settings.delimiter,
                         val_fraction=settings.val_fraction, vocab=checkpoint.vocab)

    def trained(name: str) -> Model:
        if name in TWINS:
            return train_torch(checkpoint, corpus, steps[name], stock=TWINS[name])
        return checkpoint.model if name == "charrnn" else load_checkpoint(checkpoints[name]).model

    held_out = {name: saved_score(out_dir / f"{stem}-{name}.json", steps[name],
                                  lambda: one_pass_score(trained(name), corpus.val_tokens))
                for name in (*options, *twins)}
    return {"text": Path(text).name, "seconds": seconds, "seed": seed, "steps": steps,
            "held_out": held_out}


def saved_score(path: Path, steps: int, score: Callable[[], float]) -> float:
    """The held-out score saved in ``path`` for a run of ``steps`` steps, else ``score()``,
    then saved there."""
    saved = json.loads(path.read_text()) if path.exists() else {}
    if saved.get("steps") == steps:
        return saved["held_out"]
    held_out = round(score(), 4)
    path.write_text(json.dumps({"steps": steps, "held_out": held_out}))
    return held_out


def one_pass_score(model: Model, tokens) -> float:
    """Nats/char of ``tokens`` read once from a zero state (``score_tokens`` with one stream):
    exact for any model, where its default streams, each warmed up on 50 tokens, assume that
    a model's state settles that fast (one of PyTorch's CIFG models scored 1.748 that way and
    1.5267 in one pass)."""
    return score_tokens(model, tokens, batch_size=1).nats_per_char


# -- the table ----------------------------------------------------------------------------

def print_table(rows: list[dict]) -> None:
    """Each text and budget's means over its seeds: charrnn's, then each other run's (the
    twins, and charrnn blind to the text where it was run) and its lead over charrnn."""
    for key in dict.fromkeys((row["text"], row["seconds"]) for row in rows):
        runs = [row for row in rows if (row["text"], row["seconds"]) == key]
        mean = {name: statistics.mean(row["held_out"][name] for row in runs)
                for name in runs[0]["held_out"]}
        click.echo(f"\n{key[0]}, {key[1]:g} s, {len(runs)} seed(s): held-out nats/char")
        for name, loss in mean.items():
            against = "" if name == "charrnn" else f"  charrnn - {name}: " \
                f"{mean['charrnn'] - loss:+.4f}"
            click.echo(f"  {name:<16} {runs[0]['steps'][name]:>6,} steps  {loss:.4f}{against}")


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--text", "texts", multiple=True, required=True, help="A text (repeatable).")
@click.option("--seconds", "budgets", multiple=True, type=float, default=[120.0],
              show_default=True, help="A time budget (repeatable).")
@click.option("--seeds", default="1,2,3", show_default=True)
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Where the checkpoints, rates.json and results.jsonl go.")
@click.option("--rates", "rates_file", type=click.Path(dir_okay=False, path_type=Path),
              help="The chars/s of an earlier run's rates.json instead of measuring them.")
@click.option("--measure-seconds", default=5.0, show_default=True,
              help="Timed seconds of each side in each round of the speed measurement.")
@click.option("--measure-only", is_flag=True,
              help="Only measure the speeds (to run under chrt -f on a busy machine).")
@click.option("--blind", is_flag=True,
              help="Also train charrnn with the budget's recipe blind to the text's length "
                   "(where that differs), as runs were before they looked at it.")
@click.option("--twin", "twins", multiple=True, type=click.Choice(list(TWINS)),
              default=list(TWINS), show_default=True,
              help="PyTorch's twins (repeatable): pytorch, its stock recipe (torch.optim.Adam, "
                   "both LSTM biases); pytorch-matched, charrnn's Adam and one bias.")
@click.option("--jobs", default=available_cores(), show_default=True,
              type=click.IntRange(min=1), help="Training runs at a time, one core each.")
def main(texts, budgets, seeds, out_dir, rates_file, measure_seconds, measure_only, blind,
         twins, jobs):
    out_dir.mkdir(parents=True, exist_ok=True)
    # The recipe of each text and budget, as `charrnn train TEXT --max-time S` picks it.
    text_chars = {text: training_chars(text) for text in texts}
    chosen = {(text, seconds): {"charrnn": recipe(None, None, seconds, text_chars[text])}
              for text in texts for seconds in budgets}
    if blind:  # the budget's recipe alone, where the text changes it
        for (text, seconds), recipes in chosen.items():
            budget_alone = recipe(None, None, seconds)
            if budget_alone != recipes["charrnn"]:
                recipes["blind"] = budget_alone
    if rates_file is not None:
        rates = json.loads(rates_file.read_text())
    else:  # one measurement per step shape: the recipes may share one
        rates = {}
        for each in (each for recipes in chosen.values() for each in recipes.values()):
            if step_shape(each) not in rates:
                rates[step_shape(each)] = measure_rates(each, measure_seconds)
        (out_dir / "rates.json").write_text(json.dumps(rates, indent=1))
    if measure_only:
        return
    work = []
    for (text, seconds), recipes in chosen.items():
        steps = {name: budget_steps(seconds, each, rates[step_shape(each)]["charrnn"])
                 for name, each in recipes.items()}
        torch_steps = budget_steps(seconds, recipes["charrnn"],
                                   rates[step_shape(recipes["charrnn"])]["pytorch"])
        steps.update({twin: torch_steps for twin in twins})
        options = {name: recipe_flags(each) for name, each in recipes.items()}
        work += [(text, seconds, int(seed), steps, options, twins)
                 for seed in seeds.split(",")]
    rows = []
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool, \
            open(out_dir / "results.jsonl", "a") as results:
        futures = [pool.submit(one_seed, *args, out_dir) for args in work]
        for future in futures:
            rows.append(future.result())
            line = json.dumps(rows[-1])
            click.echo(line)
            results.write(line + "\n")
            results.flush()
    print_table(rows)


if __name__ == "__main__":
    main()
