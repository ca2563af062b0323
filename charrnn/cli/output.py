"""What the commands share: writing to stdout, pipes that close early, escapes, options."""

from __future__ import annotations

import math
import os
import sys

import click

class FiniteFloatRange(click.FloatRange):
    """A FloatRange that also refuses NaN and the infinities."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


encoding_option = click.option("--encoding", default="utf-8", help="Encoding of the input text.")
errors_option = click.option("--errors", type=click.Choice(["strict", "replace", "ignore"]),
                             default="strict",
                             help="What to do with bytes that are not valid in the encoding.")


def parse_escapes(value: str) -> str:
    r"""A string given on the command line with \n, \t and \\ written as escapes."""
    result = value.replace("\\\\", "\0").replace("\\n", "\n").replace("\\t", "\t")
    return result.replace("\0", "\\")


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


def stdout_console(**options):
    """A rich Console on stdout that leaves a closed pipe to the command line's handler
    (rich's own exits with status 1)."""
    from rich.console import Console

    class PipeFriendlyConsole(Console):
        def on_broken_pipe(self) -> None:
            raise BrokenPipeError

    return PipeFriendlyConsole(**options)
