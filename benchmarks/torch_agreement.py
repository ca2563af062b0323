"""Does PyTorch score a text as charrnn eval does? The ten-line module of docs/python.md,
loaded with load_state_dict(strict=True) from charrnn's safetensors export, against
``TextModel.score`` (what ``charrnn eval`` prints), over the same predictions. ``eval``
scores streams side by side, each warmed up on the text before it (``nn/scoring.py``), so
it also prints charrnn's one sequential pass, which is what the PyTorch module computes.

The shipped 2 x 512 LSTM on the end of tinyshakespeare; with --cells, also a GRU and a
vanilla RNN trained for a few steps here. Run in a venv that has PyTorch and safetensors:

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=. /work/torchvenv/bin/python benchmarks/torch_agreement.py \\
        [--chars 100000] [--cells]
"""

from __future__ import annotations

import argparse
import math
import re
import tempfile
import time
from pathlib import Path

import torch

import charrnn
from charrnn.data.corpus import text_tokens
from charrnn.nn.scoring import score_tokens

REPO = Path(__file__).resolve().parent.parent
SHAKESPEARE = REPO / "data" / "tinyshakespeare.txt"


def docs_module() -> dict:
    """The PyTorch block of docs/python.md, run: CharRNN and load_charrnn."""
    docs = (REPO / "docs" / "python.md").read_text(encoding="utf-8")
    (code,) = re.findall(r"<!-- needs PyTorch[^\n]*-->\n```python\n(.*?)```", docs, re.DOTALL)
    namespace: dict = {}
    exec(compile(code, "docs/python.md (PyTorch)", "exec"), namespace)
    return namespace


def torch_nats_per_char(net, tokens) -> tuple[float, int]:
    """Mean negative log-likelihood of each token after the first, one pass from a zero
    state (the text is one sequence: no <START> inside it), and the predictions scored."""
    inputs = torch.as_tensor(tokens[:-1].astype("int64")).view(-1, 1)  # (T, 1)
    targets = torch.as_tensor(tokens[1:].astype("int64"))  # (T,)
    with torch.no_grad():
        logits, _ = net(inputs)
        log_probs = torch.log_softmax(logits[:, 0].double(), dim=-1)
        total = -log_probs[torch.arange(len(targets)), targets].sum().item()
    return total / len(targets), len(targets)


def compare(name: str, path: Path, text: str, cell: str, folder: Path) -> None:
    model = charrnn.load(path)
    export = folder / f"{name}.safetensors"
    model.export(export)
    net, vocabulary = docs_module()["load_charrnn"](str(export), cell)
    assert vocabulary[2:] == list(model.vocabulary)
    start = time.perf_counter()
    score = model.score(text)
    charrnn_seconds = time.perf_counter() - start
    tokens, _ = text_tokens(text, model.vocab, model.record_delimiter)
    one_pass = score_tokens(model.model, tokens, batch_size=1).nats_per_char
    start = time.perf_counter()
    theirs, predictions = torch_nats_per_char(net, tokens)
    torch_seconds = time.perf_counter() - start
    assert predictions == score.score.num_scored
    print(f"{name}, {predictions:,} predictions: charrnn eval {score.nats_per_char:.6f} "
          f"({charrnn_seconds:.1f} s), PyTorch {theirs:.6f} ({torch_seconds:.1f} s): "
          f"difference {abs(theirs - score.nats_per_char):.1e} nats/char; charrnn in one "
          f"sequential pass {one_pass:.6f}, {abs(theirs - one_pass):.1e} from PyTorch",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=100_000)
    parser.add_argument("--cells", action="store_true",
                        help="also a GRU and an RNN, trained here for 100 steps")
    args = parser.parse_args()
    text = SHAKESPEARE.read_text(encoding="utf-8")[-args.chars:]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; the last "
          f"{len(text):,} characters of tinyshakespeare", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        compare("shipped 2 x 512 LSTM", Path(charrnn.load().path), text, "LSTM", folder)
        for cell in ("gru", "rnn") if args.cells else ():
            out = folder / f"{cell}.npz"
            charrnn.train(str(SHAKESPEARE), out, cell=cell, hidden_size=128, max_steps=100,
                          eval_every=100, threads=1)
            compare(f"2 x 128 {cell.upper()}, 100 steps", out, text, cell.upper(), folder)
    print(f"(1e-4 nats/char is {1e-4 / math.log(2):.1e} bits/char)")


if __name__ == "__main__":
    main()
