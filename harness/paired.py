"""Paired comparisons: two sets of scores on the same items, and their difference with a bootstrap
CI over items.

On the same items, item difficulty cancels out of a difference, so its interval is far narrower
than two separate CIs suggest (two overlapping CIs do not show that there is no difference). The
pairing is strict: across runs an item is paired by its id *and* the digest of its content, so an
item edited between two runs is counted and left out, never compared with its old self. Epochs of
one item are averaged first: the item is the unit that is resampled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import stats
from .errors import HoldoutError
from .store import Store

CHANGED_SHOWN = 20  # item ids listed per model among those whose score changed the most


@dataclass
class Paired:
    """Two sides' mean scores on the items both scored (in the same order)."""

    keys: list | np.ndarray
    a: np.ndarray
    b: np.ndarray
    only_a: int = 0  # items only one side scored
    only_b: int = 0


@dataclass
class Difference:
    n: int
    mean_a: float | None
    mean_b: float | None
    difference: float | None  # b - a
    ci_low: float | None
    ci_high: float | None
    better: int  # items b scored higher than a
    worse: int
    same: int
    only_a: int
    only_b: int
    changed: list = field(default_factory=list)  # (key, a, b), the largest changes first

    @property
    def separated(self) -> bool:
        """Whether the CI of the difference leaves out 0."""
        return self.ci_low is not None and (self.ci_low > 0 or self.ci_high < 0)

    def summary(self) -> dict:
        """The figures a report or card shows for a pairing: size, difference, CI, certainty."""
        return {
            "n": self.n,
            "difference": self.difference,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "separated": self.separated,
        }


