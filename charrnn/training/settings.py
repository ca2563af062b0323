"""How to train: the settings, their defaults, and the policy for filling in and replacing them.

Every default of training lives here (the model's in ``model.ModelConfig``);
the command line and ``charrnn.train`` read their defaults from these classes. A run's ``recipe``
(by its time budget) fills in the settings left unset, and the command line
takes the width of a new model from it too: ``TrainSettings`` alone does not
choose the model.
"""

from __future__ import annotations

import math
import os
import reprlib
from dataclasses import InitVar, dataclass, fields, replace
from typing import get_args, get_type_hints

from charrnn.errors import CharrnnError, SettingsConflict, setting_name
from charrnn.nn.model import ModelConfig

DEFAULT_MAX_EPOCHS = 5  # how long to train when no stop limit is given
# The shards each batch is cut into (see parallel.py): the weights depend on this count, never
# on the number of workers. Two let two cores share a step at no cost; one worker computing
# both, on one core, takes 8 to 15% more CPU time than the batch whole at the default step,
# and four 47% more (benchmarks/RESULTS.md, Shards and workers), so more would cost every
# run on a small machine.
DEFAULT_SHARDS = 2


@dataclass(frozen=True)
class Recipe:
    """The defaults that depend on how long a run is: what a setting left unset becomes (the
    width and cell of a new model among them)."""

    lr: float
    dropout: float
    hidden_size: int
    batch_size: int
    seq_length: int
    cell: str


# The defaults of a run limited by steps or epochs, or by none.
STANDARD = Recipe(lr=3e-3, dropout=0.0, hidden_size=ModelConfig.hidden_size, batch_size=32,
                  seq_length=64, cell=ModelConfig.cell)
# The defaults of a run limited by time alone, by its length: (at most this many seconds,
# recipe). Measured on tinyshakespeare (benchmarks/RESULTS.md, the sweep): lr 5e-3 beat
# 3e-3 by 0.02-0.04 nats/char after 120 s (two seeds) and lost after 300 s; the standard model
# over-fits from epoch 6 without dropout (0.2 beat none by 0.09 after 900 s); 2 x 512 with
# dropout 0.35 beat that by 0.058 after 900 s on a machine that made 1,401 of its steps, but
# lost by far after 600 s on one that made 606, so it waits for the longer runs. The CIFG LSTM
# makes 1.3 times the LSTM's steps in the same time and beat it after 120 s on every seed of
# tinyshakespeare and Austen (benchmarks/RESULTS.md, The LSTM variants); after 300 s it was
# 0.07 nats/char ahead on Austen (3 seeds against 2) and 0.007 behind on tinyshakespeare, less
# than the seeds' spread (RESULTS.md, The same recipe side by side, a third session).
TIME_BUDGET_DEFAULTS = (
    (200, replace(STANDARD, lr=5e-3, cell="lstm-cifg")),
    (500, replace(STANDARD, cell="lstm-cifg")),
    (1200, replace(STANDARD, dropout=0.2)),
    (math.inf, Recipe(lr=2e-3, dropout=0.35, hidden_size=512, batch_size=64, seq_length=100,
                      cell=ModelConfig.cell)),
)
# The training tokens of the text those budgets were measured on: tinyshakespeare less its
# held-out 5%.
REFERENCE_TEXT_CHARS = 1_059_627
STOP_LIMITS = ("max_steps", "max_epochs", "max_time")
LR_SCHEDULES = ("constant", "cosine", "plateau")
# Settings that decide which windows the training text is cut into.
LAYOUT_SETTINGS = ("seq_length", "seq_length_schedule", "batch_size", "records", "delimiter",
                   "val_fraction")


@dataclass(frozen=True)
class Bounds:
    """Where a number setting must lie: from ``low`` to ``high``, each end included unless
    it is open. The command line's options take their ranges from these."""

    low: float = 0
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return math.isfinite(value) and above and below

    def __str__(self) -> str:
        if self.high == math.inf:
            return f"above {self.low:g}" if self.low_open else f"at least {self.low:g}"
        return (f"in {'(' if self.low_open else '['}{self.low:g}, "
                f"{self.high:g}{')' if self.high_open else ']'}")


