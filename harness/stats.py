"""Statistics in one place: scores come with uncertainty, agreement is measured.

- `bootstrap_mean`: mean with a percentile bootstrap CI; `clusters` resamples whole items when an
  item has several epochs, so repeated samples of one item do not pass for independent evidence.
- `win_rate`: mean of per-item preferences in [0, 1] (ties 0.5) with its standard error and CI.
- `bradley_terry`: strengths by maximum likelihood (logistic regression on battles, optionally with
  style covariates: style control), on the Elo scale, with bootstrap CIs.
- `length_reference`, `length_controlled_win_rate`: AlpacaEval's length control, per model,
  against a fixed reference.
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
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return {"mean": None, "ci_low": None, "ci_high": None, "n": 0}
    rng = np.random.default_rng(seed)
    if clusters is None:
        sums, counts = x, None
    else:
        groups = defaultdict(list)
        for v, c in zip(x, clusters):
            groups[c].append(v)
        sums = np.array([sum(g) for g in groups.values()])
        counts = np.array([len(g) for g in groups.values()])
    n = len(sums)
    # resamples in chunks of rows: the same draws from the same generator as one (n_boot x n)
    # matrix,
    # in memory that does not grow with n_boot (a 1M-item run would otherwise need 16 GB)
    boots = np.empty(n_boot)
    step = max(1, BOOTSTRAP_CELLS // n)
    for start in range(0, n_boot, step):
        idx = rng.integers(0, n, size=(min(step, n_boot - start), n))
        boots[start : start + len(idx)] = (
            sums[idx].mean(axis=1)
            if counts is None
            else sums[idx].sum(axis=1) / counts[idx].sum(axis=1)
        )
    alpha = (1 - level) / 2
    return {
        "mean": float(x.mean()),
        "ci_low": float(np.quantile(boots, alpha)),
        "ci_high": float(np.quantile(boots, 1 - alpha)),
        "n": n,
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
    beta = np.zeros(X.shape[1]) if start is None else start.copy()
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


def _ridge_logistic(
    X: np.ndarray,
    y: np.ndarray,
    penalty: np.ndarray,
    *,
    iters: int = 60,
    offset: np.ndarray | float = 0.0,
    w: np.ndarray | None = None,
    start: np.ndarray | None = None,
) -> np.ndarray:
    w = np.ones(len(y)) if w is None else w
    beta = np.zeros(X.shape[1]) if start is None else start.copy()
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(X @ beta + offset, -30, 30)))
        step = np.linalg.solve(
            (X * (w * p * (1 - p))[:, None]).T @ X + np.diag(penalty),
            X.T @ (w * (y - p)) - penalty * beta,
        )
        beta += step
        if np.max(np.abs(step)) < 1e-9:
            break
    return beta


# ridge on item effects: an item seen by few models is pulled towards average
ITEM_EFFECT_PENALTY = 1.0


def _scaled_tanh(
    diffs: np.ndarray, groups: np.ndarray, n_groups: int, fallback_sd: float
) -> np.ndarray:
    """tanh(length difference / that model's own standard deviation of it), AlpacaEval's scaling. A
    model whose spread is undefined (one battle, or every difference the same) is scaled by
    `fallback_sd`, the reference's: dividing by a spread of zero (or of one character) would turn
    any difference into ±1."""
    counts = np.maximum(np.bincount(groups, minlength=n_groups), 1)
    mean = np.bincount(groups, diffs, n_groups) / counts
    sd = np.sqrt(np.bincount(groups, (diffs - mean[groups]) ** 2, n_groups) / counts)
    return np.tanh(diffs / np.where(sd > 0, sd, fallback_sd)[groups])


def _item_effects_fit(
    model_idx: np.ndarray,
    item_idx: np.ndarray,
    t: np.ndarray,
    *,
    y: np.ndarray,
    n_models: int,
    n_items: int,
    iters: int = 100,
) -> tuple[float, np.ndarray]:
    """P = sigmoid(strength[model] + slope * t + effect[item]), ridge on the item effects; Newton
    steps with the item block (diagonal) eliminated, so the cost is linear in the battles. Returns
    (slope, effects)."""
    a, s, d = np.zeros(n_models), 0.0, np.zeros(n_items)
    k = n_models + 1
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(a[model_idx] + s * t + d[item_idx], -30, 30)))
        w, r = p * (1 - p), y - p
        g1 = np.concatenate([np.bincount(model_idx, r, n_models) - 1e-6 * a, [r @ t - 1e-6 * s]])
        g2 = np.bincount(item_idx, r, n_items) - ITEM_EFFECT_PENALTY * d
        A = np.zeros((k, k))
        A[np.arange(n_models), np.arange(n_models)] = np.bincount(model_idx, w, n_models) + 1e-6
        A[:n_models, -1] = A[-1, :n_models] = np.bincount(model_idx, w * t, n_models)
        A[-1, -1] = w @ (t * t) + 1e-6
        B = np.vstack(
            [
                np.bincount(model_idx * n_items + item_idx, w, n_models * n_items).reshape(
                    n_models, n_items
                ),
                np.bincount(item_idx, w * t, n_items),
            ]
        )
        D = np.bincount(item_idx, w, n_items) + ITEM_EFFECT_PENALTY
        x1 = np.linalg.solve(A - (B / D) @ B.T, g1 - B @ (g2 / D))
        x2 = (g2 - B.T @ x1) / D
        a, s, d = a + x1[:n_models], s + x1[-1], d + x2
        if max(np.abs(x1).max(), np.abs(x2).max()) < 1e-9:
            break
    return float(s), d


@dataclass
class LengthReference:
    """What length control holds fixed, from a reference set of models: each item's difficulty and
    the judge's taste for length (the slope on tanh(length difference / the model's own sd)), and
    the spread of the reference's length differences, for a model whose own spread is undefined."""

    difficulty: dict
    slope: float
    sd: float = 1.0


