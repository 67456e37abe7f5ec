"""Scores linked across pool versions (harness/linking.py, `holdout report --across`): a simulated
tournament with known strengths on three versions of different difficulty, anchors on all three;
then the command on real runs in the store."""

import json

import numpy as np
import pytest
from conftest import QUESTIONS, graded_replay_run

from harness.linking import VersionScores, link

THETA = np.array([0.50, 0.40, 0.30, 0.20, 0.35, 0.25, 0.45, 0.15])
MU = (0.30, -0.20, 0.0)  # v1 easy, v2 hard, v3 (the scale) in between
ON = ([0, 1, 2, 3], [0, 1, 4, 5], [0, 1, 6, 7])  # m0, m1: the anchors, on every version


def _tournament(rng, n_items=100):
    versions = []
    for v, (mu, models) in enumerate(zip(MU, ON)):
        difficulty = rng.normal(mu, 0.15, n_items)  # the version's items
        noise = rng.normal(0, 0.3, (n_items, len(models)))
        versions.append(
            VersionScores(
                f"s@v{v + 1}",
                "active" if v == 2 else "retired",
                [f"m{k}" for k in models],
                difficulty[:, None] + THETA[models][None, :] + noise,
            )
        )
    return versions


def test_linked_scores_recover_the_true_order_and_cover_the_true_values():
    """Over 200 simulated tournaments: the linked scores' 95% CIs hold the true value (strength
    plus the scale version's mean difficulty) 92-98% of the time, the linked order matches the
    truth (Kendall's tau >= 0.9 on average), and m2 (on the easy v1) is put below m6 (on v3) as it
    truly is, where comparing the two versions' raw means puts it above."""
    rng = np.random.default_rng(5)
    covered = total = 0
    taus, linked_right, raw_right = [], 0, 0
    for sim in range(200):
        versions = _tournament(rng)
        out = link(versions, scale="s@v3", n_boot=400, seed=sim)
        for k in range(len(THETA)):
            e = out.models[f"m{k}"]
            covered += e["ci_low"] <= THETA[k] + MU[2] <= e["ci_high"]
            total += 1
        est = np.array([out.models[f"m{k}"]["score"] for k in range(len(THETA))])
        pairs = [(i, j) for i in range(len(THETA)) for j in range(i + 1, len(THETA))]
        concordant = sum(np.sign(est[i] - est[j]) == np.sign(THETA[i] - THETA[j]) for i, j in pairs)
        taus.append(2 * concordant / len(pairs) - 1)
        linked_right += out.models["m2"]["score"] < out.models["m6"]["score"]
        raw_right += out.models["m2"]["versions"]["s@v1"] < out.models["m6"]["versions"]["s@v3"]
    assert 0.92 <= covered / total <= 0.98, covered / total
    assert np.mean(taus) >= 0.9, np.mean(taus)
    assert linked_right >= 180 and raw_right <= 20, (linked_right, raw_right)


def test_unlinked_per_version_scores_drift_and_linking_says_how_strongly():
    rng = np.random.default_rng(1)
    out = link(_tournament(rng), scale="s@v3", n_boot=200)
    m0 = out.models["m0"]["versions"]
    assert m0["s@v1"] - m0["s@v3"] > 0.2 and m0["s@v3"] - m0["s@v2"] > 0.1  # the versions' drift
    v1 = out.versions["s@v1"]
    assert v1["linked"] and v1["anchors"] == ["m0", "m1"] and v1["items"] == 100
    assert v1["ci_low"] <= MU[0] - MU[2] <= v1["ci_high"]  # v1's offset: 0.3 easier
    assert out.versions["s@v3"]["offset"] == 0.0
    assert out.models["m2"]["only_retired"] and not out.models["m6"]["only_retired"]


def test_a_version_without_a_shared_model_is_listed_apart():
    rng = np.random.default_rng(2)
    versions = _tournament(rng)
    versions.append(VersionScores("s@v4", "draft", ["x1", "x2"], rng.random((20, 2))))
    out = link(versions, scale="s@v3", n_boot=100)
    assert not out.versions["s@v4"]["linked"] and out.versions["s@v4"]["anchors"] == []
    assert set(out.unlinked) == {"x1", "x2"} and "x1" not in out.models


def _run(project, cli, run_id, pool_id, right, *, extra=""):
    """A graded replay run of the models in `right` on `pool_id`, each right on its first
    `right[model]` items."""
    graded_replay_run(
        project,
        cli,
        run_id,
        pool_id,
        right,
        answer=lambda i: f"answer-{i}-of-the-pool",
        extra=extra,
    )