# Every number setting is at least 0, but these (a checkpoint may hold anything: each is checked).
NUMBER_BOUNDS = {
    **{name: Bounds(1) for name in ("seq_length", "batch_size", "eval_every", "save_every",
                                     "patience", "keep_last", "threads", "shards")},
    "lr": Bounds(0, low_open=True),
    "dropout": Bounds(0, 1, high_open=True),
    "val_fraction": Bounds(0, 1, low_open=True, high_open=True),
}


def bounds(name: str) -> Bounds:
    """Where the number setting ``name`` must lie."""
    return NUMBER_BOUNDS.get(name, Bounds())


class SettingNeeded(SettingsConflict):
    """A setting was given without another that it needs."""

    def __init__(self, name: str, needed: str):
        super().__init__(f"{setting_name(name)} needs {setting_name(needed)}")
        self.name, self.needed = name, needed


@dataclass(frozen=True)
class TrainSettings:
    """How to train: data layout, optimization, when to stop and evaluate.

    With no stop limit at all, ``max_epochs`` becomes DEFAULT_MAX_EPOCHS; with no
    ``threads``, they are the cores this process may run on; with no ``shards``,
    DEFAULT_SHARDS; with no ``lr``, ``dropout``, ``batch_size`` or ``seq_length``, those
    of the ``recipe`` for the limits and, when ``text_chars`` (the training text's length,
    not itself a setting) is given, the text.
    """

    seq_length: int | None = None  # None: the recipe's for the run's limits (see recipe)
    seq_length_schedule: str | None = None  # "START:END": windows grow from START to END steps
    batch_size: int | None = None  # None: the recipe's for the run's limits
    lr: float | None = None  # None: the recipe's
    lr_schedule: str = "cosine"  # one of LR_SCHEDULES
    warmup_steps: int = 0
    clip: float = 5.0
    dropout: float | None = None  # probability of dropping each layer output; None: the recipe's
    max_steps: int | None = None
    max_epochs: float | None = None
    max_time: float | None = None  # seconds of one run (a resumed run counts afresh)
    val_fraction: float = 0.05
    eval_every: int = 250
    save_every: int | None = None  # steps between saves besides those at evaluations
    keep_last: int | None = None  # keep the last N saves of save_every in <out>.step<k>.npz
    keep_best: bool = False  # also keep the best-validation model in <out>.best.npz
    patience: int | None = None  # stop after this many evaluations without improvement
    seed: int = 0
    records: bool = False
    delimiter: str = "\n"
    threads: int | None = None  # workers that share each step, at most one per shard
    shards: int | None = None  # what each batch is cut into (see parallel.py)
    text_chars: InitVar[int | None] = None

    def __post_init__(self, text_chars: int | None):
        if self.threads is None:
            object.__setattr__(self, "threads", available_cores())
        if self.shards is None:
            object.__setattr__(self, "shards", DEFAULT_SHARDS)
        self._check_types_and_ranges()
        fitted = recipe(self.max_steps, self.max_epochs, self.max_time, text_chars)
        for name in ("lr", "dropout", "batch_size", "seq_length"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, getattr(fitted, name))
        if all(getattr(self, name) is None for name in STOP_LIMITS):
            object.__setattr__(self, "max_epochs", DEFAULT_MAX_EPOCHS)
        if self.keep_last is not None and self.save_every is None:
            raise SettingNeeded("keep_last", "save_every")
        if self.lr_schedule not in LR_SCHEDULES:
            raise CharrnnError(f"unknown learning-rate schedule {reprlib.repr(self.lr_schedule)}")
        self.window_range()  # refuses a malformed window schedule

    def _check_types_and_ranges(self) -> None:
        """Each setting of its declared type, numbers finite and within their ``bounds``, a
        delimiter for records."""
        hints = get_type_hints(TrainSettings)
        for name in (setting.name for setting in fields(TrainSettings)):
            value, kind = getattr(self, name), hints[name]
            if not _of_type(value, kind):
                raise CharrnnError(f"the setting {name} is {reprlib.repr(value)}, not of type "
                                   f"{kind.__name__ if isinstance(kind, type) else kind}")
            if value is None or isinstance(value, (bool, str)):
                continue
            if value not in bounds(name):
                raise CharrnnError(f"the setting {name} is {reprlib.repr(value)}, not "
                                   f"{bounds(name)}")
        if self.records and not self.delimiter:
            raise CharrnnError("the setting delimiter is empty")

    @property
    def record_delimiter(self) -> str | None:
        """What ends each record of a records layout; None for one sequence."""
        return self.delimiter if self.records else None

    def window_range(self) -> tuple[int, int]:
        """The (shortest, longest) window lengths: from the schedule "START:END", else both
        ``seq_length``."""
        schedule = self.seq_length_schedule
        if schedule is None:
            return self.seq_length, self.seq_length
        try:
            start, end = (int(part) for part in str(schedule).split(":"))
        except ValueError:
            start = end = 0
        if not 1 <= start <= end:
            raise CharrnnError(f"a window-length schedule is START:END, whole numbers of steps "
                               f"with 1 <= START <= END, not {reprlib.repr(schedule)}")
        return start, end


