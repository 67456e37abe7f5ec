"""Paired comparisons (harness/paired.py, `holdout runs diff`): the difference of two sets of scores
on the same items, with a bootstrap CI over items; items paired by id and content, never an edited
item with its old self."""

import json

import numpy as np
import pytest
from conftest import QUESTIONS

from harness import paired, stats

IDS = [f"q{k}" for k in range(12)]
# prompts in other scripts, multi-line: what the runs are made from (item ids are ASCII by rule)
ASKED = ["题{k}", "東京{k}", "مدينة{k}", "עיר{k}", "नदी{k}", "จังหวัด{k}", "q{k}", "Line\n{k}"]


def test_the_paired_interval_covers_the_true_difference_at_its_nominal_rate():
    """300 simulated comparisons of two models on 200 items of widely varying difficulty, where an
    item hard for one model is mostly hard for the other (as it is for real models): the paired
    95% CI holds the true mean difference 92-98% of the time, and is narrower than the interval
    two separate CIs imply (their half-widths combined), which misses differences it calls
    uncertain."""
    rng = np.random.default_rng(11)
    covered, narrower = 0, 0
    for sim in range(300):
        difficulty = rng.normal(0, 1.5, 200)
        a = 1 / (1 + np.exp(-difficulty))
        b = 1 / (1 + np.exp(-(difficulty + 0.3)))
        truth = float((b - a).mean())
        shared = rng.random(200)  # the item's own luck, mostly common to both models
        own = np.where(rng.random(200) < 0.8, shared, rng.random(200))
        sa, sb = (shared < a).astype(float), (own < b).astype(float)
        (d,) = paired.differences([paired.Paired(list(range(200)), sa, sb)], seed=sim, n_boot=500)
        covered += d.ci_low <= truth <= d.ci_high
        ca, cb = stats.bootstrap_means([stats.clustered(sa), stats.clustered(sb)], 500, seed=sim)
        separate = np.hypot(ca["ci_high"] - ca["ci_low"], cb["ci_high"] - cb["ci_low"])
        narrower += (d.ci_high - d.ci_low) < separate
    assert 0.92 <= covered / 300 <= 0.98, covered
    assert narrower >= 0.95 * 300, narrower


def _scores(means: dict) -> tuple:
    return paired.item_scores([{"item_id": i, "score": s} for i, s in means.items()])


def test_pairing_keeps_only_shared_keys_in_one_order():
    p = paired.aligned(
        _scores({"b": 1.0, "a": 0.0, "x": 1.0}), _scores({"a": 1.0, "b": 1.0, "y": 0.0})
    )
    assert (
        p.keys.tolist() == ["a", "b"] and p.a.tolist() == [0.0, 1.0] and p.b.tolist() == [1.0, 1.0]
    )
    assert (p.only_a, p.only_b) == (1, 1)
    (d,) = paired.differences([p])
    assert (d.better, d.worse, d.same, d.difference) == (1, 0, 1, 0.5)


def test_epochs_are_averaged_per_item_before_pairing():
    grades = [
        {"item_id": "i", "status": "ok", "score": 1.0},
        {"item_id": "i", "status": "ok", "score": 0.0},
        {"item_id": "j", "status": "error", "score": None},
        {"item_id": "k", "status": "ok", "score": 1.0},
    ]
    ids, means = paired.item_scores([g for g in grades if g["status"] == "ok"])
    assert dict(zip(ids.tolist(), means.tolist())) == {"i": 0.5, "k": 1.0}


