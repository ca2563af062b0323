"""Side by side with PyTorch: the same model, from the same weights, on the same windows.

For each text and seed, charrnn's own training loop (``Trainer.train_step``)
and PyTorch train the same model (embedding -> stacked LSTM -> linear) from
charrnn's initial weights, copied into torch, on the windows charrnn's loop
reads, step for step, in one process:

- charrnn: the library's trainer, through ``train_step``.
- pytorch: ``nn.Embedding``, ``nn.LSTM``, ``nn.Linear`` with everything else
  made to match charrnn: the recurrent state carried across windows (and
  reset at an epoch's start and at <START> inputs), the mean loss over
  scored targets, clipping by global norm (only when over the limit, with no
  1e-6 in the divisor), charrnn's Adam (both bias corrections folded into the
  step size, so eps is added before the second-moment correction, as in
  ``optim.py``; ``torch.optim.Adam`` adds it after) at the rate charrnn's
  schedule gave that step, and one bias per layer (``bias_hh`` held at zero:
  with both trained, Adam moves their sum twice as far as charrnn's one
  bias, and the gradient norm counts its gradient twice).
- pytorch-stock (``--stock``): the plain PyTorch recipe from the same
  weights: ``torch.optim.Adam``, ``clip_grad_norm_`` and both biases trained.

The gates map as charrnn's columns i, f, o, g -> torch's rows i, f, g, o.
A CIFG LSTM (``--cell lstm-cifg`` in a checkpoint that ``same_recipe.py``
reads) trains in ``nn.LSTM`` with its input gate's rows tied to the negated
forget gate's (``couple_input_and_forget_``): PyTorch's fused LSTM kernel
computing charrnn's CIFG exactly.
From identical weights, charrnn and pytorch must agree within float32 noise
on the training loss of every step: a check of the whole loop (windows,
state, loss, clipping, Adam, schedule), not only of the gradients. Run with
``--float64`` for a tighter check.

It prints the training losses of both every ``--print-every`` steps, the
held-out loss every ``--eval-every`` steps, and per run and per text (means
over the seeds): the held-out loss at equal steps (the last) and at equal
seconds (when the fastest finished; the others' loss interpolated linearly in
training time between evaluations). Scoring is charrnn's ``score_tokens`` on
the last 100,000 characters of each text (see ``heldout.py``) for every run:
torch's weights are copied back into a charrnn model to be scored.

Threads: ``--threads N`` (default: the cores available) is charrnn's
``TrainSettings.threads`` (worker processes sharing each step) and torch's
``set_num_threads``.

Texts (no network; see ``texts.py`` for how each file is made):
tinyshakespeare (``data/``) and Jane Austen's six novels from Debian's
r-cran-janeaustenr package, a different English prose. The Python standard
library's source is a third, very different kind of text.

PyTorch is not a charrnn dependency: run this from a virtual environment that
has it, with PYTHONPATH pointing at charrnn:

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install numpy click rich torch==2.13.0
    /tmp/torchvenv/bin/pip install threadpoolctl   # charrnn's own dependency
    PYTHONPATH=. /tmp/torchvenv/bin/python benchmarks/vs_pytorch.py \\
        --text data/tinyshakespeare.txt --text austen.txt --seeds 1,2,3 --steps 200 --stock
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field

import click
import numpy as np
from heldout import held_out_corpus, held_out_loss, trainer_from

from charrnn.data.vocab import START_ID
from charrnn.nn.cells import CELLS
from charrnn.nn.model import Model, ModelConfig, Params, init_params
from charrnn.nn.optim import Adam
from charrnn.training.settings import TrainSettings, available_cores

try:
    import torch
except ImportError:
    torch = None

CHECKED_STEPS = 100  # the steps over which the two training losses must agree


# -- charrnn's weights in torch and back -----------------------------------------

def gate_rows(H: int) -> np.ndarray:
    """charrnn's columns i, f, o, g (4H) in torch's row order i, f, g, o."""
    i, f, o, g = (np.arange(k * H, (k + 1) * H) for k in range(4))
    return np.concatenate([i, f, g, o])


def to_torch(array: np.ndarray):
    return torch.from_numpy(np.ascontiguousarray(array))


def couple_input_and_forget_(lstm) -> None:
    """Make an nn.LSTM a CIFG LSTM: in every layer, the input gate's rows of the weights and
    biases become the negated forget gate's (``torch.nn.utils.parametrize``), so that
    i = sigmoid(-a_f) = 1 - f in PyTorch's fused kernel, and the gradient of the input
    gate's rows reaches the forget gate's."""
    from torch.nn.utils import parametrize

    H = lstm.hidden_size

    class NegatedForget(torch.nn.Module):
        def forward(self, rows):  # torch's gate rows i, f, g, o
            return torch.cat([-rows[H: 2 * H], rows[H:]])

    for layer in range(lstm.num_layers):
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            parametrize.register_parametrization(lstm, f"{name}_l{layer}", NegatedForget())


class TorchModel:
    """embedding -> nn.LSTM -> linear, made from charrnn's parameters of an LSTM or a CIFG
    LSTM (``couple_input_and_forget_``); with ``dropout``, each layer's output dropped as
    charrnn drops it (nn.LSTM's dropout between the layers, and nn.Dropout on the top
    layer's)."""

    def __init__(self, params: Params, config: ModelConfig, stock: bool, dropout: float = 0.0):
        V, E, H, L = (config.vocab_size, config.embedding_size, config.hidden_size,
                      config.num_layers)
        dtype = torch.float64 if params["output.weight"].dtype == np.float64 else torch.float32
        self.config, self.rows = config, gate_rows(H)
        cell = CELLS[config.cell]
        if cell.pytorch_module != "LSTM":
            raise click.ClickException(f"PyTorch's nn.LSTM cannot train a {config.cell} model")
        self.embedding = torch.nn.Embedding(V, E).to(dtype)
        self.lstm = torch.nn.LSTM(E, H, L, dropout=dropout if L > 1 else 0.0).to(dtype)  # (T, B, ...)
        self.top_dropout = torch.nn.Dropout(dropout)
        self.output = torch.nn.Linear(H, V).to(dtype)
        with torch.no_grad():
            self.embedding.weight.copy_(to_torch(params["embedding"]))
            for layer in range(L):
                Wx, Wh, b = cell.pytorch_weights(*(  # as the plain LSTM's (D, 4H), (H, 4H), (4H,)
                    params[config.layer_prefix(layer) + name]
                    for name in ("input_weight", "hidden_weight", "bias")))
                getattr(self.lstm, f"weight_ih_l{layer}").copy_(to_torch(Wx[:, self.rows].T))
                getattr(self.lstm, f"weight_hh_l{layer}").copy_(to_torch(Wh[:, self.rows].T))
                getattr(self.lstm, f"bias_ih_l{layer}").copy_(to_torch(b[self.rows]))
                getattr(self.lstm, f"bias_hh_l{layer}").zero_()
                getattr(self.lstm, f"bias_hh_l{layer}").requires_grad_(stock)
            self.output.weight.copy_(to_torch(params["output.weight"].T))
            self.output.bias.copy_(to_torch(params["output.bias"]))
        if config.cell == "lstm-cifg":
            couple_input_and_forget_(self.lstm)
        modules = (self.embedding, self.lstm, self.output)
        self.params = [p for module in modules for p in module.parameters() if p.requires_grad]

    def logits(self, inputs: np.ndarray, state):
        """inputs (T, B) -> logits (T, B, V) and the new (h, c), each (L, B, H).

        A row whose input is <START> at step t starts afresh there, as in
        charrnn: the window is run in segments split at such steps, and those
        rows' state is zeroed between them (so no gradient flows past them).
        """
        T = len(inputs)
        starts = np.flatnonzero((inputs == START_ID).any(axis=1))
        bounds = sorted({0, *starts.tolist(), T})
        h, c = state
        outputs = []
        for begin, end in zip(bounds, bounds[1:]):
            keep = to_torch(inputs[begin] != START_ID).to(h.dtype)[None, :, None]  # (1, B, 1)
            x = self.embedding(to_torch(inputs[begin:end].astype(np.int64)))  # (T', B, E)
            top, (h, c) = self.lstm(x, (h * keep, c * keep))
            outputs.append(top)
        return self.output(self.top_dropout(torch.cat(outputs))), (h, c)

    def charrnn_params(self) -> Params:
        """The weights as charrnn's parameters (the two biases summed; of a CIFG LSTM, the
        columns of its forget, output and candidate gates)."""
        order = np.argsort(self.rows)  # torch's rows back to charrnn's columns
        if self.config.cell == "lstm-cifg":
            order = order[self.config.hidden_size:]  # charrnn's i, f, o, g less i
        as_numpy = lambda tensor: tensor.detach().numpy().copy()  # noqa: E731
        params = {"embedding": as_numpy(self.embedding.weight)}
        for layer in range(self.config.num_layers):
            prefix = self.config.layer_prefix(layer)
            weight = lambda name: as_numpy(getattr(self.lstm, f"{name}_l{layer}"))  # noqa: E731
            params[prefix + "input_weight"] = weight("weight_ih").T[:, order].copy()
            params[prefix + "hidden_weight"] = weight("weight_hh").T[:, order].copy()
            params[prefix + "bias"] = (weight("bias_ih") + weight("bias_hh"))[order]
        params["output.weight"] = as_numpy(self.output.weight).T.copy()
        params["output.bias"] = as_numpy(self.output.bias)
        return params


class MatchedAdam:
    """charrnn's Adam update (``optim.Adam``, whose constants it reads) on torch tensors."""

    def __init__(self, params, like: Adam):
        self.params, self.like, self.step_count = params, like, 0
        self.moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]

    def step(self, lr: float) -> None:
        beta1, beta2, eps = self.like.beta1, self.like.beta2, self.like.eps
        self.step_count += 1
        t = self.step_count
        step_size = lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
        with torch.no_grad():
            for param, (m, v) in zip(self.params, self.moments):
                m.mul_(beta1).add_(param.grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(param.grad, param.grad, value=1 - beta2)
                param.addcdiv_(m, v.sqrt().add_(eps), value=-step_size)


def clip_matched_(params, max_norm: float) -> None:
    """charrnn's clipping: scale by max_norm / norm only when the norm is over max_norm."""
    norm = math.sqrt(sum(float(torch.vdot(p.grad.ravel(), p.grad.ravel())) for p in params))
    if norm > max_norm:
        for p in params:
            p.grad.mul_(max_norm / norm)


class TorchRun:
    """PyTorch training the TorchModel: matched to charrnn's loop, or the stock recipe."""

    def __init__(self, params: Params, config: ModelConfig, settings: TrainSettings,
                 batch_size: int, like: Adam, stock: bool):
        self.model = TorchModel(params, config, stock, settings.dropout)
        self.settings, self.stock = settings, stock
        self.optimizer = (
            torch.optim.Adam(self.model.params, settings.lr, (like.beta1, like.beta2), like.eps)
            if stock else MatchedAdam(self.model.params, like))
        zeros = torch.zeros(config.num_layers, batch_size, config.hidden_size,
                            dtype=self.model.params[0].dtype)
        self.zero_state = (zeros, zeros)
        self.state = self.zero_state

    def step(self, inputs: np.ndarray, targets: np.ndarray, lr: float) -> float:
        logits, (h, c) = self.model.logits(inputs, self.state)
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, self.model.config.vocab_size),
            to_torch(targets.astype(np.int64)).reshape(-1), ignore_index=START_ID)
        for p in self.model.params:
            p.grad = None
        loss.backward()
        if self.stock:
            torch.nn.utils.clip_grad_norm_(self.model.params, self.settings.clip)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self.optimizer.step()
        else:
            clip_matched_(self.model.params, self.settings.clip)
            self.optimizer.step(lr)
        self.state = (h.detach(), c.detach())
        return loss.item()


