"""``charrnn train``: options, resume, progress, signals."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from ..cache import default_cache_dir
from ..cells import CELLS
from ..checkpoint import load_checkpoint
from ..corpus import default_corpus, load_corpus
from ..errors import CharrnnError
from ..model import ModelConfig
from ..train import (DEFAULT_MAX_EPOCHS, LR_SCHEDULES, TrainSettings, new_trainer, resume_trainer,
                     settings_from_checkpoint)
from .output import encoding_option, errors_option, parse_escapes

ARCHITECTURE_OPTIONS = ("cell", "hidden_size", "num_layers", "embedding_size")
TRAINING_OPTIONS = ("seq_length", "seq_length_schedule", "batch_size", "lr", "lr_schedule", "warmup_steps", "clip",
                    "dropout", "max_steps", "max_epochs",
                    "max_time", "val_fraction", "eval_every", "save_every", "keep_best", "patience", "seed",
                    "records", "delimiter")
STOP_LIMITS = ("max_steps", "max_epochs", "max_time")


def default_checkpoint_path(source: str) -> Path:
    name = "stdin" if source == "-" else Path(source).stem
    return Path("checkpoints") / f"{name}.npz"


class StopOnSignal:
    """While active, the first SIGINT or SIGTERM asks training to stop after the current step;
    a second one interrupts at once (checkpoints are written atomically, so none is damaged)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.received: int | None = None

    def __enter__(self) -> StopOnSignal:
        self.previous = {number: signal.signal(number, self._handle) for number in self.SIGNALS}
        return self

    def __exit__(self, *exc_info) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)

    def _handle(self, number, frame) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = number
        click.echo("\nstopping after this step (press Ctrl-C again to quit at once)", err=True)

    def requested(self) -> bool:
        return self.received is not None


def explicit_options(ctx: click.Context, names) -> dict:
    """The options among ``names`` that the user gave on the command line."""
    source = click.core.ParameterSource
    return {name: ctx.params[name] for name in names
            if ctx.get_parameter_source(name) not in (source.DEFAULT, None)}


def check_architecture(checkpoint, given: dict) -> None:
    saved = checkpoint.model.config.to_dict()
    for name, value in given.items():
        if saved[name] != value:
            flag = "--" + name.replace("_", "-")
            raise CharrnnError(f"{flag} {value} differs from the checkpoint's {saved[name]}; "
                               "a resumed model keeps its architecture")


@click.command()
@click.argument("file", required=False, metavar="[FILE|-]")
@click.option("--out", "-o", type=click.Path(dir_okay=False),
              help="Checkpoint to write  [default: checkpoints/<FILE's name>.npz, or the "
                   "--resume checkpoint]", show_default=False)
@click.option("--resume", type=click.Path(dir_okay=False),
              help="Continue training from this checkpoint (its architecture and data layout).")
@click.option("--records", is_flag=True,
              help="One record per line (or per --delimiter): each is learned as a whole "
                   "sequence from <START> to <END>.")
