"""Statistics in one place: scores come with uncertainty, agreement is measured.

- `bootstrap_mean`: mean with a percentile bootstrap CI; `clusters` resamples whole items when an
  item has several epochs, so repeated samples of one item do not pass for independent evidence.
- `resampled_means`: the same item resamples for several models at once (rank probabilities).
- `win_rate`: mean of per-item preferences in [0, 1] (ties 0.5) with its standard error and CI.
- `bradley_terry`: strengths by maximum likelihood (logistic regression on battles, optionally with
  style covariates: style control), on the Elo scale, with bootstrap CIs.
- length control is its own module (`lengthcontrol`).
- `cohen_kappa`, `krippendorff_alpha`: agreement between raters (judges, people).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Hashable, Sequence

import numpy as np

Z95 = 1.959963984540054
BOOTSTRAP_CELLS = 2_000_000  # resample indices held at once (16 MB)


@dataclass
class Clustered:
    """A sample reduced to what a cluster bootstrap resamples: each cluster's sum and count, in the
    order the clusters first appear."""

    sums: np.ndarray
    counts: np.ndarray
    mean: float
    values: int


def clustered(values: Sequence[float], clusters: Sequence[Hashable] | None = None) -> Clustered:
    """`values` grouped by `clusters` (None: each value its own cluster)."""
    x = np.asarray(values, dtype=float)
    if clusters is None or x.size == 0:
        return Clustered(x, np.ones(x.size), float(x.mean()) if x.size else math.nan, x.size)
    index: dict = {}
    group = np.fromiter((index.setdefault(c, len(index)) for c in clusters), np.int64, x.size)
    return Clustered(
        np.bincount(group, x, len(index)),
        np.bincount(group, minlength=len(index)).astype(float),
        float(x.mean()),
        x.size,
    )


def bootstrap_mean(
    values: Sequence[float],
    clusters: Sequence[Hashable] | None = None,
    n_boot: int = 1000,
    *,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """{'mean', 'ci_low', 'ci_high', 'n'}; resampling clusters (items) when given. Reproducible for
    a seed."""
    return bootstrap_means([clustered(values, clusters)], n_boot, seed=seed, level=level)[0]


def bootstrap_means(
    samples: Sequence[Clustered], n_boot: int = 1000, *, seed: int = 0, level: float = 0.95
) -> list[dict]:
    """`bootstrap_mean` of several samples (one per model) at once. Each sample's resamples are the
    draws a generator seeded with `seed` makes for its number of clusters, so a sample gets the
    same interval alone or with others; samples with as many clusters (models on the same items)
    share one set of draws instead of making it again."""
    out: list[dict | None] = [None] * len(samples)
    by_size = defaultdict(list)
    for k, sample in enumerate(samples):
        if sample.values == 0:
            out[k] = {"mean": None, "ci_low": None, "ci_high": None, "n": 0}
        else:
            by_size[len(sample.sums)].append(k)
    alpha = (1 - level) / 2
    for n, members in by_size.items():
        rng = np.random.default_rng(seed)
        sums = np.stack([samples[k].sums for k in members])
        counts = np.stack([samples[k].counts for k in members])
        even = bool((counts == counts[:, :1]).all())  # one value per item: the denominator is fixed
        boots = np.empty((len(members), n_boot))
        # resamples in chunks of rows: the same draws from the same generator as one (n_boot x n)
        # matrix, in memory that does not grow with n_boot (a 1M-item run would need 16 GB). Each
        # resample becomes how often it drew each cluster, so every sample's resampled totals are
        # one matrix-vector product (4x faster than gathering each sample's values by the indices)
        step = max(1, BOOTSTRAP_CELLS // n)
        for start in range(0, n_boot, step):
            idx = rng.integers(0, n, size=(min(step, n_boot - start), n))
            drawn = np.empty(idx.shape)
            for row, resample in enumerate(idx):
                drawn[row] = np.bincount(resample, minlength=n)
            for row in range(len(members)):  # one product per sample: the same sums alone
                total = drawn @ sums[row]
                boots[row, start : start + len(idx)] = total / (
                    counts[row, 0] * n if even else drawn @ counts[row]
                )
        for row, k in enumerate(members):
            out[k] = {
                "mean": samples[k].mean,
                "ci_low": float(np.quantile(boots[row], alpha)),
                "ci_high": float(np.quantile(boots[row], 1 - alpha)),
                "n": n,
            }
    return out


def resampled_means(scores: np.ndarray, n_boot: int = 1000, *, seed: int = 0) -> np.ndarray:
    """Bootstrap means of several models scored on the same items (`scores`: items x models),
    resampling items: (n_boot x models), every model's mean from the same resample, so the order
    of two models in one resample is a paired comparison."""
    n = len(scores)
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, scores.shape[1]))
    step = max(1, BOOTSTRAP_CELLS // max(n, 1))
    for start in range(0, n_boot, step):
        idx = rng.integers(0, n, size=(min(step, n_boot - start), n))
        drawn = np.stack([np.bincount(resample, minlength=n) for resample in idx])
        out[start : start + len(idx)] = drawn @ scores / n
    return out


def apart(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two 95% CIs do not overlap (the pair is told apart)."""
    return a[1] < b[0] or b[1] < a[0]


