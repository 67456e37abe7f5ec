"""Statistics against known answers."""

import math

import numpy as np
import pytest

from harness import lengthcontrol, stats


def test_cohen_kappa_textbook():
    # Wikipedia's example: 50 proposals, both yes 20, A yes B no 5, A no B yes 10, both no 15 ->
    # kappa 0.4
    a = ["y"] * 20 + ["y"] * 5 + ["n"] * 10 + ["n"] * 15
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert stats.cohen_kappa(a, b) == pytest.approx(0.4)
    assert stats.cohen_kappa(a, a) == 1.0
    # one label: undefined, not perfect agreement
    assert stats.cohen_kappa(["x"] * 5, ["x"] * 5) is None


def test_krippendorff_alpha_textbook():
    # Krippendorff (2011) "Computing Krippendorff's alpha-reliability", nominal example with missing
    # data: 0.743
    raters = [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    ]
    units = {u: [r[u] for r in raters] for u in range(12)}
    assert stats.krippendorff_alpha(units, "nominal") == pytest.approx(0.743, abs=0.001)
    # interval metric on the same data: 0.849 in the same paper
    assert stats.krippendorff_alpha(units, "interval") == pytest.approx(0.849, abs=0.001)


def test_bradley_terry_recovers_a_hand_built_tournament():
    # true strengths on the logistic scale: A 0, B 1, C 2 -> exact expected outcomes as fractional
    # scores
    true = {"A": 0.0, "B": 1.0, "C": 2.0}
    battles = []
    for a in true:
        for b in true:
            if a != b:
                p = 1 / (1 + math.exp(-(true[a] - true[b])))
                battles += [(a, b, p)] * 50
    out = stats.bradley_terry(battles, anchor="A", n_boot=0, scale=math.log(10), base=0.0)
    for p, s in true.items():
        assert out["ratings"][p]["rating"] == pytest.approx(s, abs=1e-4)


def test_bradley_terry_style_covariate_absorbs_a_length_bias():
    # B only wins because it is longer: with the length covariate its strength falls back to A's
    rng = np.random.default_rng(1)
    battles, cov = [], []
    for _ in range(2000):
        longer = rng.choice([-1.0, 1.0])  # +1: B's answer is longer
        p_b = 1 / (1 + math.exp(-(1.5 * longer)))
        battles.append(("B", "A", float(rng.random() < p_b)))
        cov.append([longer])
    plain = stats.bradley_terry(battles, anchor="A", n_boot=0)
    styled = stats.bradley_terry(battles, anchor="A", covariates=np.array(cov), n_boot=0)
    assert abs(plain["ratings"]["B"]["rating"] - 1000) < 40  # balanced lengths: no net effect
    assert styled["coefficients"][0] == pytest.approx(1.5, abs=0.2)  # the length effect is found


def test_bootstrap_is_reproducible_and_clusters_widen_the_interval():
    values = [1, 0, 1, 1, 0, 1, 0, 1] * 5
    a = stats.bootstrap_mean(values, seed=3)
    assert a == stats.bootstrap_mean(values, seed=3)
    assert a["ci_low"] < a["mean"] < a["ci_high"]
    # the same 8 items repeated 5 epochs: clustering by item gives the honest (wider) interval
    clusters = list(range(8)) * 5
    c = stats.bootstrap_mean(values, clusters=clusters, seed=3)
    assert c["n"] == 8 and (c["ci_high"] - c["ci_low"]) > (a["ci_high"] - a["ci_low"])


def test_win_rate_and_standard_error():
    out = stats.win_rate([1, 0, 0.5, 1])
    assert out["win_rate"] == pytest.approx(0.625)
    assert out["se"] == pytest.approx(np.std([1, 0, 0.5, 1], ddof=1) / 2)


