"""Detectors for gamed or degenerate outputs: plain functions over recorded outputs.

Each returns counts, a rate, its threshold, whether the model is flagged, and the ids of the
flagged items (never text). Thresholds come from the suite's `safeguards:` section. A share of
fewer than `min_outputs` outputs (default 10) flags nothing, except judge injection: one is enough.

- judge_injection: outputs that address the judge or the grading (instructions to ignore what came
  before, fake verdict markup such as [[A>>B]], fake score JSON, chat-template or evaluation-prompt
  structure meant to close the judge's prompt). Judges always see outputs quoted as untrusted data
  (the hardened path); a flagged model is marked on reports and scorecards.
- repeated_outputs: outputs that (nearly) repeat the model's output for another item: a model
  whose answers barely depend on the prompt. Epochs of one item are the same prompt: a deterministic
  model repeating itself across them is not flagged.
- short_outputs: answers shorter than `short_chars`, as from a model tuned to be terse; items whose
  reference answer is itself short are left out (a short answer is what they ask for).
- truncated: completions cut at the token limit. refusals: refusal phrases and content filters.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from . import nearcopy
from .callkinds import Kind
from .rows import Output
from .sealed import reveal
from .textnorm import normalize

HASHER = nearcopy.Hasher(64)
NEIGHBOURS = 8  # earlier members of an LSH bucket each output is verified against
DEFAULTS = {
    "injection_rate": 0.05,
    "repeated_share": 0.3,
    "short_chars": 40,
    "short_share": 0.5,
    "truncated_share": 0.2,
    "refusal_share": 0.2,
    "min_outputs": 10,
}

INJECTION = {
    "ignore_instructions": re.compile(
        r"\b(ignore|disregard|forget)\s+(all\s+|any\s+)?(of\s+)?(the\s+|your\s+)?"
        r"(above|previous|prior|preceding|earlier)\b",
        re.I,
    ),
    "verdict_markup": re.compile(r"\[\[\s*(?:[AB]\s*(?:>>|>|=|<<|<)\s*[AB]|[AB]|tie)\s*\]\]", re.I),
    "addresses_the_judge": re.compile(
        r"\b(dear|attention|note to|to the|as an?)\s+(ai\s+)?(judge|evaluator|grader|annotator)s?\b"
        r"|\b(judge|evaluator|grader|annotator)s?\s+(must|should|will|shall)\s+"
        r"(prefer|choose|select|rate|score|output|pick)\b",
        re.I,
    ),
    "prompt_structure": re.compile(
        r"<\|im_(?:start|end)\|>|\[/?INST\]|<\|(?:system|user|assistant)\|>"
        r"|^#+\s*(?:model outputs?|evaluation|ranking|instruction)\s*$",
        re.I | re.M,
    ),
    "fake_score": re.compile(
        r'[{,]\s*"(?:preference|verdict|winner|ranking|best_output|scores?)"\s*:\s*'
        r'"?[\[{]?\s*"?(?:m|M|A|B|\d+(?:\.\d+)?)\b'
    ),
}
REFUSAL = re.compile(
    r"^\s*(?:i'?m sorry|i am sorry|sorry,|i apologi[sz]e|i can(?:no|')t "
    r"(?:help|assist|comply|provide)|"
    r"i (?:won't|will not|am unable to|am not able to) (?:help|assist|provide|comply)|as an ai\b)",
    re.I,
)


def _result(flagged_ids: list, n: int, threshold: float, min_outputs: int = 1) -> dict:
    """A share over `n` outputs against its threshold; under `min_outputs` outputs a share says
    nothing, so no flag."""
    rate = len(flagged_ids) / n if n else 0.0
    every = sorted(set(flagged_ids))
    return {
        "count": len(flagged_ids),
        "of": n,
        "rate": rate,
        "threshold": threshold,
        "flagged": n >= max(1, min_outputs) and rate >= threshold,
        "item_ids": every[:50],
        "every_item_id": every,  # recorded in the store (the view's filter), dropped from files
    }


# A word or mark every injection pattern needs: an ASCII text whose lower case holds none of them
# matches none, and is let through by one literal search instead of five patterns (6x faster).
# Only for ASCII: elsewhere case-insensitive matching knows letters lower() does not fold the
# same way (the long s, dotted capital I), so those texts go through the patterns themselves.
NEEDS = re.compile(
    r"ignore|disregard|forget|\[\[|judge|evaluator|grader|annotator|<\||inst\]|#"
    r"|preference|verdict|winner|ranking|best_output|score"
)


def injection_signals(text: str) -> list[str]:
    """Names of the injection patterns a text matches (empty: clean)."""
    if text.isascii() and not NEEDS.search(text.lower()):
        return []
    return [name for name, pattern in INJECTION.items() if pattern.search(text)]


def judge_injection(outputs: list[Output], threshold: float) -> dict:
    ok = [o for o in outputs if o.text is not None]
    hits = {o.item_id: injection_signals(reveal(o.text)) for o in ok}
    res = _result([i for i, h in hits.items() if h], len(ok), threshold)
    res["signals"] = dict(Counter(s for h in hits.values() for s in h))
    return res


def _shingles(text: str) -> list[bytes]:
    """Word 3-grams of the first 300 words of a normalized text (its only spaces are single ASCII
    ones, so its UTF-8 bytes split into the same words). A repeated 3-gram may appear twice: a
    MinHash is a minimum, which repeats do not change."""
    raw = text.encode()
    if raw.count(b" ") < 3:  # three words or fewer: the one 3-gram is the text
        return [raw]
    words = raw.split()[:300]
    return [b" ".join(words[i : i + 3]) for i in range(len(words) - 2)]


def repeated_outputs(
    outputs: list[Output], threshold: float, similarity: float = 0.8, min_outputs: int = 1
) -> dict:
    """Share of outputs that are (near) copies of the same model's output for a different item."""
    ok = [o for o in outputs if o.text is not None and reveal(o.text).strip()]
    normal = [normalize(reveal(o.text)) for o in ok]  # once per output: it is the costly part
    items_of: dict[str, set] = {}  # normalized text -> the items it answers
    for o, text in zip(ok, normal):
        items_of.setdefault(text, set()).add(o.item_id)
    exact = {text for text, items in items_of.items() if len(items) > 1}
    # one signature per distinct text answering one item (epochs repeating themselves are one text)
    texts = [text for text, items in items_of.items() if len(items) == 1]
    del items_of
    item_of = {text: k for k, text in enumerate(texts)}
    sig = HASHER.signatures((_shingles(t) for t in texts), len(texts))
    item_code = np.empty(len(texts), dtype=np.int64)
    codes: dict[str, int] = {}
    for o, text in zip(ok, normal):
        k = item_of.get(text)
        if k is not None:
            item_code[k] = codes.setdefault(o.item_id, len(codes))
    near = np.zeros(len(texts), dtype=bool)
    # candidates a little below `similarity`; each verified; a few neighbours per bucket keep time
    # linear
    for i, j in nearcopy.similar_pairs(
        sig, threshold=similarity, candidate_threshold=similarity - 0.15, neighbours=NEIGHBOURS
    ):
        other_item = item_code[i] != item_code[j]
        near[i[other_item]] = True
        near[j[other_item]] = True
    near_texts = {texts[k] for k in np.flatnonzero(near).tolist()}
    repeated = [o.item_id for o, t in zip(ok, normal) if t in exact or t in near_texts]
    return _result(repeated, len(ok), threshold, min_outputs)


