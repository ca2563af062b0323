"""The ``charrnn`` command line: train, sample and eval.

A thin layer: it parses options, calls the library and reports. Generated
text (or JSON) goes to stdout; progress and diagnostics go to stderr.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
from pathlib import Path

import click
import numpy as np

from . import __version__
from .beam import beam_search
from .cells import CELLS
from .checkpoint import load_checkpoint
from .cache import default_cache_dir
from .corpus import (default_corpus, load_corpus, read_text, sequence_tokens, source_name,
                     split_records)
from .errors import CharrnnError
from .evaluate import breakdown, score_tokens
from .model import ModelConfig
from .sample import OrderedWriter, generate
from .train import (LR_SCHEDULES, TrainSettings, new_trainer, resume_trainer,
                    settings_from_checkpoint)

DEFAULT_MAX_EPOCHS = 5
ARCHITECTURE_OPTIONS = ("cell", "hidden_size", "num_layers", "embedding_size")
TRAINING_OPTIONS = ("seq_length", "batch_size", "lr", "lr_schedule", "warmup_steps", "clip",
                    "dropout", "max_steps", "max_epochs",
                    "max_time", "val_fraction", "eval_every", "save_every", "keep_best", "patience", "seed",
                    "records", "delimiter")
STOP_LIMITS = ("max_steps", "max_epochs", "max_time")


def error_line(message: str) -> None:
    click.echo(f"charrnn: error: {message}", err=True)


class CharrnnGroup(click.Group):
    """A group whose every failure is one line on stderr and a non-zero exit status."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            status = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as error:
            hint = f" (see '{error.ctx.command_path} --help')" if error.ctx else ""
            error_line(error.format_message() + hint)
            sys.exit(error.exit_code)
        except click.ClickException as error:
            error_line(error.format_message())
            sys.exit(error.exit_code)
        except CharrnnError as error:
            error_line(str(error))
            sys.exit(1)
        except click.Abort:
            sys.exit(130)
        sys.exit(status if isinstance(status, int) else 0)


@click.group(cls=CharrnnGroup, context_settings={"help_option_names": ["-h", "--help"],
                                                 "show_default": True})
@click.version_option(__version__, "-V", "--version", prog_name="charrnn")
def cli():
    """Train a character-level LSTM on any text, then sample from it and score it.

    \b
      charrnn train corpus.txt --out checkpoints/model.npz
      charrnn sample checkpoints/model.npz --length 300
      charrnn eval checkpoints/model.npz other.txt
    """


def parse_escapes(value: str) -> str:
    r"""A string given on the command line with \n, \t and \\ written as escapes."""
    result = value.replace("\\\\", "\0").replace("\\n", "\n").replace("\\t", "\t")
    return result.replace("\0", "\\")


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


@cli.command()
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
@click.option("--encoding", default="utf-8", help="Encoding of FILE.")
@click.option("--errors", type=click.Choice(["strict", "replace", "ignore"]), default="strict",
              help="What to do with bytes that are not valid in the encoding.")
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
    if (windows.batch_size, windows.seq_length) != (settings.batch_size, settings.seq_length):
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
            click.echo(f"interrupted; the last checkpoint saved is kept", err=True)
            sys.exit(130)
    if outcome == "no improvement":
        click.echo(f"stopped early: no better validation loss in {settings.patience} "
                   f"evaluations (best {trainer.best_val_loss:.4f} nats/char)", err=True)
    if outcome == "interrupted":
        click.echo(f"stopped at step {trainer.position.step}; saved {out_path}", err=True)
        sys.exit(128 + stop.received)


class StdoutText:
    """Writes UTF-8 to standard output whatever the locale, flushing as it goes."""

    def __init__(self):
        self.stream = sys.stdout.buffer

    def __call__(self, text: str) -> None:
        if text:
            self.stream.write(text.encode("utf-8", "surrogatepass"))
            self.stream.flush()


