"""``charrnn eval``: scoring a model on a text, with a breakdown by character."""

from __future__ import annotations

import json
import math

import click

from charrnn.cli.display import printable_char
from charrnn.cli.output import encoding_option, errors_option, escape, print_line, stdout_console
from charrnn.api import TextModel, load
from charrnn.data.sources import read_text, source_name
from charrnn.errors import CharrnnError, counted
from charrnn.nn.scoring import breakdown, split_lines


@click.command(name="eval")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.argument("file", metavar="FILE|-")
@encoding_option
@errors_option
@click.option("--per-char", is_flag=True,
              help="Also break the loss down by character class and show the hardest "
                   "characters.")
@click.option("--per-line", is_flag=True,
              help="Score each line (each record, for a records model) on its own instead: "
                   "its log-probability, nats/char and text, tab-separated, in input order.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the result as one JSON object (with --per-line, one per line).")
def evaluate(checkpoint, file, encoding, errors, per_char, per_line, as_json):
    """Score a model on a text file (or - for standard input).

    Reports the average negative log-likelihood of each next character in
    nats and bits, and the perplexity. The text is laid out as in training
    (one sequence, or records from <START> to <END>); the <END> markers are
    scored too. Characters outside the model's vocabulary are skipped and
    counted.
    """
    if per_char and per_line:
        raise click.UsageError("--per-char and --per-line give different reports: choose one")
    handle = load(checkpoint)
    text = read_text(file, encoding, errors)
    if per_line:
        print_line_scores(handle, text, as_json)
        return
    scored = handle.score(text, by_character=per_char)
    score, num_chars, skipped = scored.score, scored.num_chars, scored.num_skipped
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
    by_class, by_token = breakdown(score, handle.vocab) if per_char else ([], [])
    if as_json:
        if per_char:
            result["by_class"] = [row_dict(row, "class") for row in by_class]
            result["by_character"] = [row_dict(row, "character") for row in by_token]
        print_line(json.dumps(result, ensure_ascii=False))
        return
    print_line(f"nats/char    {score.nats_per_char:.4f}\n"
               f"bits/char    {score.bits_per_char:.4f}\n"
               f"perplexity   {score.perplexity:.3f}\n"
               f"scored       {score.num_scored:,} predictions "
               f"({counted(num_chars, 'character')}, {scored.num_sequences:,} <END>)\n"
               f"skipped      {counted(skipped, 'character')} outside the vocabulary")
    if per_char:
        print_breakdown(by_class, by_token, score)


def print_line_scores(handle: TextModel, text: str, as_json: bool) -> None:
    """One line per line of ``text`` (record, for a records model): its log-probability,
    nats/char and text (escaped), tab-separated; or a JSON object."""
    lines = split_lines(text, handle.record_delimiter)
    if not lines:
        raise CharrnnError("nothing to score (no lines)")
    scores = handle.score_lines(lines)
    for number, (line, score) in enumerate(zip(lines, scores), start=1):
        nats = None if math.isnan(score.nats_per_char) else score.nats_per_char
        if as_json:
            print_line(json.dumps({"line": number, "text": line, "log_prob": score.log_prob,
                                   "nats_per_char": nats, "predictions": score.num_predictions,
                                   "characters_skipped": score.num_skipped}, ensure_ascii=False))
        else:
            nats_text = "nan" if nats is None else f"{nats:.4f}"
            print_line(f"{score.log_prob:.4f}\t{nats_text}\t{escape(line)}")
    skipped = sum(score.num_skipped for score in scores)
    if skipped:
        click.echo(f"note: skipped {counted(skipped, 'character')} outside the vocabulary",
                   err=True)


def row_dict(row, key: str) -> dict:
    return {key: row.label, "count": row.count, "nats_per_char": row.nats_per_char}


HARDEST_SHOWN = 15


def print_breakdown(by_class, by_token, score) -> None:
    """Two rich tables: loss by character class, and the hardest characters."""
    from rich.table import Table


    console = stdout_console(highlight=False)
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
