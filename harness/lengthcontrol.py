"""AlpacaEval's length control, per model, against a fixed reference: a judge that prefers longer
answers cannot make a model that writes more look stronger.

- `length_reference`: from a set of reference models' battles, each item's difficulty and the
  judge's taste for length;
- `length_controlled_win_rate`: one model's win rate at zero length difference, with a bootstrap
  over items of the whole fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Sequence

import numpy as np


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
    beta = np.zeros(X.shape[1]) if start is None else np.array(start, dtype=float)
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
