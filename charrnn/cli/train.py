"""``charrnn train``: options, resume, progress, signals."""

from __future__ import annotations

import math
import signal
import sys
from dataclasses import MISSING, fields
from pathlib import Path
from typing import get_args, get_type_hints

import click

from charrnn.cli.output import FiniteFloatRange, encoding_option, errors_option, parse_escapes
from charrnn.data.cache import default_cache_dir
from charrnn.data.corpus import load_corpus
from charrnn.data.known_records import MAX_KEPT
from charrnn.data.sources import default_corpus, training_files
from charrnn.errors import CharrnnError, counted, shown_characters
from charrnn.generation.training_samples import TrainingSampler
from charrnn.io.atomic import check_writable
from charrnn.nn.cells import CELLS
from charrnn.nn.model import ModelConfig
from charrnn.saving.checkpoint import load_checkpoint
from charrnn.training.fine_tune import fine_tuned_config, new_characters
from charrnn.training.settings import (DEFAULT_MAX_EPOCHS, DEFAULT_SHARDS, LR_SCHEDULES,
                                       STANDARD, TIME_BUDGET_DEFAULTS, SettingNeeded,
                                       TrainSettings, bounds)
from charrnn.training.state import saved_settings
from charrnn.training.trainer import (ArchitectureChanged, check_architecture, new_trainer,
                                      resume_trainer)

DEFAULT_SAMPLE_LENGTH = 200
DEFAULTS = TrainSettings()  # the defaults of every training option
MODEL_DEFAULTS = {setting.name: setting.default for setting in fields(ModelConfig)
                  if setting.default is not MISSING}
ARCHITECTURE_OPTIONS = tuple(MODEL_DEFAULTS)
TRAINING_OPTIONS = tuple(setting.name for setting in fields(TrainSettings))
SETTING_TYPES = get_type_hints(TrainSettings)


def budget_default_help(name: str) -> str:
    """The default of the recipe setting ``name`` for --help: "[default: 0.003; for a run
    limited by --max-time alone, 0.005 up to 200 s, 0.003 up to 1200 s, 0.002 over 1200 s;
    on --resume, the checkpoint's]" (settings.TIME_BUDGET_DEFAULTS)."""
    rows = [(seconds, getattr(chosen, name)) for seconds, chosen in TIME_BUDGET_DEFAULTS]
    parts, start = [], 0
    for (seconds, value), following in zip(rows, rows[1:] + [(None, None)]):
        if following[1] == value:
            continue  # one span with the next
        parts.append(f"{value:g} up to {seconds:g} s" if seconds != math.inf
                     else f"{value:g} over {start:g} s")
        start = seconds
    return (f"[default: {getattr(STANDARD, name):g}; for a run limited by --max-time alone, "
            f"{', '.join(parts)}; on --resume, the checkpoint's]")


def setting_type(name: str) -> click.ParamType:
    """The option type of the number setting ``name``: whole or not as TrainSettings
    declares it, within its ``settings.bounds``."""
    limits = bounds(name)
    kinds = get_args(SETTING_TYPES[name]) or (SETTING_TYPES[name],)
    number_range = click.IntRange if int in kinds else FiniteFloatRange
    return number_range(limits.low, None if limits.high == math.inf else limits.high,
                        min_open=limits.low_open, max_open=limits.high_open)


def flag(name: str) -> str:
    """The option that sets the library setting ``name``."""
    return "--" + name.replace("_", "-")


def default_checkpoint_path(source: str) -> Path:
    name = "stdin" if source == "-" else Path(source).stem
    return Path("checkpoints") / f"{name}.npz"


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


def needs(option: str, needed: str) -> click.UsageError:
    return click.UsageError(f"{option} needs {needed}")


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
@click.option("--cell", type=click.Choice(sorted(CELLS)), default=MODEL_DEFAULTS["cell"],
              help="Recurrent cell: LSTM, LSTM with peepholes (lstm-peephole) or with coupled "
                   "input and forget gates (lstm-cifg), GRU, or vanilla tanh RNN.")
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
              help=f"Drop each layer's outputs with this probability while training "
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
@click.option("--sample-length", type=click.IntRange(min=1), default=DEFAULT_SAMPLE_LENGTH,
              help="Most characters in each sample of --sample-every.")