def test_report_across_puts_every_model_on_the_active_versions_scale(heldout, project, cli):
    """v1 (retired after the rotation): anchors a1, a2 and a model only ever run there; v2 (active,
    harder: everyone gets fewer right): the anchors and a new model. The old model is linked
    through the anchors and marked as seen only on a retired version."""
    labs = "labs: {acme: [LAB], other: [a1, a2]}\nleaderboard_public: true\n"
    _run(
        project,
        cli,
        "r1",
        "s@v1",
        {"a1": 14, "a2": 10, "old": 12},
        extra=labs.replace("LAB", "old"),
    )
    v2 = project.root / "v2.jsonl"
    v2.write_text(
        "".join(
            json.dumps(
                {"id": f"h{i}", "prompt": f"v2 {q} ({i})", "reference": f"answer-{i}-of-the-pool"},
                ensure_ascii=False,
            )
            + "\n"
            for i, q in enumerate(QUESTIONS * 2)
        ),
        encoding="utf-8",
    )
    assert cli("pool", "import", v2, "--suite", "s", "--heldout", "--activate")[0] == 0
    _run(
        project, cli, "r2", "s@v2", {"a1": 10, "a2": 6, "new": 9}, extra=labs.replace("LAB", "new")
    )
    code, out, err = cli("report", "--across", "s", "--json")
    assert code == 0, err
    across = json.loads(out)
    assert across["scale"] == "s@v2"
    models = across["models"]
    # v2 is 4/16 harder for both anchors: old's 12/16 on v1 reads as 8/16 on v2's scale
    assert models["old"]["score"] == pytest.approx(8 / 16)
    assert models["old"]["only_retired"] and not models["new"]["only_retired"]
    assert models["new"]["score"] == pytest.approx(9 / 16)
    # each version's mean on the scale: a1's 14/16 on v1 less v1's offset, 10/16 on v2
    trend = models["a1"]["by_version"]
    assert trend["s@v1"]["score"] == pytest.approx(trend["s@v2"]["score"])
    assert trend["s@v1"]["status"] == "retired" and trend["s@v1"]["ci_low"] < 10 / 16
    assert across["versions"]["s@v1"]["anchors"] == ["a1", "a2"]
    assert across["versions"]["s@v1"]["offset"] == pytest.approx(4 / 16)
    assert across["versions"]["s@v1"]["missing_anchors"] == []
    project.suite("s", anchors=["a1", "a2", "a3"])  # a third anchor, run on neither version
    code, out, err = cli("report", "--across", "s")
    assert code == 0 and "only on retired versions" in out and "s@v1" in out, err
    assert "s@v1 lacks the suite's anchors a3" in out
    for q in QUESTIONS:
        assert q not in out
    assert (project.root / "results" / "across" / "s.json").exists()
    code, _, err = cli("report", "r1", "--across", "s")
    assert code == 2 and "either" in err
    code, _, err = cli("report", "--across", "s", "--scale", "s@v9")
    assert code == 2 and "s@v9" in err


def test_cards_show_a_labs_models_across_versions_and_the_board_ranks_over_time(
    heldout, project, cli
):
    test_report_across_puts_every_model_on_the_active_versions_scale(heldout, project, cli)
    code, _, err = cli("scorecard", "r2", "--lab", "acme")
    assert code == 0, err
    card = json.loads((project.root / "results/r2/scorecards/acme.json").read_text())
    history = card["history"]
    assert history["scale"] == "s@v2" and set(history["models"]) == {"new"}
    assert history["versions"]["s@v1"] == {"status": "retired", "linked": True, "anchors": 2}
    assert "a1" not in json.dumps(history)  # other labs' models: only counted
    # the card of the old run: on v1's scale, its model seen only on a retired version
    code, _, err = cli("scorecard", "r1", "--lab", "acme")
    assert code == 0, err
    folder = project.root / "results" / "r1" / "scorecards"
    history = json.loads((folder / "acme.json").read_text())["history"]
    assert history["scale"] == "s@v1" and history["models"]["old"]["only_retired"]
    assert history["models"]["old"]["by_version"]["s@v1"]["score"] == pytest.approx(12 / 16)
    html = (folder / "acme.html").read_text()
    assert "Across pool versions" in html and "Seen only on retired versions: old" in html
    assert cli("verify", folder / "acme.json")[0] == 0
    code, out, err = cli("leaderboard", "r2")
    assert code == 0 and "ranks over time" in out, err
    board = json.loads((project.root / "results" / "r2" / "leaderboard.json").read_text())
    ranks = board["ranks_over_time"]
    assert ranks["linked"] == {"a1": 1, "new": 2, "old": 3, "a2": 4}
    assert ranks["by_version"]["s@v1"] == {"a1": 1, "old": 2, "a2": 3}
    assert ranks["only_retired"] == ["old"]
