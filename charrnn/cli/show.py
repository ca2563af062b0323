"""``charrnn show``: a text coloured by the model's surprise or by one unit, the units that
follow simple features of the text, an HTML page, or JSON per character."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click
import numpy as np

from charrnn.cli.colours import SURPRISE, UNIT, Scale
from charrnn.cli.display import printable_char
from charrnn.cli.html_page import PageText, html_page
from charrnn.api import SAMPLING, TextModel, load
from charrnn.cli.output import StdoutText, encoding_option, errors_option, stdout_console
from charrnn.data.corpus import text_tokens
from charrnn.data.sources import read_text, source_name
from charrnn.data.vocab import END_ID, NUM_SPECIAL
from charrnn.errors import CharrnnError, counted, shown_characters
from charrnn.generation.sampling import random_seed
from charrnn.inspection.probes import FEATURES, excerpt, find_units, text_features, token_text
from charrnn.inspection.read_through import Trace, Unit, shown_positions, trace_tokens
from charrnn.io.atomic import check_writable, write_atomically
from charrnn.nn.cells import CELLS
from charrnn.saving.checkpoint import Checkpoint

UNIT_KINDS = tuple(dict.fromkeys(kind for cell in CELLS.values() for kind in cell.unit_kinds))
HARDEST_SHOWN = 5
EXCERPT_LENGTH = 36


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False), required=False,
                metavar="[CHECKPOINT]")
@click.argument("file", required=False, metavar="[FILE|-]")
@click.option("--unit", "unit_text", metavar="LAYER:INDEX",
              help="Colour by this unit's value after each character (layers and units "
                   "count from 0) instead of by surprise.")
@click.option("--what", type=click.Choice(UNIT_KINDS), default=None,
              help="Which value of the unit: an LSTM's cell (its tanh), hidden, input, forget "
                   "or output; a GRU's hidden, reset or update; an RNN's hidden (for --find "
                   "too).  "
                   "[default: cell for an LSTM, else hidden]")
@click.option("--find", is_flag=True,
              help="Find the units that follow simple features of the text (quotes, brackets, "
                   "position in the line, words, case, digits, line starts, indentation).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False),
              help="Write a self-contained HTML page (guesses on hover) instead.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per character (or per feature with --find).")
@click.option("--no-color", is_flag=True,
              help="Plain text with a numeric column, as when stdout is not a terminal.")
@click.option("--length", "-n", type=click.IntRange(min=1), default=SAMPLING.length,
              help="Characters of the sample shown when no FILE is given.")
@click.option("--seed", type=click.IntRange(min=0), default=None, show_default=False,
              help="Seed for that sample  [default: random]")
@encoding_option
@errors_option
def show(checkpoint, file, unit_text, what, find, html_path, as_json, no_color, length, seed,
         encoding, errors):
    """See what a model makes of a text: how surprised it is by each character, what
    one unit does, and which units follow simple features.

    Reads FILE (- for standard input; with no FILE, a sample drawn from the
    model) through the model once. With no CHECKPOINT, shows the small
    Shakespeare model that ships with charrnn.
    """
    if find and (unit_text or html_path):
        raise click.UsageError("--find makes its own table: leave out --unit and --html")
    if as_json and html_path:
        raise click.UsageError("give --json or --html, not both")
    if html_path:
        if file not in (None, "-") and Path(html_path).resolve() == Path(file).resolve():
            raise click.BadParameter("is the text itself", param_hint="'--html'")
        check_writable(html_path)
    handle = load(checkpoint)
    loaded = handle.checkpoint
    kind = unit_kind(loaded, what)
    unit = parse_unit(loaded, unit_text)
    tokens, name = read_tokens(handle, file, encoding, errors, length, seed)
    shown = shown_positions(tokens, handle.record_delimiter is not None)
    if not len(shown):
        raise CharrnnError(f"{name}: nothing to show (no characters the model knows)")
    if find:
        report_findings(loaded, tokens, kind, as_json, no_color)
        return
    trace = trace_tokens(loaded.model, tokens, (unit,) if unit else (), kind)
    view = View(loaded, trace, shown, unit and f"unit {unit.layer}:{unit.index} {kind}")
    if as_json:
        view.write_json()
    elif html_path:
        view.write_html(html_path, name)
        click.echo(f"wrote {html_path}", err=True)
    else:
        view.print(no_color)


def unit_kind(loaded: Checkpoint, what: str | None) -> str:
    """The kind of unit value asked for, checked against the model's cell."""
    kinds = loaded.model.cell.unit_kinds
    if what is None:
        return kinds[0]
    if what not in kinds:
        raise click.BadParameter(f"{loaded.model.cell.noun} has {', '.join(kinds)}",
                                 param_hint="'--what'")
    return what