@click.option("--patience", type=setting_type("patience"), default=None,
              help="Stop early after this many evaluations without a better validation loss.")
@click.option("--keep-best", is_flag=True,
              help="Also keep the model with the best validation loss in <out>.best.npz.")
@click.pass_context
def train(ctx, files, out, resume, init_from, encoding, errors, sample_every, sample_length,
          **options):
    """Train a model on text files (or - for standard input).

    With no FILE, trains on the Shakespeare corpus that ships with charrnn. A
    FOLDER stands for the text files in it, by name; several files are
    learned one after another, as separate sequences. Saves a checkpoint at
    every evaluation and at the end; Ctrl-C stops after the current step and
    saves.
    """
    if "-" in files and len(files) > 1:
        raise click.UsageError("- (standard input) cannot be read with other files")
    sources = training_sources(files, encoding, errors)
    if resume and init_from:
        raise click.UsageError("give --resume or --init-from, not both")
    if sample_every is None and "sample_length" in explicit_options(ctx, ["sample_length"]):
        raise needs("--sample-length", "--sample-every")
    if options["records"] and not options["delimiter"]:
        raise click.BadParameter("must not be empty", param_hint="'--delimiter'")
    if out == "":
        raise click.BadParameter("must not be empty", param_hint="'--out'")
    out_path = Path(out or resume or default_checkpoint_path((files or sources)[0]))
    if any(out_path.resolve() == Path(source).resolve() for source in sources if source != "-"):
        raise click.BadParameter("is the training text itself", param_hint="'--out'")
    check_writable(out_path)
    given = explicit_options(ctx, TRAINING_OPTIONS)
    read = {"encoding": encoding, "errors": errors, "cache_dir": default_cache_dir()}
    try:
        if resume:
            trainer = resumed_trainer(ctx, resume, sources, given, out_path, read)
        else:
            start = None if init_from is None else kept_architecture(ctx, init_from, "fine-tuned")
            trainer = new_run(sources, options, out_path, read, start)
    except SettingNeeded as error:
        raise needs(flag(error.name), flag(error.needed)) from None
    describe_start(trainer, sources_name(files, sources))
    sampler = None
    if sample_every:
        sampler = TrainingSampler(trainer.corpus, records=trainer.settings.records,
                                  seed=trainer.settings.seed, length=sample_length,
                                  earlier=trainer.earlier_records)
    run_until_stopped(trainer, sample_every, sampler)


def training_sources(files: tuple[str, ...], encoding: str, errors: str) -> list[str]:
    """The files to train on (the shipped corpus if none is given), with a note on stderr for
    each file of a folder that is skipped."""
    sources, skipped = training_files(files or [default_corpus()], encoding, errors)
    for path, reason in skipped.items():
        click.echo(f"note: skipped {path}: {reason}", err=True)
    return sources


def sources_name(files: tuple[str, ...], sources: list[str]) -> str:
    """What is trained on, in a few words."""
    if not files:
        return "the shipped corpus"
    if sources == ["-"]:
        return "standard input"
    return Path(sources[0]).name if len(sources) == 1 else f"{len(sources)} files"


def kept_architecture(ctx, path: str, run: str):
    """The checkpoint at ``path``, whose architecture the options given must not change."""
    checkpoint = load_checkpoint(path)
    try:
        check_architecture(checkpoint.model.config, explicit_options(ctx, ARCHITECTURE_OPTIONS))
    except ArchitectureChanged as error:
        raise CharrnnError(error.describe(flag(error.name), run)) from None
    return checkpoint


def resumed_trainer(ctx, resume: str, sources: list[str], given: dict, out_path: Path,
                    read: dict):
    checkpoint = kept_architecture(ctx, resume, "resumed")

    def read_corpus(settings):
        return load_corpus(sources, records=settings.records, delimiter=settings.delimiter,
                           val_fraction=settings.val_fraction, vocab=checkpoint.vocab, **read)

    return resume_trainer(checkpoint, read_corpus, out_path, given,
                          notify=lambda message: click.echo(f"note: {message}", err=True))


