"""``charrnn train``: options, progress and signals around ``charrnn.train``."""

from __future__ import annotations

import math
import signal
import sys
from typing import get_args, get_type_hints

import click

from charrnn.api import RUN_OPTIONS, TRAIN_OPTIONS, train as train_model
from charrnn.cli.output import FiniteFloatRange, encoding_option, errors_option, parse_escapes
from charrnn.errors import CharrnnError
from charrnn.nn.cells import CELLS
from charrnn.training.run import MODEL_DEFAULTS
from charrnn.training.settings import (DEFAULT_MAX_EPOCHS, DEFAULT_SHARDS, LR_SCHEDULES,
                                       STANDARD, TIME_BUDGET_DEFAULTS, TrainSettings, bounds)

DEFAULTS = TrainSettings()  # the defaults of every training option
SETTING_TYPES = get_type_hints(TrainSettings)


def budget_default_help(name: str) -> str:
    """The default of the recipe setting ``name`` for --help: "[default: 0.003; for a run
    limited by --max-time alone, 0.005 up to 200 s, 0.003 up to 1200 s, 0.002 over 1200 s;
    on --resume, the checkpoint's]" (settings.TIME_BUDGET_DEFAULTS)."""
    def shown(value) -> str:
        return value if isinstance(value, str) else f"{value:g}"

    rows = [(seconds, getattr(chosen, name)) for seconds, chosen in TIME_BUDGET_DEFAULTS]
    parts, start = [], 0
    for (seconds, value), following in zip(rows, rows[1:] + [(None, None)]):
        if following[1] == value:
            continue  # one span with the next
        parts.append(f"{shown(value)} up to {seconds:g} s" if seconds != math.inf
                     else f"{shown(value)} over {start:g} s")
        start = seconds
    return (f"[default: {shown(getattr(STANDARD, name))}; for a run limited by --max-time alone, "
            f"{', '.join(parts)}; on --resume, the checkpoint's]")


def setting_type(name: str) -> click.ParamType:
    """The option type of the number setting ``name``: whole or not as TrainSettings
    declares it, within its ``settings.bounds``."""
    limits = bounds(name)
    kinds = get_args(SETTING_TYPES[name]) or (SETTING_TYPES[name],)
    number_range = click.IntRange if int in kinds else FiniteFloatRange
    return number_range(limits.low, None if limits.high == math.inf else limits.high,
                        min_open=limits.low_open, max_open=limits.high_open)


class StopOnSignal:
    """While active, the first SIGINT or SIGTERM (or Windows' Ctrl-Break, SIGBREAK) asks
    training to stop after the current step; a second one interrupts at once (checkpoints
    are written atomically, so none is damaged)."""

    SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGBREAK")
                    if hasattr(signal, name))

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
            self.received = number
            raise KeyboardInterrupt
        self.received = number
        click.echo("stopping after this step (send the signal again to quit at once)", err=True)

    def requested(self) -> bool:
        return self.received is not None


def check_schedule(schedule: str | None) -> str | None:
    try:
        TrainSettings(seq_length_schedule=schedule)
    except CharrnnError as error:
        raise click.BadParameter(str(error)) from None
    return schedule


def explicit_options(ctx: click.Context, names) -> dict:
    """The options among ``names`` that the user gave on the command line."""
    source = click.core.ParameterSource
    return {name: ctx.params[name] for name in names
            if ctx.get_parameter_source(name) not in (source.DEFAULT, None)}


@click.command()
@click.argument("files", nargs=-1, metavar="[FILE|FOLDER|-]...")
@click.option("--out", "-o", type=click.Path(dir_okay=False),
              help="Checkpoint to write  [default: checkpoints/<FILE's name>.npz, or the "
                   "--resume checkpoint]", show_default=False)
@click.option("--resume", type=click.Path(dir_okay=False),
              help="Continue training from this checkpoint (its architecture and data layout).")
@click.option("--init-from", type=click.Path(dir_okay=False),
              help="Fine-tune: start a new run from this checkpoint's weights (its "
                   "architecture; new characters get new rows).")
@click.option("--records", is_flag=True,
              help="One record per line (or per --delimiter): each is learned as a whole "
                   "sequence from <START> to <END>.")
@click.option("--delimiter", default=DEFAULTS.delimiter.encode("unicode_escape").decode(),
              callback=lambda ctx, param, value: parse_escapes(value),
              help=r"Record delimiter for --records (\n, \t escapes).")
@encoding_option
@errors_option
@click.option("--val-fraction", type=setting_type("val_fraction"),
              default=DEFAULTS.val_fraction,
              help="Fraction of the text (or of the records) held out for validation.")
@click.option("--cell", type=click.Choice(sorted(CELLS)), default=None,
              help="Recurrent cell: LSTM, LSTM with peepholes (lstm-peephole) or with coupled "
                   "input and forget gates (lstm-cifg), GRU, or vanilla tanh RNN; a short run "
                   "by the clock keeps lstm-cifg only if the budget that reads tinyshakespeare "
                   "as often would take it "
                   f"{budget_default_help('cell')}.")
@click.option("--hidden-size", type=click.IntRange(min=1), default=None,
              help=f"Units per recurrent layer {budget_default_help('hidden_size')}.")