def parse_unit(loaded: Checkpoint, text: str | None) -> Unit | None:
    """LAYER:INDEX, checked against the model's size."""
    if text is None:
        return None
    config = loaded.model.config
    layer, _, index = text.partition(":")
    if not (layer.strip().isdigit() and index.strip().isdigit()):
        raise click.BadParameter(f"{text!r} is not LAYER:INDEX, such as 1:42",
                                 param_hint="'--unit'")
    unit = Unit(int(layer), int(index))
    if unit.layer >= config.num_layers or unit.index >= config.hidden_size:
        raise click.BadParameter(
            f"{text} is not in the model: it has layers 0 to {config.num_layers - 1} of units "
            f"0 to {config.hidden_size - 1}", param_hint="'--unit'")
    return unit


def read_tokens(handle: TextModel, file: str | None, encoding: str, errors: str, length: int,
                seed: int | None) -> tuple[np.ndarray, str]:
    """The text as the model reads it (laid out as in training: records, or one sequence)
    and its name for messages: FILE, standard input, or a sample drawn from the model."""
    if file is None:
        seed = random_seed() if seed is None else seed
        text = handle.sample(1, length=length, seed=seed)[0]
        click.echo(f"note: showing a sample of {counted(len(text), 'character')} "
                   f"(--seed {seed})", err=True)
    else:
        text = read_text(file, encoding, errors)
    tokens, skipped = text_tokens(text, handle.vocab, handle.record_delimiter)
    name = "the sample" if file is None else source_name(file)
    if skipped:
        click.echo(f"note: {counted(skipped, 'character')} outside the model's vocabulary "
                   f"({shown_characters(handle.vocab.unknown(text))}) are skipped", err=True)
    return tokens, name


class View:
    """The characters shown, with what the trace says of each."""

    def __init__(self, loaded: Checkpoint, trace: Trace, shown: np.ndarray, unit_label: str | None):
        self.vocab = loaded.vocab
        self.trace, self.shown, self.unit_label = trace, shown, unit_label
        tokens = trace.tokens[shown]
        self.chars = ["\n" if token == END_ID else self.vocab.token(int(token)) for token in tokens]
        self.nats = trace.nats[shown]  # (M,)
        self.values = trace.units[shown, 0] if unit_label else None  # (M,)

    @property
    def colours(self) -> tuple[np.ndarray, Scale]:
        return (self.nats, SURPRISE) if self.values is None else (self.values, UNIT)

    def summary(self) -> str:
        scored = ~np.isnan(self.nats)
        mean = float(self.nats[scored].mean()) if scored.any() else math.nan
        hardest = np.argsort(-np.nan_to_num(self.nats, nan=-1), kind="stable")[:HARDEST_SHOWN]
        line = (f"{mean:.3f} nats/char ({mean / math.log(2):.3f} bits) over {len(self.chars):,} "
                f"characters; hardest: " + ", ".join(
                    f"{printable_char(self.chars[i])} {self.nats[i]:.2f}" for i in hardest
                    if scored[i]))
        if self.values is not None:
            line += (f"\n{self.unit_label}: mean {np.nanmean(self.values):+.3f}, "
                     f"from {np.nanmin(self.values):+.3f} to {np.nanmax(self.values):+.3f}")
        return line

    def print(self, no_color: bool) -> None:
        console = stdout_console(highlight=False, soft_wrap=True)
        if no_color or not console.is_terminal or console.no_color:
            StdoutText()(self.plain() + self.summary() + "\n")
            return
        values, scale = self.colours
        console.print(coloured_text(self.chars, values, scale))
        console.print(legend(scale))
        console.print(self.summary(), markup=False, soft_wrap=False)

    def plain(self) -> str:
        """Each line of the text after a column: its mean surprise, or the unit's mean."""
        values = self.nats if self.values is None else self.values
        heading = "nats" if self.values is None else "mean"
        rows, start = [f"{heading:>6}  text\n"], 0
        for end in [i + 1 for i, char in enumerate(self.chars) if char == "\n"] + [len(self.chars)]:
            if end > start:
                line = values[start:end]
                mean = f"{np.nanmean(line):6.2f}" if not np.isnan(line).all() else f"{'-':>6}"
                rows.append(f"{mean}  {''.join(self.chars[start:end]).rstrip(chr(10))}\n")
            start = end
        return "".join(rows)

    def guesses(self, i: int) -> list[tuple[str, float]]:
        position = self.shown[i]
        return [(self.vocab.token(int(token)), float(prob)) for token, prob
                in zip(self.trace.guesses[position], self.trace.guess_probs[position])]

    def write_json(self) -> None:
        write = StdoutText()
        for i, char in enumerate(self.chars):
            row = {"char": char, "nats": number(self.nats[i]),
                   "guesses": [{"char": token, "prob": number(prob)}
                               for token, prob in self.guesses(i)]}
            if self.values is not None:
                row["unit"] = number(self.values[i])
            write(json.dumps(row, ensure_ascii=False) + "\n")

    def write_html(self, path: str, name: str) -> None:
        values, scale = self.colours
        labels = [self.vocab.token(i) if i < NUM_SPECIAL else printable_char(self.vocab.token(i))
                  for i in range(self.vocab.size)]
        page = PageText(chars=self.chars, labels=[printable_char(char) for char in self.chars],
                        colours=values, nats=self.nats,
                        guesses=self.trace.guesses[self.shown],
                        guess_probs=self.trace.guess_probs[self.shown], guess_labels=labels,
                        values=self.values, value_label=self.unit_label or "")
        title = f"charrnn show: {Path(name).name}, {self.unit_label or 'surprise'}"
        document = html_page(title, self.summary(), page, scale).encode("utf-8")
        write_atomically(path, lambda out: out.write(document))


