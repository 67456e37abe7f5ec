"""Fingerprints of held-out text, and a scanner that finds them again in any form a leak can take.

Text is first brought to one *dense form* (`denseform`: escapes undone, NFKC, case folded, only
letters, marks and digits kept, each character remembering where it came from).

Long texts are fingerprinted by character n-grams of the dense form, selected by winnowing (the
minimum hash of every window of W grams): any shared stretch of at least `K + W - 1` dense
characters is guaranteed to be found, at a cost of about 2/(W+1) fingerprints per character.
Scripts written without spaces (Han, kana, Hangul, Thai, Lao, Khmer, Myanmar) use shorter grams,
since one of their characters carries as much as several Latin letters. Texts too short for that
guarantee (`391`, `Paris`, `Define X precisely.`) are registered whole and matched exactly, at word
boundaries where the script has them. The scanner also looks at the text reversed and inside
base64 runs.

Fingerprints are salted per process (they mean nothing outside it) and kept as sorted 64-bit
arrays: 8 bytes each, about 1.2 bytes per character of registered text.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import secrets

import numpy as np

from .denseform import Dense, dense, dense_script_mask

# (gram length K, winnowing window W) for ordinary scripts and for scripts without spaces.
# guaranteed: shared runs of >= 23 dense characters (about 4-5 English words)
LATIN_FAMILY = (12, 12)
DENSE_FAMILY = (5, 6)  # guaranteed: shared runs of >= 10 dense characters (about 4-6 CJK words)
# shortest text registered: 3 Latin letters/digits, or 2 characters of a dense script
MIN_SHORT_WEIGHT = 3
COMMON_WORDS = frozenset(
    """yes no true false none null nan ok okay the and for not you are was but all any can
her his one our out has had who how why what when where which this that with from they them then
than their
there these those will would could should about a b c d e f""".split()
)

_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]+")
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{6,}={0,2}")
_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


class Hasher:
    """Polynomial hashes of every k-gram, finished with a keyed mix: salted per process, or by a
    secret seed (a vault's, so its versions' fingerprints can be kept, encrypted, and reused)."""

    def __init__(self, seed: bytes | None = None) -> None:
        if seed is None:
            seed = secrets.token_bytes(16)
        self.base = np.uint64(int.from_bytes(seed[:8], "little") | 1)
        self.salt = np.uint64(int.from_bytes(seed[8:16], "little"))

    def grams(self, codes: np.ndarray, k: int) -> np.ndarray:
        n = len(codes) - k + 1
        if n <= 0:
            return np.zeros(0, np.uint64)
        h = np.zeros(n, np.uint64)
        with np.errstate(over="ignore"):
            for j in range(k):
                h = h * self.base + codes[j : j + n]
            return self._mix(h ^ (self.salt + np.uint64(k)))

    @staticmethod
    def _mix(x: np.ndarray) -> np.ndarray:
        """splitmix64's finalizer: every input bit reaches every output bit."""
        with np.errstate(over="ignore"):
            x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            return x ^ (x >> np.uint64(31))


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """`np.unique` of 64-bit values by a sort: numpy 2.3+ answers `np.unique` by hashing, 70x
    slower on a million fingerprints (1.26 s against 0.018 s on this machine)."""
    s = np.sort(values)
    if len(s) < 2:
        return s
    keep = np.empty(len(s), bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


class SortedSet:
    """A set of 64-bit fingerprints as a few sorted arrays (merged like a log-structured tree)."""

    def __init__(self) -> None:
        self.levels: list[np.ndarray] = []
        self.pending: list[np.ndarray] = []
        self.pending_n = 0

    def __len__(self) -> int:
        return sum(len(a) for a in self.levels) + self.pending_n

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.levels) + 8 * self.pending_n

    def add(self, values: np.ndarray) -> None:
        if len(values):
            self.pending.append(values)
            self.pending_n += len(values)
            if self.pending_n >= 1 << 15:
                self._compact()

    def _compact(self) -> None:
        if not self.pending:
            return
        new = sorted_unique(np.concatenate(self.pending))
        self.pending, self.pending_n = [], 0
        while self.levels and len(self.levels[-1]) <= 2 * len(new):
            new = sorted_unique(np.concatenate((self.levels.pop(), new)))
        self.levels.append(new)

    def contains(self, values: np.ndarray) -> np.ndarray:
        self._compact()
        found = np.zeros(len(values), bool)
        for level in self.levels:
            idx = np.minimum(np.searchsorted(level, values), len(level) - 1)
            found |= level[idx] == values
        return found


