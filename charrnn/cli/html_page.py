"""A self-contained HTML page of a text coloured character by character, with the model's
guesses shown on hover.

One ``<span>`` per character, inside ``<pre id="text">``, with a class for
its colour bin (``b0``, ``b1``, ...; none for a character with nothing to
show) and ``n`` for a line end, marked with a visible arrow. What the
tooltip shows lives in one JSON object in a script, as flat arrays of
integers (hundredths of a nat, hundredths of a unit value, thousandths of a
probability), read by a few lines of JavaScript; no network is used. The
address ``page.html#N`` opens the guesses for character N (from 0).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

import numpy as np

from charrnn.cli.colours import Scale

STYLE = """
body { font: 14px/1.5 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.1em; margin: 0 0 .3em; }
#summary { margin: 0 0 .8em; }
#legend span { display: inline-block; padding: 0 .45em; font: 12px monospace; }
#text { font: 14px/1.35 monospace; white-space: pre-wrap; word-break: break-all; }
#text span.n::before { content: "\\21b5"; color: #999; }
#text span:hover, #text span.at { outline: 1px solid #333; }
#tip { position: fixed; display: none; background: #fff; border: 1px solid #888;
       padding: .3em .6em; font: 13px monospace; white-space: pre; pointer-events: none;
       box-shadow: 2px 2px 6px rgba(0,0,0,.2); }
"""

SCRIPT = r"""
const data = JSON.parse(document.getElementById("data").textContent);
const spans = document.getElementById("text").children;
const tip = document.getElementById("tip");
const k = data.top_k;
for (let i = 0; i < spans.length; i++) spans[i].index = i;
function describe(i) {
  const lines = [data.chars[i] + "  " + (data.nats[i] < 0 ? "-" : (data.nats[i] / 100).toFixed(2) + " nats")];
  if (data.values) lines[0] += "  " + data.value_label + " " + (data.values[i] / 100).toFixed(2);
  for (let j = i * k; j < (i + 1) * k; j++) {
    if (data.probs[j] < 0) continue;
    const label = data.labels[data.guesses[j]];
    lines.push(label.padEnd(7) + (data.probs[j] / 10).toFixed(1).padStart(5) + "%" + (label === data.chars[i] ? " <" : ""));
  }
  return lines.join("\n");
}
function showTip(i, x, y) {
  tip.textContent = describe(i);
  tip.style.display = "block";
  tip.style.left = Math.min(x + 12, innerWidth - tip.offsetWidth - 4) + "px";
  tip.style.top = Math.min(y + 16, innerHeight - tip.offsetHeight - 4) + "px";
}
document.getElementById("text").addEventListener("mousemove", event => {
  if (event.target.index === undefined) { tip.style.display = "none"; return; }
  showTip(event.target.index, event.clientX, event.clientY);
});
document.getElementById("text").addEventListener("mouseleave", () => { tip.style.display = "none"; });
// page.html#123 opens character 123's guesses, for a link to one spot.
const linked = /^#(\d+)$/.exec(location.hash);
if (linked && +linked[1] < spans.length) {
  const span = spans[+linked[1]];
  span.classList.add("at");
  span.scrollIntoView({block: "center"});
  const box = span.getBoundingClientRect();
  showTip(+linked[1], box.right, box.top);
}
"""


@dataclass(frozen=True)
class PageText:
    """What the page shows, one row per character."""

    chars: list[str]  # (M,) the characters, each one character
    labels: list[str]  # (M,) each character as the tooltip names it
    colours: np.ndarray  # (M,) the values that colour it (on ``scale``), NaN for none
    nats: np.ndarray  # (M,) its surprise, NaN if not predicted
    guesses: np.ndarray  # (M, K) indices into ``guess_labels``: the likeliest first
    guess_probs: np.ndarray  # (M, K) their probabilities (NaN: no guess)
    guess_labels: list[str]
    values: np.ndarray | None = None  # (M,) a unit's values, for the tooltip
    value_label: str = ""  # what the values are, e.g. "unit 1:42 cell"


def scaled_ints(values: np.ndarray, factor: float) -> list[int]:
    """values * factor rounded, -1 for NaN: for the page's integer arrays."""
    return np.where(np.isnan(values), -1, np.rint(np.nan_to_num(values) * factor)).astype(int).tolist()


def page_data(text: PageText) -> str:
    """The tooltip data as JSON that is safe inside a <script> element."""
    data = {
        "top_k": text.guesses.shape[1],
        "chars": text.labels,
        "labels": text.guess_labels,
        "nats": scaled_ints(text.nats, 100),
        "guesses": text.guesses.ravel().tolist(),
        "probs": scaled_ints(text.guess_probs.ravel(), 1000),
    }
    if text.values is not None:
        data["values"] = scaled_ints(text.values, 100)
        data["value_label"] = text.value_label
    # "<" escaped: the text can never close the script element.
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


def text_spans(text: PageText, scale: Scale) -> str:
    """One escaped <span> per character, with its colour bin's class."""
    bins = scale.bins(text.colours)
    spans = []
    for char, level in zip(text.chars, bins):
        classes = ([f"b{level}"] if level >= 0 else []) + (["n"] if char == "\n" else [])
        attribute = f' class="{" ".join(classes)}"' if classes else ""
        spans.append(f"<span{attribute}>{html.escape(char)}</span>")
    return "".join(spans)


def legend(scale: Scale) -> str:
    cells = [f'<span class="b{level}">{label}</span>'
             for level, label in enumerate(scale.bin_labels())]
    return f'<div id="legend">{html.escape(scale.label)}: {"".join(cells)}</div>'


def html_page(title: str, summary: str, text: PageText, scale: Scale) -> str:
    """The whole page: title, summary line, legend, the coloured text and the tooltip."""
    colours = "\n".join(f".b{level} {{ background: {colour}; }}"
                        for level, colour in enumerate(scale.colours))
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}{colours}\n</style>\n</head>\n"
            f"<body>\n<h1>{html.escape(title)}</h1>\n<p id=\"summary\">{html.escape(summary)}</p>\n"
            f"{legend(scale)}\n<pre id=\"text\">{text_spans(text, scale)}</pre>\n"
            f"<div id=\"tip\"></div>\n"
            f"<script type=\"application/json\" id=\"data\">{page_data(text)}</script>\n"
            f"<script>{SCRIPT}</script>\n</body>\n</html>\n")
