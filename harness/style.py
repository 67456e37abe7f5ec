"""Style control: what an answer looks like (length, markdown), so a judge's taste for it can be
separated from quality.

Features are counted once per answer at grading time and kept in the grade (numbers only). The
covariates of the style-controlled Bradley-Terry fit are Arena-Hard's (`show_result.py
--control-features length markdown` in lmarena/arena-hard-auto): for each battle, the normalized
length difference (a - b) / (a + b) in tokens, and for headers, list items and bold spans the
difference of their densities per token, (da - db) / (da + db + 1); each column centred and scaled
by its standard deviation. So a Holdout style-controlled rating can be set beside a published one.
One difference: Arena-Hard counts tokens with tiktoken's gpt-4o encoding, which Holdout cannot fetch
at run time; Holdout counts words (a combining mark belongs to its word) and punctuation marks,
which differ from BPE tokens by a roughly constant factor that the normalized difference cancels.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata

import numpy as np

MARKDOWN = ("headers", "lists", "bold")
COVARIATES = ("length", *MARKDOWN)
_CODE = re.compile(r"```([^`]*)```")


@functools.cache
def _token_pattern() -> re.Pattern:
    """Words and punctuation marks, a combining mark belonging to its word: `\\w` alone splits
    हिन्दी into six tokens and ครับ into three, because vowel signs and viramas are marks, not
    letters. Built on first use (one pass over the code points), so importing this module costs
    nothing."""
    marks = "".join(
        re.escape(chr(c))
        for c in range(sys.maxunicode + 1)
        if unicodedata.category(chr(c))[0] == "M"
    )
    return re.compile(rf"[\w{marks}]+|[^\w\s{marks}]")


def features(text: str) -> dict:
    """Counts for one answer (markdown inside code blocks is not markdown, as in Arena-Hard)."""
    body = text
    # Arena-Hard's remove_pattern, exactly: each fenced block's inside is removed wherever it
    # occurs (the fences stay)
    for inside in _CODE.findall(text):
        body = body.replace(inside, "")
    tokens = len(
        re.findall(r"\w+|[^\w\s]", text) if text.isascii() else _token_pattern().findall(text)
    )
    return {
        "length": len(text),
        "tokens": tokens,
        "headers": len(re.findall(r"^#{1,6}\s", body, re.M)),
        "lists": len(re.findall(r"^\s*\d+\.\s", body, re.M))
        + len(re.findall(r"^\s*[-*+]\s", body, re.M)),
        "bold": len(re.findall(r"\*\*[^*\n]+\*\*", body)) + len(re.findall(r"__[^_\n]+__", body)),
    }


def covariates(pairs: list[tuple[dict, dict]]) -> np.ndarray:
    """One row per battle (model's features, baseline's): Arena-Hard's normalized differences,
    centred and scaled per column (a column with no variation is 0)."""
    model = np.array([[m["tokens"], *(m[k] for k in MARKDOWN)] for m, _ in pairs], dtype=float)
    base = np.array([[b["tokens"], *(b[k] for k in MARKDOWN)] for _, b in pairs], dtype=float)
    out = np.zeros_like(model)
    with np.errstate(invalid="ignore", divide="ignore"):
        total = model[:, 0] + base[:, 0]
        out[:, 0] = np.where(
            total > 0, (model[:, 0] - base[:, 0]) / np.where(total > 0, total, 1), 0.0
        )
    # densities, as show_result.py
    dm, db = (
        model[:, 1:] / (model[:, :1] + 1),
        base[:, 1:] / (base[:, :1] + 1),
    )
    out[:, 1:] = (dm - db) / (dm + db + 1)
    if len(out) < 2:
        return np.zeros_like(out)
    sd = out.std(axis=0, ddof=1)
    return np.where(sd > 0, (out - out.mean(axis=0)) / np.where(sd > 0, sd, 1), 0.0)