def separability(intervals: dict[str, tuple[float, float]]) -> dict:
    """Arena-Hard's separability with confidence: the share of model pairs whose 95% CIs do not
    overlap. How well a pool (with its judge) tells these models apart; 0 with fewer than 2."""
    bounds = [b for b in intervals.values() if None not in b]
    pairs = len(bounds) * (len(bounds) - 1) // 2
    apart_pairs = sum(1 for i, a in enumerate(bounds) for b in bounds[i + 1 :] if apart(a, b))
    return {
        "pairs": pairs,
        "separated": apart_pairs,
        "share": apart_pairs / pairs if pairs else 0.0,
    }


def win_rate(preferences: Sequence[float]) -> dict:
    """Mean preference (1 win, 0.5 tie, 0 loss, or a probability) with standard error (ddof=1) and
    normal 95% CI."""
    x = np.asarray(preferences, dtype=float)
    if x.size == 0:
        return {"win_rate": None, "se": None, "ci_low": None, "ci_high": None, "n": 0}
    mean = float(x.mean())
    se = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else 0.0
    return {
        "win_rate": mean,
        "se": se,
        "ci_low": max(0.0, mean - Z95 * se),
        "ci_high": min(1.0, mean + Z95 * se),
        "n": int(x.size),
    }


def _logistic_fit(
    X: np.ndarray,
    y: np.ndarray,
    w: np.ndarray | None = None,
    *,
    l2: float = 1e-6,
    iters: int = 100,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """Maximum likelihood logistic regression (Newton-Raphson); y may be fractional (ties = 0.5),
    rows weighted by `w`; `start`: where Newton begins (a bootstrap, at the point estimate)."""
    w = np.ones(len(y)) if w is None else w
    beta = np.zeros(X.shape[1]) if start is None else np.array(start, dtype=float)
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(X @ beta, -30, 30)))
        grad = X.T @ (w * (y - p)) - l2 * beta
        hess = (X * (w * p * (1 - p))[:, None]).T @ X + l2 * np.eye(X.shape[1])
        step = np.linalg.solve(hess, grad)
        beta += step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta


def _bt_design(battles, players, covariates):
    index = {p: i for i, p in enumerate(players)}
    k = len(players) - 1  # players[0] is the anchor (strength 0)
    n_cov = 0 if covariates is None else covariates.shape[1]
    X = np.zeros((len(battles), k + n_cov))
    for r, (a, b, _) in enumerate(battles):
        if index[a]:
            X[r, index[a] - 1] += 1
        if index[b]:
            X[r, index[b] - 1] -= 1
    if n_cov:
        X[:, k:] = covariates
    y = np.array([s for _, _, s in battles], dtype=float)
    return X, y, k


