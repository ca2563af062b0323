"""The training loop: truncated backpropagation through time with Adam.

The training sequence is cut into B streams (see ``corpus.Windows``); each
step trains on the next window of T steps of every stream, starting from the
recurrent state the previous window ended in. Gradients stop at the window's
start. The state is reset at the start of every epoch.

The trainer knows nothing of the terminal: it reports through an ``on_event``
callback and asks a ``stop_requested`` callback whether to stop early.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .checkpoint import Checkpoint, save_checkpoint
from .corpus import Corpus, Windows, fit_window
from .errors import CharrnnError
from .evaluate import score_tokens
from .model import Model, ModelConfig, State, init_params
from .optim import Adam, clip_by_global_norm_


@dataclass(frozen=True)
class TrainSettings:
    """How to train: data layout, optimization, when to stop and evaluate."""

    seq_length: int = 64
    seq_length_schedule: str | None = None  # "START:END": windows grow from START to END steps
    batch_size: int = 64
    lr: float = 3e-3
    lr_schedule: str = "cosine"  # "constant", "cosine" or "plateau"
    warmup_steps: int = 0
    clip: float = 5.0
    dropout: float = 0.0  # probability of dropping each layer output while training
    max_steps: int | None = None
    max_epochs: float | None = None
    max_time: float | None = None
    val_fraction: float = 0.05
    eval_every: int = 100
    save_every: int | None = None  # steps between saves besides those at evaluations
    keep_best: bool = False  # also keep the best-validation model in <out>.best.npz
    patience: int | None = None  # stop after this many evaluations without improvement
    seed: int = 0
    records: bool = False
    delimiter: str = "\n"


DEFAULT_MAX_EPOCHS = 5  # how long to train when no limit is given
STOP_LIMITS = ("max_steps", "max_epochs", "max_time")
LR_SCHEDULES = ("constant", "cosine", "plateau")
VALIDATION_LIMIT = 1_000_000  # held-out tokens scored at each evaluation
MIN_LR_RATIO = 0.1  # cosine decays to this fraction of --lr
PLATEAU_EVALS = 2  # plateau halves the rate after this many evaluations without improvement
PLATEAU_FACTOR = 0.5

# Settings that decide which windows the data is cut into.
LAYOUT_SETTINGS = ("seq_length", "seq_length_schedule", "batch_size", "records", "delimiter",
                   "val_fraction")
SCHEDULE_SPAN = 0.5  # the window length schedule reaches its END halfway through training


@dataclass
class Position:
    """Where training is: updates made, epochs complete, steps into the streams."""

    step: int = 0
    epoch: int = 0
    offset: int = 0


@dataclass(frozen=True)
class TrainEvent:
    """A report from the loop: after every step ("step"), evaluation ("eval") and at the end ("end")."""

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
    pass


@dataclass
class Trainer:
    model: Model
    corpus: Corpus
    settings: TrainSettings
    out: Path
    optimizer: Adam
    rng: np.random.Generator
    position: Position = field(default_factory=Position)
    state: State | None = None  # carried across windows; None means zero
    history: list[dict] = field(default_factory=list)
    elapsed_before: float = 0.0  # seconds spent in earlier runs
    best_val_loss: float | None = None
    evals_since_best: int = 0
    lr_scale: float = 1.0  # lowered by the plateau schedule

    def __post_init__(self):
        self.seq_length_range = parse_seq_length_schedule(self.settings.seq_length_schedule,
                                                          self.settings.seq_length)
        batch_size, seq_length = fit_window(len(self.corpus.train_tokens),
                                            self.settings.batch_size, max(self.seq_length_range))
        self.windows = Windows(self.corpus.train_tokens, batch_size, seq_length)
        if self.state is None:
            self.state = self.model.zero_state(batch_size)
        expected = (batch_size, self.model.config.hidden_size)
        if any(array.shape != expected for layer in self.state for array in layer):
            raise CharrnnError(f"the checkpoint's carried state does not have the shape "
                               f"{expected}")
        self.run_start = time.monotonic()
        self.saved_step: int | None = None  # the step of this run's latest save to ``out``
        self.last_lr = self.settings.lr  # the rate of the latest update
        self.losses: list[float] = []  # of the steps since the last evaluation
        self.grad_norms: list[float] = []  # before clipping, of the same steps
        self.chars_this_run = 0

    # -- limits --------------------------------------------------------------

    def epochs_done(self) -> float:
        return self.position.epoch + self.position.offset / self.windows.stream_length

    def run_elapsed(self) -> float:
        """Seconds since this run started."""
        return time.monotonic() - self.run_start

    def _limit_fractions(self) -> dict[str, float]:
        """Progress towards each limit that is set: "steps", "epochs", "time"."""
        s = self.settings
        limits = {"steps": (s.max_steps, self.position.step),
                  "epochs": (s.max_epochs, self.epochs_done()),
                  "time": (s.max_time, self.run_elapsed())}
        return {name: done / limit if limit else 1.0
                for name, (limit, done) in limits.items() if limit is not None}

    def fraction_done(self) -> float | None:
        """Progress towards the nearest limit, None without limits."""
        fractions = self._limit_fractions()
        return min(1.0, max(fractions.values())) if fractions else None

    def limit_reached(self) -> bool:
        """Whether training should stop (as it must, with no limit at all)."""
        fraction = self.fraction_done()
        return fraction is None or fraction >= 1.0

    def _schedule_progress(self) -> float:
        """How far along the planned run is, for the schedules: by the step or epoch
        limit, or by the time limit when there is no other."""
        fractions = self._limit_fractions()
        planned = [fractions[name] for name in ("steps", "epochs") if name in fractions]
        return min(1.0, max(planned or [fractions.get("time", 0.0)]))

    # -- one step ------------------------------------------------------------

    def seq_length(self) -> int:
        """Steps in the next window: fixed, or growing linearly by the schedule."""
        start, end = self.seq_length_range
        progress = min(1.0, self._schedule_progress() / SCHEDULE_SPAN)
        return min(round(start + (end - start) * progress), self.windows.seq_length)

    def learning_rate(self) -> float:
        """The rate for the next update: warm-up, then the schedule."""
        s = self.settings
        lr = s.lr * min(1.0, (self.position.step + 1) / s.warmup_steps) if s.warmup_steps else s.lr
        if s.lr_schedule == "cosine":
            progress = self._schedule_progress()
            lr *= MIN_LR_RATIO + (1 - MIN_LR_RATIO) * 0.5 * (1 + math.cos(math.pi * progress))
        elif s.lr_schedule == "plateau":
            lr *= self.lr_scale
        return lr

    def train_step(self) -> float:
        """One update on the next window; returns its loss (nats per character)."""
        seq_length = self.seq_length()
        if self.position.offset + seq_length > self.windows.stream_length:
            self._next_epoch()  # a window schedule timed by the clock grew past the end
        inputs, targets = self.windows.span(self.position.offset, seq_length)
        loss, grads, state = self.model.loss_and_gradients(
            inputs, targets, self.state, self.settings.dropout, self.rng)
        grad_norm = clip_by_global_norm_(grads, self.settings.clip)
        if not (math.isfinite(loss) and math.isfinite(grad_norm)):
            raise self._diverged(f"loss {loss}, gradient norm {grad_norm}")
        self.grad_norms.append(grad_norm)
        self.last_lr = self.learning_rate()
        self.optimizer.update_(self.model.params, grads, self.last_lr)
        self.position.step += 1
        self.position.offset += seq_length
        self.chars_this_run += self.windows.batch_size * seq_length
        self.state = state
        if self.position.offset + self.seq_length() > self.windows.stream_length:
            self._next_epoch()
        return loss

    def _next_epoch(self) -> None:
        """Back to the start of the streams, from a zero state."""
        self.position.epoch += 1
        self.position.offset = 0
        self.state = self.model.zero_state(self.windows.batch_size)

    def _diverged(self, reason: str) -> TrainingDiverged:
        kept = (f"{self.out} keeps the weights of step {self.saved_step}"
                if self.saved_step is not None else "this run saved no checkpoint")
        return TrainingDiverged(f"training diverged at step {self.position.step} ({reason}); "
                                f"{kept}; try a lower --lr or --clip")

    def validate(self) -> float | None:
        """Validation loss in nats per character, or None without validation data.

        At most the first VALIDATION_LIMIT held-out tokens are scored, so that
        evaluating stays quick on huge corpora.
        """
        if len(self.corpus.val_tokens) < 2:
            return None
        tokens = self.corpus.val_tokens[: VALIDATION_LIMIT + 1]
        return score_tokens(self.model, tokens).nats_per_char

    # -- the loop ------------------------------------------------------------

    def run(self, on_event: Callable[[TrainEvent], None] = lambda event: None,
            stop_requested: Callable[[], bool] = lambda: False) -> str:
        """Train until a limit is reached or a stop is requested; save at every evaluation and
        at the end. Returns why it stopped: "limit", "no improvement" (--patience) or
        "interrupted"."""
        self.run_start = time.monotonic()
        self.chars_this_run = 0
        self.losses.clear()
        self.grad_norms.clear()
        outcome = "limit"
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is caught, not warned
            while not self.limit_reached():
                self.losses.append(self.train_step())
                on_event(self._event("step"))
                step = self.position.step
                if stop_requested():
                    self.save()
                    on_event(self._event("end", checkpoint=str(self.out)))
                    return "interrupted"
                if step % self.settings.eval_every == 0:
                    on_event(self._evaluate_and_save("eval"))
                    if self.settings.patience and self.evals_since_best >= self.settings.patience:
                        outcome = "no improvement"
                        break
                elif self.settings.save_every and step % self.settings.save_every == 0:
                    self.save()
            if self.saved_step == self.position.step and self.history:
                on_event(self._event("end", self.history[-1]["val_loss"], str(self.out)))
            else:
                on_event(self._evaluate_and_save("end"))
        return outcome

    def _event(self, kind: str, val_loss: float | None = None,
               checkpoint: str | None = None) -> TrainEvent:
        elapsed = self.run_elapsed()
        return TrainEvent(
            kind=kind, step=self.position.step, epoch=self.epochs_done(),
            train_loss=mean_or_none(self.losses),
            val_loss=val_loss, chars_per_sec=self.chars_this_run / max(elapsed, 1e-9),
            elapsed=elapsed, fraction_done=self.fraction_done(), checkpoint=checkpoint)

    def _evaluate_and_save(self, kind: str) -> TrainEvent:
        """Validate, record it in the history, save (and keep the best); the report."""
        val_loss = self.validate()
        if val_loss is not None and not math.isfinite(val_loss):
            raise self._diverged(f"validation loss {val_loss}")
        report = self._event(kind, val_loss, str(self.out))
        self.history.append({"step": self.position.step, "epoch": report.epoch,
                             "elapsed": self.elapsed_before + report.elapsed,
                             "train_loss": report.train_loss, "val_loss": val_loss,
                             "grad_norm": mean_or_none(self.grad_norms), "lr": self.last_lr})
        improved = self._record_validation(val_loss)
        self.save()
        if improved and self.settings.keep_best:
            self.save(self.best_path)
        self.losses.clear()
        self.grad_norms.clear()
        return report

    def _record_validation(self, val_loss: float | None) -> bool:
        """Track the best validation loss and the plateau; returns whether it improved."""
        if val_loss is None:
            return False
        if self.best_val_loss is None or val_loss < self.best_val_loss:
            self.best_val_loss, self.evals_since_best = val_loss, 0
            return True
        self.evals_since_best += 1
        if self.settings.lr_schedule == "plateau" and self.evals_since_best % PLATEAU_EVALS == 0:
            self.lr_scale *= PLATEAU_FACTOR
        return False

    # -- checkpoints ---------------------------------------------------------

    @property
    def best_path(self) -> Path:
        """Where --keep-best keeps the model with the lowest validation loss."""
        return self.out.with_name(f"{self.out.stem}.best{self.out.suffix}")

    def save(self, path: Path | None = None) -> None:
        """Write a resumable checkpoint to ``path`` (default: the output path), unless the
        weights are no longer finite."""
        params = self.model.params
        if not all(np.isfinite(param).all() for param in params.values()):
            raise self._diverged("the weights are no longer finite")
        arrays = {f"adam_m/{name}": self.optimizer.first_moment[name] for name in params}
        arrays.update({f"adam_v/{name}": self.optimizer.second_moment[name] for name in params})
        for layer, layer_state in enumerate(self.state):
            for name, array in zip(self.model.cell.state_names, layer_state):
                arrays[f"state/{name}{layer}"] = array
        training = {
            "settings": asdict(self.settings),
            "position": asdict(self.position),
            "epochs": self.epochs_done(),
            "window": {"batch_size": self.windows.batch_size,
                       "seq_length": self.windows.seq_length},
            "elapsed": self.elapsed_before + self.run_elapsed(),
            "history": self.history,
            "best_val_loss": self.best_val_loss,
            "evals_since_best": self.evals_since_best,
            "lr_scale": self.lr_scale,
            "adam_step": self.optimizer.step,
            "rng": self.rng.bit_generator.state,
            "corpus": {"checksum": self.corpus.checksum, "characters": self.corpus.num_chars},
        }
        save_checkpoint(path or self.out,
                        Checkpoint(self.model, self.corpus.vocab, training, arrays))
        if path is None:
            self.saved_step = self.position.step


def parse_seq_length_schedule(schedule: str | None, seq_length: int) -> tuple[int, int]:
    """The (start, end) window lengths: from a schedule "START:END", or both ``seq_length``."""
    if schedule is None:
        return seq_length, seq_length
    try:
        start, end = (int(part) for part in schedule.split(":"))
    except ValueError:
        start = end = 0
    if not 1 <= start <= end:
        raise CharrnnError(f"--seq-length-schedule takes START:END, whole numbers of steps with "
                           f"1 <= START <= END, not {schedule!r}")
    return start, end


def new_trainer(corpus: Corpus, config: ModelConfig, settings: TrainSettings, out: Path) -> Trainer:
    """A trainer for a fresh model, initialised from ``settings.seed``."""
    rng = np.random.default_rng(settings.seed)
    model = Model(config, init_params(config, rng))
    return Trainer(model, corpus, settings, out, Adam(model.params, settings.lr), rng)


def training_settings(checkpoint: Checkpoint) -> TrainSettings:
    """The settings a checkpoint was trained with (the defaults if it holds none)."""
    saved = (checkpoint.training or {}).get("settings", {})
    try:
        return TrainSettings(**saved)
    except TypeError:
        raise CharrnnError("the checkpoint's training settings are damaged or from a newer "
                           "charrnn") from None


def settings_from_checkpoint(checkpoint: Checkpoint, overrides: dict) -> TrainSettings:
    """The checkpoint's training settings with the ones the user gave replacing them.

    A stop limit given replaces all the saved ones: ``--max-steps 20`` on a run
    saved with ``--max-epochs 5`` trains to step 20 whatever the epochs.
    """
    if checkpoint.training is None:
        raise CharrnnError("the checkpoint holds no training state and cannot be resumed")
    if not checkpoint.training.get("resumable", True):
        raise CharrnnError("the checkpoint was exported for sampling, without its optimizer "
                           "state, and cannot be resumed")
    saved = training_settings(checkpoint)
    if any(name in overrides for name in STOP_LIMITS):
        saved = replace(saved, **{name: None for name in STOP_LIMITS})
    known = {f.name for f in fields(TrainSettings)}
    return replace(saved, **{k: v for k, v in overrides.items() if k in known})


def resume_trainer(checkpoint: Checkpoint, corpus: Corpus, settings: TrainSettings, out: Path,
                   notify: Callable[[str], None] = lambda message: None) -> Trainer:
    """A trainer that continues exactly where ``checkpoint`` stopped.

    The position in the data and the carried state are restored when the
    corpus and its layout are unchanged; otherwise training starts at the
    beginning of the new data, keeping the weights and optimizer state.
    """
    training = checkpoint.training
    model = checkpoint.model
    try:
        optimizer = Adam(model.params, settings.lr)
        for name, param in model.params.items():
            optimizer.first_moment[name] = _training_array(checkpoint, f"adam_m/{name}", param.shape)
            optimizer.second_moment[name] = _training_array(checkpoint, f"adam_v/{name}", param.shape)
        optimizer.step = int(training["adam_step"])
        rng = np.random.default_rng()
        rng.bit_generator.state = training["rng"]
        position = Position(**training["position"])
        saved_settings = training_settings(checkpoint)
        same_data = (training["corpus"]["checksum"] == corpus.checksum and all(
            getattr(saved_settings, name) == getattr(settings, name) for name in LAYOUT_SETTINGS))
        state = None
        if same_data:
            state = [tuple(_training_array(checkpoint, f"state/{name}{layer}")
                           for name in model.cell.state_names)
                     for layer in range(model.config.num_layers)]
        trainer = Trainer(model, corpus, settings, out, optimizer, rng, position, state,
                          list(training["history"]), float(training["elapsed"]),
                          training["best_val_loss"], int(training["evals_since_best"]),
                          float(training["lr_scale"]))
    except (KeyError, TypeError, ValueError) as error:
        raise CharrnnError(f"the checkpoint's training state is damaged ({error})") from None
    if not same_data:
        notify("the corpus or its layout changed: training restarts at the start of the data")
        trainer.position = Position(step=position.step)
    return trainer


def _training_array(checkpoint: Checkpoint, name: str, shape=None) -> np.ndarray:
    """A copy of one saved training array, checked against the shape it must have."""
    array = checkpoint.training_arrays[name]
    if shape is not None and array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}, expected {shape}")
    return array.copy()