def number(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)


def coloured_text(chars: list[str], values: np.ndarray, scale: Scale):
    """A rich Text of the characters on their bins' colours (a line end as a coloured space)."""
    from rich.text import Text

    text = Text()
    for char, level in zip(chars, scale.bins(values)):
        style = f"black on {scale.colours[level]}" if level >= 0 else ""
        text.append(" " if char == "\n" else char, style)
        if char == "\n":
            text.append("\n")
    return text


def legend(scale: Scale):
    from rich.text import Text

    text = Text(f"{scale.label}: ")
    for colour, label in zip(scale.colours, scale.bin_labels()):
        text.append(f" {label} ", f"black on {colour}")
    return text


def report_findings(loaded: Checkpoint, tokens: np.ndarray, kind: str, as_json: bool,
                    no_color: bool) -> None:
    """The --find table: for each feature, the unit that follows it best, with an excerpt."""
    text = token_text(tokens, loaded.vocab)
    features = text_features(text)
    findings, _ = find_units(loaded.model, tokens, features, kind)
    if as_json:
        write = StdoutText()
        for finding in findings:
            unit = finding.unit
            write(json.dumps({"feature": finding.feature, "what": kind,
                              "layer": unit and unit.layer, "index": unit and unit.index,
                              "r": number(finding.r)}) + "\n")
        return
    from rich import box
    from rich.table import Table

    table = Table(title=f"units following features of the text ({kind} values, "
                        f"{len(tokens) - 1:,} characters)", title_justify="left",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("feature", no_wrap=True, min_width=max(map(len, FEATURES)))
    table.add_column("unit", no_wrap=True, min_width=len("99:999"))
    table.add_column("r", justify="right", no_wrap=True, min_width=len("+0.00"))
    table.add_column("excerpt (blue -1 to red +1)", no_wrap=True, overflow="crop")
    for column, finding in enumerate(findings):
        if finding.unit is None:
            table.add_row(finding.feature, "-", "-", "(not in the text)")
            continue
        start, values = excerpt(loaded.model, tokens, features[:, column], finding.unit, kind,
                                EXCERPT_LENGTH)
        chars = [printable_char(char) if char in "\n\t" else char
                 for char in text[start: start + len(values)]]
        table.add_row(finding.feature, f"{finding.unit.layer}:{finding.unit.index}",
                      f"{finding.r:+.2f}", coloured_text(chars, values, UNIT))
    stdout_console(highlight=False, no_color=no_color or None).print(table)
