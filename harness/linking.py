"""Scores linked across pool versions: every model of a suite on one scale, through the anchors.

Each version is graded on its own items, so its scores carry its difficulty: a mean on v3 does not
compare with one on v4. The anchor models (re-run on every version) link them. Each version's mean
scores are fitted as model strength + version offset (least squares over the table of model x
version means: mean equating through the models versions share), with the offset of the scale
version (default: the active one) fixed at 0, so a linked score reads as "its mean score on the
scale version's items". The CIs come from an item bootstrap per version (every model of a version
drawn from the same resample, versions independently), refitted per resample. A version that no
chain of shared models connects to the scale version is not linked: its models are listed apart,
never mixed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import paired, stats
from .errors import HoldoutError
from .poolid import PoolId
from .store import Store

N_BOOT = 1000


@dataclass
class VersionScores:
    """One version's graded models: their scores on the items all of them were scored on."""

    pool: str
    status: str  # draft, active, retired
    models: list[str]
    scores: np.ndarray  # items x models
    runs: dict[str, str] = field(default_factory=dict)  # model -> the run its scores come from

    def means(self) -> np.ndarray:
        return self.scores.mean(axis=0)


@dataclass
class Linked:
    scale: str
    models: dict[str, dict]  # linked score and CI; per version its raw mean, and that mean on the
    # scale (minus the version's offset) with a CI: a trend; whether seen only on retired versions
    versions: dict[str, dict]  # offset and CI, anchors, items, whether linked
    unlinked: dict[str, dict]  # model -> raw mean per version, for versions not linked

    def as_dict(self) -> dict:
        return {
            "scale": self.scale,
            "models": self.models,
            "versions": self.versions,
            "unlinked": self.unlinked,
        }


def _component(versions: list[VersionScores], start: int) -> list[int]:
    """The versions a chain of shared models connects to versions[start]."""
    seen, todo = {start}, [start]
    while todo:
        v = todo.pop()
        for w, other in enumerate(versions):
            if w not in seen and set(versions[v].models) & set(other.models):
                seen.add(w)
                todo.append(w)
    return sorted(seen)


