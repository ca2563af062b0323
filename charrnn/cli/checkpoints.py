"""``charrnn info`` and ``export``: showing what a checkpoint holds, and slimming it down for
sharing."""

from __future__ import annotations

import json
import math

import click

from charrnn.api import EXPORT_FORMATS, load
from charrnn.cli.display import plot_curves, printable_char
from charrnn.cli.output import print_line, stdout_console


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def info(checkpoint, as_json):
    """Show what a checkpoint holds: architecture, vocabulary, training and loss curves."""
    from rich.table import Table

    from charrnn.inspection.summary import loss_curves, summary

    loaded = load(checkpoint).checkpoint
    details = summary(loaded)
    if as_json:
        print_line(json.dumps(details))
        return
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(no_wrap=True)
    table.add_column(overflow="fold")
    architecture = details["architecture"]
    table.add_row("architecture", f"{architecture['num_layers']} x {architecture['cell'].upper()} "
                  f"{architecture['hidden_size']}, "
                  f"embedding {architecture['embedding_size']}, {architecture['dtype']}")
    table.add_row("parameters", f"{architecture['parameters']:,}")
    table.add_row("vocabulary", f"{architecture['vocab_size']} tokens: <START> <END> "
                  + "".join(printable_char(char) for char in details["vocabulary"]))
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
        window = training["window"]
        schedule = settings["seq_length_schedule"]
        table.add_row("layout", f"{'records' if settings['records'] else 'one sequence'}, "
                      f"{window['batch_size']} streams x {window['seq_length']} steps"
                      + (f" (growing {schedule})" if schedule else ""))
        if not training["resumable"]:
            table.add_row("exported", "for sampling: no optimizer state, cannot be resumed")
    else:
        table.add_row("trained", "no training state saved")
    console = stdout_console(soft_wrap=True, highlight=False)
    console.print(table)
    plot = plot_curves(loss_curves(loaded), {"train": "·", "val": "●"})
    if plot:
        console.print("\nloss, nats/char (· train, ● validation) by step", markup=False)
        console.print("\n".join(plot), markup=False)


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--format", "file_format", type=click.Choice(EXPORT_FORMATS), default=None,
              help="npz: a charrnn checkpoint; safetensors: the weights as PyTorch's "
                   "nn.Embedding, nn.LSTM (GRU, RNN) and nn.Linear name and lay them out, "
                   "the vocabulary in the metadata  [default: by OUT's suffix]")
@click.option("--float16", is_flag=True,
              help="Store the weights at half precision: half the size again (widened to "
                   "float32 when loaded; samples and scores change only in the last digits).")
def export(checkpoint, out, file_format, float16):
    """Write a copy of a checkpoint for sampling only: without the optimizer state, a third
    of the size, no longer resumable; or as weights PyTorch loads (--format safetensors,
    see docs/python.md)."""
    load(checkpoint).export(out, file_format, float16=float16)
    click.echo(f"wrote {out}", err=True)