def new_run(sources: list[str], options: dict, out_path: Path, read: dict, init_from=None):
    """A trainer for a fresh model, or with ``init_from`` for one fine-tuned from that
    checkpoint (in its vocabulary, extended by the text's new characters)."""
    settings = TrainSettings(**{name: options[name] for name in TRAINING_OPTIONS})
    corpus = load_corpus(sources, records=settings.records, delimiter=settings.delimiter,
                         val_fraction=settings.val_fraction, extend_vocab=True,
                         vocab=None if init_from is None else init_from.vocab, **read)
    if init_from is None:
        architecture = {name: options[name] for name in ARCHITECTURE_OPTIONS}
        if architecture["hidden_size"] is None:
            architecture["hidden_size"] = settings.recipe.hidden_size
        config = ModelConfig(corpus.vocab.size, **architecture)
    else:
        config = fine_tuned_config(init_from, corpus.vocab)
        describe_fine_tuning(init_from, corpus.vocab, settings)
    return new_trainer(corpus, config, settings, out_path, init_from)


def describe_fine_tuning(checkpoint, vocab, settings: TrainSettings) -> None:
    """Notes on stderr: the characters added, and a layout that differs from the checkpoint's."""
    added = new_characters(checkpoint.vocab, vocab)
    if added:
        click.echo(f"note: the text has {counted(len(added), 'character')} the checkpoint's "
                   f"vocabulary lacks, given new rows: {shown_characters(added)}", err=True)
    if checkpoint.training is not None and saved_settings(checkpoint).records != settings.records:
        before, now = ("without", "with") if settings.records else ("with", "without")
        click.echo(f"note: the checkpoint was trained {before} --records, this run is {now} it",
                   err=True)


def describe_start(trainer, text_name: str) -> None:
    """Notes on stderr: what is trained on, and anything that differs from what was asked."""
    settings, windows, corpus = trainer.settings, trainer.windows, trainer.corpus
    if (windows.batch_size, windows.window_length) != (settings.batch_size,
                                                    settings.window_range()[1]):
        click.echo(f"note: the text is short: training with --batch-size {windows.batch_size} "
                   f"--seq-length {windows.window_length}", err=True)
    if len(corpus.val_tokens) < 2:
        click.echo("note: the text is too short to hold any out for validation; --keep-best "
                   "and --patience have nothing to go on", err=True)
    if settings.records and trainer.known_records is None:
        click.echo(f"note: more than {MAX_KEPT:,} records: the checkpoint will not keep them, "
                   "so 'sample --novel' and in_training are not available", err=True)
    click.echo(f"training on {text_name}: {counted(corpus.num_chars, 'character')}, vocabulary "
               f"{corpus.vocab.size}, {trainer.model.config.num_params():,} parameters; "
               f"{counted(trainer.workers.num_workers, 'thread')}", err=True)


def run_until_stopped(trainer, sample_every: int | None = None,
                      sampler: TrainingSampler | None = None) -> None:
    """Run with a progress display (and samples from ``sampler`` every ``sample_every``
    steps); exit 130 or 143 if a signal stopped it."""
    from charrnn.cli.progress import TrainingReporter  # rich is only needed here

    with StopOnSignal() as stop, TrainingReporter() as reporter:
        def on_event(event):
            reporter(event)
            if sampler and event.kind == "step" and event.step % sample_every == 0:
                reporter.show_samples(event.step, sampler.draw(trainer.model))

        try:
            outcome = trainer.run(on_event, stop.requested)
        except KeyboardInterrupt:
            click.echo("interrupted; the last checkpoint saved is kept", err=True)
            sys.exit(128 + (stop.received or signal.SIGINT))
    if outcome == "no improvement":
        click.echo(f"stopped early: no better validation loss in {trainer.settings.patience} "
                   f"evaluations (best {trainer.plateau.best_val_loss:.4f} nats/char)", err=True)
    if outcome == "interrupted":
        click.echo(f"stopped at step {trainer.position.step}; saved {trainer.out}", err=True)
        sys.exit(128 + stop.received)
