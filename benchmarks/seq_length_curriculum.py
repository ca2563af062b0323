"""Does growing the window length (a curriculum) reach a validation loss sooner?

Trains the default model on tinyshakespeare twice for the same time, once
with fixed windows of 100 steps and once with --seq-length-schedule 25:100,
evaluating often, and prints the seconds each took to reach a few
validation losses, and its final loss, as JSON lines and a table.

    python benchmarks/seq_length_curriculum.py --seconds 150
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from charrnn.data.corpus import load_corpus
from charrnn.nn.model import ModelConfig
from charrnn.training.settings import TrainSettings
from charrnn.training.trainer import new_trainer

REPO = Path(__file__).resolve().parent.parent
CORPUS_CANDIDATES = [REPO.parent / "shared" / "data" / "tinyshakespeare.txt",
                     REPO / "data" / "tinyshakespeare.txt"]
THRESHOLDS = (2.2, 2.0, 1.8, 1.7, 1.6)
RUNS = {"fixed 100": {"seq_length": 100},
        "schedule 25:100": {"seq_length_schedule": "25:100"}}


def run(name: str, layout: dict, seconds: float, corpus_path: Path) -> dict:
    settings = TrainSettings(max_time=seconds, eval_every=25, **layout)
    corpus = load_corpus(str(corpus_path), records=False, delimiter="\n",
                         val_fraction=settings.val_fraction, cache_dir=None)
    curve = []
    with tempfile.TemporaryDirectory() as folder:
        trainer = new_trainer(corpus, ModelConfig(corpus.vocab.size), settings,
                              Path(folder) / "m.npz")

        clock = {"last_step": 0.0, "validating": 0.0}

        def record(event):
            if event.kind == "step":
                clock["last_step"] = event.elapsed
            elif event.val_loss is not None:
                # Seconds of training, without the time spent validating and saving.
                clock["validating"] += event.elapsed - clock["last_step"]
                training_seconds = event.elapsed - clock["validating"]
                curve.append((training_seconds, event.val_loss))
                print(f"  {name}: {training_seconds:6.1f} s  val {event.val_loss:.4f}",
                      file=sys.stderr)

        trainer.run(record)
    reached = {str(t): next((round(s, 1) for s, loss in curve if loss <= t), None)
               for t in THRESHOLDS}
    return {"run": name, "seconds": seconds, "final_val": round(curve[-1][1], 4),
            "best_val": round(min(loss for _, loss in curve), 4),
            "seconds_to_reach": reached}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=150.0)
    args = parser.parse_args()
    corpus_path = next(p for p in CORPUS_CANDIDATES if p.exists())
    results = [run(name, layout, args.seconds, corpus_path) for name, layout in RUNS.items()]
    for result in results:
        print(json.dumps(result))
    print(f"\n{'run':<18}{'final val':>10}" + "".join(f"{'≤' + str(t):>8}" for t in THRESHOLDS))
    for result in results:
        times = "".join(f"{'-' if s is None else f'{s:.0f}s':>8}"
                        for s in result["seconds_to_reach"].values())
        print(f"{result['run']:<18}{result['final_val']:>10.4f}{times}")


if __name__ == "__main__":
    main()
