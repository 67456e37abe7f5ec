"""The dense form of a text, which the leak scanner compares: escapes undone (`\\n`, `\\t`,
`\\uXXXX`, `\\xXX`, HTML entities, twice over for doubly escaped text), Unicode NFKC per grapheme
cluster (so NFD input and fullwidth letters fold), case folded, zero-width characters dropped, and
everything that is not a letter, mark or digit removed. Combining marks are kept: they carry
meaning in Indic, Thai and Arabic scripts. Every dense character remembers where it came from in
the original text, so a match is redacted in the original.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass

import numpy as np

_ZERO_WIDTH = {
    0x200B,
    0x200C,
    0x200D,
    0x2060,
    0xFEFF,
    0x00AD,
    0x180E,
    0x200E,
    0x200F,
    0x202A,
    0x202B,
    0x202C,
    0x202D,
    0x202E,
    0x2066,
    0x2067,
    0x2068,
    0x2069,
}


_ESCAPE = re.compile(
    r"\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})|\\x([0-9a-fA-F]{2})|\\([ntrfvb0])|\\([\\/\"'])"
    r"|&#(\d{1,7});|&#[xX]([0-9a-fA-F]{1,6});|&([a-zA-Z]{2,8});"
)


_ASCII_WORD = re.compile(r"[A-Za-z0-9]+")


# Thai, Lao, Myanmar, Hangul, Khmer, kana, Han
_DENSE_RANGES = (
    (0x0E00, 0x0EFF),
    (0x1000, 0x109F),
    (0x1100, 0x11FF),
    (0x1780, 0x17FF),
    (0x3040, 0x30FF),
    (0x3130, 0x318F),
    (0x31F0, 0x31FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xAC00, 0xD7AF),
    (0xF900, 0xFAFF),
    (0x20000, 0x3FFFF),
)


def is_dense_script(cp: int) -> bool:
    """Scripts written without spaces between words."""
    return cp >= 0x0E00 and any(lo <= cp <= hi for lo, hi in _DENSE_RANGES)


def _joins_previous(ch: str) -> bool:
    """Combining marks, and the vowel and final jamo that compose with a leading jamo into one
    Hangul syllable (NFD Korean): NFKC must see them with the character before."""
    cp = ord(ch)
    return unicodedata.category(ch)[0] == "M" or 0x1160 <= cp <= 0x11FF or 0xD7B0 <= cp <= 0xD7FF


def dense_script_mask(codes: np.ndarray) -> np.ndarray:
    """is_dense_script for an array of code points."""
    mask = np.zeros(len(codes), bool)
    if len(codes) and codes.max() >= 0x0E00:
        for lo, hi in np.array(_DENSE_RANGES, np.uint64):
            mask |= (codes >= lo) & (codes <= hi)
    return mask


@dataclass(slots=True)
class Dense:
    """A text's dense form: code points, where each came from, and which start or end a word."""

    codes: np.ndarray  # uint64 code points
    start: np.ndarray  # index in the original text where the character begins
    end: np.ndarray  # index just after it ends
    word_start: np.ndarray  # bool: no letter or digit of the same word before it
    word_end: np.ndarray

    def __len__(self) -> int:
        return len(self.codes)


def _undo_escapes(chars: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """One level of escapes decoded, each decoded character keeping the span of its escape."""
    text = "".join(c for c, _, _ in chars)
    if "\\" not in text and "&" not in text:
        return chars
    out: list[tuple[str, int, int]] = []
    pos = 0
    for m in _ESCAPE.finditer(text):
        out.extend(chars[pos : m.start()])
        s, e = chars[m.start()][1], chars[m.end() - 1][2]
        u4, u8, x2, ctrl, lit, dec, hx, ent = m.groups()
        if ctrl is not None:
            decoded = " "
        elif lit is not None:
            decoded = lit
        elif ent is not None:
            decoded = html.unescape(f"&{ent};")
            if decoded == f"&{ent};":
                decoded = m.group()  # not an entity: keep as it was
        else:
            value = int(u4 or u8 or x2 or dec or hx, 16 if (u4 or u8 or x2 or hx) else 10)
            decoded = chr(value) if value <= 0x10FFFF else " "
        out.extend((c, s, e) for c in decoded)
        pos = m.end()
    out.extend(chars[pos:])
    # \uD83D\uDE00: a surrogate pair written as two escapes
    merged: list[tuple[str, int, int]] = []
    for c, s, e in out:
        if merged and 0xDC00 <= ord(c) <= 0xDFFF and 0xD800 <= ord(merged[-1][0]) <= 0xDBFF:
            hi = ord(merged[-1][0])
            merged[-1] = (
                chr(0x10000 + ((hi - 0xD800) << 10) + (ord(c) - 0xDC00)),
                merged[-1][1],
                e,
            )
        else:
            merged.append((c, s, e))
    return merged


def _ascii_dense(text: str) -> Dense:
    starts, ends, codes = [], [], []
    for m in _ASCII_WORD.finditer(text):
        s, e = m.span()
        starts.append(np.arange(s, e))
        codes.append(np.frombuffer(m.group().lower().encode(), dtype=np.uint8))
        ends.append(e)
    if not starts:
        return _empty()
    start = np.concatenate(starts)
    lengths = np.array([len(a) for a in starts])
    word_start = np.zeros(len(start), bool)
    word_end = np.zeros(len(start), bool)
    firsts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    word_start[firsts] = True
    word_end[firsts + lengths - 1] = True
    return Dense(np.concatenate(codes).astype(np.uint64), start, start + 1, word_start, word_end)


def _empty() -> Dense:
    z = np.zeros(0, np.uint64)
    return Dense(z, z.astype(np.int64), z.astype(np.int64), z.astype(bool), z.astype(bool))


def dense(text: str) -> Dense:
    """The dense form of `text` (see the module docstring)."""
    if text.isascii() and "\\" not in text and "&" not in text:
        return _ascii_dense(text)
    chars = [(c, i, i + 1) for i, c in enumerate(text)]
    chars = _undo_escapes(_undo_escapes(chars))
    codes, start, end, wstart, wend = [], [], [], [], []
    boundary = True
    i, n = 0, len(chars)
    while i < n:
        c, s, e = chars[i]
        j = i + 1
        while j < n and _joins_previous(chars[j][0]):  # a base and what composes with it
            e = chars[j][2]
            j += 1
        cluster = "".join(ch for ch, _, _ in chars[i:j])
        i = j
        if ord(c) in _ZERO_WIDTH:
            cluster = cluster[1:]
            if not cluster:
                continue
        for ch in unicodedata.normalize("NFKC", cluster).casefold():
            cp = ord(ch)
            if cp in _ZERO_WIDTH:
                continue
            if unicodedata.category(ch)[0] not in "LMN":
                if codes:
                    wend[-1] = True
                boundary = True
                continue
            dense_char = is_dense_script(cp)
            if dense_char and codes:
                wend[-1] = True
            codes.append(cp)
            start.append(s)
            end.append(e)
            wstart.append(boundary or dense_char)
            wend.append(dense_char)
            boundary = dense_char
    if not codes:
        return _empty()
    wend[-1] = True
    return Dense(
        np.array(codes, np.uint64), np.array(start), np.array(end), np.array(wstart), np.array(wend)
    )
