"""Step checkpoints: the saves of ``save_every`` kept beside the output as
``<out>.step<k>.npz`` (``<out>`` named without its suffix), the last few of them.

Only the files that follow this pattern for the same output are counted or
deleted. The "last" are those of the highest steps up to the step just
saved: files of later steps, left by a run that went further before this
one resumed from an earlier checkpoint, are not this run's and are left
alone.
"""

from __future__ import annotations

import re
from pathlib import Path


def step_path(out: Path, step: int) -> Path:
    """Where the checkpoint of ``step`` is kept."""
    return out.with_name(f"{out.stem}.step{step}{out.suffix}")


def saved_steps(out: Path) -> dict[int, Path]:
    """The step checkpoints of ``out`` on disk, by step."""
    pattern = re.compile(re.escape(out.stem) + r"\.step([0-9]+)" + re.escape(out.suffix))
    matches = (pattern.fullmatch(path.name) for path in out.parent.iterdir())
    return {int(match.group(1)): out.with_name(match.group(0)) for match in matches if match}


def prune(out: Path, step: int, keep: int) -> list[Path]:
    """Delete the step checkpoints of ``out`` up to ``step`` but the ``keep`` latest; returns
    the deleted ones."""
    earlier = sorted((k, path) for k, path in saved_steps(out).items() if k <= step)
    deleted = [path for _, path in earlier[: max(len(earlier) - keep, 0)]]
    for path in deleted:
        path.unlink(missing_ok=True)  # another run may have deleted it first
    return deleted