def test_length_controlled_win_rates_remove_a_pure_length_effect():
    """Two models as good as the baseline; one is usually much longer and the judge likes length.
    (Length differences are scaled by each model's own spread, as AlpacaEval does; here every model
    spreads alike.)"""
    rng = np.random.default_rng(0)
    rows = []
    for model, mean_diff in (("verbose", 400), ("plain", 0)):
        for item in range(1500):
            d = rng.normal(mean_diff, 400)
            p = 1 / (1 + math.exp(-1.2 * math.tanh(d / 300)))
            rows.append((model, item, float(rng.random() < p), d))
    # a reference of other models as good as the baseline, with every length difference
    reference = []
    for model in ("r1", "r2", "r3"):
        for item in range(1500):
            d = rng.normal(0, 400)
            reference.append(
                (
                    model,
                    item,
                    float(rng.random() < 1 / (1 + math.exp(-1.2 * math.tanh(d / 300)))),
                    d,
                )
            )
    ref = lengthcontrol.length_reference(reference)
    assert ref.slope > 0.5  # the judge's taste for length, found
    lc = {
        m: lengthcontrol.length_controlled_win_rate(
            [(i, p, d) for mm, i, p, d in rows if mm == m], ref, n_boot=20
        )
        for m in ("verbose", "plain")
    }
    raw_verbose = np.mean([r[2] for r in rows if r[0] == "verbose"])
    assert raw_verbose > 0.65
    assert lc["verbose"]["lc_win_rate"] == pytest.approx(0.5, abs=0.05)
    assert lc["plain"]["lc_win_rate"] == pytest.approx(0.5, abs=0.05)
    assert 0 < lc["verbose"]["se"] < 0.05


def test_a_model_with_one_battle_is_scaled_by_the_references_spread():
    """One battle (or every length difference equal) has no spread of its own: a 10-character
    difference is small beside the reference's, not a full ±1 of length effect."""
    rng = np.random.default_rng(1)
    reference = [
        (m, item, float(rng.random() < 1 / (1 + math.exp(-1.2 * math.tanh(d / 300)))), d)
        for m in ("r1", "r2", "r3")
        for item in range(600)
        for d in [rng.normal(0, 400)]
    ]
    ref = lengthcontrol.length_reference(reference)
    for rows in ([(0, 0.5, 10.0)], [(i, 0.5, 10.0) for i in range(5)]):
        lc = lengthcontrol.length_controlled_win_rate(rows, ref, n_boot=0)["lc_win_rate"]
        assert lc == pytest.approx(0.5, abs=0.03), rows


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_krippendorff_alpha_matches_the_reference_package_at_every_level(level):
    """The `krippendorff` package (an implementation nobody here wrote), on random ratings with
    gaps."""
    krippendorff = pytest.importorskip("krippendorff")
    rng = np.random.default_rng(7)
    for trial in range(20):
        raters, n_units, scale = rng.integers(2, 6), rng.integers(3, 40), rng.integers(2, 7)
        data = rng.integers(1, scale + 1, size=(raters, n_units)).astype(float)
        data[rng.random(data.shape) < 0.25] = np.nan
        units = {u: [None if np.isnan(x) else float(x) for x in data[:, u]] for u in range(n_units)}
        ours = stats.krippendorff_alpha(units, level)
        try:
            theirs = krippendorff.alpha(reliability_data=data, level_of_measurement=level)
        except ValueError:  # the package refuses data with one value only
            theirs = None
        if ours is None or theirs is None or np.isnan(theirs):
            assert ours is None or theirs is None or np.isnan(theirs)
        else:
            assert ours == pytest.approx(theirs, abs=1e-9), (trial, level)


def test_krippendorff_alpha_is_undefined_without_variation_and_refuses_unknown_levels():
    # not "perfect agreement"
    assert stats.krippendorff_alpha({0: [3, 3], 1: [3, 3, 3]}, "interval") is None
    with pytest.raises(ValueError, match="ordinal"):
        stats.krippendorff_alpha({0: [1, 2]}, "ordnial")


def test_krippendorff_alpha_is_linear_in_the_ratings():
    """50,000 units x 3 raters: the coincidence matrix, not every pair of ratings (was
    quadratic)."""
    rng = np.random.default_rng(1)
    units = {u: list(map(float, rng.integers(1, 6, size=3))) for u in range(50_000)}
    alpha = stats.krippendorff_alpha(units, "ordinal")
    # independent random raters agree by chance only
    assert alpha is not None and -0.1 < alpha < 0.1