# -- one run: charrnn and torch side by side -----------------------------------------

@dataclass
class Curve:
    """One model's record: training loss per step, seconds of training, held-out evaluations."""

    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    evaluations: list[tuple[int, float, float]] = field(default_factory=list)  # step, s, loss

    def timed(self, work):
        start = time.perf_counter()
        result = work()
        self.seconds += time.perf_counter() - start
        return result

    def held_out_at(self, seconds: float) -> float:
        """The held-out loss at ``seconds`` of training, linear between evaluations."""
        times = [when for _, when, _ in self.evaluations]
        return float(np.interp(seconds, times, [loss for _, _, loss in self.evaluations]))


def side_by_side(path: str, seed: int, config_args: dict, settings: TrainSettings, steps: int,
                 dtype, stock: bool, eval_every: int, print_every: int) -> dict[str, Curve]:
    corpus = held_out_corpus(path)
    config = ModelConfig(corpus.vocab.size, **config_args)
    rng = np.random.default_rng(seed)
    params = init_params(config, rng, dtype)
    torch_params = {name: array.copy() for name, array in params.items()}
    trainer = trainer_from(params, corpus, config, settings, rng)
    batch_size = trainer.windows.batch_size
    runs = {"pytorch": TorchRun(torch_params, config, settings, batch_size, trainer.optimizer,
                                stock=False)}
    if stock:
        runs["pytorch-stock"] = TorchRun(torch_params, config, settings, batch_size,
                                         trainer.optimizer, stock=True)
    curves = {name: Curve() for name in ("charrnn", *runs)}

    def evaluate(step: int) -> None:
        models = {"charrnn": trainer.model,
                  **{name: Model(config, run.model.charrnn_params()) for name, run in runs.items()}}
        for name, model in models.items():
            curve = curves[name]
            curve.evaluations.append((step, curve.seconds, held_out_loss(model, corpus)))
        click.echo(f"  step {step:4d} held-out " + "  ".join(
            f"{name} {curve.evaluations[-1][2]:.4f}" for name, curve in curves.items()), err=True)

    evaluate(0)
    for step in range(1, steps + 1):
        epoch, offset = trainer.position.epoch, trainer.position.offset
        inputs, targets = trainer.windows.span(offset, trainer.window_length())
        curves["charrnn"].losses.append(curves["charrnn"].timed(trainer.train_step))
        for name, run in runs.items():
            curves[name].losses.append(
                curves[name].timed(lambda: run.step(inputs, targets, trainer.counters.last_lr)))
            if trainer.position.epoch != epoch:
                run.state = run.zero_state
        if step % print_every == 0 or step == 1:
            click.echo(f"  step {step:4d} train    " + "  ".join(
                f"{name} {curve.losses[-1]:.6f}" for name, curve in curves.items()), err=True)
        if step % eval_every == 0 or step == steps:
            evaluate(step)
    return curves