def length_reference(rows: Sequence[tuple[str, Hashable, float, float]]) -> LengthReference:
    """rows: (model, item, preference in [0, 1], model length - baseline length) of the reference
    models. One logistic fit over all their battles: a strength per model, one length slope (the
    judge's, shared by every model) and an effect per item (ridge), the effects centred into
    difficulties. Fewer than two models: no difficulty and no slope (one model cannot tell an item's
    difficulty from its own taste)."""
    models = sorted({r[0] for r in rows})
    diffs = np.array([r[3] for r in rows], dtype=float)
    sd = float(diffs.std()) if len(diffs) and diffs.std() > 0 else 1.0
    if len(models) < 2:
        return LengthReference({}, 0.0, sd)
    items = sorted({r[1] for r in rows}, key=repr)
    model_at, item_at = {m: k for k, m in enumerate(models)}, {it: k for k, it in enumerate(items)}
    model_idx = np.array([model_at[r[0]] for r in rows])
    item_idx = np.array([item_at[r[1]] for r in rows])
    t = _scaled_tanh(diffs, model_idx, len(models), sd)
    slope, effects = _item_effects_fit(
        model_idx,
        item_idx,
        t,
        y=np.array([r[2] for r in rows], dtype=float),
        n_models=len(models),
        n_items=len(items),
    )
    effects = effects - effects.mean()
    return LengthReference(dict(zip(items, map(float, effects))), slope, sd)


def length_controlled_win_rate(
    rows: Sequence[tuple[Hashable, float, float]],
    ref: LengthReference,
    n_boot: int = 100,
    seed: int = 0,
) -> dict:
    """One model's win rate against the baseline at zero length difference (AlpacaEval's
    length-controlled form), fitted on this model's battles alone against a reference built without
    it: P = sigmoid(strength + slope_ref * tanh(len_diff / sd) + weight * difficulty_item), sd the
    model's own. The slope is the judge's, from the reference, not the model's: a model whose
    answers are all shorter (or longer) cannot pass that off as strength, and its rate depends on
    the model and the pool only. The LC win rate is the mean over its items of the prediction at
    zero length difference; its standard error is a bootstrap over items of that whole fit
    (AlpacaEval reports the raw win rate's standard
    error beside its LC rate; this is the LC rate's own)."""
    if not rows:
        return {"lc_win_rate": None, "se": None, "length_slope": None}
    t = _scaled_tanh(
        np.array([r[2] for r in rows], dtype=float), np.zeros(len(rows), dtype=int), 1, ref.sd
    )
    d = np.array([ref.difficulty.get(r[0], 0.0) for r in rows], dtype=float)
    y = np.array([r[1] for r in rows], dtype=float)
    X = np.column_stack([np.ones(len(rows)), d])
    penalty = np.array([1e-6, 1e-3])

    def fit(weight: np.ndarray, start: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """The LC rate with each row counted `weight` times (a bootstrap's resample of items)."""
        beta = _ridge_logistic(
            X, y, penalty, offset=ref.slope * t, w=weight.astype(float), start=start
        )
        rate = np.average(1 / (1 + np.exp(-(beta[0] + beta[1] * d))), weights=weight)
        return float(rate), beta

    point, beta = fit(np.ones(len(rows)))
    item_at: dict = {}
    item_of_row = np.array([item_at.setdefault(r[0], len(item_at)) for r in rows])
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        drawn = np.bincount(rng.integers(0, len(item_at), len(item_at)), minlength=len(item_at))
        boots.append(fit(drawn[item_of_row], start=beta)[0])
    return {
        "lc_win_rate": point,
        "se": float(np.std(boots, ddof=1)) if n_boot > 1 else None,
        "length_slope": ref.slope,
    }


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