def _runs(project, cli, *, edit=None, graders_b=None, labs=""):
    """Run a (m1 right on items 0-3) and b (m1 right on all), each graded by `contains`; m2 is
    right on all in both. `edit`: an item whose prompt changes between the runs."""
    items = [
        {
            "id": i,
            "prompt": ASKED[k % len(ASKED)].format(k=k) + f": {k} + {k}?\nAnswer briefly.",
            "reference": str(2 * k),
        }
        for k, i in enumerate(IDS)
    ]
    project.suite("s", items=items, graders=[{"rules": {"type": "contains"}}])
    for run, right in (("a", 4), ("b", 12)):
        d = project.root / f"replay-{run}"
        d.mkdir()
        for model in ("m1", "m2"):
            lines = [
                {"id": i, "output": f"It is {2 * k}." if k < right or model == "m2" else "Unsure."}
                for k, i in enumerate(IDS)
            ]
            (d / f"{model}.jsonl").write_text(
                "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines)
            )
    for run in ("a", "b"):
        if run == "b" and edit is not None:
            items[edit]["prompt"] += " (edited)"
            project.suite("s", items=items, graders=[{"rules": {"type": "contains"}}])
        extra = f"graders: {json.dumps(graders_b)}\n" if run == "b" and graders_b else labs
        config = project.config(
            f"run_id: {run}\nsuite: s\n{extra}providers:\n"
            f"  r: {{type: replay, path: ../replay-{run}}}\nmodels:\n"
            "  - {provider: r, model: m1}\n  - {provider: r, model: m2}\n",
            name=f"{run}.yaml",
        )
        code, _, err = cli("run", config, "-q")
        assert code == 0, err
        code, _, err = cli("grade", run, "-q")
        assert code == 0, err


def test_runs_diff_pairs_items_across_runs_and_leaves_out_an_edited_one(project, cli):
    _runs(project, cli, edit=7)
    code, out, err = cli("runs", "diff", "a", "b", "--json")
    assert code == 0, err
    diff = json.loads(out)
    m1, m2 = diff["models"]["m1"], diff["models"]["m2"]
    # m1 got items 4-11 right in b (7 is edited, so not compared); m2 was right everywhere
    assert (m1["n"], m1["better"], m1["worse"], m1["same"]) == (11, 7, 0, 4)
    assert m1["difference"] == pytest.approx(7 / 11) and m1["ci_low"] > 0 and m1["separated"]
    assert sorted(c["item_id"] for c in m1["changed"]) == sorted(IDS[4:7] + IDS[8:])
    assert (m2["difference"], m2["ci_low"], m2["ci_high"], m2["separated"]) == (0, 0, 0, False)
    assert diff["edited_between_runs"] == 1 and diff["edited_item_ids"] == [IDS[7]]
    code, out, _ = cli("runs", "diff", "a", "b")
    assert code == 0 and "+0.636 *" in out and "edited between the runs" in out and IDS[7] in out


def test_runs_diff_refuses_scores_made_with_other_grader_settings(project, cli):
    _runs(project, cli, graders_b=[{"rules": {"type": "regex", "pattern": "[0-9]"}}])
    code, _, err = cli("runs", "diff", "a", "b", "--grader", "rules")
    assert code == 2 and "different settings" in err and "--regrade" in err


def test_runs_diff_names_what_is_missing(project, cli):
    _runs(project, cli)
    code, _, err = cli("runs", "diff", "a", "nope")
    assert code == 2 and "no run 'nope'" in err
    code, _, err = cli("runs", "diff", "a", "b", "--grader", "judge")
    assert code == 2 and "no grades from 'judge'" in err and "rules" in err


def test_the_report_says_whether_each_model_is_certainly_above_the_next(project, cli):
    """Run a: m2 right on all 12 items, m1 on 4. The report's neighbours: m2 above m1 by 8/12 on
    the same 12 items, certain (the paired CI leaves out 0), in report.json and on screen."""
    _runs(project, cli)
    code, out, err = cli("report", "a", "--json")
    assert code == 0, err
    (n,) = json.loads(out)["graders"]["rules"]["neighbours"]
    assert (n["higher"], n["lower"], n["n"], n["separated"]) == ("m2", "m1", 12, True)
    assert n["difference"] == pytest.approx(8 / 12) and 0 < n["ci_low"] <= n["ci_high"] <= 1
    assert json.loads(out)["graders"]["rules"]["separability"]["pairs"] == 1
    code, out, _ = cli("report", "a")
    assert code == 0 and "m2 - m1 +0.667" in out and "separability:" in out