@click.option("--delimiter", default="\\n", help=r"Record delimiter for --records (\n, \t escapes).")
@encoding_option
@errors_option
@click.option("--val-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=0.05, help="Fraction of the text (or of the records) held out for validation.")
@click.option("--cell", type=click.Choice(sorted(CELLS)), default="lstm",
              help="Recurrent cell: LSTM, GRU, or vanilla tanh RNN.")
@click.option("--hidden-size", type=click.IntRange(min=1), default=256,
              help="Units per recurrent layer.")
@click.option("--num-layers", type=click.IntRange(min=1), default=2,
              help="Stacked recurrent layers.")
@click.option("--embedding-size", type=click.IntRange(min=1), default=64,
              help="Size of the learned character embedding.")
@click.option("--seq-length", type=click.IntRange(min=1), default=100,
              help="Time steps per window (truncated backpropagation through time).")
@click.option("--seq-length-schedule", metavar="START:END", default=None,
              help="Grow the windows from START to END steps over the first half of training "
                   "(in place of --seq-length).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64,
              help="Parallel streams per step.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=2e-3,
              help="Adam learning rate.")
@click.option("--lr-schedule", type=click.Choice(LR_SCHEDULES), default="constant",
              help="constant; cosine: decay to a tenth of --lr by the step, epoch (or time) "
                   "limit; plateau: halve after two evaluations without improvement.")
@click.option("--warmup-steps", type=click.IntRange(min=0), default=0,
              help="Raise the learning rate linearly from zero over this many steps.")
@click.option("--clip", type=click.FloatRange(min=0), default=5.0,
              help="Clip gradients to this global norm (0: no clipping).")
@click.option("--dropout", type=click.FloatRange(0, 1, max_open=True), default=0.0,
              help="Drop each layer's outputs with this probability while training.")
@click.option("--seed", type=int, default=0,
              help="Seed for the initial weights and dropout.")
@click.option("--max-steps", type=click.IntRange(min=0), default=None,
              help="Stop after this many updates in all (counting resumed ones).")
@click.option("--max-epochs", type=click.FloatRange(min=0), default=None,
              help=f"Stop after this many passes over the data [default: {DEFAULT_MAX_EPOCHS} "
                   "when no limit is given].")
@click.option("--max-time", type=click.FloatRange(min=0), default=None,
              help="Stop after this many seconds of this run.")
@click.option("--eval-every", type=click.IntRange(min=1), default=100,
              help="Evaluate on the validation text and save a checkpoint every this many steps.")
@click.option("--save-every", type=click.IntRange(min=1), default=None,
              help="Also save a checkpoint every this many steps.")
@click.option("--patience", type=click.IntRange(min=1), default=None,
              help="Stop early after this many evaluations without a better validation loss.")
@click.option("--keep-best", is_flag=True,
              help="Also keep the model with the best validation loss in <out>.best.npz.")
@click.pass_context
def train(ctx, file, out, resume, encoding, errors, **options):
    """Train a model on a text file (or - for standard input).

    With no FILE, trains on the Shakespeare corpus that ships with charrnn.
    Saves a checkpoint at every evaluation and at the end; Ctrl-C stops
    after the current step and saves.
    """
    source = file if file is not None else default_corpus()
    options["delimiter"] = parse_escapes(options["delimiter"])
    given = explicit_options(ctx, TRAINING_OPTIONS)
    if "delimiter" in given:
        given["delimiter"] = options["delimiter"]
    read_options = {"encoding": encoding, "errors": errors, "cache_dir": default_cache_dir()}

    if resume:
        checkpoint = load_checkpoint(resume)
        check_architecture(checkpoint, explicit_options(ctx, ARCHITECTURE_OPTIONS))
        settings = settings_from_checkpoint(checkpoint, given)
        corpus = load_corpus(source, records=settings.records, delimiter=settings.delimiter,
                             val_fraction=settings.val_fraction, vocab=checkpoint.vocab,
                             **read_options)
        out_path = Path(out or resume)
        trainer = resume_trainer(checkpoint, corpus, settings, out_path,
                                 notify=lambda message: click.echo(f"note: {message}", err=True))
    else:
        settings = TrainSettings(**{name: options[name] for name in TRAINING_OPTIONS})
        if not any(name in given for name in STOP_LIMITS):
            settings = TrainSettings(**{**settings.__dict__, "max_epochs": DEFAULT_MAX_EPOCHS})
        corpus = load_corpus(source, records=settings.records, delimiter=settings.delimiter,
                             val_fraction=settings.val_fraction, **read_options)
        config = ModelConfig(corpus.vocab.size, options["embedding_size"],
                             options["hidden_size"], options["num_layers"], options["cell"])
        out_path = Path(out) if out else default_checkpoint_path(source)
        trainer = new_trainer(corpus, config, settings, out_path)

    windows = trainer.windows
    asked = (settings.batch_size, max(trainer.seq_length_range))
    if (windows.batch_size, windows.seq_length) != asked:
        click.echo(f"note: the text is short: training with --batch-size {windows.batch_size} "
                   f"--seq-length {windows.seq_length}", err=True)
    click.echo(f"training on {Path(source).name if file else 'the shipped corpus'}: "
               f"{corpus.num_chars:,} characters, vocabulary {corpus.vocab.size}, "
               f"{trainer.model.config.num_params():,} parameters", err=True)

    from .progress import TrainingReporter  # rich is only needed here

    with StopOnSignal() as stop, TrainingReporter() as reporter:
        try:
            outcome = trainer.run(reporter, stop.requested)
        except KeyboardInterrupt:
            click.echo("interrupted; the last checkpoint saved is kept", err=True)
            sys.exit(130)
    if outcome == "no improvement":
        click.echo(f"stopped early: no better validation loss in {settings.patience} "
                   f"evaluations (best {trainer.best_val_loss:.4f} nats/char)", err=True)
    if outcome == "interrupted":
        click.echo(f"stopped at step {trainer.position.step}; saved {out_path}", err=True)
        sys.exit(128 + stop.received)
