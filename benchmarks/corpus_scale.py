"""Time and memory to load a big training corpus, cold and from the cache.

Generates a UTF-8 corpus of the given size (tinyshakespeare repeated, with a
line of accented, Greek, CJK and emoji text every 40 lines, so the
vocabulary is realistic: 131 tokens), once, under ``/tmp/charrnn-corpus-bench``,
where later runs reuse it. Then each measurement runs in a fresh
process and prints one JSON line: seconds and peak RSS (ru_maxrss) to build
the vocabulary and the token array

- cold: an empty cache folder (the first `charrnn train` on the file,
  writing the cache included);
- warm: the same again, the cache now filled;
- records-cold: the records layout (split at newlines), empty cache;

and with ``--gigabyte`` (a 1 GB corpus), the time until the first training
step of a small model is done, cold and warm. A table follows.

    python benchmarks/corpus_scale.py                 # 100 MB
    python benchmarks/corpus_scale.py --size-mb 20
    python benchmarks/corpus_scale.py --gigabyte
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHAKESPEARE = REPO / "data" / "tinyshakespeare.txt"
WORK_DIR = Path("/tmp/charrnn-corpus-bench")
FOREIGN_LINES = ["Ça ira, déjà vu: naïve façade, Ærø, smørrebrød, Łódź.",
                 "Ἐν ἀρχῇ ἦν ὁ λόγος — Μῆνιν ἄειδε θεά.",
                 "春眠不覺曉，處處聞啼鳥。夜來風雨聲，花落知多少。",
                 "Emoji too: 🎭🌹🗡️👑 — and “curly quotes” … ½ ≠ ∞."]


def corpus_path(size_mb: int) -> Path:
    """A corpus of about ``size_mb`` MiB (whole copies of the text), written once and reused."""
    path = WORK_DIR / f"corpus-{size_mb}mb.txt"
    if path.exists():
        return path
    lines = SHAKESPEARE.read_text(encoding="utf-8").splitlines(keepends=True)
    for index in range(40, len(lines), 40):
        lines[index] = FOREIGN_LINES[index // 40 % len(FOREIGN_LINES)] + "\n"
    block = "".join(lines).encode("utf-8")
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with open(partial, "wb") as file:
        for _ in range(-(-(size_mb << 20) // len(block))):
            file.write(block)
    partial.rename(path)
    return path


def measure(kind: str, path: str, cache_dir: str) -> dict:
    """Run in a fresh process: load the corpus (and, for "train", take one step)."""
    start = time.monotonic()
    from charrnn.data.corpus import load_corpus
    records = kind.startswith("records")
    corpus = load_corpus(path, records=records, delimiter="\n", val_fraction=0.05,
                         cache_dir=Path(cache_dir))
    result = {"seconds": time.monotonic() - start}
    if kind.startswith("train"):
        from charrnn.nn.model import ModelConfig
        from charrnn.training.settings import TrainSettings
        from charrnn.training.trainer import new_trainer
        settings = TrainSettings(batch_size=32, seq_length=50, max_steps=1)
        config = ModelConfig(corpus.vocab.size, embedding_size=16, hidden_size=64, num_layers=1)
        trainer = new_trainer(corpus, config, settings, Path(cache_dir) / "model.npz")
        trainer.train_step()
        result["seconds_to_first_step"] = time.monotonic() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {**result, "peak_rss_mb": round(peak_mb, 1),
            "tokens": len(corpus.train_tokens) + len(corpus.val_tokens),
            "vocab_size": corpus.vocab.size, "dtype": str(corpus.train_tokens.dtype)}


def run_measurement(kind: str, path: Path, cache_dir: Path) -> dict:
    command = [sys.executable, __file__, "--measure", kind, str(path), str(cache_dir)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--gigabyte", action="store_true",
                        help="a 1 GB corpus, timed until the first training step is done")
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return

    size_mb = 1024 if args.gigabyte else args.size_mb
    path = corpus_path(size_mb)
    file_mb = path.stat().st_size / (1 << 20)
    cache_dir = WORK_DIR / "cache"
    kinds = ["train-cold", "train-warm"] if args.gigabyte else ["cold", "warm", "records-cold"]
    results = []
    for kind in kinds:
        if kind.endswith("cold"):
            shutil.rmtree(cache_dir, ignore_errors=True)
        result = {"measurement": kind, "file_mb": round(file_mb, 1),
                  **run_measurement(kind, path, cache_dir)}
        print(json.dumps(result), flush=True)
        results.append(result)
    shutil.rmtree(cache_dir, ignore_errors=True)

    print(f"\n{'measurement':<14}{'seconds':>9}{'first step':>12}{'peak RSS MB':>13}{'x file':>8}")
    for result in results:
        first_step = result.get("seconds_to_first_step")
        print(f"{result['measurement']:<14}{result['seconds']:>9.2f}"
              f"{'' if first_step is None else f'{first_step:.2f}':>12}"
              f"{result['peak_rss_mb']:>13.0f}{result['peak_rss_mb'] / file_mb:>8.2f}")


if __name__ == "__main__":
    main()
