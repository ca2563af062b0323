"""The PyTorch baseline of the issue tracker: what a short PyTorch script gets in T seconds.

The same model as charrnn's default (embedding 64 -> 2 x LSTM 256 -> linear),
trained the plain PyTorch way (``torch.optim.Adam``, ``clip_grad_norm_`` at 5,
the learning rate decayed by a cosine to a tenth over the time budget) with
truncated backpropagation through time over B contiguous streams, the state
carried from window to window, on exactly the text charrnn trains on (the
first 95% of the file); scored on the last 5% in 16 streams of 200-step
windows with the state carried, i.e. the same characters ``charrnn eval``
scores for a ``charrnn train`` checkpoint. PyTorch is never a charrnn
dependency: run it from a virtual environment that has torch.

    OMP_NUM_THREADS=2 /work/torchvenv/bin/python benchmarks/pytorch_baseline.py --seconds 300
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parent.parent
VAL_FRACTION = 0.05


class CharLSTM(nn.Module):
    def __init__(self, vocab_size: int, embedding_size=64, hidden_size=256, num_layers=2):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.lstm = nn.LSTM(embedding_size, hidden_size, num_layers)
        self.output = nn.Linear(hidden_size, vocab_size)

    def forward(self, inputs, state):  # inputs (T, B) -> logits (T, B, V)
        hidden, state = self.lstm(self.embedding(inputs), state)
        return self.output(hidden), state


def streams(tokens: np.ndarray, batch_size: int) -> torch.Tensor:
    """The tokens cut into ``batch_size`` contiguous rows, time-major: (L, B)."""
    length = len(tokens) // batch_size
    return torch.from_numpy(tokens[: length * batch_size].reshape(batch_size, length).T.copy())


def held_out_loss(model: CharLSTM, tokens: np.ndarray, window=200, rows=16) -> float:
    data, state, total, count = streams(tokens, rows), None, 0.0, 0
    with torch.no_grad():
        for start in range(0, len(data) - 1, window):
            inputs, targets = data[start: start + window], data[start + 1: start + window + 1]
            logits, state = model(inputs[: len(targets)], state)
            total += nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(),
                                                 reduction="sum").item()
            count += targets.numel()
    return total / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", type=Path, default=REPO / "data" / "tinyshakespeare.txt")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seq-length", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    text = args.text.read_text(encoding="utf-8")
    chars = sorted(set(text))
    index = {char: i for i, char in enumerate(chars)}
    tokens = np.fromiter((index[char] for char in text), dtype=np.int64, count=len(text))
    cut = len(text) - int(len(text) * VAL_FRACTION)
    train, held_out = streams(tokens[:cut], args.batch_size), tokens[cut:]
    model = CharLSTM(len(chars))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    state, position, steps, started = None, 0, 0, time.monotonic()
    while (elapsed := time.monotonic() - started) < args.seconds:
        progress = elapsed / args.seconds
        for group in optimizer.param_groups:
            group["lr"] = args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
        if position + args.seq_length + 1 > len(train):
            state, position = None, 0
        inputs = train[position: position + args.seq_length]
        targets = train[position + 1: position + args.seq_length + 1]
        logits, state = model(inputs, state)
        state = tuple(s.detach() for s in state)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        position, steps = position + args.seq_length, steps + 1
    print(f"pytorch {torch.__version__}, {torch.get_num_threads()} threads: {steps} steps in "
          f"{args.seconds:g} s, held-out {held_out_loss(model, held_out):.4f} nats/char")


if __name__ == "__main__":
    main()