def bradley_terry(
    battles: Sequence[tuple[str, str, float]],
    anchor: str | None = None,
    covariates: np.ndarray | None = None,
    *,
    weights: Sequence[float] | None = None,
    n_boot: int = 200,
    seed: int = 0,
    scale: float = 400.0,
    base: float = 1000.0,
) -> dict:
    """Strengths from battles (a, b, score of a in [0,1]) on the Elo scale (anchor = `base`).

    With `covariates` (one row per battle, e.g. differences in length and markdown), the model is
    P(a beats b) = sigmoid(theta_a - theta_b + gamma . covariates): strengths net of style.
    Returns {'ratings': {player: {'rating', 'ci_low', 'ci_high'}}, 'coefficients': [...]}.
    """
    players = sorted({p for a, b, _ in battles for p in (a, b)})
    if anchor is not None:
        players.remove(anchor)
        players.insert(0, anchor)
    X, y, k = _bt_design(battles, players, covariates)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)
    # Battles with the same design row (without covariates: the same pair) enter the likelihood
    # only through their total weight and weighted score, so they are fitted as one row: a fit
    # costs pairs, not battles. A bootstrap resample is a count per battle, summed the same way.
    if covariates is None:
        rows, group = np.unique(X, axis=0, return_inverse=True)
        group = group.reshape(-1)
    else:
        rows, group = X, np.arange(len(y))

    def fit(weight: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
        total = np.bincount(group, weight, len(rows))
        scored = np.bincount(group, weight * y, len(rows))
        mean = np.divide(scored, total, out=np.zeros_like(total), where=total > 0)
        return _logistic_fit(rows, mean, total, start=start)

    factor = scale / math.log(10)
    beta = fit(w)
    point = np.concatenate([[0.0], beta[:k]]) * factor + base
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        counts = np.bincount(rng.integers(0, len(y), len(y)), minlength=len(y))
        b = fit(w * counts, start=beta)
        boots.append(np.concatenate([[0.0], b[:k]]) * factor + base)
    boots = np.array(boots) if boots else np.array([point])
    ratings = {
        p: {
            "rating": float(point[i]),
            "ci_low": float(np.quantile(boots[:, i], 0.025)),
            "ci_high": float(np.quantile(boots[:, i], 0.975)),
        }
        for i, p in enumerate(players)
    }
    return {"ratings": ratings, "coefficients": [float(c) for c in beta[k:]]}


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Agreement of two raters on the same items beyond chance; None where it is undefined (no
    items, or both raters gave every item the same one label)."""
    if len(a) != len(b) or not a:
        return None
    n = len(a)
    labels = set(a) | set(b)
    po = sum(x == y for x, y in zip(a, b)) / n
    pe = sum((list(a).count(k) / n) * (list(b).count(k) / n) for k in labels)
    # one label only: undefined, not perfect agreement
    return None if pe == 1 else (po - pe) / (1 - pe)


ALPHA_LEVELS = ("nominal", "ordinal", "interval", "ratio")


def _alpha_distances(values: np.ndarray, totals: np.ndarray, level: str) -> np.ndarray:
    """Krippendorff's squared metric differences between every pair of values (sorted ascending)."""
    a, b = values[:, None], values[None, :]
    if level == "nominal":
        return (a != b).astype(float)
    if level == "interval":
        return (a - b) ** 2
    if level == "ratio":
        with np.errstate(invalid="ignore", divide="ignore"):
            d = ((a - b) / (a + b)) ** 2
        return np.nan_to_num(d, nan=0.0)  # 0 and 0: no difference
    # ordinal: the number of pairable values from one rank to the other, less half of the two ends
    cum = np.concatenate([[0.0], np.cumsum(totals)])
    i, j = (
        np.minimum.outer(np.arange(len(values)), np.arange(len(values))),
        np.maximum.outer(np.arange(len(values)), np.arange(len(values))),
    )
    return (cum[j + 1] - cum[i] - (totals[i] + totals[j]) / 2) ** 2


def krippendorff_alpha(
    units: dict[Hashable, Sequence[float | None]], level: str = "interval"
) -> float | None:
    """Alpha for any number of raters with missing ratings. `units`: unit -> the ratings it got
    (None = missing). `level`: nominal, ordinal, interval or ratio (Krippendorff's metric
    differences). Computed from the coincidence matrix, so its cost is linear in the ratings. None
    where alpha is undefined: fewer than two pairable ratings, or no variation at all (every rating
    the same value)."""
    if level not in ALPHA_LEVELS:
        raise ValueError(f"alpha level must be one of {', '.join(ALPHA_LEVELS)}, not {level!r}")
    rated = [[v for v in vs if v is not None] for vs in units.values()]
    rated = [vs for vs in rated if len(vs) >= 2]
    if not rated:
        return None
    flat = np.array([v for vs in rated for v in vs], dtype=float)
    unit = np.repeat(np.arange(len(rated)), [len(vs) for vs in rated])
    values, codes = np.unique(flat, return_inverse=True)
    counts = np.zeros((len(rated), len(values)))  # unit x value: how many raters gave it
    np.add.at(counts, (unit, codes), 1.0)
    # each pair within a unit counts 1/(m_u - 1)
    weighted = counts / (counts.sum(axis=1, keepdims=True) - 1)
    coincidences = counts.T @ weighted - np.diag(weighted.sum(axis=0))
    totals = coincidences.sum(axis=1)
    n = totals.sum()
    delta = _alpha_distances(values, totals, level)
    expected = (np.outer(totals, totals) * delta).sum() / (n * (n - 1))
    if expected == 0:
        return None
    observed = (coincidences * delta).sum() / n
    return float(1 - observed / expected)