def test_neighbours_pair_only_the_items_both_models_scored():
    """Two models on overlapping items (ids in other orders): the difference is over the shared
    items only, and equals the one `paired.differences` gives on those items."""
    from harness.report import _neighbours

    rows = lambda scores: [  # noqa: E731
        {"item_id": i, "status": "ok", "score": s} for i, s in scores.items()
    ]
    up = paired.item_scores(rows({"x": 1.0, "y": 1.0, "z": 0.0}))
    down = paired.item_scores(rows({"w": 1.0, "z": 0.0, "y": 0.0}))
    models = {"up": {"mean": 0.67}, "down": {"mean": 0.33}}
    (n,) = _neighbours(models, {"up": up, "down": down}, seed=0)
    (d,) = paired.differences(
        [paired.Paired(["y", "z"], np.array([0.0, 0.0]), np.array([1.0, 0.0]))]
    )
    assert (n["n"], n["difference"], n["ci_low"], n["ci_high"]) == (2, 0.5, d.ci_low, d.ci_high)


def test_a_lab_card_compares_the_labs_own_models_on_the_same_items(project, cli):
    """A lab with both models: its card puts m2 against m1 (m2 leads the headline) with a paired
    CI, signed with the rest of the card, and the HTML shows it; a lab with one model has none."""
    _runs(project, cli, labs="labs:\n  acme: [m1, m2]\n  solo: [m1]\n")
    assert cli("vault", "init")[0] == 0
    assert cli("scorecard", "a", "--all")[0] == 0
    card = json.loads((project.root / "results/a/scorecards/acme.json").read_text())
    (p,) = card["own_models_compared"]["rules"]
    assert (p["model"], p["versus"], p["n"], p["separated"]) == ("m2", "m1", 12, True)
    assert p["difference"] == pytest.approx(8 / 12)
    html = (project.root / "results/a/scorecards/acme.html").read_text()
    assert "Your models compared" in html and "66.7 *" in html
    assert cli("verify", "results/a/scorecards/acme.json")[0] == 0
    solo = json.loads((project.root / "results/a/scorecards/solo.json").read_text())
    assert solo["own_models_compared"] == {}


def test_runs_diff_across_a_rotation_pairs_only_items_carried_over_unchanged(heldout, project, cli):
    """Held-out runs on s@v1 and, after a rotation, on s@v2. v2 carries over h0-h7 unchanged
    (prompts in six scripts, multi-line, short), edits h8 and adds new items: the diff pairs
    exactly h0-h7, names h8 as edited, and says the pools differ. The content digests are keyed
    by the vault, so they compare across versions of one vault."""
    grader = "graders: [{rules: {type: contains}}]\n"
    assert cli("run", heldout(f"run_id: r1\n{grader}", name="r1.yaml"), "-q")[0] == 0
    v2 = [
        {"id": f"h{i}", "prompt": f"{q} ({i})", "reference": f"answer-{i}-of-the-pool"}
        for i, q in enumerate(QUESTIONS)
    ]
    v2.append(
        {
            "id": "h8",
            "prompt": "请用三句话解释光合作用。 (edited)",
            "reference": "answer-8-of-the-pool",
        }
    )
    v2 += [{"id": f"n{i}", "prompt": f"新しい質問 {i}", "reference": "x"} for i in range(4)]
    pool = project.root / "pool2.jsonl"
    pool.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in v2), encoding="utf-8")
    code, _, err = cli("pool", "import", pool, "--suite", "s", "--heldout", "--activate")
    assert code == 0, err
    assert cli("run", heldout(f"run_id: r2\n{grader}", name="r2.yaml"), "-q")[0] == 0
    for run in ("r1", "r2"):
        code, _, err = cli("grade", run, "-q")
        assert code == 0, err
    code, out, err = cli("runs", "diff", "r1", "r2", "--json")
    assert code == 0, err
    diff = json.loads(out)
    assert (diff["pool_a"], diff["pool_b"]) == ("s@v1", "s@v2")
    assert diff["models"]["m1"]["n"] == len(QUESTIONS)  # h0-h7
    assert diff["models"]["m1"]["only_a"] == len(QUESTIONS)  # h8-h15 of v1 (h8: other content)
    assert diff["models"]["m1"]["only_b"] == 5  # h8 as edited, n0-n3
    assert diff["edited_between_runs"] == 1 and diff["edited_item_ids"] == ["h8"]
    code, out, _ = cli("runs", "diff", "r1", "r2")
    assert code == 0 and "pools differ (s@v1, s@v2)" in out
    for q in QUESTIONS:  # ids and numbers only
        assert q not in out