def short_outputs(
    outputs: list[Output],
    chars: int,
    threshold: float,
    *,
    short_references: set | None = None,
    min_outputs: int = 1,
) -> dict:
    """Share of answers under `chars` characters, among items whose reference (if any) is not itself
    that short."""
    ok = [o for o in outputs if o.text is not None and o.item_id not in (short_references or ())]
    res = _result(
        [o.item_id for o in ok if len(reveal(o.text).strip()) < chars],
        len(ok),
        threshold,
        min_outputs,
    )
    res["chars"] = chars
    res["left_out_short_references"] = len(
        {o.item_id for o in outputs if o.item_id in (short_references or ())}
    )
    return res


def truncated(outputs: list[Output], threshold: float, min_outputs: int = 1) -> dict:
    res = _result(
        [o.item_id for o in outputs if o.finish_reason in ("length", "max_tokens")],
        len(outputs),
        threshold,
        min_outputs,
    )
    res["empty"] = sum(o.error_kind == Kind.EMPTY for o in outputs)
    return res


def refusals(outputs: list[Output], threshold: float, min_outputs: int = 1) -> dict:
    ids = [
        o.item_id
        for o in outputs
        if o.error_kind == Kind.CONTENT_FILTER
        or (o.text is not None and REFUSAL.search(reveal(o.text)[:200]))
    ]
    return _result(ids, len(outputs), threshold, min_outputs)


def check_model(
    outputs: list[Output], settings: dict | None = None, short_references: set | None = None
) -> dict:
    s = {**DEFAULTS, **(settings or {})}
    return {
        "judge_injection": judge_injection(outputs, s["injection_rate"]),
        "repeated_outputs": repeated_outputs(
            outputs, s["repeated_share"], min_outputs=s["min_outputs"]
        ),
        "short_outputs": short_outputs(
            outputs,
            s["short_chars"],
            s["short_share"],
            short_references=short_references,
            min_outputs=s["min_outputs"],
        ),
        "truncated": truncated(outputs, s["truncated_share"], s["min_outputs"]),
        "refusals": refusals(outputs, s["refusal_share"], s["min_outputs"]),
    }


def short_reference_items(items: dict | None, settings: dict | None = None) -> set:
    """Ids of items whose reference answer is shorter than `short_chars` (a short answer is right
    for them)."""
    chars = {**DEFAULTS, **(settings or {})}["short_chars"]
    return {
        i
        for i, it in (items or {}).items()
        if it.reference is not None and len(reveal(it.reference).strip()) < chars
    }


def without_every_id(results: dict) -> dict:
    """The results as files and cards show them: a sample of 50 ids per detector, not all."""
    return {
        m: {d: {k: v for k, v in r.items() if k != "every_item_id"} for d, r in res.items()}
        for m, res in results.items()
    }


def flags(results: dict) -> dict[str, list[str]]:
    """model -> the detectors that flagged it."""
    return {m: [d for d, r in res.items() if r["flagged"]] for m, res in results.items()}
