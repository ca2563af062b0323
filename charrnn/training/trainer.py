"""The training loop: truncated backpropagation through time with Adam.

The training sequence is cut into B streams (see ``windows.py``); each
step trains on the next window of T steps of every stream, starting from the
recurrent state the previous window ended in. Gradients stop at the window's
start. The state is reset at the start of every epoch.

A ``Trainer`` runs from a ``TrainingState`` (``training_state.py``): a fresh
one (``new_trainer``) or one saved in a checkpoint (``resume_trainer``); the
schedules are pure functions of its progress (``schedules.py``). It knows
nothing of the terminal: it reports through an ``on_event`` callback and asks
a ``stop_requested`` callback whether to stop early.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from charrnn.data.corpus import Corpus
from charrnn.data.known_records import KnownRecords, kept_records
from charrnn.data.windows import Windows, fit_window
from charrnn.errors import CharrnnError, setting_name
from charrnn.nn.model import Model, ModelConfig, init_params
from charrnn.nn.optim import Adam, clip_scale
from charrnn.nn.scoring import score_tokens
from charrnn.saving.checkpoint import Checkpoint, save_checkpoint
from charrnn.training.fine_tune import extended_params
from charrnn.training.parallel import Workers
from charrnn.training.schedules import Progress, fraction_done, learning_rate, window_length
from charrnn.training.settings import (LAYOUT_SETTINGS, TrainSettings, available_cores,
                                       physical_memory, resumed_settings)
from charrnn.training.state import Position, TrainingState, from_checkpoint, to_checkpoint
from charrnn.training.step_checkpoints import prune, step_path

VALIDATION_LIMIT = 1_000_000  # held-out tokens scored at each evaluation


@dataclass(frozen=True)
class TrainEvent:
    """A report from the loop: after every step ("step"), evaluation ("eval") and at the end
    ("end")."""

    kind: str
    step: int
    epoch: float  # epochs done, fractional
    train_loss: float | None  # mean over the steps since the last evaluation, if any
    val_loss: float | None  # nats per character, when just evaluated
    chars_per_sec: float  # training throughput of this run
    elapsed: float  # seconds of this run
    fraction_done: float | None  # of the nearest limit, when one is known
    checkpoint: str | None = None  # where it saved, on eval and end


def mean_or_none(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


class TrainingDiverged(CharrnnError):
    """The loss, the gradients or the weights stopped being finite."""


class StepTooLarge(CharrnnError):
    """A training step (batch size x window length) needs more memory than the machine has."""


class ArchitectureChanged(CharrnnError):
    """A resumed model was asked for another architecture than its own."""

    def __init__(self, name: str, requested, saved, run: str):
        self.name, self.requested, self.saved = name, requested, saved
        super().__init__(f"{setting_name(name)} {requested} differs from the checkpoint's "
                         f"{saved}; a {run} model keeps its architecture")


def check_architecture(config: ModelConfig, requested: dict, run: str = "resumed") -> None:
    """Refuse ``requested`` architecture settings (ModelConfig names) that differ from
    ``config``: a ``run`` ("resumed" or "fine-tuned") model keeps its architecture."""
    saved = config.to_dict()
    for name, value in requested.items():
        if saved[name] != value:
            raise ArchitectureChanged(name, value, saved[name], run)


@dataclass
class RunCounters:
    """What the current call of ``Trainer.run`` has done."""

    last_lr: float  # the rate of the latest update
    start: float = field(default_factory=time.monotonic)
    chars: int = 0  # characters trained on
    losses: list[float] = field(default_factory=list)  # of the steps since the last evaluation
    grad_norms: list[float] = field(default_factory=list)  # before clipping, of the same steps
    saved_step: int | None = None  # the step of the latest save to the output path


class Trainer:
    """Trains a model on a corpus from a training state; saves to ``out``.

    ``loss_and_gradients(inputs, targets, state, dropout, rng)`` computes one
    window's mean loss, gradients and final state; it is that of the ``workers``
    (``settings.threads`` of them, at most one per shard), which also take the
    gradients' norm and make the update. The batch is cut into ``settings.shards``
    shards (at most one per row), whatever the number of workers.
    """

    def __init__(self, model: Model, corpus: Corpus, out: Path, state: TrainingState,
                 earlier_records: KnownRecords | None = None):
        self.model, self.corpus, self.out = model, corpus, Path(out)
        self.settings = settings = state.settings
        # A records model keeps its training records (with those it saw before, in
        # ``earlier_records``), so that a sample can tell a new record from a copy.
        self.known_records, self.earlier_records = None, earlier_records
        if settings.records:
            self.known_records = kept_records((corpus.train_tokens, corpus.val_tokens),
                                              corpus.vocab, earlier_records)
        batch_size, longest = fit_window(len(corpus.train_tokens), settings.batch_size,
                                         settings.window_range()[1])
        check_step_fits(model, batch_size, longest)
        self.windows = Windows(corpus.train_tokens, batch_size, longest)
        self.optimizer = Adam(model.params, settings.lr)
        if state.adam_moments is not None:
            self.optimizer.first_moment, self.optimizer.second_moment = (
                dict(moments) for moments in state.adam_moments)
            self.optimizer.step = state.adam_step
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state.rng_state
        self.position = state.position
        self.carried = (model.zero_state(batch_size) if state.carried is None
                        else state.carried)  # entering the next window
        expected = (batch_size, model.config.hidden_size)
        if any(array.shape != expected for layer in self.carried for array in layer):
            raise CharrnnError(f"the checkpoint's carried state does not have the shape "
                               f"{expected}")
        self.history = list(state.history)
        self.plateau = state.plateau
        self.elapsed_before = state.elapsed  # seconds in earlier runs
        self.counters = RunCounters(settings.lr)
        num_shards = min(settings.shards, batch_size)
        self.workers = Workers(model, self.optimizer, min(settings.threads, num_shards),
                               num_shards)
        self.loss_and_gradients = self.workers.loss_and_gradients

    # -- where training stands -------------------------------------------------

    def epochs_done(self) -> float:
        return self.position.epoch + self.position.offset / self.windows.stream_length

    def progress(self) -> Progress:
        return Progress(self.position.step, self.epochs_done(),
                        time.monotonic() - self.counters.start)

    def limit_reached(self) -> bool:
        return fraction_done(self.settings, self.progress()) >= 1.0

    def window_length(self) -> int:
        """Steps in the next window, by the schedule."""
        return min(window_length(self.settings, self.progress()), self.windows.window_length)

    def learning_rate(self) -> float:
        """The rate for the next update, by the schedule."""
        return learning_rate(self.settings, self.progress(), self.plateau.lr_scale)

    def state(self) -> TrainingState:
        """The training state as it is now."""
        return TrainingState(
            self.settings, self.rng.bit_generator.state, self.position, self.epochs_done(),
            (self.windows.batch_size, self.windows.window_length),
            self.elapsed_before + self.progress().seconds, tuple(self.history), self.plateau,
            self.optimizer.step, (self.optimizer.first_moment, self.optimizer.second_moment),
            self.carried, self.corpus.checksum, self.corpus.num_chars)

    # -- the loop ----------------------------------------------------------------

    def run(self, on_event: Callable[[TrainEvent], None] = lambda event: None,
            stop_requested: Callable[[], bool] = lambda: False) -> str:
        """Train until a limit is reached or a stop is requested; save at every evaluation and
        at the end. Returns why it stopped: "limit", "no improvement" (patience) or
        "interrupted"."""
        self.counters = RunCounters(self.counters.last_lr)
        settings = self.settings
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is caught, not warned
            while not self.limit_reached():
                self.train_step()
                on_event(self._event("step"))
                step = self.position.step
                if stop_requested():
                    self.save()
                    on_event(self._event("end", checkpoint=str(self.out)))
                    return "interrupted"
                if step % settings.eval_every == 0:
                    on_event(self._evaluate_and_save("eval"))
                    if settings.patience and self.plateau.evals_since_best >= settings.patience:
                        on_event(self._event("end", self.history[-1]["val_loss"], str(self.out)))
                        return "no improvement"
                elif settings.save_every and step % settings.save_every == 0:
                    self.save()
                if settings.keep_last and step % settings.save_every == 0:
                    self.save(step_path(self.out, step))
                    prune(self.out, step, settings.keep_last)
            evaluated = self.history and self.history[-1]["step"] == self.position.step
            if evaluated and self.counters.saved_step == self.position.step:  # by this run
                on_event(self._event("end", self.history[-1]["val_loss"], str(self.out)))
            else:
                on_event(self._evaluate_and_save("end"))
        return "limit"

    def train_step(self) -> float:
        """One update on the next window; returns its loss (nats per character)."""
        length = self.window_length()
        if self.position.offset + length > self.windows.stream_length:
            self._next_epoch()  # a window schedule timed by the clock grew past the end
        inputs, targets = self.windows.span(self.position.offset, length)
        loss, grads, carried = self.loss_and_gradients(inputs, targets, self.carried,
                                                       self.settings.dropout, self.rng)
        grad_norm = self.workers.global_norm(grads)
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            raise self._diverged(f"loss {loss}, gradient norm {grad_norm}")
        counters = self.counters
        counters.last_lr = self.learning_rate()
        self.workers.update_(grads, counters.last_lr,
                             clip_scale(grad_norm, self.settings.clip))
        self.position = replace(self.position, step=self.position.step + 1,
                                offset=self.position.offset + length)
        self.carried = carried
        counters.chars += self.windows.batch_size * length
        counters.losses.append(loss)
        counters.grad_norms.append(grad_norm)
        if self.position.offset + self.window_length() > self.windows.stream_length:
            self._next_epoch()
        return loss

    def _next_epoch(self) -> None:
        """Back to the start of the streams, from a zero state."""
        self.position = Position(self.position.step, self.position.epoch + 1, 0)
        self.carried = self.model.zero_state(self.windows.batch_size)

    def _diverged(self, reason: str) -> TrainingDiverged:
        saved = self.counters.saved_step
        kept = (f"{self.out} keeps the weights of step {saved}" if saved is not None
                else "this run saved no checkpoint")
        return TrainingDiverged(f"training diverged at step {self.position.step} ({reason}); "
                                f"{kept}")

    def _event(self, kind: str, val_loss: float | None = None,
               checkpoint: str | None = None) -> TrainEvent:
        progress = self.progress()
        return TrainEvent(
            kind=kind, step=progress.step, epoch=progress.epochs,
            train_loss=mean_or_none(self.counters.losses), val_loss=val_loss,
            chars_per_sec=self.counters.chars / max(progress.seconds, 1e-9),
            elapsed=progress.seconds, fraction_done=fraction_done(self.settings, progress),
            checkpoint=checkpoint)

    # -- validation and saving ---------------------------------------------------

    def validate(self) -> float | None:
        """Validation loss in nats per character, or None without validation data.

        At most the first VALIDATION_LIMIT held-out tokens are scored, so that
        evaluating stays quick on huge corpora.
        """
        if len(self.corpus.val_tokens) < 2:
            return None
        tokens = self.corpus.val_tokens[: VALIDATION_LIMIT + 1]
        return score_tokens(self.model, tokens).nats_per_char

    def _evaluate_and_save(self, kind: str) -> TrainEvent:
        """Validate, record it in the history, save (and keep the best); the report."""
        val_loss = self.validate()
        if val_loss is not None and not math.isfinite(val_loss):
            raise self._diverged(f"validation loss {val_loss}")
        report = self._event(kind, val_loss, str(self.out))
        counters = self.counters
        self.history.append({"step": report.step, "epoch": report.epoch,
                             "elapsed": self.elapsed_before + report.elapsed,
                             "train_loss": report.train_loss, "val_loss": val_loss,
                             "grad_norm": mean_or_none(counters.grad_norms),
                             "lr": counters.last_lr})
        best_before = self.plateau.best_val_loss
        self.plateau = self.plateau.after(val_loss, self.settings.lr_schedule)
        self.save()
        if self.settings.keep_best and self.plateau.best_val_loss != best_before:
            self.save(self.best_path)
        counters.losses.clear()
        counters.grad_norms.clear()
        return report

    @property
    def best_path(self) -> Path:
        """Where keep_best keeps the model with the lowest validation loss."""
        return self.out.with_name(f"{self.out.stem}.best{self.out.suffix}")

    def save(self, path: Path | None = None) -> None:
        """Write a resumable checkpoint to ``path`` (default: the output path), unless the
        weights are no longer finite."""
        if not all(np.isfinite(param).all() for param in self.model.params.values()):
            raise self._diverged("the weights are no longer finite")
        save_checkpoint(path or self.out, to_checkpoint(self.model, self.corpus.vocab,
                                                         self.state(), self.known_records))
        if path is None:
            self.counters.saved_step = self.position.step


def step_memory(model: Model, batch_size: int, window_length: int) -> int:
    """A lower bound on the bytes one training step's arrays take: per time step of each
    row, each layer's gate values and their gradient (2G, for G gates of H units) and
    three more of H, and the output's probabilities and their gradient (2V)."""
    config = model.config
    per_token = (config.num_layers * (2 * model.cell.num_gates + 3) * config.hidden_size
                 + 2 * config.vocab_size)
    return batch_size * window_length * per_token * model.dtype.itemsize


