"""Text normalization for comparing answers: case, accents, punctuation and spacing do not matter;
letters, digits and the marks that change a word in other scripts do. Rule grades, safeguards and
pool dedupers share it."""

from __future__ import annotations

import functools
import re
import unicodedata

_ASCII_PUNCT = re.compile(r"[^a-z0-9\s]")


_ACCENTED_SCRIPTS = ("LATIN", "GREEK")


@functools.lru_cache(maxsize=4096)
def _accents_fold(base: str) -> bool:
    """Whether marks on this letter are accents that may be ignored (Latin and Greek: café = cafe).
    In other scripts they make other letters or words (Russian й and и; Hindi दिल and दाल; Thai ปา
    and ป้า): kept."""
    return unicodedata.name(base, "").startswith(_ACCENTED_SCRIPTS)


def normalize(text: str) -> str:
    """Case, accents, punctuation and spacing do not matter; letters, digits and the marks that
    change a word in Indic, Thai, Arabic, Hebrew and other scripts do."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if text.isascii():
        return " ".join(_ASCII_PUNCT.sub(" ", text).split())
    out, fold = [], False
    for c in unicodedata.normalize("NFKD", text):
        kind = unicodedata.category(c)[0]
        if kind == "M":
            if not fold:
                out.append(c)
        elif kind in "LN":
            out.append(c)
            fold = _accents_fold(c)
        else:  # punctuation, symbols, separators, controls
            out.append(" ")
            fold = False
    return " ".join(unicodedata.normalize("NFC", "".join(out)).split())
