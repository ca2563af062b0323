"""The examples of docs/python.md run, in order, as one session."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "python.md"
NEEDS_TORCH = "<!-- needs PyTorch"


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of a Markdown text, but those marked as needing PyTorch."""
    blocks = re.findall(r"(<!--[^\n]*-->\n)?```python\n(.*?)```", text, re.DOTALL)
    return [code for marker, code in blocks if not marker.startswith(NEEDS_TORCH)]


def test_the_python_examples_run(tmp_path, monkeypatch):
    blocks = python_blocks(DOCS.read_text(encoding="utf-8"))
    assert len(blocks) >= 6
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for number, code in enumerate(blocks):
        exec(compile(code, f"docs/python.md block {number}", "exec"), namespace)
    assert (tmp_path / "notes.safetensors").exists()