def quiet_broken_pipe() -> None:
    """The reader went away (`... | head`): send what is left to /dev/null and end quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


@cli.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--length", "-n", type=click.IntRange(min=0), default=500,
              help="Most characters to generate per sample (a sample also stops at <END>).")
@click.option("--temperature", "-t", type=click.FloatRange(min=0), default=0.8,
              help="Sharpness of the draw: lower is safer, higher is wilder, 0 always takes "
                   "the likeliest character.")
@click.option("--top-k", type=click.IntRange(min=1), default=None,
              help="Draw only from the k likeliest characters.")
@click.option("--top-p", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Draw only from the likeliest characters whose probabilities add up to p "
                   "(nucleus sampling).")
@click.option("--stop", multiple=True,
              help="End a sample when its text ends with this string (kept); repeatable; "
                   r"\n and \t escapes.")
@click.option("--prime", "-p", default="",
              help="Text to start from, printed first; - reads it from standard input.")
@click.option("--prime-file", type=click.Path(dir_okay=False),
              help="Read the text to start from from this file.")
@click.option("--encoding", default="utf-8", help="Encoding of --prime-file or standard input.")
@click.option("--seed", type=int, default=None, help="Seed for the draws  [default: random]",
              show_default=False)
@click.option("--num-samples", "-k", type=click.IntRange(min=1), default=1,
              help="Samples to generate, drawn together; each ends with a newline.")
@click.option("--beam-width", type=click.IntRange(min=1), default=None,
              help="Print the most likely continuation found by a beam this wide, instead of "
                   "drawing at random (1 is greedy).")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per sample (text, log-probability, why it stopped) "
                   "instead of streaming text.")
def sample(checkpoint, length, temperature, top_k, top_p, stop, prime, prime_file, encoding,
           seed, num_samples, beam_width, as_json):
    """Generate text from a trained model, streamed to standard output.

    Each sample starts from <START> followed by the prime, and ends when the
    model produces <END> or after --length characters; a newline follows
    every sample.
    """
    if np.isnan(temperature):
        raise click.BadParameter("must be a number", param_hint="'--temperature'")
    if prime_file is not None and prime:
        raise click.UsageError("give --prime or --prime-file, not both")
    if beam_width is not None and num_samples > 1:
        raise click.UsageError("--beam-width gives one text: leave out --num-samples")
    loaded = load_checkpoint(checkpoint)
    prime = read_prime(loaded.vocab, prime, prime_file, encoding)
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (1 << 63))
    stop = tuple(parse_escapes(text) for text in stop if text)
    try:
        if beam_width is not None:
            best = beam_search(loaded.model, loaded.vocab, width=beam_width, length=length,
                               prime=prime)
            text = loaded.vocab.decode(best.tokens)
            write_results([{"index": 0, "prime": prime, "text": text, "log_prob": best.log_prob,
                            "stop_reason": "end" if best.ended else "length"}], as_json)
            return
        pieces = generate(loaded.model, loaded.vocab, seed=seed, num_samples=num_samples,
                          length=length, temperature=temperature, top_k=top_k, top_p=top_p,
                          prime=prime, stop=stop)
        if as_json:
            write_results(collect_samples(pieces, num_samples, prime, seed), as_json=True)
            return
        writer = OrderedWriter(StdoutText(), num_samples, prefix=prime)
        for piece in pieces:
            writer.feed(piece)
    except BrokenPipeError:
        quiet_broken_pipe()


def read_prime(vocab, prime: str, prime_file: str | None, encoding: str) -> str:
    """The prime text from --prime, standard input or --prime-file, with a note on stderr
    naming the characters the model does not know."""
    if prime_file is not None or prime == "-":
        prime = read_text(prime_file or "-", encoding)
    unknown = vocab.unknown(prime)
    if unknown:
        click.echo(f"note: the prime's characters {''.join(unknown)!r} are not in the model's "
                   "vocabulary and are skipped", err=True)
    return prime


def collect_samples(pieces, num_samples: int, prime: str, seed: int) -> list[dict]:
    """The finished samples as dicts, for --json."""
    texts = [[] for _ in range(num_samples)]
    results = [None] * num_samples
    for piece in pieces:
        texts[piece.index].append(piece.text)
        if piece.done:
            results[piece.index] = {"index": piece.index, "seed": seed, "prime": prime,
                                    "text": "".join(texts[piece.index]),
                                    "log_prob": piece.log_prob,
                                    "stop_reason": piece.stop_reason}
    return results


def write_results(results: list[dict], as_json: bool) -> None:
    """Each result as a JSON line, or as its prime and text and a newline."""
    write = StdoutText()
    for result in results:
        write(json.dumps(result, ensure_ascii=False) + "\n" if as_json
              else result["prime"] + result["text"] + "\n")


@cli.command(name="eval")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.argument("file", metavar="FILE|-")
@click.option("--encoding", default="utf-8", help="Encoding of FILE.")
@click.option("--errors", type=click.Choice(["strict", "replace", "ignore"]), default="strict",
              help="What to do with bytes that are not valid in the encoding.")
@click.option("--per-char", is_flag=True,
              help="Also break the loss down by character class and show the hardest "
                   "characters.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def evaluate(checkpoint, file, encoding, errors, per_char, as_json):
    """Score a model on a text file (or - for standard input).

    Reports the average negative log-likelihood of each next character in
    nats and bits, and the perplexity. The text is laid out as in training
    (one sequence, or records from <START> to <END>); the <END> markers are
    scored too. Characters outside the model's vocabulary are skipped and
    counted.
    """
    loaded = load_checkpoint(checkpoint)
    text = read_text(file, encoding, errors)
    settings = TrainSettings(**(loaded.training or {}).get("settings", {}))
    pieces = split_records(text, settings.delimiter) if settings.records else [text]
    tokens, skipped = sequence_tokens(pieces, loaded.vocab)
    score = score_tokens(loaded.model, tokens, by_token=per_char)
    num_chars = score.num_scored - len(pieces)
    if num_chars == 0:
        raise CharrnnError(f"{source_name(file)}: nothing to score (no characters the model knows)")
    result = {
        "file": file,
        "nats_per_char": score.nats_per_char,
        "bits_per_char": score.bits_per_char,
        "perplexity": score.perplexity,
        "predictions_scored": score.num_scored,
        "characters_scored": num_chars,
        "characters_skipped": skipped,
    }
    by_class, by_token = breakdown(score, loaded.vocab) if per_char else ([], [])
    if as_json:
        if per_char:
            result["by_class"] = [row_dict(row, "class") for row in by_class]
            result["by_character"] = [row_dict(row, "character") for row in by_token]
        click.echo(json.dumps(result, ensure_ascii=False))
        return
    click.echo(f"nats/char    {score.nats_per_char:.4f}\n"
               f"bits/char    {score.bits_per_char:.4f}\n"
               f"perplexity   {score.perplexity:.3f}\n"
               f"scored       {score.num_scored:,} predictions "
               f"({num_chars:,} characters, {len(pieces):,} <END>)\n"
               f"skipped      {skipped:,} characters outside the vocabulary")
    if per_char:
        print_breakdown(by_class, by_token, score)


def row_dict(row, key: str) -> dict:
    return {key: row.label, "count": row.count, "nats_per_char": row.nats_per_char}


HARDEST_SHOWN = 15


def print_breakdown(by_class, by_token, score) -> None:
    """Two rich tables: loss by character class, and the hardest characters."""
    from rich.console import Console
    from rich.table import Table

    from .info import printable_char

    console = Console(highlight=False)
    classes = Table(title="loss by character class", title_justify="left")
    for column in ("class", "count", "share of text", "nats/char", "share of loss"):
        classes.add_column(column, justify="left" if column == "class" else "right")
    for row in by_class:
        classes.add_row(row.label, f"{row.count:,}", f"{row.count / score.num_scored:.1%}",
                        f"{row.nats_per_char:.3f}", f"{row.total_loss / score.total_loss:.1%}")
    hardest = Table(title=f"hardest characters (of {len(by_token)})", title_justify="left")
    for column in ("character", "count", "nats/char"):
        hardest.add_column(column, justify="left" if column == "character" else "right")
    for row in by_token[:HARDEST_SHOWN]:
        label = row.label if row.label.startswith("<") else printable_char(row.label)
        hardest.add_row(label, f"{row.count:,}", f"{row.nats_per_char:.3f}")
    console.print(classes, hardest)


@cli.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def info(checkpoint, as_json):
    """Show what a checkpoint holds: architecture, vocabulary, training and loss curves."""
    from rich.console import Console
    from rich.table import Table

    from .info import loss_plot, summary

    loaded = load_checkpoint(checkpoint)
    details = summary(loaded)
    if as_json:
        click.echo(json.dumps(details))
        return
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    architecture = details["architecture"]
    table.add_row("architecture", f"{architecture['num_layers']} x {architecture['cell'].upper()} "
                  f"{architecture['hidden_size']}, "
                  f"embedding {architecture['embedding_size']}, {architecture['dtype']}")
    table.add_row("parameters", f"{architecture['parameters']:,}")
    table.add_row("vocabulary", f"{architecture['vocab_size']} tokens: <START> <END> "
                  f"{details['vocabulary']}")
    training = details.get("training")
    if training:
        best = training["best_val_loss"]
        table.add_row("trained", f"{training['steps']:,} steps, {training['epochs']:.2f} epochs, "
                      f"{training['seconds']:,.0f} s")
        table.add_row("best val loss", "-" if best is None else
                      f"{best:.4f} nats/char ({best / math.log(2):.4f} bits/char)")
        table.add_row("corpus", f"{training['corpus_characters']:,} characters, "
                      f"sha256 {training['corpus_sha256'][:16]}...")
        settings = training["settings"]
        table.add_row("layout", f"{'records' if settings['records'] else 'stream'}, batch "
                      f"{settings['batch_size']} x {settings['seq_length']} steps")
    else:
        table.add_row("trained", "no training state saved")
    console = Console(soft_wrap=True, highlight=False)
    console.print(table)
    plot = loss_plot(loaded)
    if plot:
        console.print("\nloss, nats/char (· train, ● validation) by step", markup=False)
        console.print("\n".join(plot), markup=False)


def main() -> None:
    cli()
