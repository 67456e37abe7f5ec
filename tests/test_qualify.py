"""Qualifying a pool version before it goes live (harness/qualify.py, harness/vault/gate.py,
`holdout pool qualify`, `pool activate`): Arena-Hard's benchmark metrics from a pilot run, recorded
in the signed vault index; `pool activate` refuses a version that fails the suite's thresholds,
naming the metric, unless an override (recorded) says why."""

import json

import numpy as np
import pytest
from conftest import QUESTIONS, graded_replay_run

from harness import qualify

MODELS = ("good", "mid", "bad")


def _ranking(means, spread):
    """A pilot ranking whose resampled means lie within `spread` of each model's mean."""
    rng = np.random.default_rng(0)
    boots = np.array(means) + rng.uniform(-spread, spread, (1000, len(means)))
    return qualify.Ranking(list(MODELS[: len(means)]), np.array(means, float), boots, items=100)


def test_metrics_on_rankings_whose_answers_are_known():
    apart = _ranking([0.9, 0.5, 0.1], 0.05)
    assert qualify.separability(apart)["share"] == 1.0
    same_order = qualify.declared_ranking(list(MODELS))
    assert qualify.agreement(apart, same_order) == {
        "pairs": 3,
        "agree": 3,
        "disagree": 0,
        "score": 1.0,
    }
    assert qualify.brier(apart, same_order) == {"pairs": 3, "score": 0.0}
    reversed_order = qualify.declared_ranking(list(reversed(MODELS)))
    assert qualify.agreement(apart, reversed_order)["score"] == -1.0
    assert qualify.brier(apart, reversed_order)["score"] == 1.0
    # good and mid indistinguishable: that pair scores 0 for agreement and about 1/4 for Brier
    close = _ranking([0.5, 0.5, 0.1], 0.05)
    assert qualify.separability(close) == {"pairs": 3, "separated": 2, "share": 2 / 3}
    assert qualify.agreement(close, same_order) == {
        "pairs": 3,
        "agree": 2,
        "disagree": 0,
        "score": 2 / 3,
    }
    assert qualify.brier(close, same_order)["score"] == pytest.approx(0.25 / 3, abs=0.01)


def test_a_reference_ranking_that_cannot_separate_a_pair_leaves_it_out_of_brier():
    pilot = _ranking([0.9, 0.5, 0.1], 0.05)
    reference = _ranking([0.6, 0.6, 0.1], 0.05)  # good and mid tie in the reference
    assert qualify.brier(pilot, reference)["pairs"] == 2
    assert qualify.agreement(pilot, reference)["score"] == 2 / 3
    other = qualify.declared_ranking(["x", "y"])
    assert qualify.agreement(pilot, other)["score"] is None


def test_judged_fails_a_metric_that_could_not_be_computed():
    metrics = {"brier": {"score": None, "why": "no reference"}, "separability": {"score": 0.9}}
    checks = qualify.judged(metrics, {"max_brier": 0.2, "min_separability": 0.5})
    assert [(c["metric"], c["passed"]) for c in checks] == [
        ("brier", False),
        ("separability", True),
    ]
    assert checks[0]["why"] == "no reference"


def _pool(project, name, prefix=""):
    pool = project.root / name
    pool.write_text(
        "".join(
            json.dumps(
                {"id": f"h{i}", "prompt": f"{prefix}{q} ({i})", "reference": f"answer-{i}-pool"},
                ensure_ascii=False,
            )
            + "\n"
            for i, q in enumerate(QUESTIONS * 2)
        ),
        encoding="utf-8",
    )
    return pool


def _right(i):
    """A right answer in v1 (the heldout fixture's references) and in the versions made here."""
    return f"answer-{i}-pool, that is answer-{i}-of-the-pool"


def _pilot(project, cli, run_id, pool_id, right):
    """A graded run of the anchor models on `pool_id` (a draft), each right on `right[model]` of
    the 16 items (replayed answers)."""
    graded_replay_run(
        project, cli, run_id, pool_id, right, answer=_right, extra="allow_draft: true\n"
    )


QUALIFY = {"min_separability": 0.6, "min_agreement": 0.5, "max_brier": 0.2}


@pytest.fixture
def gated(heldout, project, cli):
    """Suite s with qualify thresholds and a reference ranking; s@v1 active (imported before the
    thresholds), s@v2 imported as a draft."""
    project.suite("s", qualify={**QUALIFY, "reference": list(MODELS)})
    code, _, err = cli("pool", "import", _pool(project, "v2.jsonl", "v2 "), "--suite", "s")
    assert code == 0, err


