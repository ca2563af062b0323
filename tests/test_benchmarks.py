"""Every benchmark still imports: the commands in benchmarks/RESULTS.md run against this code.

A benchmark imports the library's modules by name and is run by hand, never by the suite,
so a renamed function would otherwise break it silently. Those that need PyTorch at import
are skipped where it is not installed (it is never a charrnn dependency).
"""

import importlib
import os
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
NEED_TORCH = {"pytorch_baseline", "torch_agreement"}


@pytest.mark.parametrize("name", sorted(path.stem for path in BENCHMARKS.glob("*.py")))
def test_benchmark_imports(name, monkeypatch):
    if name in NEED_TORCH:
        pytest.importorskip("torch")
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # they import each other by name
    environment = dict(os.environ)
    try:
        module = importlib.import_module(name)
    finally:  # a benchmark may set OPENBLAS_NUM_THREADS for the runs it starts
        os.environ.clear()
        os.environ.update(environment)
    assert module.__file__ == str(BENCHMARKS / f"{name}.py")