class Fingerprints:
    """What the egress gate knows of held-out text, and the scan that finds it again."""

    def __init__(self) -> None:
        self.hasher = Hasher()
        self.long = {LATIN_FAMILY: SortedSet(), DENSE_FAMILY: SortedSet()}
        self.short = SortedSet()
        self.short_lengths: set[int] = set()
        # dense forms of labels reports must show (declared strata values)
        self.public: set[str] = set()
        self._seed: bytes | None = None  # the secret salting the hasher, if not a random one
        self._batch: list[np.ndarray] = []  # long ordinary texts waiting to be hashed together
        self._batch_n = 0

    def __len__(self) -> int:
        return sum(len(s) for s in self.long.values()) + len(self.short) + self._batch_n

    def rekey(self, seed: bytes) -> bool:
        """Salted by `seed`: already, or from now on if nothing is registered yet (else False:
        what is registered under the salt it has would no longer match)."""
        if self._seed is not None and hmac.compare_digest(self._seed, seed):
            return True
        if len(self) or self.short_lengths:
            return False
        self.hasher, self._seed = Hasher(seed), seed
        return True

    @classmethod
    def salted(cls, seed: bytes) -> Fingerprints:
        """A new, empty set salted by `seed` (one version's fingerprints, to keep)."""
        other = cls()
        other.rekey(seed)
        return other

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything registered, as plain arrays (to keep, encrypted, and `merge` later)."""
        self._flush_batch()

        def flat(s: SortedSet) -> np.ndarray:
            s._compact()
            return sorted_unique(np.concatenate(s.levels)) if s.levels else np.zeros(0, np.uint64)

        return {
            "latin": flat(self.long[LATIN_FAMILY]),
            "dense": flat(self.long[DENSE_FAMILY]),
            "short": flat(self.short),
            "short_lengths": np.array(sorted(self.short_lengths), np.int64),
        }

    def merge(self, arrays: dict[str, np.ndarray]) -> None:
        """Add what `arrays` (of a set under the same salt) holds."""
        self._flush_batch()
        self.long[LATIN_FAMILY].add(arrays["latin"].astype(np.uint64))
        self.long[DENSE_FAMILY].add(arrays["dense"].astype(np.uint64))
        self.short.add(arrays["short"].astype(np.uint64))
        self.short_lengths.update(int(n) for n in arrays["short_lengths"])

    @property
    def nbytes(self) -> int:
        self._flush_batch()
        return sum(s.nbytes for s in self.long.values()) + self.short.nbytes

    # -- registering ---------------------------------------------------------------
    def add(self, text: str, *, short: bool = True) -> None:
        """Register `text`: n-grams if it is long enough, and (with `short`) the whole text if it is
        not."""
        # the common case, without positions
        if text.isascii() and "\\" not in text and "&" not in text:
            codes = _NOT_ALNUM.sub("", text).lower().encode()
            if len(codes) >= sum(LATIN_FAMILY) - 1:
                self._queue_long(np.frombuffer(codes, np.uint8).astype(np.uint64))
                return
        d = dense(text)
        if not len(d):
            return
        dense_mask = dense_script_mask(d.codes)
        family = DENSE_FAMILY if dense_mask.mean() >= 0.3 else LATIN_FAMILY
        k, w = family
        if short and len(d) < k + w - 1:
            self._add_short(d, dense_mask, check_common=True)
        if len(d) < k:
            return
        if family is LATIN_FAMILY and len(d) >= k + w - 1:
            self._queue_long(d.codes)
            return
        h = self.hasher.grams(d.codes, k)
        # grams with no character of a dense script would match ordinary words
        if family is DENSE_FAMILY:
            has_dense = np.convolve(dense_mask.astype(np.int32), np.ones(k, np.int32), "valid") > 0
            h = h[has_dense]
            if not len(h):
                return
        if len(h) > w:
            h = np.lib.stride_tricks.sliding_window_view(h, w).min(axis=1)
        self.long[family].add(sorted_unique(h))

    def _queue_long(self, codes: np.ndarray) -> None:
        self._batch.append(codes)
        self._batch_n += len(codes) + 1
        if self._batch_n >= 1 << 16:
            self._flush_batch()

    def _flush_batch(self) -> None:
        """Hash many texts at once (numpy's per-call cost dominates for short prompts): the texts
        joined with a separator, grams that cross one dropped. Windows across two texts select a
        real gram of one of them, so every text keeps at least the fingerprints it would have
        alone."""
        if not self._batch:
            return
        k, w = LATIN_FAMILY
        joined = np.concatenate([np.append(c, np.uint64(0)) for c in self._batch])
        self._batch, self._batch_n = [], 0
        h = self.hasher.grams(joined, k)
        seps = np.concatenate(([0], np.cumsum(joined == 0)))
        crossing = (seps[k : k + len(h)] - seps[: len(h)]) > 0
        h[crossing] = _MASK
        if len(h) > w:
            h = np.lib.stride_tricks.sliding_window_view(h, w).min(axis=1)
        self.long[LATIN_FAMILY].add(sorted_unique(h[h != _MASK]))

    def allow(self, label: str) -> None:
        """A public label (a declared stratum value): a short held-out text equal to it is not
        redacted where the label stands alone, so segment tables stay readable."""
        d = dense(label)
        if len(d):
            self.public.add(_chars(d.codes))

    def add_exact(self, text: str) -> None:
        """Register `text` to be matched whole (at word boundaries), whatever its length."""
        d = dense(text)
        if len(d):
            self._add_short(d, dense_script_mask(d.codes), check_common=False)

    def _add_short(self, d: Dense, dense_mask: np.ndarray, *, check_common: bool) -> None:
        weight = len(d) + int(dense_mask.sum())
        if check_common and (weight < MIN_SHORT_WEIGHT or _chars(d.codes) in COMMON_WORDS):
            return
        self.short.add(self.hasher.grams(d.codes, len(d)))
        self.short_lengths.add(len(d))

    # -- scanning ------------------------------------------------------------------
    def find(self, text: str) -> list[tuple[int, int]]:
        """Spans (start, end) of `text` that hold registered held-out text, merged and sorted."""
        if not len(self) or not text:
            return []
        self._flush_batch()
        d = dense(text)
        spans = self._find_dense(d, reverse=False) + self._find_dense(d, reverse=True)
        for m in _BASE64_RUN.finditer(text):
            run = m.group()
            # a short run is base64 only if padded to a multiple of 4
            if len(run) < 24 and len(run) % 4:
                continue
            decoded = _b64_text(run)
            if decoded and self._find_dense(dense(decoded), reverse=False):
                spans.append(m.span())
        return _merge(spans)

    def _find_dense(self, d: Dense, reverse: bool) -> list[tuple[int, int]]:
        n = len(d)
        if not n:
            return []
        codes = np.ascontiguousarray(d.codes[::-1]) if reverse else d.codes
        ranges: list[tuple[int, int]] = []  # half-open ranges of dense positions (in `codes` order)
        for (k, w), prints in self.long.items():
            if not len(prints) or n < k:
                continue
            hits = np.flatnonzero(prints.contains(self.hasher.grams(codes, k)))
            for s in hits:
                ranges.append((max(0, int(s) - (w - 1)), min(n, int(s) + k + (w - 1))))
        starts, ends = (
            (d.word_end[::-1], d.word_start[::-1]) if reverse else (d.word_start, d.word_end)
        )
        for length in self.short_lengths:
            if length > n:
                continue
            hits = np.flatnonzero(self.short.contains(self.hasher.grams(codes, length)))
            for s in hits:
                e = int(s) + length
                if (
                    starts[s]
                    and ends[e - 1]
                    and not (self.public and _chars(codes[s:e]) in self.public)
                ):
                    ranges.append((int(s), e))
        spans = []
        for s, e in ranges:
            if reverse:
                s, e = n - e, n - s
            spans.append((int(d.start[s]), int(d.end[e - 1])))
        return spans


def _chars(codes: np.ndarray) -> str:
    return "".join(map(chr, codes.tolist()))


def _b64_text(run: str) -> str | None:
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            raw = decode(run + "=" * (-len(run) % 4))
            return raw.decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            continue
    return None


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out
