"""How exact and how fast scoring is: the shipped model on the end of tinyshakespeare, scored
in one sequential pass, and batched with each stream warmed up on the text before it (0: every
stream from a zero state, as before).

    python benchmarks/eval_exact.py [--chars 100000] [--warmup 0 25 50 100]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from charrnn.data.corpus import text_tokens
from charrnn.nn.scoring import WARMUP_LENGTH, score_tokens
from charrnn.saving.checkpoint import load_checkpoint
from charrnn.saving.shipped import pretrained_model

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=100_000)
    parser.add_argument("--warmup", type=int, nargs="+", default=[0, 25, WARMUP_LENGTH, 100])
    args = parser.parse_args()
    checkpoint = load_checkpoint(pretrained_model())
    text = (REPO / "data" / "tinyshakespeare.txt").read_text(encoding="utf-8")[-args.chars:]
    tokens, _ = text_tokens(text, checkpoint.vocab, None)
    runs = [(f"batched, warm-up {warmup}", {"warmup": warmup}) for warmup in args.warmup]
    for name, options in runs + [("one sequential pass", {"batch_size": 1})]:
        start = time.perf_counter()
        score = score_tokens(checkpoint.model, tokens, **options)
        seconds = time.perf_counter() - start
        print(f"{name:24s} {score.nats_per_char:.5f} nats/char  {seconds:6.2f} s  "
              f"{len(text) / seconds:9,.0f} chars/s", flush=True)


if __name__ == "__main__":
    main()
