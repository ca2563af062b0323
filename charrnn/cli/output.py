"""What the commands share: writing to stdout, pipes that close early, escapes, options."""

from __future__ import annotations

import codecs
import math
import os
import re
import sys
from collections.abc import Callable
from contextlib import contextmanager

import click

from charrnn.data.sources import DEFAULT_ENCODING, DEFAULT_ERRORS, ERROR_HANDLERS
from charrnn.errors import CharrnnError, setting_name
from charrnn.generation.sampling import Piece


class FiniteFloatRange(click.FloatRange):
    """A FloatRange that also refuses NaN and the infinities."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


class NumberList(click.ParamType):
    """Comma-separated numbers, each checked by ``number_type``: ``0.2,0.5,1.0``."""

    name = "list"

    def __init__(self, number_type: click.ParamType):
        self.number_type = number_type

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        parts = str(value).split(",")
        if "" in (part.strip() for part in parts):
            self.fail(f"{value!r} is not a comma-separated list of numbers.", param, ctx)
        return tuple(self.number_type.convert(part.strip(), param, ctx) for part in parts)


encoding_option = click.option("--encoding", default=DEFAULT_ENCODING,
                               help="Encoding of the input text.")
errors_option = click.option("--errors", type=click.Choice(ERROR_HANDLERS),
                             default=DEFAULT_ERRORS,
                             help="What to do with bytes that are not valid in the encoding.")


def parse_escapes(value: str) -> str:
    r"""A string given on the command line with \n, \t and \\ written as escapes."""
    result = value.replace("\\\\", "\0").replace("\\n", "\n").replace("\\t", "\t")
    return result.replace("\0", "\\")


def escape(text: str) -> str:
    r"""The inverse of ``parse_escapes``: backslashes, tabs and newlines written as \\, \t
    and \n, so that any text fits in one tab-separated column."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


@contextmanager
def writing_output():
    """Report a failure to write standard output (such as a full disk) as one message; a pipe
    closed early is left to the command line's handler."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as error:
        raise CharrnnError(f"cannot write the output: {error.strerror}") from None


class StdoutText:
    """Writes UTF-8 to standard output whatever the locale, flushing as it goes."""

    def __init__(self):
        self.stream = sys.stdout.buffer

    def __call__(self, text: str) -> None:
        if text:
            with writing_output():
                self.stream.write(text.encode("utf-8", "surrogatepass"))
                self.stream.flush()


class ConsoleReplacements:
    """An encoding error handler for standard output: "?" for each character its encoding
    lacks (a Windows console in cp1252, say), and one note on stderr the first time."""

    NAME = "charrnn-console"

    def __init__(self, encoding: str):
        self.encoding, self.noted = encoding, False

    def __call__(self, error: UnicodeError) -> tuple[str, int]:
        if not isinstance(error, UnicodeEncodeError):
            raise error
        if not self.noted:
            self.noted = True
            click.echo(f"note: this console's encoding ({self.encoding}) cannot show some "
                       "characters; they are shown as ? (PYTHONIOENCODING=utf-8 shows them)",
                       err=True)
        return "?" * (error.end - error.start), error.end


def replace_what_stdout_cannot_show() -> None:
    """Have standard output's text layer (the tables of info, eval and show) use
    ``ConsoleReplacements`` rather than fail part-way; generated text is written as UTF-8
    whatever the encoding (``StdoutText``)."""
    if getattr(sys.stdout, "errors", None) == "strict" and hasattr(sys.stdout, "reconfigure"):
        codecs.register_error(ConsoleReplacements.NAME, ConsoleReplacements(sys.stdout.encoding))
        sys.stdout.reconfigure(errors=ConsoleReplacements.NAME)


def print_line(text: str) -> None:
    """Write ``text`` and a newline to standard output."""
    StdoutText()(text + "\n")


def quiet_broken_pipe() -> None:
    """The reader went away (`... | head`): send what is left to /dev/null and end quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def stdout_console(**options):
    """A rich Console on stdout that leaves a closed pipe to the command line's handler
    (rich's own exits with status 1) and reports other failures to write as one message."""
    from rich.console import Console

    class StdoutConsole(Console):
        def on_broken_pipe(self) -> None:
            raise BrokenPipeError

        def print(self, *objects, **print_options) -> None:
            with writing_output():
                super().print(*objects, **print_options)

    return StdoutConsole(**options)


class OrderedWriter:
    """Writes samples one after another, each as ``prefix``, its text and a newline.

    The earliest unfinished sample is streamed as it grows; later ones are
    held back until their turn.
    """

    def __init__(self, write: Callable[[str], None], num_samples: int, prefix: str = ""):
        self.write, self.num_samples, self.prefix = write, num_samples, prefix
        self.current = 0  # the sample being streamed
        self.held: dict[int, list[str]] = {}
        self.finished: set[int] = set()
        self.write(prefix)

    def feed(self, piece: Piece) -> None:
        if piece.index != self.current:
            self.held.setdefault(piece.index, []).append(piece.text)
            if piece.done:
                self.finished.add(piece.index)
            return
        self.write(piece.text)
        if piece.done:
            self.write("\n")
            self._advance()

    def _advance(self) -> None:
        """Move on to the next samples, writing out what was held for them."""
        while True:
            self.current += 1
            if self.current == self.num_samples:
                return
            self.write(self.prefix + "".join(self.held.pop(self.current, [])))
            if self.current not in self.finished:
                return
            self.write("\n")


def as_options(message: str) -> str:
    """A library message as the command line says it: each setting it names in backquotes
    (``errors.setting_name``) as its option, ```batch_size``` as ``--batch-size``."""
    return re.sub(r"`([a-z][a-z0-9_]*)`", lambda name: "--" + name[1].replace("_", "-"), message)


def option_of(setting: str) -> str:
    """The command-line option of a setting: ``--hidden-size`` for ``hidden_size``."""
    return as_options(setting_name(setting))
