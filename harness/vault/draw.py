"""Drawing a new pool version from the arena source's candidates (source.py): stratified,
deduplicated, deterministic for a seed.

The draw visits each stratum in seeded random order and accepts candidates until the stratum's
quota (its share of the source, with an optional floor) is filled. A candidate is dropped if it
repeats, exactly or nearly (MinHash over character 5-grams, so it works across scripts), an item
already accepted, an item of any earlier version of the suite (a retired item never comes back), or
an item of a public reference set the suite lists. Every drop is counted by reason.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter, defaultdict

import numpy as np

from .. import nearcopy
from ..textnorm import normalize
from .source import Candidate

# Jaccard of character 5-grams; reworded copies measured 0.71-1.0, near misses <= 0.45
NEAR_DUP_THRESHOLD = 0.6
PERMUTATIONS = 128


HASHER = nearcopy.Hasher(PERMUTATIONS)
# LSH proposes pairs from about here (a pair at 0.71 nearly always); each is verified
CANDIDATE_THRESHOLD = 0.5
BANDING = nearcopy.banding(CANDIDATE_THRESHOLD, PERMUTATIONS)


class Fingerprint:
    """A text's exact key, MinHash signature and band keys, each computed once however many dedupers
    look."""

    def __init__(self, text: str):
        self.norm = normalize(text)
        self.exact = hashlib.sha256(self.norm.encode()).digest()
        self._sig: np.ndarray | None = None
        self._keys: list[int] | None = None

    @property
    def sig(self) -> np.ndarray:
        if self._sig is None:
            norm = self.norm
            self._sig = HASHER.signature(
                {norm[i : i + 5].encode() for i in range(max(1, len(norm) - 4))}
            )
        return self._sig

    @property
    def keys(self) -> list[int]:
        if self._keys is None:
            self._keys = nearcopy.band_keys(self.sig[None, :], *BANDING)[0].tolist()
        return self._keys


class Deduper:
    """Exact (normalized text) and near duplicate checks against everything added so far. LSH
    banding only proposes candidates (at a lower threshold, so few true matches are missed); each
    candidate is then verified with its estimated Jaccard similarity against NEAR_DUP_THRESHOLD."""

    def __init__(self):
        self.exact: set[bytes] = set()
        self.index = nearcopy.Index(perms=PERMUTATIONS, candidate_threshold=CANDIDATE_THRESHOLD)

    def check(self, fp: Fingerprint) -> str | None:
        """'exact', 'near' or None."""
        if fp.exact in self.exact:
            return "exact"
        if self.index.size and self.index.query(fp.sig, NEAR_DUP_THRESHOLD, fp.keys):
            return "near"
        return None

    def add(self, fp: Fingerprint) -> None:
        self.exact.add(fp.exact)
        self.index.insert(fp.sig, fp.keys)

    def add_text(self, text: str) -> None:
        fp = Fingerprint(text)
        if self.check(fp) != "exact":
            self.add(fp)


def allocate(counts: dict, size: int, floor: int = 0, *, seed: int = 0) -> dict:
    """Quotas over joint strata (keys: tuples of one value per stratify key, or single values)
    summing to `size`, at least `floor` each where available, that keep every key's shares (each
    marginal) as close to the source's as the size allows. One unit at a time goes to the stratum
    whose values are furthest below their targets, summed over the keys, then the one furthest below
    its own share; remaining ties are broken by the seed, never by file order. With one key this is
    the largest-remainder method."""
    strata = list(counts)
    if not strata or size <= 0:
        return {k: 0 for k in strata}
    keyed = [k if isinstance(k, tuple) else (k,) for k in strata]
    capacity = np.array([counts[k] for k in strata], dtype=float)
    total = capacity.sum()
    n_keys = len(keyed[0])
    codes, targets = [], []
    for j in range(n_keys):  # per key: each stratum's value code and each value's target
        values = sorted({k[j] for k in keyed}, key=str)
        index = {v: n for n, v in enumerate(values)}
        code = np.array([index[k[j]] for k in keyed])
        codes.append(code)
        targets.append(np.bincount(code, weights=capacity, minlength=len(values)) * size / total)
    joint_target = capacity * size / total
    jitter = np.random.default_rng(seed).random(len(strata)) * 1e-9
    # whole units of every stratum's own share first (then at most one more unit per stratum is left
    # to place)
    quota = np.minimum(capacity, np.maximum(floor, np.floor(joint_target)))
    got = [np.bincount(code, weights=quota, minlength=len(t)) for code, t in zip(codes, targets)]
    for _ in range(int(min(size, total) - quota.sum())):
        deficit = sum(t[code] - g[code] for code, t, g in zip(codes, targets, got))
        score = np.where(
            quota < capacity, deficit + 1e-3 * (joint_target - quota) + jitter, -np.inf
        )
        best = int(np.argmax(score))
        quota[best] += 1
        for code, g in zip(codes, got):
            g[code[best]] += 1
    while quota.sum() > size:  # floors can overshoot: take back from the largest
        over = quota - np.minimum(capacity, floor)
        best = int(
            np.argmax(np.where(quota > 0, over * (len(strata) + 1) + quota + jitter, -np.inf))
        )
        quota[best] -= 1
    return {k: int(q) for k, q in zip(strata, quota)}


def marginal_distances(source: dict, pool: dict, stratify: list[str]) -> dict[str, float]:
    """Per stratify key: the total variation distance between its shares in the source and in the
    pool."""
    out = {}
    n_source, n_pool = sum(source.values()), sum(pool.values())
    for j, key in enumerate(stratify):
        a, b = Counter(), Counter()
        for k, c in source.items():
            a[k[j]] += c
        for k, c in pool.items():
            b[k[j]] += c
        out[key] = 0.5 * sum(
            abs(a[v] / n_source - (b[v] / n_pool if n_pool else 0.0)) for v in a.keys() | b.keys()
        )
    return out


def group_id(suite: str, group: str) -> str:
    """A source group as stored in a pool item: opaque (a public question id cannot be looked up
    from it)."""
    return "g" + hashlib.sha256(f"{suite}|group|{group}".encode()).hexdigest()[:15]


def draw(  # noqa: C901 (one pass: filter, dedupe, stratify, check)
    candidates: list[Candidate],
    size: int,
    stratify: list[str],
    *,
    seed: int,
    floor: int,
    earlier_texts: list[str],
    reference_texts: list[str],
    suite: str,
    earlier_groups: set[str] = frozenset(),
) -> tuple[list[dict], dict]:
    """The new pool's items (JSON-ready, text included: encrypt them) and a report of ids and
    numbers only. Candidates with a group (translations of one prompt) count as one: at most one
    member per pool, and none whose group an earlier version had (`earlier_groups`, as stored)."""
    seen_before, reference = Deduper(), Deduper()
    for t in earlier_texts:
        seen_before.add_text(t)
    for t in reference_texts:
        reference.add_text(t)
    strata = defaultdict(list)
    for c in candidates:
        strata[tuple(c.metadata.get(s, "") for s in stratify)].append(c)
    counts = {k: len(v) for k, v in strata.items()}
    quota = allocate(counts, min(size, len(candidates)), floor, seed=seed)
    rng = random.Random(seed)
    accepted, dropped = Deduper(), Counter()
    groups_taken: set[str] = set()
    items = []

    def next_item(c: Candidate) -> dict | None:
        """The pool item for `c`, or None (and the reason counted) if it repeats something."""
        group = group_id(suite, c.group) if c.group is not None else None
        if group is not None and group in earlier_groups:
            dropped["group_in_an_earlier_version"] += 1
            return None
        if group is not None and group in groups_taken:
            dropped["same_group_in_draw"] += 1
            return None
        fp = Fingerprint(c.text)
        if seen_before.check(fp):
            dropped["in_an_earlier_version"] += 1
            return None
        if reference.check(fp):
            dropped["in_a_reference_set"] += 1
            return None
        reason = accepted.check(fp)
        if reason:
            dropped[f"{reason}_duplicate_in_draw"] += 1
            return None
        accepted.add(fp)
        item = {
            "id": "h" + hashlib.sha256(f"{suite}|{c.source_id}".encode()).hexdigest()[:15],
            "prompt": c.text,
            "metadata": c.metadata,
        }
        if group is not None:
            item["group"] = group
            groups_taken.add(group)
        return item

    queues = {}
    for key in sorted(strata):
        queue = strata[key][:]
        rng.shuffle(queue)
        queues[key] = iter(queue)
    taken = Counter()
    active = [key for key in sorted(strata) if quota[key] > 0]
    # round robin over the strata: when candidates run short (groups, repeats), all share it
    while active:
        for key in list(active):
            item = next((it for c in queues[key] if (it := next_item(c)) is not None), None)
            if item is None:
                active.remove(key)
                continue
            items.append(item)
            taken[key] += 1
            if taken[key] >= quota[key]:
                active.remove(key)
    n = len(items)
    pool_counts = Counter(tuple(it["metadata"].get(s, "") for s in stratify) for it in items)
    total = sum(counts.values())
    table = [
        {
            "stratum": "/".join(k) or "(all)",
            "values": list(k),
            "source": counts[k],
            "source_share": counts[k] / total,
            "pool": pool_counts.get(k, 0),
            "pool_share": pool_counts.get(k, 0) / n if n else 0.0,
            "short": quota[k] - pool_counts.get(k, 0),
        }
        for k in sorted(counts)
    ]
    tv = 0.5 * sum(abs(r["source_share"] - r["pool_share"]) for r in table)
    report = {
        "size": n,
        "requested": size,
        "source_rows": total,
        "stratify": stratify,
        "seed": seed,
        "floor": floor,
        "strata": table,
        "total_variation": tv,
        "dropped": dict(dropped),
        "marginals": marginal_distances(counts, dict(pool_counts), stratify),
        "groups": sum(c.group is not None for c in candidates) > 0,
    }
    return items, report


def groups_of_jsonl(data: bytes) -> set[str]:
    return {
        g for line in data.splitlines() if line.strip() and (g := json.loads(line).get("group"))
    }


def texts_of_jsonl(data: bytes) -> list[str]:
    out = []
    for line in data.splitlines():
        if line.strip():
            obj = json.loads(line)
            out.append(
                obj.get("prompt") or "\n".join(m["content"] for m in obj.get("messages", []))
            )
    return out