def _naive_bt(battles, players, *, n_boot, seed, weights=None):
    """Bradley-Terry the plain way: one row per battle, a resample copies its rows (what
    stats.bradley_terry did before it summed battles of one pair into one row)."""
    index = {p: i for i, p in enumerate(players)}
    X = np.zeros((len(battles), len(players) - 1))
    for r, (a, b, _) in enumerate(battles):
        if index[a]:
            X[r, index[a] - 1] += 1
        if index[b]:
            X[r, index[b] - 1] -= 1
    y = np.array([s for *_, s in battles], dtype=float)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=float)

    def fit(X, y, w):
        beta = np.zeros(X.shape[1])
        for _ in range(100):
            p = 1 / (1 + np.exp(-np.clip(X @ beta, -30, 30)))
            hess = (X * (w * p * (1 - p))[:, None]).T @ X + 1e-6 * np.eye(X.shape[1])
            step = np.linalg.solve(hess, X.T @ (w * (y - p)) - 1e-6 * beta)
            beta += step
            if np.max(np.abs(step)) < 1e-10:
                break
        return np.concatenate([[0.0], beta]) * 400 / np.log(10) + 1000

    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        boots.append(fit(X[idx], y[idx], w[idx]))
    return fit(X, y, w), np.array(boots)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bradley_terry_fits_pairs_as_the_battles_they_sum(seed):
    """Summing a pair's battles into one row (and a resample into counts) is the same likelihood:
    the ratings and their bootstrap intervals match the one-row-per-battle fit."""
    rng = np.random.default_rng(seed)
    players = ["anchor", "b", "c", "d"]
    strength = {"anchor": 0.0, "b": 0.8, "c": -0.5, "d": 0.2}
    battles = []
    for _ in range(300):
        a, b = rng.choice(players, 2, replace=False)
        p = 1 / (1 + np.exp(strength[b] - strength[a]))
        battles.append(
            (str(a), str(b), float(rng.choice([1.0, 0.5, 0.0], p=[p * 0.9, 0.1, 0.9 - p * 0.9])))
        )
    weights = rng.uniform(0.5, 2.0, len(battles))
    got = stats.bradley_terry(battles, anchor="anchor", weights=weights, n_boot=30, seed=seed)
    point, boots = _naive_bt(battles, players, n_boot=30, seed=seed, weights=weights)
    for i, p in enumerate(players):
        assert got["ratings"][p]["rating"] == pytest.approx(point[i], abs=1e-6)
        assert got["ratings"][p]["ci_low"] == pytest.approx(
            np.quantile(boots[:, i], 0.025), abs=1e-6
        )
        assert got["ratings"][p]["ci_high"] == pytest.approx(
            np.quantile(boots[:, i], 0.975), abs=1e-6
        )


def test_a_sample_gets_the_same_interval_alone_or_with_others():
    """Shared draws are exact: each sample keeps the interval it gets alone, whatever else is
    bootstrapped with it (as many items, other counts, several epochs per item, no values)."""
    rng = np.random.default_rng(5)
    ids = [f"題{i}" for i in range(40)]  # item ids in another script; order of first appearance
    one_epoch = ([float(v) for v in rng.random(40)], ids)
    three_epochs = ([float(v) for v in rng.random(120)], [i for i in ids for _ in range(3)])
    uneven = ([1.0, 0.0, 1.0, 1.0, 0.5], [7, 7, ("t", 1), 3, 3])  # any hashable cluster
    other_size = ([float(v) for v in rng.random(40)], ids[:20] * 2)
    samples = [one_epoch, three_epochs, uneven, ([], []), other_size]
    together = stats.bootstrap_means([stats.clustered(v, c) for v, c in samples], seed=3)
    for (values, clusters), got in zip(samples, together):
        assert got == stats.bootstrap_mean(values, clusters=clusters, seed=3)


def test_separability_is_the_share_of_pairs_whose_intervals_do_not_overlap():
    """Arena-Hard's definition on hand-made intervals: a and c are apart, b overlaps both, d
    touches c at one point (that is overlap), a model without an interval is not counted."""
    out = stats.separability(
        {"a": (0.1, 0.3), "b": (0.25, 0.6), "c": (0.5, 0.7), "d": (0.7, 0.9), "e": (None, None)}
    )
    # pairs of a, b, c, d: 6; apart: a-c, a-d, b-d
    assert out == {"pairs": 6, "separated": 3, "share": 0.5}
    assert stats.separability({"a": (0.0, 1.0)}) == {"pairs": 0, "separated": 0, "share": 0.0}
