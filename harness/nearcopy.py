"""Near-copy detection in little memory: MinHash signatures in one uint32 array, and banded LSH.

Why our own and not datasketch: its LSH keeps a Python object per signature and a dict of lists per
band, about 4 KB per text, which made `check` of 100k outputs hold 400 MB. Here a signature is a row
of a NumPy array (4 bytes per permutation), a band is a 64-bit hash of its rows, and finding
candidates in a batch is a sort per band. Candidates only propose; every pair is verified by its
estimated Jaccard similarity (the share of equal signature positions). Deterministic: no process
hash seed is involved (shingles are hashed with CRC-32).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

import numpy as np

SHIFT = np.uint64(32)  # a permuted hash is the top 32 bits of a * h + b (mod 2**64)
BUCKET_RECENT = 64  # an index query verifies at most the latest members of each band bucket
KEY_CHUNK = 16_384  # signatures turned into band keys at a time (bounds the temporary arrays)
SHINGLE_CHUNK = 65_536  # shingle hashes permuted at a time (x perms x 8 bytes of temporaries)
_BAND_MIX = np.random.RandomState(7).randint(1, 1 << 62, size=256, dtype=np.int64).astype(
    np.uint64
) | np.uint64(1)


class Hasher:
    """MinHash signatures with `perms` seeded hash functions.

    Each is multiply-add-shift (Dietzfelbinger): the top 32 bits of `a * h + b` modulo 2**64, for a
    32-bit `h`, an odd 64-bit `a` and a 64-bit `b`, a strongly universal family. NumPy's uint64
    arithmetic wraps, so it costs a multiply, an add and a shift: half the time of `% prime`."""

    def __init__(self, perms: int, seed: int = 1):
        rng = np.random.default_rng(seed)
        self.perms = perms
        self.a = rng.integers(0, 1 << 64, size=perms, dtype=np.uint64) | np.uint64(1)
        self.b = rng.integers(0, 1 << 64, size=perms, dtype=np.uint64)

    def permute(self, hashes: np.ndarray) -> np.ndarray:
        """(n, perms) uint32: every hash under every function."""
        return ((hashes[:, None] * self.a + self.b) >> SHIFT).astype(np.uint32)

    def signature(self, shingles: Iterable[bytes]) -> np.ndarray:
        """The minimum of each permutation of the shingles' CRC-32s (an empty set: of 0)."""
        return self.signatures([shingles], 1)[0]

    def signatures(self, shingle_sets: Iterable[Iterable[bytes]], count: int) -> np.ndarray:
        """`signature` of each set, computed for many sets at once: their hashes in one array, the
        permutations applied to all of it, and each set's minimum taken by `reduceat`, a batch of
        at most SHINGLE_CHUNK hashes at a time."""
        out = np.empty((count, self.perms), dtype=np.uint32)
        hashes: list[int] = []
        starts: list[int] = []
        done = 0

        def flush() -> None:
            nonlocal done
            if not starts:
                return
            h = np.array(hashes, dtype=np.uint64)
            out[done : done + len(starts)] = np.minimum.reduceat(self.permute(h), starts, axis=0)
            done += len(starts)
            hashes.clear()
            starts.clear()

        for shingles in shingle_sets:
            starts.append(len(hashes))
            before = len(hashes)
            hashes.extend(map(zlib.crc32, shingles))
            if len(hashes) == before:
                hashes.append(0)  # an empty set: its signature is that of a 0 hash
            if len(hashes) >= SHINGLE_CHUNK:
                flush()
        flush()
        return out


def banding(threshold: float, perms: int) -> tuple[int, int]:
    """(bands, rows): the most rows per band whose LSH threshold (1/b)**(1/r) is still at or below
    `threshold`, so pairs at the threshold are nearly always proposed."""
    best = (perms, 1)
    for rows in range(1, perms + 1):
        bands = perms // rows
        if bands and (1 / bands) ** (1 / rows) <= threshold:
            best = (bands, rows)
    return best


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint64: one hash per band of each signature (wrapping multiply-add; collisions
    only cost a check)."""
    mix = _BAND_MIX[np.arange(bands * rows) % len(_BAND_MIX)].reshape(bands, rows)
    keys = np.empty((sig.shape[0], bands), dtype=np.uint64)
    for start in range(0, sig.shape[0], KEY_CHUNK):
        part = (
            sig[start : start + KEY_CHUNK, : bands * rows]
            .astype(np.uint64)
            .reshape(-1, bands, rows)
        )
        keys[start : start + KEY_CHUNK] = (part * mix).sum(axis=2, dtype=np.uint64)
    return keys


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity of signature rows (broadcasting)."""
    return (a == b).mean(axis=-1)


def similar_pairs(
    sig: np.ndarray, *, threshold: float, candidate_threshold: float, neighbours: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Verified pairs (i, j) with similarity >= threshold, as index arrays, in batches.

    Each signature is compared with at most `neighbours` earlier members of each band bucket it
    falls in, so time is linear even when thousands of texts share a bucket (templated answers): in
    a cluster of near-copies every member still meets a near-copy among its neighbours."""
    n, perms = sig.shape
    if n < 2:
        return
    bands, rows = banding(candidate_threshold, perms)
    keys = band_keys(sig, bands, rows)
    positions = np.arange(n)
    for j in range(bands):
        order = np.argsort(keys[:, j], kind="stable")
        sorted_keys = keys[order, j]
        boundary = np.ones(n, dtype=bool)
        boundary[1:] = sorted_keys[1:] != sorted_keys[:-1]
        start = np.maximum.accumulate(np.where(boundary, positions, 0))
        for d in range(1, neighbours + 1):
            p = positions[d:]
            p = p[p - d >= start[p]]
            if not p.size:
                break
            i, k = order[p], order[p - d]
            close = similarity(sig[i], sig[k]) >= threshold
            if close.any():
                yield i[close], k[close]


class Index:
    """An incremental index (insert, then query): for a draw, where each accepted text changes what
    comes next.

    A query verifies at most BUCKET_RECENT members of each bucket it falls in, so time stays linear
    on a templated source where thousands of prompts share buckets; a copy of an older member is
    still found through another of its bands unless every one of them is crowded."""

    def __init__(self, *, perms: int, candidate_threshold: float):
        self.bands, self.rows = banding(candidate_threshold, perms)
        self.buckets: list[dict[int, list[int]]] = [{} for _ in range(self.bands)]
        self.sig = np.empty((64, perms), dtype=np.uint32)  # grows by doubling
        self.size = 0

    def keys(self, sig: np.ndarray) -> list[int]:
        return band_keys(sig[None, :], self.bands, self.rows)[0].tolist()

    def query(self, sig: np.ndarray, threshold: float, keys: list[int] | None = None) -> bool:
        """Is anything indexed at least `threshold` similar to `sig`? (`keys`: its band keys, if
        known)"""
        found = set().union(
            *(
                self.buckets[j].get(key, [])[-BUCKET_RECENT:]
                for j, key in enumerate(keys or self.keys(sig))
            )
        )
        if not found:
            return False
        others = self.sig[np.fromiter(found, dtype=np.int64, count=len(found))]
        return bool((np.count_nonzero(others == sig, axis=1) >= threshold * len(sig)).any())

    def insert(self, sig: np.ndarray, keys: list[int] | None = None) -> None:
        if self.size == len(self.sig):
            self.sig = np.concatenate([self.sig, np.empty_like(self.sig)])
        k = self.size
        self.sig[k] = sig
        self.size += 1
        for j, key in enumerate(keys or self.keys(sig)):
            self.buckets[j].setdefault(key, []).append(k)