def summary(text: str, seed: int, curves: dict[str, Curve]) -> dict:
    """One run's figures: the loss gap over the checked steps, held-out at equal steps and
    seconds."""
    charrnn, pytorch = curves["charrnn"].losses, curves["pytorch"].losses
    gaps = np.abs(np.subtract(charrnn, pytorch))
    equal_seconds = min(curve.seconds for curve in curves.values())
    return {
        "text": text, "seed": seed, "steps": len(charrnn),
        "first_step_gap": float(gaps[0]),
        "max_train_loss_gap": float(gaps[:CHECKED_STEPS].max()),  # over the checked steps
        "max_train_loss_gap_all": float(gaps.max()),
        "seconds": {name: round(curve.seconds, 1) for name, curve in curves.items()},
        "held_out_at_equal_steps": {name: round(curve.evaluations[-1][2], 4)
                                    for name, curve in curves.items()},
        "equal_seconds": round(equal_seconds, 1),
        "held_out_at_equal_seconds": {name: round(curve.held_out_at(equal_seconds), 4)
                                      for name, curve in curves.items()},
    }


def print_table(rows: list[dict]) -> None:
    """Means over seeds per text and model."""
    click.echo(f"\n{'text':<24} {'model':<14} {'held-out, equal steps':>22} "
               f"{'equal seconds':>14} {'s/step':>7} {'max train gap':>14}")
    for text in dict.fromkeys(row["text"] for row in rows):
        runs = [row for row in rows if row["text"] == text]
        for name in runs[0]["seconds"]:
            mean = lambda key: np.mean([row[key][name] for row in runs])  # noqa: E731
            per_step = np.mean([row["seconds"][name] / row["steps"] for row in runs])
            gap = max(row["max_train_loss_gap"] for row in runs) if name == "pytorch" else None
            click.echo(f"{os.path.basename(text):<24} {name:<14} "
                       f"{mean('held_out_at_equal_steps'):>22.4f} "
                       f"{mean('held_out_at_equal_seconds'):>14.4f} {per_step:>7.3f} "
                       f"{'' if gap is None else f'{gap:.2e}':>14}")


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--text", "texts", multiple=True, default=["data/tinyshakespeare.txt"],
              show_default=True, help="A text file to train on (repeat for several).")
