"""Qualify a pool version before it goes live: from a pilot run of the anchor models on it, does it
still tell them apart, and does it order them as the reference does?

Arena-Hard-Auto's benchmark-quality metrics (Li et al. 2024, section 3), computed from one
bootstrap over the pilot's items (every model's mean from the same resample, so a pair's order in a
resample is a paired comparison):

- separability with confidence: the share of model pairs whose 95% CIs do not overlap;
- agreement with confidence: per pair, +1 if the pilot and the reference both separate it in the
  same order, -1 if both separate it in opposite orders, 0 if either does not; averaged;
- pair-rank Brier score: per pair the reference separates, (1 - p)^2 where p is the share of
  resamples in which the pilot puts the reference's better model above; averaged (0 is perfect,
  0.25 is a coin).

The reference is a run on the previous version (its own bootstrap), or a ranking the suite declares
(`qualify: {reference: [best, ..., worst]}`, every pair separated). The distance to the source is
the draw's total variation per stratify key; judge-human agreement is Krippendorff's alpha between
the judge and reviewers of the pilot's outputs, where people reviewed them. Numbers and model
names only: no item text.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from . import clock, paired, stats
from .errors import HoldoutError
from .store import Store
from .vault.gate import THRESHOLDS, thresholds_digest

N_BOOT = 1000


@dataclass
class Ranking:
    """Models' mean scores on shared items, with resampled means (n_boot x models)."""

    models: list[str]
    means: np.ndarray
    boots: np.ndarray | None  # None: a declared order, certain everywhere
    items: int = 0

    def interval(self, k: int) -> tuple[float, float]:
        return (
            float(np.quantile(self.boots[:, k], 0.025)),
            float(np.quantile(self.boots[:, k], 0.975)),
        )

    def separated(self, i: int, j: int) -> bool:
        if self.boots is None:
            return True
        return stats.apart(self.interval(i), self.interval(j))

    def p_above(self, i: int, j: int) -> float:
        """The share of resamples that put model i above model j (a tie counts half)."""
        if self.boots is None:
            return float(self.means[i] > self.means[j])
        a, b = self.boots[:, i], self.boots[:, j]
        return float(np.mean(a > b) + 0.5 * np.mean(a == b))


def declared_ranking(names: list[str]) -> Ranking:
    """A reference order, best first."""
    return Ranking(list(names), -np.arange(len(names), dtype=float), None)


def run_ranking(store: Store, run_id: str, grader: str, *, seed: int = 0) -> Ranking:
    """Every model graded by `grader` in the run, on the items all of them were scored on."""
    scores = {}
    for model, rows in itertools.groupby(store.iter_grades(run_id, grader), lambda r: r["model"]):
        ids, means = paired.item_scores([r for r in rows if r["status"] == "ok"])
        if len(ids):
            scores[model] = (ids, means)
    if len(scores) < 2:
        raise HoldoutError(
            f"run '{run_id}': '{grader}' scored {len(scores)} model(s); qualifying a pool needs at "
            "least two (the suite's anchor models)"
        )
    common, matrix = paired.on_common_items(scores)
    if not len(common):
        raise HoldoutError(f"run '{run_id}': its models share no item scored by '{grader}'")
    return Ranking(
        list(scores),
        matrix.mean(axis=0),
        stats.resampled_means(matrix, N_BOOT, seed=seed),
        items=len(common),
    )


def separability(r: Ranking) -> dict:
    return stats.separability({m: r.interval(k) for k, m in enumerate(r.models)})


def _shared_pairs(pilot: Ranking, reference: Ranking) -> list[tuple[int, int, int, int]]:
    """(pilot i, pilot j, reference i, reference j) for each pair of models both rank."""
    at = {m: k for k, m in enumerate(reference.models)}
    both = [(k, at[m]) for k, m in enumerate(pilot.models) if m in at]
    return [(pi, pj, ri, rj) for (pi, ri), (pj, rj) in itertools.combinations(both, 2)]


def agreement(pilot: Ranking, reference: Ranking) -> dict:
    """Agreement with confidence; None as the score when the two share fewer than 2 models."""
    votes = []
    for pi, pj, ri, rj in _shared_pairs(pilot, reference):
        if pilot.separated(pi, pj) and reference.separated(ri, rj):
            same = (pilot.means[pi] > pilot.means[pj]) == (
                reference.means[ri] > reference.means[rj]
            )
            votes.append(1 if same else -1)
        else:
            votes.append(0)
    return {
        "pairs": len(votes),
        "agree": votes.count(1),
        "disagree": votes.count(-1),
        "score": float(np.mean(votes)) if votes else None,
    }


