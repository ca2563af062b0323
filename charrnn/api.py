"""charrnn's Python API: load a model, draw samples, score text, train, export to PyTorch.

    import charrnn
    model = charrnn.load()                          # the shipped Shakespeare model
    model.sample(3, temperature=0.5, seed=1)        # three texts
    model.score("To be, or not to be").bits_per_char
    model = charrnn.train("notes.txt", "notes.npz", max_time=60)
    model.export("notes.safetensors")               # nn.Embedding, nn.LSTM, nn.Linear

The command line is a thin shell over these calls. Each default lives in one
settings class (``Sampling``, ``TrainSettings`` and its recipe, ``ModelConfig``),
and the signatures here and the options' ``--help`` both read it from there. The
library prints nothing and never exits: notes reach the caller as
``CharrnnWarning`` warnings (sampling) or ``Note`` events (training), and every
problem a user can fix is a ``CharrnnError`` whose one-line message is what the
command line prints. The layer above every library package but the command line.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields

from charrnn.data.sources import DEFAULT_ENCODING, DEFAULT_ERRORS
from charrnn.data.vocab import Vocabulary
from charrnn.errors import CharrnnError, CharrnnWarning, SettingsConflict
from charrnn.generation.beam import beam_search
from charrnn.generation.novelty import MAX_DRAWS, novel_samples
from charrnn.generation.sampling import (Piece, Sample, Sampling, generate, random_seed,
                                         whole_samples)
from charrnn.generation.training_samples import DEFAULT_LENGTH, SamplesDrawn, TrainingSampler
from charrnn.nn.model import Model, ModelConfig
from charrnn.nn.scoring import LineScore, TextScore, score_lines, score_text
from charrnn.saving.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from charrnn.saving.export import for_sampling
from charrnn.saving.pytorch import is_safetensors, load_safetensors, save_safetensors
from charrnn.saving.shipped import pretrained_model
from charrnn.training.run import MODEL_DEFAULTS, RECIPE_ARCHITECTURE, Note, start_run, stop_note
from charrnn.training.settings import SettingNeeded, TrainSettings
from charrnn.training.state import saved_settings
from charrnn.training.trainer import TrainEvent

SAMPLING = Sampling()  # the defaults of every sampling option
EXPORT_FORMATS = ("npz", "safetensors")
# What ``train`` takes besides the training and architecture settings.
RUN_OPTIONS = {"resume": None, "init_from": None, "encoding": DEFAULT_ENCODING,
               "errors": DEFAULT_ERRORS, "sample_every": None, "sample_length": DEFAULT_LENGTH}
# Every setting ``train`` takes, with its default (None: the recipe's, or none).
TRAIN_OPTIONS = {**MODEL_DEFAULTS, **dict.fromkeys(RECIPE_ARCHITECTURE),
                 **{setting.name: setting.default for setting in fields(TrainSettings)},
                 **RUN_OPTIONS}
PathLike = str | os.PathLike


@dataclass(frozen=True)
class SampleResult:
    """One sample, with how it was drawn and how it ended."""

    index: int  # its place among the samples asked for
    text: str  # the prime and the characters drawn after it
    prime: str
    temperature: float | None  # None for a beam search
    seed: int | None  # the seed of the draws (None for a beam search)
    log_prob: float  # natural log of the model's probability of what was drawn (and <END>)
    stop_reason: str  # "end" (the model ended it), "length" or "stop" (a stop string)
    in_training: bool | None  # whether it is a record of the training text (None: not known)


class TextModel:
    """A trained model with its vocabulary, ready to sample and score: what ``load`` and
    ``train`` return.

    Named for what it models (text), apart from ``charrnn.nn.model.Model``, the bare
    network it holds (``.model``), which knows token ids but no characters.
    """

    def __init__(self, checkpoint: Checkpoint, record_delimiter: str | None = None,
                 path: str | None = None):
        self.checkpoint = checkpoint
        self.record_delimiter = record_delimiter  # None: the text is one sequence
        self.path = path

    @property
    def model(self) -> Model:
        return self.checkpoint.model

    @property
    def vocab(self) -> Vocabulary:
        return self.checkpoint.vocab

    @property
    def config(self) -> ModelConfig:
        """The architecture: vocabulary size, embedding size, width, layers, cell."""
        return self.checkpoint.model.config

    @property
    def vocabulary(self) -> tuple[str, ...]:
        """The characters the model knows, in token order (after <START> and <END>)."""
        return self.checkpoint.vocab.chars

    def __repr__(self) -> str:
        config = self.config
        return (f"TextModel({self.path!r}: {config.num_layers} x {config.cell.upper()} "
                f"{config.hidden_size}, {len(self.vocabulary)} characters)")

    # -- sampling ---------------------------------------------------------------

    def sample(self, n: int = 1, length: int = SAMPLING.length,
               temperature: float | Sequence[float] = SAMPLING.temperature, prime: str = "",
               seed: int | None = None, *, top_k: int | None = SAMPLING.top_k,
               top_p: float | None = SAMPLING.top_p, min_p: float | None = SAMPLING.min_p,
               repetition_penalty: float = SAMPLING.repetition_penalty,
               repetition_window: int = SAMPLING.repetition_window,
               stop: Sequence[str] = SAMPLING.stop, novel: bool = False,
               beam_width: int | None = None) -> list[str]:
        """``n`` samples, each the prime followed by what was drawn after it.

        A sample ends when the model draws <END>, after ``length`` characters, or
        when it ends with one of the ``stop`` strings. ``temperature``: 0 always takes
        the likeliest character; a list draws ``n`` samples at each. ``top_k``,
        ``top_p``, ``min_p`` and ``repetition_penalty`` (over the last
        ``repetition_window`` characters) shape each draw as in Hugging Face's
        ``generate``. The same ``seed`` gives the same samples; sample i does not depend
        on how many are drawn beside it. ``novel``: for a records model, draw again a
        sample that copies a training record (up to MAX_DRAWS times; one that stays a
        copy is left out, with a warning). ``beam_width``: the likeliest continuation
        a beam this wide finds, instead of random draws (1 is greedy).
        """
        sampling = Sampling(length=length, temperature=_temperature(temperature), top_k=top_k,
                            top_p=top_p, min_p=min_p, repetition_penalty=repetition_penalty,
                            repetition_window=repetition_window, stop=tuple(stop))
        return [result.text for result in self.sample_results(
            n, sampling, prime=prime, seed=seed, novel=novel, beam_width=beam_width)]

    def stream(self, length: int = SAMPLING.length, temperature: float = SAMPLING.temperature,
               prime: str = "", seed: int | None = None, *, top_k: int | None = SAMPLING.top_k,
               top_p: float | None = SAMPLING.top_p, min_p: float | None = SAMPLING.min_p,
               repetition_penalty: float = SAMPLING.repetition_penalty,
               repetition_window: int = SAMPLING.repetition_window,
               stop: Sequence[str] = SAMPLING.stop) -> Iterator[str]:
        """The text of one sample piece by piece as it is drawn: the prime, then each
        character. Joined, it is ``sample(1, ...)[0]`` with the same options."""
        sampling = Sampling(length=length, temperature=temperature, top_k=top_k, top_p=top_p,
                            min_p=min_p, repetition_penalty=repetition_penalty,
                            repetition_window=repetition_window, stop=tuple(stop))
        pieces = self.pieces(1, sampling, prime=prime, seed=seed)
        yield prime
        for piece in pieces:
            if piece.text:
                yield piece.text

    def pieces(self, n: int, sampling: Sampling, *, prime: str = "",
               seed: int | None = None) -> Iterator[Piece]:
        """Every piece of ``n`` samples at each of ``sampling``'s temperatures, as drawn:
        all samples advance together, each piece tagged with its sample's index (see
        ``generation.sampling.generate``). ``seed`` None draws a random one."""
        self._warn_of_unknown(prime)
        return generate(self.model, self.vocab, sampling, seed=_seed(seed), num_samples=n,
                        prime=prime)

    def sample_results(self, n: int = 1, sampling: Sampling = SAMPLING, *, prime: str = "",
                       seed: int | None = None, novel: bool = False,
                       beam_width: int | None = None) -> list[SampleResult]:
        """``sample`` with all there is to know of each sample (``SampleResult``), the
        options given as a ``Sampling``."""
        known = self.checkpoint.known_records
        if beam_width is not None:
            if n != 1:
                raise SettingsConflict("`beam_width` gives one text: leave out `num_samples`")
            if novel:
                raise SettingsConflict("`novel` draws at random: leave out `beam_width`")
            self._warn_of_unknown(prime)
            best = beam_search(self.model, self.vocab, width=beam_width,
                               length=sampling.length, prime=prime)
            found = Sample(self.vocab.decode(best.tokens), "end" if best.ended else "length",
                           best.log_prob)
            return [self._result(0, found, None, None, prime)]
        seed = _seed(seed)
        temperatures = [t for t in sampling.temperatures for _ in range(n)]  # of each sample
        if novel:
            if known is None:
                raise CharrnnError("`novel` needs the training records, and this checkpoint "
                                   "keeps none (only models trained with `records` by this "
                                   "version do)")
            self._warn_of_unknown(prime)
            drawn = novel_samples(self.model, self.vocab, known, sampling, seed=seed,
                                  num_samples=n, prime=prime)
            for index, found in enumerate(drawn):
                if found is None:
                    warnings.warn(CharrnnWarning(
                        f"sample {index} (temperature {temperatures[index]}) was a training "
                        f"record in all {MAX_DRAWS} draws and is left out"), stacklevel=2)
        else:
            drawn = whole_samples(self.pieces(n, sampling, prime=prime, seed=seed),
                                  len(temperatures))
        return [self._result(index, found, temperatures[index], seed, prime)
                for index, found in enumerate(drawn) if found is not None]

    def _result(self, index: int, found: Sample, temperature: float | None, seed: int | None,
                prime: str) -> SampleResult:
        known = self.checkpoint.known_records
        return SampleResult(index, prime + found.text, prime, temperature, seed, found.log_prob,
                            found.stop_reason, None if known is None else prime + found.text
                            in known)

    def _warn_of_unknown(self, prime: str) -> None:
        unknown = self.vocab.unknown(prime)
        if unknown:
            warnings.warn(CharrnnWarning(
                f"the prime's characters {''.join(unknown)!r} are not in the model's "
                "vocabulary and are skipped"), stacklevel=3)

    # -- scoring ----------------------------------------------------------------

    def score(self, text: str, *, by_character: bool = False) -> TextScore:
        """How well the model predicts ``text``: ``nats_per_char``, ``bits_per_char`` and
        ``perplexity``, as ``charrnn eval`` prints them. The text is laid out as in
        training (one sequence, or records from <START> to <END>, whose ends are scored
        too); characters outside the vocabulary are skipped and counted. With
        ``by_character``, the loss is also summed per character (for ``breakdown``)."""
        return score_text(self.model, self.vocab, text, self.record_delimiter, by_character)

    def score_lines(self, lines: Sequence[str]) -> list[LineScore]:
        """Each line (record) scored on its own, from <START> to its end: one score, with
        ``log_prob``, ``nats_per_char`` and ``bits_per_char``, per line, in order."""
        return score_lines(self.model, self.vocab, list(lines), self.record_delimiter)

    # -- saving -----------------------------------------------------------------

    def export(self, path: PathLike, format: str | None = None, *,
               float16: bool = False) -> None:
        """Write the model for sampling, written atomically. ``format`` "npz": a charrnn
        checkpoint without the optimizer state (a third of the size, not resumable);
        "safetensors": the weights as PyTorch's nn.Embedding, nn.LSTM (GRU, RNN) and
        nn.Linear name and lay them out. None: by the suffix of ``path``. ``float16``:
        at half precision."""
        format = format or ("safetensors" if is_safetensors(path) else "npz")
        if format not in EXPORT_FORMATS:
            raise CharrnnError(f"unknown export format {format!r}: one of "
                               f"{', '.join(EXPORT_FORMATS)}")
        dtype = "float16" if float16 else None
        if format == "safetensors":
            save_safetensors(path, self.checkpoint, self.record_delimiter, dtype)
        else:
            save_checkpoint(path, for_sampling(self.checkpoint, dtype))


def _temperature(temperature: float | Sequence[float]) -> float | tuple[float, ...]:
    return temperature if isinstance(temperature, (int, float)) else tuple(temperature)


def _seed(seed: int | None) -> int:
    return random_seed() if seed is None else seed


def load(path: PathLike | None = None) -> TextModel:
    """The model in ``path``: a charrnn checkpoint (``.npz``) or PyTorch weights exported
    by charrnn (``.safetensors``); None for the small Shakespeare model that ships with
    charrnn."""
    path = str(path) if path is not None else pretrained_model()
    if is_safetensors(path):
        checkpoint, delimiter = load_safetensors(path)
        return TextModel(checkpoint, delimiter, path)
    checkpoint = load_checkpoint(path)
    return TextModel(checkpoint, saved_settings(checkpoint).record_delimiter, path)


Event = TrainEvent | Note | SamplesDrawn


def train(files_or_path: PathLike | Sequence[PathLike] | None = None, out: PathLike | None = None,
          *, on_event: Callable[[Event], None] | None = None,
          stop_requested: Callable[[], bool] | None = None, **settings) -> TextModel:
    """Train a model on text files (a folder stands for its text files, "-" for standard
    input; None: the Shakespeare corpus that ships with charrnn), save it to ``out``
    (default checkpoints/<name>.npz) and return it.

    ``settings`` are the command line's options by name with underscores, listed
    below with their defaults; None is the recipe's for the run's limits (``max_time``
    alone picks lr, dropout, cell, width, batch and window), or no limit. A
    setting left out on a ``resume`` keeps the checkpoint's. ``on_event`` receives a
    ``TrainEvent`` after every step and evaluation and at the end, a ``Note`` for anything
    skipped or changed, and ``SamplesDrawn`` every ``sample_every`` steps;
    ``stop_requested()`` is asked after every step, and True stops the run (and saves).
    """
    unknown = sorted(set(settings) - set(TRAIN_OPTIONS))
    if unknown:
        raise CharrnnError(f"unknown training setting {unknown[0]!r}")
    if "sample_length" in settings and settings.get("sample_every") is None:
        raise SettingNeeded("sample_length", "sample_every")
    options = {name: settings.pop(name, default) for name, default in RUN_OPTIONS.items()}
    emit = on_event or (lambda event: None)
    files = [] if files_or_path is None else (
        [os.fspath(files_or_path)] if isinstance(files_or_path, (str, os.PathLike))
        else [os.fspath(file) for file in files_or_path])
    trainer = start_run(files, None if out is None else os.fspath(out), settings, emit,
                        resume=options["resume"], init_from=options["init_from"],
                        encoding=options["encoding"], errors=options["errors"])
    sample_every = options["sample_every"]
    sampler = sample_every and TrainingSampler(
        trainer.corpus, records=trainer.settings.records, seed=trainer.settings.seed,
        length=options["sample_length"], earlier=trainer.earlier_records)

    def report(event: TrainEvent) -> None:
        emit(event)
        if sampler and event.kind == "step" and event.step % sample_every == 0:
            emit(SamplesDrawn(event.step, sampler.draw(trainer.model)))

    outcome = trainer.run(report, stop_requested or (lambda: False))
    note = stop_note(trainer, outcome)
    if note is not None:
        emit(note)
    return load(trainer.out)


# help(charrnn.train) lists every setting with its default, read from where it is defined.
train.__doc__ += "\n    Settings and their defaults:\n\n" + "".join(
    f"        {name} = {default!r}\n" for name, default in TRAIN_OPTIONS.items())