def item_scores(ok: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """One model's mean score per item (over epochs) from its successful grades, as (sorted item
    ids, scores) in NumPy arrays: a few MB at 100k items, where Python strings and floats in a
    dict would take tens."""
    scored = [r for r in ok if r["score"] is not None]
    ids = np.array([r["item_id"] for r in scored], dtype=str)
    scores = np.fromiter((r["score"] for r in scored), float, len(scored))
    items, at = np.unique(ids, return_inverse=True)
    return items, np.bincount(at, scores, len(items)) / np.bincount(at, minlength=len(items))


def aligned(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> Paired:
    """Two `item_scores` on the items both have (keyed by id within a run, by id and content
    across runs), in the order of their keys."""
    common, ia, ib = np.intersect1d(a[0], b[0], assume_unique=True, return_indices=True)
    return Paired(
        common, a[1][ia], b[1][ib], only_a=len(a[0]) - len(common), only_b=len(b[0]) - len(common)
    )


def on_common_items(scored: dict) -> tuple[np.ndarray, np.ndarray]:
    """Several models' `item_scores` on the items all of them have: (item keys, items x models in
    the dict's order)."""
    common = next(iter(scored.values()))[0]
    for ids, _ in scored.values():
        common = np.intersect1d(common, ids, assume_unique=True)
    return common, np.column_stack(
        [means[np.searchsorted(ids, common)] for ids, means in scored.values()]
    )


def differences(pairs: list[Paired], *, seed: int = 0, n_boot: int = 1000) -> list[Difference]:
    """The mean of b - a per pairing, with a percentile bootstrap CI over items. Pairings on as
    many items share draws (`stats.bootstrap_means`): each gets the interval it would get alone."""
    deltas = [p.b - p.a for p in pairs]
    boots = stats.bootstrap_means([stats.clustered(d) for d in deltas], n_boot, seed=seed)
    out = []
    for p, delta, boot in zip(pairs, deltas, boots):
        order = np.argsort(-np.abs(delta), kind="stable")[:CHANGED_SHOWN]
        out.append(
            Difference(
                n=len(p.keys),
                mean_a=float(p.a.mean()) if len(p.keys) else None,
                mean_b=float(p.b.mean()) if len(p.keys) else None,
                difference=boot["mean"],
                ci_low=boot["ci_low"],
                ci_high=boot["ci_high"],
                better=int((delta > 0).sum()),
                worse=int((delta < 0).sum()),
                same=int((delta == 0).sum()),
                only_a=p.only_a,
                only_b=p.only_b,
                changed=[(p.keys[i], float(p.a[i]), float(p.b[i])) for i in order if delta[i] != 0],
            )
        )
    return out


def item_keys(store: Store, run_id: str) -> dict[str, str | None]:
    """item_id -> "item_id content-digest" (ids hold no spaces); None for an item called with two
    contents."""
    return {
        item: f"{item} {next(iter(shas))}" if len(shas) == 1 else None
        for item, shas in store.item_digests(run_id).items()
    }


def keyed_scores(grades, keys: dict) -> tuple[np.ndarray, np.ndarray]:
    """`item_scores` of one model's grades in one run, by item id *and* content."""
    return item_scores(
        [
            {"item_id": keys[g["item_id"]], "score": g["score"]}
            for g in grades
            if g["status"] == "ok" and keys.get(g["item_id"]) is not None
        ]
    )


def diff_runs(store: Store, run_a: str, run_b: str, *, grader: str | None, seed: int = 0) -> dict:
    """Per model graded in both runs by `grader` (None: the one grader both have): its scores in b
    minus a, on the items both runs called with the same content, and what could not be
    compared."""
    for run in (run_a, run_b):
        if store.run_info(run) is None or "/grade/" in run:
            known = ", ".join(r["run_id"] for r in store.status()) or "none"
            raise HoldoutError(f"no run '{run}' in {store.path} (runs: {known})")
    if grader is None:
        shared = sorted(set(store.grader_names(run_a)) & set(store.grader_names(run_b)))
        if len(shared) != 1:
            raise HoldoutError(
                f"pass --grader: '{run_a}' and '{run_b}' share "
                + (f"the graders {', '.join(shared)}" if shared else "no grader")
            )
        grader = shared[0]
    digests = {run: store.grader_digests(run).get(grader) for run in (run_a, run_b)}
    for run, d in digests.items():
        if d is None:
            names = ", ".join(store.grader_names(run)) or "none: run `holdout grade` first"
            raise HoldoutError(f"run '{run}' has no grades from '{grader}' (graders: {names})")
    if digests[run_a] != digests[run_b]:
        raise HoldoutError(
            f"grader '{grader}' graded '{run_a}' and '{run_b}' with different settings (digests "
            f"{', '.join(sorted(digests[run_a]))} and {', '.join(sorted(digests[run_b]))}): its "
            "scores do not compare. Regrade one run with the other's settings "
            "(`holdout grade RUN --regrade GRADER`)"
        )
    keys = {run: item_keys(store, run) for run in (run_a, run_b)}
    by_id_a, by_id_b = keys[run_a], keys[run_b]
    common_ids = by_id_a.keys() & by_id_b.keys()
    edited = sorted(i for i in common_ids if by_id_a[i] != by_id_b[i])
    models, pairs, ungraded = [], [], []
    for model in sorted(set(store.models(run_a)) | set(store.models(run_b))):
        a, b = (
            keyed_scores(store.iter_grades(run, grader, model=model), keys[run])
            for run in (run_a, run_b)
        )
        if len(a[0]) and len(b[0]):
            models.append(model)
            pairs.append(aligned(a, b))
        else:
            ungraded.append(model)
    if not models:
        raise HoldoutError(
            f"no model has grades from '{grader}' in both '{run_a}' and '{run_b}': nothing to "
            "compare"
        )
    if not any(len(p.keys) for p in pairs):
        pools = {store.run_info(run)["pool"] for run in (run_a, run_b)}
        raise HoldoutError(
            f"'{run_a}' and '{run_b}' have no item in common with the same content (pools: "
            f"{', '.join(sorted(pools))}; {len(edited)} item(s) edited between them): an item "
            "comparison needs the same items"
        )
    diffs = differences(pairs, seed=seed)
    return {
        "run_a": run_a,
        "run_b": run_b,
        "pool_a": store.run_info(run_a)["pool"],
        "pool_b": store.run_info(run_b)["pool"],
        "grader": grader,
        "seed": seed,
        "edited_between_runs": len(edited),
        "edited_item_ids": edited[:CHANGED_SHOWN],
        "not_in_both": ungraded,  # models without grades from `grader` in one of the runs
        "models": {
            model: {
                **{k: v for k, v in vars(d).items() if k != "changed"},
                "separated": d.separated,
                "changed": [
                    {"item_id": str(key).split(" ")[0], "a": a, "b": b} for key, a, b in d.changed
                ],
            }
            for model, d in zip(models, diffs)
        },
    }