@click.option("--seeds", default="1,2,3", show_default=True, help="Comma-separated seeds.")
@click.option("--steps", default=200, show_default=True, help="Training steps of each run.")
@click.option("--hidden-size", default=256, show_default=True)
@click.option("--num-layers", default=2, show_default=True)
@click.option("--embedding-size", default=64, show_default=True)
@click.option("--batch-size", default=64, show_default=True)
@click.option("--seq-length", default=64, show_default=True)
@click.option("--lr", default=3e-3, show_default=True)
@click.option("--lr-schedule", default="constant", show_default=True,
              type=click.Choice(["constant", "cosine"]))
@click.option("--clip", default=5.0, show_default=True)
@click.option("--eval-every", default=50, show_default=True)
@click.option("--print-every", default=10, show_default=True)
@click.option("--stock", is_flag=True, help="Also train with the stock PyTorch recipe.")
@click.option("--float64", "use_float64", is_flag=True, help="Train both in float64.")
@click.option("--threads", default=available_cores(), show_default=True,
              type=click.IntRange(min=1), help="Threads (charrnn: worker processes) for each.")
def main(texts, seeds, steps, hidden_size, num_layers, embedding_size, batch_size, seq_length,
         lr, lr_schedule, clip, eval_every, print_every, stock, use_float64, threads):
    if torch is None:
        raise click.ClickException(
            "this benchmark needs PyTorch, which is not installed in this Python; install "
            "torch (CPU) in a separate virtual environment and run it there (see --help)")
    torch.set_num_threads(threads)
    click.echo(f"{threads} thread(s) each; torch {torch.__version__}, numpy {np.__version__}",
               err=True)
    settings = TrainSettings(seq_length=seq_length, batch_size=batch_size, lr=lr,
                             lr_schedule=lr_schedule, clip=clip, max_steps=steps, threads=threads)
    config_args = {"embedding_size": embedding_size, "hidden_size": hidden_size,
                   "num_layers": num_layers}
    dtype = np.float64 if use_float64 else np.float32
    rows = []
    for text in texts:
        for seed in (int(part) for part in seeds.split(",")):
            click.echo(f"{text}, seed {seed}", err=True)
            curves = side_by_side(text, seed, config_args, settings, steps, dtype, stock,
                                  eval_every, print_every)
            rows.append(summary(text, seed, curves))
            click.echo(json.dumps(rows[-1]))
            sys.stdout.flush()
    print_table(rows)


if __name__ == "__main__":
    main()
