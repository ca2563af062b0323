"""``charrnn sample``: random draws, beam search, streaming and JSON output, through
``TextModel``."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from charrnn.api import SAMPLING, SampleResult, TextModel, load
from charrnn.cli.output import (FiniteFloatRange, NumberList, OrderedWriter, StdoutText,
                                encoding_option, errors_option, parse_escapes)
from charrnn.data.sources import read_text
from charrnn.generation.novelty import MAX_DRAWS
from charrnn.generation.sampling import Sampling, random_seed


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False), required=False,
                metavar="[CHECKPOINT]")
@click.option("--length", "-n", type=click.IntRange(min=0), default=SAMPLING.length,
              help="Most characters to generate per sample (a sample also stops at <END>).")
@click.option("--temperature", "-t", type=NumberList(FiniteFloatRange(min=0)),
              default=str(SAMPLING.temperature),
              show_default=True,
              help="Sharpness of the draw: lower is safer, higher is wilder, 0 always takes "
                   "the likeliest character; a list such as 0.2,0.5,1.0 draws --num-samples "
                   "samples at each.")
@click.option("--top-k", type=click.IntRange(min=1), default=SAMPLING.top_k,
              help="Draw only from the k likeliest characters.")
@click.option("--top-p", type=FiniteFloatRange(0, 1, min_open=True), default=SAMPLING.top_p,
              help="Draw only from the likeliest characters whose probabilities add up to p "
                   "(nucleus sampling).")
@click.option("--min-p", type=FiniteFloatRange(0, 1), default=SAMPLING.min_p,
              help="Drop the characters less likely than min_p times the likeliest one; off unless "
                   "given.")
@click.option("--repetition-penalty", type=FiniteFloatRange(min=0, min_open=True),
              default=SAMPLING.repetition_penalty,
              show_default=True,
              help="Make the characters of the last --repetition-window characters less likely "
                   "(positive logits divided by it, negative ones multiplied); 1 is off, "
                   "below 1 favours repeats.")
@click.option("--repetition-window", type=click.IntRange(min=0), default=SAMPLING.repetition_window,
              show_default=True,
              help="How many of the last characters (prime included) the repetition penalty "
                   "looks at; 0: the whole text.")
@click.option("--stop", multiple=True,
              help="End a sample when its text ends with this string (kept); repeatable; "
                   r"\n and \t escapes.")
@click.option("--prime", "-p", default="",
              help="Text to start from, printed first; - reads it from standard input.")
@click.option("--prime-file", type=click.Path(dir_okay=False),
              help="Read the text to start from from this file.")
@encoding_option
@errors_option
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Seed for the draws  [default: random]",
              show_default=False)
@click.option("--num-samples", "-k", type=click.IntRange(min=1), default=1,
              help="Samples to generate, drawn together; each ends with a newline.")
@click.option("--beam-width", type=click.IntRange(min=1), default=None,
              help="Print the most likely continuation found by a beam this wide, instead of "
                   "drawing at random (1 is greedy).")
@click.option("--novel", is_flag=True,
              help="Records models: draw a sample again while it is a record of the training "
                   f"text, up to {MAX_DRAWS} times (a sample that stays a copy is left out, "
                   "with a note); samples are printed when all are drawn.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per sample (text, log-probability, why it stopped, "
                   "whether it is a training record) instead of streaming text.")
def sample(checkpoint, length, temperature, top_k, top_p, min_p, repetition_penalty,
           repetition_window, stop, prime, prime_file, encoding,
           errors, seed, num_samples, beam_width, novel, as_json):
    """Generate text from a trained model, streamed to standard output.

    With no CHECKPOINT, samples from the small Shakespeare model that ships
    with charrnn. Each sample starts from <START> followed by the prime, and
    ends when the model produces <END> or after --length characters; a
    newline follows every sample.
    """
    if prime_file is not None and prime:
        raise click.UsageError("give --prime or --prime-file, not both")
    handle = load(checkpoint)
    if prime_file is not None or prime == "-":
        prime = read_text(prime_file or "-", encoding, errors)
    sampling = Sampling(length=length, temperature=temperature, top_k=top_k, top_p=top_p,
                        min_p=min_p, repetition_penalty=repetition_penalty,
                        repetition_window=repetition_window,
                        stop=tuple(parse_escapes(text) for text in stop))
    seed = random_seed() if seed is None else seed
    if as_json or novel or beam_width is not None:
        write_results(handle.sample_results(num_samples, sampling, prime=prime, seed=seed,
                                            novel=novel, beam_width=beam_width), as_json)
        return
    stream_samples(handle, num_samples, sampling, prime, seed)


def stream_samples(handle: TextModel, num_samples: int, sampling: Sampling, prime: str,
                   seed: int) -> None:
    """Every sample as it is drawn, one after another: the earliest unfinished one streams."""
    writer = OrderedWriter(StdoutText(), num_samples * len(sampling.temperatures), prefix=prime)
    for piece in handle.pieces(num_samples, sampling, prime=prime, seed=seed):
        writer.feed(piece)


def write_results(results: list[SampleResult], as_json: bool) -> None:
    """Each sample as a JSON line (its text without the prime, as ``text``), or as its text
    and a newline."""
    write = StdoutText()
    for result in results:
        if as_json:
            fields = {**asdict(result), "text": result.text[len(result.prime):]}
            write(json.dumps(fields, ensure_ascii=False) + "\n")
        else:
            write(result.text + "\n")
