"""The ``charrnn`` command line: train, sample, eval, info, export and show.

A thin shell over the public API (``charrnn.api``): each command parses its
options, calls the API (or the library objects it is built from) and prints.
Generated text (or JSON) goes to stdout; progress, the library's notes
(``CharrnnWarning``s and ``Note`` events) and diagnostics go to stderr. Every
failure is one line on stderr and a non-zero exit status. The top layer: it may import
every package below it, and it is the only one that imports click and rich.
"""

from __future__ import annotations

import sys
import warnings
from contextlib import contextmanager

import click

from charrnn._version import __version__
from charrnn.cli import checkpoints, evaluate, sample, show, train
from charrnn.cli.output import as_options, quiet_broken_pipe, replace_what_stdout_cannot_show
from charrnn.data.sources import InvalidBytes
from charrnn.errors import CharrnnError, CharrnnWarning, SettingsConflict
from charrnn.training.trainer import StepTooLarge, TrainingDiverged

# What the command line adds to a library error: the options that would help.
ERROR_HINTS = {
    InvalidBytes: " (use --encoding to name the file's encoding, or --errors replace)",
    TrainingDiverged: "; try a lower --lr or --clip",
    StepTooLarge: "; use a smaller --batch-size or --seq-length",
}
MAX_ERROR_LENGTH = 1000  # characters: a damaged file may put anything in a message


def error_line(message: str) -> None:
    """One line, however long or broken the message (it may quote a damaged file)."""
    line = " ".join(as_options(message).splitlines())
    if len(line) > MAX_ERROR_LENGTH:
        line = line[:MAX_ERROR_LENGTH] + "..."
    click.echo(f"charrnn: error: {line}", err=True)


@contextmanager
def notes_on_stderr():
    """The library's ``CharrnnWarning``s, each printed as "note: ..." on stderr as it comes."""
    def show(message, category, *rest, **options):
        if issubclass(category, CharrnnWarning):
            click.echo(f"note: {as_options(str(message))}", err=True)
        else:
            original(message, category, *rest, **options)

    with warnings.catch_warnings():
        original = warnings.showwarning
        warnings.simplefilter("always", CharrnnWarning)
        warnings.showwarning = show
        yield


class CharrnnGroup(click.Group):
    """A group whose every failure is one line on stderr and a non-zero exit status."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            status = super().main(args, prog_name, complete_var, False, **extra)
        except click.exceptions.NoArgsIsHelpError as error:  # plain `charrnn`
            try:
                click.echo(error.ctx.get_help())
            except BrokenPipeError:
                quiet_broken_pipe()
            sys.exit(0)
        except click.UsageError as error:
            hint = f" (see '{error.ctx.command_path} --help')" if error.ctx else ""
            error_line(error.format_message() + hint)
            sys.exit(error.exit_code)
        except SettingsConflict as error:  # options that do not go together: a usage error
            error_line(str(error))
            sys.exit(2)
        except click.ClickException as error:
            error_line(error.format_message())
            sys.exit(error.exit_code)
        except CharrnnError as error:
            error_line(str(error) + ERROR_HINTS.get(type(error), ""))
            sys.exit(1)
        except click.Abort:
            sys.exit(130)
        except BrokenPipeError:  # --help or --version into a pipe closed early
            quiet_broken_pipe()
            sys.exit(0)
        except OSError as error:  # --help or --version; ``invoke`` handles the commands
            error_line(f"cannot write the output: {error.strerror}")
            sys.exit(1)
        sys.exit(status if isinstance(status, int) else 0)

    def invoke(self, ctx):
        try:
            with notes_on_stderr():
                return super().invoke(ctx)
        except BrokenPipeError:  # the reader went away (`... | head`): that is fine
            quiet_broken_pipe()
            return 0
        except MemoryError as error:  # numpy's names the array it could not allocate
            raise CharrnnError(f"out of memory ({error})") from None
        except OSError as error:  # one the commands did not foresee: say what failed where
            where = f"{error.filename}: " if error.filename else ""
            raise CharrnnError(f"{where}{error.strerror or error}") from None


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


# The modules keep their names: each command is reached through its module.
for command in (train.train, sample.sample, evaluate.evaluate, checkpoints.info,
                checkpoints.export, show.show):
    cli.add_command(command)


def main() -> None:
    replace_what_stdout_cannot_show()
    cli()