@click.option("--num-layers", type=click.IntRange(min=1),
              default=MODEL_DEFAULTS["num_layers"],
              help="Stacked recurrent layers.")
@click.option("--embedding-size", type=click.IntRange(min=1),
              default=MODEL_DEFAULTS["embedding_size"],
              help="Size of the learned character embedding.")
@click.option("--seq-length", type=setting_type("seq_length"), default=None,
              help=f"Time steps per window (truncated backpropagation through time) "
                   f"{budget_default_help('seq_length')}.")
@click.option("--seq-length-schedule", metavar="START:END", default=None,
              callback=lambda ctx, param, value: check_schedule(value),
              help="Grow the windows from START to END steps over the first half of training "
                   "(in place of --seq-length).")
@click.option("--batch-size", type=setting_type("batch_size"), default=None,
              help=f"Parallel streams per step {budget_default_help('batch_size')}.")
@click.option("--lr", type=setting_type("lr"), default=None,
              help=f"Adam learning rate {budget_default_help('lr')}.")
@click.option("--lr-schedule", type=click.Choice(LR_SCHEDULES), default=DEFAULTS.lr_schedule,
              help="constant; cosine: decay to zero by the step, epoch (or time) "
                   "limit; plateau: halve after two evaluations without improvement.")
@click.option("--warmup-steps", type=setting_type("warmup_steps"), default=DEFAULTS.warmup_steps,
              help="Raise the learning rate linearly from zero over this many steps.")
@click.option("--clip", type=setting_type("clip"), default=DEFAULTS.clip,
              help="Clip gradients to this global norm (0: no clipping).")
@click.option("--dropout", type=setting_type("dropout"), default=None,
              help=f"Drop each layer's outputs with this probability while training; a run "
                   f"by the clock on a text shorter or longer than tinyshakespeare takes the "
                   f"dropout of the budget that reads tinyshakespeare as often "
                   f"{budget_default_help('dropout')}.")
@click.option("--seed", type=setting_type("seed"), default=DEFAULTS.seed,
              help="Seed for the initial weights and dropout.")
@click.option("--threads", type=setting_type("threads"), default=None,
              help="Workers (processes) that share each step, one core each, at most one "
                   "per shard; 1 computes it in one process. The weights do not depend on it "
                   "[default: the cores available; on --resume, the checkpoint's, at most "
                   "the cores available].")
@click.option("--shards", type=setting_type("shards"), default=None,
              help="Cut each batch into this many shards, computed by the workers; a seed "
                   "and a shard count give the same weights whatever the workers [default: "
                   f"{DEFAULT_SHARDS}; on --resume, the checkpoint's].")
@click.option("--max-steps", type=setting_type("max_steps"), default=None,
              help="Stop after this many updates in all (counting resumed ones).")
@click.option("--max-epochs", type=setting_type("max_epochs"), default=None,
              help=f"Stop after this many passes over the data [default: {DEFAULT_MAX_EPOCHS} "
                   "when no limit is given].")
@click.option("--max-time", type=setting_type("max_time"), default=None,
              help="Stop after this many seconds of this run.")
@click.option("--eval-every", type=setting_type("eval_every"), default=DEFAULTS.eval_every,
              help="Evaluate on the validation text and save a checkpoint every this many steps.")
@click.option("--save-every", type=setting_type("save_every"), default=None,
              help="Also save a checkpoint every this many steps.")
@click.option("--keep-last", type=setting_type("keep_last"), default=None,
              help="With --save-every: also keep the last N of those saves as "
                   "<out>.step<k>.npz, deleting older ones.")
@click.option("--sample-every", type=click.IntRange(min=1), default=None,
              help="Print a short sample on stderr every this many steps (a few labelled "
                   "records with --records).")
@click.option("--sample-length", type=click.IntRange(min=1),
              default=RUN_OPTIONS["sample_length"],
              help="Most characters in each sample of --sample-every.")
@click.option("--patience", type=setting_type("patience"), default=None,
              help="Stop early after this many evaluations without a better validation loss.")
@click.option("--keep-best", is_flag=True,
              help="Also keep the model with the best validation loss in <out>.best.npz.")
@click.pass_context
def train(ctx, files, **options):
    """Train a model on text files (or - for standard input).

    With no FILE, trains on the Shakespeare corpus that ships with charrnn. A
    FOLDER stands for the text files in it, by name; several files are
    learned one after another, as separate sequences. Saves a checkpoint at
    every evaluation and at the end; Ctrl-C stops after the current step and
    saves.
    """
    if options["records"] and not options["delimiter"]:
        raise click.BadParameter("must not be empty", param_hint="'--delimiter'")
    run_until_stopped(files, explicit_options(ctx, ["out", *TRAIN_OPTIONS]))


def run_until_stopped(files: tuple[str, ...], settings: dict) -> None:
    """Train with a progress display; exit 130 or 143 if a signal stopped it."""
    from charrnn.cli.progress import TrainingReporter  # rich is only needed here

    with StopOnSignal() as stop, TrainingReporter() as reporter:
        try:
            train_model(files, on_event=reporter, stop_requested=stop.requested, **settings)
        except KeyboardInterrupt:
            click.echo("interrupted; the last checkpoint saved is kept", err=True)
            sys.exit(128 + (stop.received or signal.SIGINT))
    if reporter.interrupted:
        sys.exit(128 + stop.received)