def test_a_version_goes_live_only_once_a_pilot_qualifies_it(gated, project, cli):
    code, _, err = cli("pool", "activate", "s@v2")
    assert code == 2 and "never qualified" in err and "--override" in err
    _pilot(project, cli, "pilot", "s@v2", {"good": 16, "mid": 8, "bad": 0})
    code, out, err = cli("pool", "qualify", "s@v2", "--pilot", "pilot", "--json")
    assert code == 0, err
    record = json.loads(out)
    m = record["metrics"]
    assert (m["items"], sorted(m["models"])) == (16, sorted(MODELS))
    assert m["separability"]["score"] == 1.0 and m["agreement"]["score"] == 1.0
    assert m["brier"]["score"] < 0.01 and record["passed"]
    assert m["judge_human"]["score"] is None and "review" in m["judge_human"]["why"]
    assert m["source_distance"]["score"] is None  # imported, not drawn
    code, out, _ = cli("pool", "qualify", "s@v2", "--pilot", "pilot")
    assert code == 0 and "separability" in out and "pass" in out
    for q in QUESTIONS:
        assert q not in out
    code, out, err = cli("pool", "activate", "s@v2")
    assert code == 0 and "s@v1 retired" in out, err
    shown = json.loads(cli("pool", "show", "s@v2", "--json")[1])
    assert shown["qualification"]["passed"] and "activation_override" not in shown
    assert shown["activated_under"] == QUALIFY  # a later edit of the suite cannot hide them


def test_a_failing_version_is_refused_naming_the_metric_and_an_override_is_recorded(
    gated, project, cli
):
    _pilot(project, cli, "flat", "s@v2", {"good": 16, "mid": 16, "bad": 16})  # no separation
    code, out, err = cli("pool", "qualify", "s@v2", "--pilot", "flat")
    assert code == 3 and "FAIL" in out and "separability" in out, err
    code, _, err = cli("pool", "activate", "s@v2")
    assert code == 2 and "separability is 0.000, min_separability is 0.6" in err
    assert "agreement is 0.000" in err
    assert json.loads(cli("pool", "list", "--json")[1])[1]["status"] == "draft"
    code, _, err = cli("pool", "activate", "s@v2", "--override", " ")
    assert code == 2 and "say why" in err
    code, out, err = cli("pool", "activate", "s@v2", "--override", "anchor outage; rerun Monday")
    assert code == 0 and "overridden" in out, err
    override = json.loads(cli("pool", "show", "s@v2", "--json")[1])["activation_override"]
    assert override["reason"] == "anchor outage; rerun Monday"
    assert any("separability" in f for f in override["failed"])
    code, out, _ = cli("vault", "verify")
    assert code == 0  # recorded by holdout, in the signed index


def test_changed_thresholds_ask_for_a_new_qualification(gated, project, cli):
    _pilot(project, cli, "pilot", "s@v2", {"good": 16, "mid": 8, "bad": 0})
    assert cli("pool", "qualify", "s@v2", "--pilot", "pilot")[0] == 0
    project.suite("s", qualify={**QUALIFY, "min_separability": 0.9, "reference": list(MODELS)})
    code, _, err = cli("pool", "activate", "s@v2")
    assert code == 2 and "other thresholds" in err
    assert cli("pool", "qualify", "s@v2", "--pilot", "pilot")[0] == 0
    assert cli("pool", "activate", "s@v2")[0] == 0


def test_a_reference_run_on_the_previous_version_and_a_wrong_pilot(gated, project, cli):
    """The reference is the ranking of a run on v1, where the order was reversed: agreement is -1.
    A pilot that ran on another version is refused."""
    _pilot(project, cli, "pilot", "s@v2", {"good": 16, "mid": 8, "bad": 0})
    _pilot(project, cli, "old", "s@v1", {"good": 0, "mid": 8, "bad": 16})
    code, out, err = cli(
        "pool", "qualify", "s@v2", "--pilot", "pilot", "--reference", "old", "--json"
    )
    assert code == 3, err
    m = json.loads(out)["metrics"]
    assert m["agreement"]["score"] == -1.0 and m["brier"]["score"] > 0.99
    assert m["reference"] == "run old"
    code, _, err = cli("pool", "qualify", "s@v2", "--pilot", "old")
    assert code == 2 and "ran on s@v1, not s@v2" in err


def test_import_activate_and_rotate_respect_the_gate(gated, project, cli):
    code, _, err = cli(
        "pool", "import", _pool(project, "v3.jsonl", "v3 "), "--suite", "s", "--activate"
    )
    assert code == 2 and "qualify" in err and "Nothing was imported" in err
    assert [p["id"] for p in json.loads(cli("pool", "list", "--json")[1])] == ["s@v1", "s@v2"]


def test_the_distance_to_the_source_is_the_draws_largest_marginal():
    drawn = {"draw_report": {"marginals": {"language": 0.04, "topic": 0.11}}}
    assert qualify.source_distance(drawn) == {
        "score": 0.11,
        "by_key": {"language": 0.04, "topic": 0.11},
    }
    assert qualify.source_distance({"strata": {}})["score"] is None


def test_a_pilot_must_run_every_declared_anchor(gated, project, cli):
    project.suite("s", qualify=QUALIFY, anchors=[*MODELS, "absent-anchor"])
    _pilot(project, cli, "pilot", "s@v2", {"good": 16, "mid": 8, "bad": 0})
    code, _, err = cli("pool", "qualify", "s@v2", "--pilot", "pilot")
    assert code == 2 and "absent-anchor" in err and "anchors" in err
