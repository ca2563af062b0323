"""Sweep training settings for a time budget: which defaults give the best model in T seconds?

Each configuration trains with ``charrnn train`` on the first 95% of
tinyshakespeare (the default split) and is scored with ``charrnn eval`` on the
held-out last 5%, exactly as a user would run it:

    python benchmarks/sweep_defaults.py --seconds 300                  # every configuration
    python benchmarks/sweep_defaults.py --seconds 120 --configs base,b32
    python benchmarks/sweep_defaults.py --seconds 300 --rates rates.json
    python benchmarks/sweep_defaults.py --seconds 300 --steps 3750 --seeds 1,2 --configs base

Budgets are wall-clock seconds (``--max-time``). On a machine that is busy
with other work, wall-clock budgets are unfair, so the sweep can instead give
each configuration the number of steps it makes in T seconds on a quiet
machine: ``--measure-rates`` times every configuration (steps per second of a
real ``--max-time`` run, validation and saving included) and writes them as
JSON; ``--rates FILE`` then runs each configuration for ``T x rate`` steps,
with the schedule planned over those steps; ``--steps N`` gives every
configuration N steps (those the defaults make in T seconds), for runs that
change nothing of a step's cost. A step-budget run is limited by steps, so
it is given the defaults of a T-second run (``settings.recipe``) as options,
which a configuration's own options then replace. Two step-budget runs side by side, one
core each, want ``--train-options '--threads 1'`` and OPENBLAS_NUM_THREADS=1
in the environment (OpenBLAS's two threads per run, four on two cores, made
each run seven times slower). Prints one Markdown table row per run and a
JSON line per run on stderr.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from charrnn.cli.output import option_of as flag
from charrnn.training.settings import Recipe, recipe

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "data" / "tinyshakespeare.txt"
VAL_FRACTION = 0.05  # charrnn train's default: the last 5% is held out

# Each configuration: the options given to `charrnn train` besides the budget.
# "base" is whatever the defaults are in the code being measured.
CONFIGS: dict[str, list[str]] = {
    "base": [],
    "b32": ["--batch-size", "32"],
    "b32-lr2e-3": ["--batch-size", "32", "--lr", "2e-3"],
    "lr5e-3": ["--lr", "5e-3"],
    "t100": ["--seq-length", "100"],
    "t32": ["--seq-length", "32"],
    "h384": ["--hidden-size", "384"],
    "h512": ["--hidden-size", "512"],
    "h192x3": ["--hidden-size", "192", "--num-layers", "3"],
    "drop0": ["--dropout", "0"],
    "drop0.1": ["--dropout", "0.1"],
    "drop0.2": ["--dropout", "0.2"],
    "drop0.35": ["--dropout", "0.35"],
    "drop0.5": ["--dropout", "0.5"],
    "drop0.2-h384": ["--dropout", "0.2", "--hidden-size", "384"],
    "eval500": ["--eval-every", "500"],
    # The cell of the recipes over 200 s, and of every recipe before the CIFG LSTM.
    "lstm": ["--cell", "lstm"],
    "lstm-drop0.2": ["--cell", "lstm", "--dropout", "0.2"],
    # The step at which charrnn trains as fast as PyTorch (issue 21, item 1).
    "b64-t100": ["--batch-size", "64", "--seq-length", "100"],
    # The recipe of a run of over 1,200 s, and the 2 x 256 model with the dropout of a run of
    # 500 to 1,200 s (settings.TIME_BUDGET_DEFAULTS): compared at 600 s.
    "long": ["--hidden-size", "512", "--batch-size", "64", "--seq-length", "100", "--lr", "2e-3",
             "--dropout", "0.35"],
    "standard-drop0.2": ["--hidden-size", "256", "--batch-size", "32", "--seq-length", "64",
                         "--lr", "3e-3", "--dropout", "0.2"],
}


def recipe_options(seconds: float, text_chars: int | None = None) -> list[str]:
    """The options that give a run limited by steps the defaults of a ``seconds`` run: on a
    text of ``text_chars`` training tokens, else those measured on tinyshakespeare."""
    return recipe_flags(recipe(None, None, seconds, text_chars))


def recipe_flags(chosen: Recipe) -> list[str]:
    """``charrnn train``'s options that give a run the recipe ``chosen``."""
    return [option for name, value in asdict(chosen).items()
            for option in (flag(name), str(value))]


