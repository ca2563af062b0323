"""The package's folders are its layers: import-linter checks the contract in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import charrnn

PACKAGE = Path(charrnn.__file__).parent
REPOSITORY = PACKAGE.parent


def test_the_layer_contracts_are_kept():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=REPOSITORY,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_layer_names_its_job_and_what_it_may_import():
    packages = [init.parent for init in PACKAGE.glob("*/__init__.py")]
    assert {package.name for package in packages} >= {
        "io", "data", "nn", "saving", "training", "generation", "inspection", "cli"}
    for package in packages:
        docstring = (package / "__init__.py").read_text().split('"""')[1]
        assert "import" in docstring.lower(), package.name
