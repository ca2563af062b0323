"""Where a run stands, and the schedules as pure functions of it.

Progress is measured against the stop limits (``settings.py``): the
fraction of each limit used up. The learning rate (warm-up, then constant,
cosine or plateau) and the window length (fixed, or growing by
``--seq-length-schedule``) follow the planned length of the run: the step
or epoch limit, or the time limit when there is no other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from charrnn.training.settings import TrainSettings

PLATEAU_EVALS = 2  # plateau halves the rate after this many evaluations without improvement
PLATEAU_FACTOR = 0.5
WINDOW_SCHEDULE_SPAN = 0.5  # the window length reaches its longest halfway through the run


@dataclass(frozen=True)
class Progress:
    """How far a run has come, in each unit a stop limit can use."""

    step: int  # updates made, counting those before a resume
    epochs: float  # passes over the training text, fractional
    seconds: float  # of this run


def limit_fractions(settings: TrainSettings, progress: Progress) -> dict[str, float]:
    """The fraction used up of each limit that is set, by name: "steps", "epochs", "time"."""
    limits = {"steps": (settings.max_steps, progress.step),
              "epochs": (settings.max_epochs, progress.epochs),
              "time": (settings.max_time, progress.seconds)}
    return {name: done / limit if limit else 1.0
            for name, (limit, done) in limits.items() if limit is not None}


def fraction_done(settings: TrainSettings, progress: Progress) -> float | None:
    """Progress towards the nearest limit, in [0, 1]; None without limits."""
    fractions = limit_fractions(settings, progress)
    return min(1.0, max(fractions.values())) if fractions else None


def planned_fraction(settings: TrainSettings, progress: Progress) -> float:
    """How far along the planned run is, in [0, 1]: by the step or epoch limit, or by the time
    limit when there is no other."""
    fractions = limit_fractions(settings, progress)
    planned = [fractions[name] for name in ("steps", "epochs") if name in fractions]
    return min(1.0, max(planned or [fractions.get("time", 0.0)]))


def learning_rate(settings: TrainSettings, progress: Progress, lr_scale: float = 1.0) -> float:
    """The rate for the update after ``progress.step`` updates: warm-up, then the schedule.
    ``lr_scale`` is the plateau schedule's (see ``Plateau``)."""
    lr = settings.lr
    if settings.warmup_steps:
        lr *= min(1.0, (progress.step + 1) / settings.warmup_steps)
    if settings.lr_schedule == "cosine":
        fraction = planned_fraction(settings, progress)
        lr *= 0.5 * (1 + math.cos(math.pi * fraction))  # down to zero at the planned end
    elif settings.lr_schedule == "plateau":
        lr *= lr_scale
    return lr


def window_length(settings: TrainSettings, progress: Progress) -> int:
    """Steps in the next window: fixed, or growing linearly from START to END over the first
    WINDOW_SCHEDULE_SPAN of the run."""
    start, end = settings.window_range()
    grown = min(1.0, planned_fraction(settings, progress) / WINDOW_SCHEDULE_SPAN)
    return round(start + (end - start) * grown)


@dataclass(frozen=True)
class Plateau:
    """The best validation loss so far, the evaluations since it, and the plateau schedule's
    scale on the learning rate, which halves after every PLATEAU_EVALS evaluations without a
    better loss."""

    best_val_loss: float | None = None
    evals_since_best: int = 0
    lr_scale: float = 1.0

    def after(self, val_loss: float | None, lr_schedule: str) -> Plateau:
        """The record after an evaluation that scored ``val_loss`` (None: no validation)."""
        if val_loss is None:
            return self
        if self.best_val_loss is None or val_loss < self.best_val_loss:
            return replace(self, best_val_loss=val_loss, evals_since_best=0)
        evals = self.evals_since_best + 1
        halve = lr_schedule == "plateau" and evals % PLATEAU_EVALS == 0
        return replace(self, evals_since_best=evals,
                       lr_scale=self.lr_scale * PLATEAU_FACTOR if halve else self.lr_scale)