def charrnn(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "charrnn", *args]
    return subprocess.run(command, capture_output=True, text=True, check=True)


def held_out_file(corpus: Path, directory: Path) -> Path:
    """The last 5% of the corpus's characters, as the trainer holds them out."""
    text = corpus.read_text(encoding="utf-8")
    path = directory / "held_out.txt"
    path.write_text(text[len(text) - int(len(text) * VAL_FRACTION):], encoding="utf-8")
    return path


def train_and_score(corpus: Path, name: str, budget: list[str], seed: int, directory: Path,
                    held_out: Path, extra: list[str]) -> dict:
    checkpoint = directory / f"{name}-{seed}.npz"
    started = time.monotonic()
    charrnn("train", str(corpus), "--out", str(checkpoint), "--seed", str(seed),
            *budget, *CONFIGS[name], *extra)
    seconds = time.monotonic() - started
    training = json.loads(charrnn("info", "--json", str(checkpoint)).stdout)["training"]
    score = json.loads(charrnn("eval", "--json", str(checkpoint), str(held_out)).stdout)
    return {"config": name, "seed": seed, "steps": training["steps"],
            "train_seconds": round(training["seconds"], 1), "wall_seconds": round(seconds, 1),
            "held_out": round(score["nats_per_char"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, required=True, help="the time budget T")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="the text to train on")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help="comma-separated names among: " + ", ".join(CONFIGS))
    parser.add_argument("--seeds", default="1", help="comma-separated seeds")
    parser.add_argument("--rates", type=Path, help="steps per second per configuration "
                        "(from --measure-rates): run T x rate steps instead of T seconds")
    parser.add_argument("--steps", type=int, help="run every configuration for this many steps "
                        "instead of T seconds")
    parser.add_argument("--train-options", default="", help="more options for every run, "
                        "e.g. '--threads 1' for step-budget runs beside other work")
    parser.add_argument("--measure-rates", action="store_true",
                        help="train each configuration for T seconds; print its steps per second")
    args = parser.parse_args()
    names = args.configs.split(",")
    unknown = [name for name in names if name not in CONFIGS]
    if unknown:
        parser.error(f"unknown configurations: {', '.join(unknown)}")
    rates = json.loads(args.rates.read_text()) if args.rates else None

    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        held_out = held_out_file(args.corpus, directory)
        results = {}
        if not args.measure_rates:
            print("| config | options | seed | budget | steps | held-out nats/char |")
            print("|---|---|---:|---|---:|---:|")
        for name in names:
            for seed in map(int, args.seeds.split(",")):
                if rates or args.steps:
                    steps = args.steps or round(args.seconds * rates[name])
                    budget = ["--max-steps", str(steps), *recipe_options(args.seconds)]
                    label = f"{steps} steps (= {args.seconds:g} s)"
                else:
                    budget, label = ["--max-time", str(args.seconds)], f"{args.seconds:g} s"
                result = train_and_score(args.corpus, name, budget, seed, directory, held_out,
                                         shlex.split(args.train_options))
                print(json.dumps(result), file=sys.stderr, flush=True)
                if args.measure_rates:
                    results[name] = round(result["steps"] / result["train_seconds"], 4)
                else:
                    options = " ".join(CONFIGS[name]) or "(defaults)"
                    print(f"| {name} | `{options}` | {seed} | {label} | {result['steps']} | "
                          f"{result['held_out']:.4f} |", flush=True)
        if args.measure_rates:
            print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
