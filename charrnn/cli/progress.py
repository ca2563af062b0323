"""Training progress on stderr: a rich progress bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from charrnn.cli.output import as_options
from charrnn.generation.training_samples import LABELS, SamplesDrawn, TrainingSample
from charrnn.training.run import Note
from charrnn.training.trainer import TrainEvent

BAR_TOTAL = 1000


def _loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def log_line(event: TrainEvent) -> str:
    """One line summing up an evaluation or the end of training."""
    parts = [f"step {event.step}", f"epoch {event.epoch:.2f}",
             f"train {_loss(event.train_loss)}", f"val {_loss(event.val_loss)} nats/char",
             f"{event.chars_per_sec:,.0f} chars/s", f"{event.elapsed:.1f} s"]
    if event.checkpoint:
        parts.append(f"saved {event.checkpoint}")
    return " | ".join(parts)


class TrainingReporter:
    """Receives a run's events (``charrnn.train``'s ``on_event``); use as a context manager
    around the run. ``interrupted``: whether the run said it stopped on request."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.progress: Progress | None = None
        self.task = None
        self.val_loss: float | None = None
        self.train_loss: float | None = None
        self.logged_step: int | None = None  # the step of the last log line
        self.interrupted = False

    def __enter__(self) -> TrainingReporter:
        if self.console.is_terminal:
            self.progress = Progress(
                TextColumn("[bold]train"), BarColumn(),
                TextColumn("step {task.fields[step]}"),
                TextColumn("loss {task.fields[train]}"),
                TextColumn("val {task.fields[val]}"),
                TextColumn("{task.fields[speed]} chars/s"),
                TimeElapsedColumn(), TimeRemainingColumn(),
                console=self.console)
            self.progress.start()
            self.task = self.progress.add_task("train", total=BAR_TOTAL, step=0, train="-",
                                               val="-", speed="-")
        return self

    def __exit__(self, *exc_info) -> None:
        if self.progress is not None:
            self.progress.stop()

    def show_samples(self, step: int, samples: list[TrainingSample]) -> None:
        """Print samples drawn at ``step``: above the bar on a terminal, else as lines."""
        width = max(map(len, LABELS))
        # A record is one line, after its label: line ends in it are shown as \n.
        lines = [sample.text if sample.label is None else
                 f"{sample.label:<{width}}  {sample.text}".replace("\n", "\\n")
                 for sample in samples]
        self.console.print("\n".join([f"--- sample at step {step} ---", *lines]),
                           highlight=False, markup=False, emoji=False, soft_wrap=True)

    def __call__(self, event: TrainEvent | Note | SamplesDrawn) -> None:
        if isinstance(event, Note):
            self.interrupted |= event.kind == "interrupted"
            message = as_options(event.message)
            self.console.print(f"note: {message}" if event.kind == "note" else message,
                               highlight=False, markup=False, emoji=False, soft_wrap=True)
        elif isinstance(event, SamplesDrawn):
            self.show_samples(event.step, event.samples)
        else:
            self.show_progress(event)

    def show_progress(self, event: TrainEvent) -> None:
        if event.val_loss is not None:
            self.val_loss = event.val_loss
        if event.train_loss is not None:
            self.train_loss = event.train_loss
        if self.progress is not None:
            completed = None if event.fraction_done is None else event.fraction_done * BAR_TOTAL
            self.progress.update(self.task, completed=completed, step=event.step,
                                 train=_loss(self.train_loss), val=_loss(self.val_loss),
                                 speed=f"{event.chars_per_sec:,.0f}")
        if event.kind != "step" and event.step != self.logged_step:
            self.console.print(log_line(event), highlight=False, markup=False, soft_wrap=True)
            self.logged_step = event.step