def check_step_fits(model: Model, batch_size: int, window_length: int) -> None:
    """Refuse, before allocating anything, a window layout whose steps cannot fit in this
    machine's memory (a typo, or a stranger's checkpoint, could ask for any)."""
    needed, machine = step_memory(model, batch_size, window_length), physical_memory()
    if machine is not None and needed > machine:
        raise StepTooLarge(
            f"a training step of {batch_size:,} x {window_length:,}-step windows needs at "
            f"least {needed / 2**30:,.1f} GiB of memory, more than this machine's "
            f"{machine / 2**30:,.1f} GiB")


def new_trainer(corpus: Corpus, config: ModelConfig, settings: TrainSettings, out: Path,
                init_from: Checkpoint | None = None) -> Trainer:
    """A trainer for a new run of a fresh model, initialised from ``settings.seed``.

    With ``init_from`` (fine-tuning), the model starts from that checkpoint's
    weights instead, in ``corpus``'s vocabulary, which extends the
    checkpoint's (see ``fine_tune.py``); ``config`` is then the checkpoint's
    architecture with that vocabulary (``fine_tune.fine_tuned_config``).
    """
    rng = np.random.default_rng(settings.seed)
    params = init_params(config, rng)
    if init_from is not None:
        params = extended_params(init_from.model.params, init_from.vocab, corpus.vocab, params)
    return Trainer(Model(config, params), corpus, out,
                   TrainingState(settings, rng.bit_generator.state),
                   None if init_from is None else init_from.known_records)


