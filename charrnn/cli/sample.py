"""``charrnn sample``: random draws, beam search, streaming and JSON output."""

from __future__ import annotations

import json

import click

from charrnn.cli.output import (FiniteFloatRange, NumberList, OrderedWriter, StdoutText,
                                encoding_option, errors_option, parse_escapes, random_seed)
from charrnn.data.known_records import KnownRecords
from charrnn.data.sources import read_text
from charrnn.errors import CharrnnError
from charrnn.generation.beam import beam_search
from charrnn.generation.novelty import MAX_DRAWS, novel_samples
from charrnn.generation.sampling import Sample, Sampling, generate, whole_samples
from charrnn.saving.checkpoint import load_checkpoint
from charrnn.saving.shipped import pretrained_model


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False), required=False,
                metavar="[CHECKPOINT]")
@click.option("--length", "-n", type=click.IntRange(min=0), default=500,
              help="Most characters to generate per sample (a sample also stops at <END>).")
@click.option("--temperature", "-t", type=NumberList(FiniteFloatRange(min=0)), default="0.8",
              show_default=True,
              help="Sharpness of the draw: lower is safer, higher is wilder, 0 always takes "
                   "the likeliest character; a list such as 0.2,0.5,1.0 draws --num-samples "
                   "samples at each.")
@click.option("--top-k", type=click.IntRange(min=1), default=None,
              help="Draw only from the k likeliest characters.")
@click.option("--top-p", type=FiniteFloatRange(0, 1, min_open=True), default=None,
              help="Draw only from the likeliest characters whose probabilities add up to p "
                   "(nucleus sampling).")
@click.option("--min-p", type=FiniteFloatRange(0, 1), default=None,
              help="Drop the characters less likely than min_p times the likeliest one; off unless "
                   "given.")
@click.option("--repetition-penalty", type=FiniteFloatRange(min=0, min_open=True), default=1.0,
              show_default=True,
              help="Make the characters of the last --repetition-window characters less likely "
                   "(positive logits divided by it, negative ones multiplied); 1 is off, "
                   "below 1 favours repeats.")
@click.option("--repetition-window", type=click.IntRange(min=0), default=Sampling.repetition_window,
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
    if beam_width is not None and num_samples > 1:
        raise click.UsageError("--beam-width gives one text: leave out --num-samples")
    if beam_width is not None and novel:
        raise click.UsageError("--novel draws at random: leave out --beam-width")
    loaded = load_checkpoint(checkpoint or pretrained_model())
    known = loaded.known_records
    if novel and known is None:
        raise CharrnnError("--novel needs the training records, and this checkpoint keeps "
                           "none (only models trained with --records by this version do)")
    prime = read_prime(loaded.vocab, prime, prime_file, encoding, errors)
    if beam_width is not None:
        best = beam_search(loaded.model, loaded.vocab, width=beam_width, length=length,
                           prime=prime)
        found = Sample(loaded.vocab.decode(best.tokens), "end" if best.ended else "length",
                       best.log_prob)
        write_results([sample_result(0, found, None, None, prime, known)], as_json)
        return
    if seed is None:
        seed = random_seed()
    sampling = Sampling(top_k=top_k, top_p=top_p, min_p=min_p,
                        repetition_penalty=repetition_penalty, repetition_window=repetition_window)
    options = {"length": length, "sampling": sampling, "prime": prime,
               "stop": tuple(parse_escapes(text) for text in stop if text)}
    temperatures = [t for t in temperature for _ in range(num_samples)]  # of each sample
    if novel:
        found = novel_samples(loaded.model, loaded.vocab, known, seed=seed,
                              num_samples=num_samples, temperatures=temperature, **options)
        for index, sample_found in enumerate(found):
            if sample_found is None:
                click.echo(f"note: sample {index} (temperature {temperatures[index]}) was a "
                           f"training record in all {MAX_DRAWS} draws and is left out", err=True)
        write_results([sample_result(index, sample_found, temperatures[index], seed, prime, known)
                       for index, sample_found in enumerate(found) if sample_found is not None],
                      as_json)
        return
    pieces = generate(loaded.model, loaded.vocab, seed=seed, num_samples=num_samples,
                      temperature=temperature, **options)
    if as_json:
        write_results([sample_result(index, sample_found, temperatures[index], seed, prime, known)
                       for index, sample_found
                       in enumerate(whole_samples(pieces, len(temperatures)))], as_json=True)
        return
    writer = OrderedWriter(StdoutText(), len(temperatures), prefix=prime)
    for piece in pieces:
        writer.feed(piece)


def read_prime(vocab, prime: str, prime_file: str | None, encoding: str, errors: str) -> str:
    """The prime text from --prime, standard input or --prime-file, with a note on stderr
    naming the characters the model does not know."""
    if prime_file is not None or prime == "-":
        prime = read_text(prime_file or "-", encoding, errors)
    unknown = vocab.unknown(prime)
    if unknown:
        click.echo(f"note: the prime's characters {''.join(unknown)!r} are not in the model's "
                   "vocabulary and are skipped", err=True)
    return prime


def sample_result(index: int, sample: Sample, temperature: float | None, seed: int | None,
                  prime: str, known: KnownRecords | None) -> dict:
    """A sample as printed by --json. in_training: whether the prime and text make a record
    of the training text (null for a model that keeps none)."""
    return {"index": index, "seed": seed, "temperature": temperature, "prime": prime,
            "text": sample.text, "log_prob": sample.log_prob, "stop_reason": sample.stop_reason,
            "in_training": None if known is None else prime + sample.text in known}


def write_results(results: list[dict], as_json: bool) -> None:
    """Each result as a JSON line, or as its prime and text and a newline."""
    write = StdoutText()
    for result in results:
        write(json.dumps(result, ensure_ascii=False) + "\n" if as_json
              else result["prime"] + result["text"] + "\n")