def link(
    versions: list[VersionScores],
    *,
    scale: str,
    anchors: tuple = (),
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> Linked:
    """Every model of the versions linked to `scale` on its scale, with bootstrap CIs; `anchors`:
    the suite's declared anchors, whose absence from a version is reported."""
    at = {v.pool: k for k, v in enumerate(versions)}
    if scale not in at:
        raise HoldoutError(f"no graded run on {scale}, the version to put the scores on")
    linked = [versions[k] for k in _component(versions, at[scale])]
    models = sorted({m for v in linked for m in v.models})
    offsets = [v.pool for v in linked if v.pool != scale]
    cells = [(models.index(m), v, j) for v in linked for j, m in enumerate(v.models)]
    design = np.zeros((len(cells), len(models) + len(offsets)))
    for row, (m, v, _) in enumerate(cells):
        design[row, m] = 1.0
        if v.pool != scale:
            design[row, len(models) + offsets.index(v.pool)] = 1.0
    solve = np.linalg.pinv(design)  # full column rank: every version is connected to the scale
    means = np.array([v.means()[j] for _, v, j in cells])
    boots = {
        v.pool: stats.resampled_means(v.scores, n_boot, seed=seed + at[v.pool]) for v in linked
    }
    resampled = np.stack([boots[v.pool][:, j] for _, v, j in cells])  # cells x n_boot
    point, spread = solve @ means, solve @ resampled

    def estimate(k: int) -> dict:
        lo, hi = np.quantile(spread[k], [0.025, 0.975])
        return {"score": float(point[k]), "ci_low": float(lo), "ci_high": float(hi)}

    def on_scale(row: int, v: VersionScores) -> dict:
        """A model's mean on one version brought onto the scale: minus the version's offset."""
        value, boot = means[row], resampled[row]
        if v.pool != scale:
            k = len(models) + offsets.index(v.pool)
            value, boot = value - point[k], boot - spread[k]
        lo, hi = np.quantile(boot, [0.025, 0.975])
        return {"score": float(value), "ci_low": float(lo), "ci_high": float(hi)}

    out_models = {}
    for k, m in enumerate(models):
        rows = [(row, v) for row, (mi, v, _) in enumerate(cells) if mi == k]
        out_models[m] = {
            **estimate(k),
            "versions": {v.pool: float(means[row]) for row, v in rows},
            "by_version": {v.pool: {"status": v.status, **on_scale(row, v)} for row, v in rows},
            "only_retired": {v.status for _, v in rows} == {"retired"},
        }
    out_versions = {}
    for v in versions:
        on = v in linked
        shared = sorted(m for m in v.models if any(m in w.models for w in linked if w is not v))
        entry = {
            "status": v.status,
            "linked": on,
            "models": len(v.models),
            "anchors": shared if on else [],
            "missing_anchors": [a for a in anchors if a not in v.models],
            "items": int(len(v.scores)),
        }
        if on and v.pool == scale:
            entry.update(offset=0.0, ci_low=0.0, ci_high=0.0)
        elif on:
            e = estimate(len(models) + offsets.index(v.pool))
            entry.update(offset=e["score"], ci_low=e["ci_low"], ci_high=e["ci_high"])
        out_versions[v.pool] = entry
    unlinked = {}
    for v in versions:
        if v not in linked:
            for j, m in enumerate(v.models):
                unlinked.setdefault(m, {})[v.pool] = float(v.means()[j])
    return Linked(scale, out_models, out_versions, unlinked)


def _newest_runs(store: Store, suite: str, grader: str) -> tuple[dict, list[str]]:
    """pool -> model -> its newest run graded by `grader` with the newest run's settings; and
    notes on the runs left out."""
    runs = []
    for r in sorted(store.status(), key=lambda r: r["updated"] or 0):
        try:
            if PoolId.parse(r["pool"] or "").suite != suite:
                continue
        except HoldoutError:
            continue
        digests = store.grader_digests(r["run_id"]).get(grader)
        if digests:
            runs.append((r["run_id"], r["pool"], digests))
    if not runs:
        raise HoldoutError(
            f"no run on a vault version of suite '{suite}' has grades from '{grader}'"
        )
    notes, newest = [], runs[-1][2]
    chosen: dict[str, dict[str, str]] = {}
    for run_id, pool, digests in runs:
        if digests != newest:
            notes.append(f"run {run_id} ({pool}): '{grader}' graded it with other settings")
            continue
        for model in store.models(run_id):
            chosen.setdefault(pool, {})[model] = run_id
    return chosen, notes


def collect(
    store: Store, suite: str, *, grader: str, statuses: dict[str, str]
) -> tuple[list[VersionScores], list[str]]:
    """Each version's scores from the store's runs on the suite's vault versions: per model, its
    newest run on the version with grades from `grader`. Runs whose grader settings differ from
    the newest run's are left out (their scores do not compare); returns (versions, notes)."""
    chosen, notes = _newest_runs(store, suite, grader)
    versions = []
    for pool in sorted(chosen, key=lambda p: PoolId.parse(p).version):
        scored = {}
        for model, run_id in sorted(chosen[pool].items()):
            keys = paired.item_keys(store, run_id)
            ids, means = paired.keyed_scores(store.iter_grades(run_id, grader, model=model), keys)
            if len(ids):
                scored[model] = (ids, means)
        common, matrix = paired.on_common_items(scored) if scored else ([], None)
        if not len(common):
            notes.append(f"{pool}: its models share no graded item")
            continue
        runs = {m: chosen[pool][m] for m in scored}
        versions.append(
            VersionScores(pool, statuses.get(pool, "unknown"), list(scored), matrix, runs)
        )
    if not versions:
        raise HoldoutError(
            f"no version of suite '{suite}' has models scored by '{grader}' on shared items"
            + (f" ({'; '.join(notes)})" if notes else "")
        )
    return versions, notes


def history(
    store: Store, run_id: str, *, grader: str | None, statuses: dict[str, str], seed: int = 0
) -> dict | None:
    """The linked view for a run's scorecard and leaderboard: every version of its suite on the
    run's version's scale. None when the run is not on a vault version, or its grader has no
    scores to link."""
    pool = (store.run_info(run_id) or {}).get("pool") or ""
    try:
        suite = PoolId.parse(pool).suite
    except HoldoutError:
        return None
    others = {r["pool"] for r in store.status() if (r["pool"] or "").startswith(f"{suite}@")}
    if grader is None or others <= {pool}:
        return None  # no other version: nothing to link (and no pass over the grades)
    try:
        versions, notes = collect(store, suite, grader=grader, statuses=statuses)
        out = link(versions, scale=pool, seed=seed).as_dict()
    except HoldoutError:
        return None
    return {**out, "suite": suite, "grader": grader, "notes": notes}


def ranks_over_time(linked: dict) -> dict:
    """Per version, each model's rank by its mean on that version (1 = best; ranks within one
    version compare, as its models answered the same items), and the rank by linked score."""
    by_version: dict[str, dict[str, float]] = {}
    for model, e in linked["models"].items():
        for pool, mean in e["versions"].items():
            by_version.setdefault(pool, {})[model] = mean

    def ranked(scores: dict[str, float]) -> dict[str, int]:
        order = sorted(scores, key=lambda m: -scores[m])
        return {m: 1 + sum(scores[o] > scores[m] for o in order) for m in order}

    return {
        "linked": ranked({m: e["score"] for m, e in linked["models"].items()}),
        "by_version": {p: ranked(s) for p, s in by_version.items()},
    }