def resume_trainer(checkpoint: Checkpoint, read_corpus: Callable[[TrainSettings], Corpus],
                   out: Path, overrides: dict | None = None,
                   notify: Callable[[str], None] = lambda message: None) -> Trainer:
    """A trainer that continues exactly where ``checkpoint`` stopped.

    ``overrides`` replace saved settings (see ``settings.resumed_settings``);
    ``read_corpus(settings)`` gives the training text laid out by the
    settings, in the checkpoint's vocabulary. The position in the data and
    the carried state are restored when the text and its layout are
    unchanged; otherwise training starts at the beginning of the new data,
    keeping the weights and optimizer state (and says so through ``notify``).
    """
    saved = from_checkpoint(checkpoint)
    if saved is None:
        raise CharrnnError("the checkpoint holds no training state and cannot be resumed")
    if not saved.resumable:
        raise CharrnnError("the checkpoint was exported for sampling, without its optimizer "
                           "state, and cannot be resumed")
    settings = resumed_settings(saved.settings, overrides or {})
    cores = available_cores()
    if "threads" not in (overrides or {}) and settings.threads > cores:
        # A checkpoint may come from a bigger machine, or a stranger: never more
        # workers than cores unless asked (the weights are the same either way).
        notify(f"the run used {settings.threads} workers; resuming with {cores}, the cores "
               f"available")
        settings = replace(settings, threads=cores)
    corpus = read_corpus(settings)
    state = replace(saved, settings=settings)
    same_layout = all(getattr(saved.settings, name) == getattr(settings, name)
                      for name in LAYOUT_SETTINGS)
    if not (same_layout and saved.corpus_checksum == corpus.checksum):
        notify("the corpus or its layout changed: training restarts at the start of the data")
        state = replace(state, position=Position(step=saved.position.step), carried=None)
    return Trainer(checkpoint.model, corpus, out, state, checkpoint.known_records)