def brier(pilot: Ranking, reference: Ranking) -> dict:
    """Pair-rank Brier score over the pairs the reference separates."""
    losses = []
    for pi, pj, ri, rj in _shared_pairs(pilot, reference):
        if reference.separated(ri, rj):
            upper_first = reference.means[ri] > reference.means[rj]
            p = pilot.p_above(pi, pj) if upper_first else pilot.p_above(pj, pi)
            losses.append((1 - p) ** 2)
    return {"pairs": len(losses), "score": float(np.mean(losses)) if losses else None}


def source_distance(manifest: dict) -> dict:
    """The draw's total variation distance to its source, per stratify key (the largest is the
    score); not computed for an imported version (no source to compare with)."""
    marginals = (manifest.get("draw_report") or {}).get("marginals")
    if not marginals:
        return {"score": None, "why": "the version was imported, not drawn from a source"}
    return {"score": max(marginals.values()), "by_key": marginals}


def judge_human(ctx, grader: str) -> dict:
    """Krippendorff's alpha between the judge and people on the pilot's outputs (the lowest over
    criteria), where people reviewed some."""
    from .review import quality, specs

    graders, _ = ctx.graders()
    if not any("human" in g for g in graders):
        return {"score": None, "why": "no `human:` grader: nobody reviews the pilot's outputs"}
    criteria = specs.criteria_for(specs.human_spec(graders), graders)
    st = quality.status(
        ctx.store.db, ctx.run_id, criteria, grades=list(ctx.store.iter_grades(ctx.run_id, grader))
    )
    alphas = {c: a["krippendorff_alpha"] for c, a in st["judge_human"].items()}
    known = [a for a in alphas.values() if a is not None]
    if not known:
        return {"score": None, "why": "nobody reviewed the pilot's outputs (`holdout review`)"}
    return {"score": min(known), "by_criterion": alphas}


def measure(ctx, *, manifest: dict, grader: str, reference, reference_name, seed: int) -> dict:
    """Every metric for the pilot run in `ctx` (a RunContext) against `reference` (a Ranking or
    None)."""
    pilot = run_ranking(ctx.store, ctx.run_id, grader, seed=seed)
    missing = [a for a in ctx.suite.anchors if a not in pilot.models]
    if missing:
        raise HoldoutError(
            f"--pilot: run '{ctx.run_id}' has no '{grader}' scores for the anchors "
            f"{', '.join(missing)} ({ctx.suite.file}: anchors): a pilot runs every anchor"
        )
    apart = separability(pilot)
    none = {"score": None, "why": "no reference: pass --reference RUN or set qualify.reference"}
    metrics = {
        "models": pilot.models,
        "items": pilot.items,
        "intervals": {m: pilot.interval(k) for k, m in enumerate(pilot.models)},
        "separability": {**apart, "score": apart["share"]},
        "reference": reference_name,
        "agreement": agreement(pilot, reference) if reference else none,
        "brier": brier(pilot, reference) if reference else none,
        "source_distance": source_distance(manifest),
        "judge_human": judge_human(ctx, grader),
    }
    for name in ("agreement", "brier"):
        if reference and metrics[name]["score"] is None:
            metrics[name]["why"] = f"the pilot and {reference_name} share no pair of models"
    return metrics


def judged(metrics: dict, thresholds: dict) -> list[dict]:
    """Each threshold the suite sets, with the metric's value and whether it passed; a metric that
    could not be computed fails, saying why."""
    out = []
    for name, bound in sorted(thresholds.items()):
        metric, at_least = THRESHOLDS[name]
        value = metrics[metric]["score"]
        passed = value is not None and (value >= bound if at_least else value <= bound)
        out.append(
            {
                "threshold": name,
                "metric": metric,
                "bound": bound,
                "value": value,
                "passed": passed,
                **({} if value is not None else {"why": metrics[metric]["why"]}),
            }
        )
    return out


def qualification(
    *,
    pool_id: str,
    pilot_run: str,
    grader: str,
    metrics: dict,
    thresholds: dict,
) -> dict:
    """What the vault records for a version: metrics, checks and verdict, and when."""
    checks = judged(metrics, thresholds)
    return {
        "pool": pool_id,
        "pilot_run": pilot_run,
        "grader": grader,
        "at": clock.now(),
        "metrics": metrics,
        "checks": checks,
        "passed": all(c["passed"] for c in checks),
        "thresholds_digest": thresholds_digest(thresholds),
    }