def recipe(max_steps: int | None, max_epochs: float | None, max_time: float | None,
           text_chars: int | None = None) -> Recipe:
    """The defaults of a run with these limits: by TIME_BUDGET_DEFAULTS for a run limited by
    time alone, else STANDARD.

    Given the length of the training text, a run limited by time alone takes the dropout of
    the budget that would read tinyshakespeare as many times (from the recipes of its own
    width): dropout is there against over-fitting, which follows the epochs, and a text ten
    times shorter is read ten times as often in the same time. It keeps its budget's cell
    only if that budget would take it too, else the standard cell: the CIFG LSTM gains by its
    extra steps, measured in short runs on texts that were not yet over-fitted. Its other
    settings follow the number of steps, which the text does not change.
    """
    if max_steps is not None or max_epochs is not None or max_time is None:
        return STANDARD
    chosen = budget_recipe(max_time, TIME_BUDGET_DEFAULTS)
    if not text_chars:
        return chosen
    same_width = tuple((seconds, other) for seconds, other in TIME_BUDGET_DEFAULTS
                       if other.hidden_size == chosen.hidden_size)
    as_often = budget_recipe(max_time * REFERENCE_TEXT_CHARS / text_chars, same_width)
    cell = chosen.cell if as_often.cell == chosen.cell else STANDARD.cell
    return replace(chosen, dropout=as_often.dropout, cell=cell)


def budget_recipe(seconds: float, budgets: tuple[tuple[float, Recipe], ...]) -> Recipe:
    """The recipe of the shortest of ``budgets`` that holds ``seconds``, else of the longest."""
    return next((chosen for limit, chosen in budgets if seconds <= limit), budgets[-1][1])


def available_cores() -> int:
    """The cores this process may run on (all of the machine's where that is not known):
    Python 3.13's os.process_cpu_count, else the affinity mask where the platform has one
    (Linux), else os.cpu_count."""
    if hasattr(os, "process_cpu_count"):
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def physical_memory() -> int | None:
    """Bytes of memory this machine has, None where that is not known."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _of_type(value, kind) -> bool:
    """Whether a value (from JSON) is of a declared type: only a bool for a bool, and an int
    will do for a float."""
    kinds = get_args(kind) or (kind,)
    if isinstance(value, bool):
        return bool in kinds
    return isinstance(value, kinds) or (float in kinds and isinstance(value, int))


def resumed_settings(saved: TrainSettings, overrides: dict) -> TrainSettings:
    """The settings of a resumed run: the saved ones, with ``overrides`` replacing them.

    A stop limit given replaces all the saved ones: ``max_steps=20`` on a run
    saved with ``max_epochs=5`` trains to step 20 whatever the epochs.
    Names that are not training settings are ignored.
    """
    known = {setting.name for setting in fields(TrainSettings)}
    changes = {name: value for name, value in overrides.items() if name in known}
    if any(name in changes for name in STOP_LIMITS):
        changes = {**{name: None for name in STOP_LIMITS}, **changes}
    return replace(saved, **changes)
