"""Train with charrnn's default settings on tinyshakespeare for a fixed time.

Prints the validation loss (nats and bits per character) and the training
speed, as one JSON line and a short summary.

    python benchmarks/train_shakespeare.py            # 5 minutes
    python benchmarks/train_shakespeare.py --seconds 60
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

from charrnn.data.corpus import build_corpus
from charrnn.data.sources import read_text
from charrnn.nn.model import ModelConfig
from charrnn.training.settings import DEFAULT_MAX_EPOCHS, TrainSettings
from charrnn.training.trainer import new_trainer

REPO = Path(__file__).resolve().parent.parent
CORPUS_CANDIDATES = [REPO.parent / "shared" / "data" / "tinyshakespeare.txt",
                     REPO / "data" / "tinyshakespeare.txt"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--corpus", type=Path,
                        default=next(p for p in CORPUS_CANDIDATES if p.exists()))
    args = parser.parse_args()

    settings = TrainSettings(max_time=args.seconds, max_epochs=DEFAULT_MAX_EPOCHS * 100)
    corpus = build_corpus(read_text(str(args.corpus)), records=False, delimiter="\n",
                          val_fraction=settings.val_fraction)
    config = ModelConfig(corpus.vocab.size)  # the defaults of `charrnn train`
    with tempfile.TemporaryDirectory() as folder:
        trainer = new_trainer(corpus, config, settings, Path(folder) / "bench.npz")
        start = time.monotonic()
        last = {}

        def report(event):
            if event.kind != "step":
                last.update(step=event.step, val=event.val_loss, speed=event.chars_per_sec)
                print(f"  step {event.step:5d}  epoch {event.epoch:5.2f}  "
                      f"val {event.val_loss:.4f} nats/char  {event.chars_per_sec:,.0f} chars/s",
                      file=sys.stderr)

        trainer.run(report)
        seconds = time.monotonic() - start
    result = {
        "benchmark": "train_shakespeare", "seconds": round(seconds, 1),
        "steps": last["step"], "epochs": round(trainer.epochs_done(), 3),
        "val_nats_per_char": round(last["val"], 4),
        "val_bits_per_char": round(last["val"] / math.log(2), 4),
        "best_val_nats_per_char": round(trainer.plateau.best_val_loss, 4),
        "train_chars_per_sec": round(last["speed"]),
        "model": config.to_dict(), "machine": platform.processor() or platform.machine(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
