"""The real check: AlpacaEval 2.0's recorded verdicts for real models, through Holdout's own report,
against the published leaderboard (tatsu-lab/alpaca_eval, weighted_alpaca_eval_gpt4_turbo)."""

import json

import pytest
from conftest import needs_shared, store_db

# model: (published win rate %, standard error %)
PUBLISHED = {
    "claude-2.1": (15.73, 1.12),
    "claude-instant-1.2": (16.13, 1.13),
    "gpt-3.5-turbo-1106": (9.18, 0.89),
    "OpenHermes-2.5-Mistral-7B": (10.34, 0.94),
    "humpback-llama2-70b": (10.12, 0.94),
    "gemma-7b-it": (6.94, 0.79),
    "vicuna-7b-v1.5": (4.80, 0.67),
    "alpaca-7b": (2.59, 0.49),
    "falcon-7b-instruct": (2.15, 0.45),
    "text_davinci_001": (2.76, 0.52),
    "gpt4_gamed": (3.74, 0.63),
}


def test_win_rates_and_standard_errors_match_the_published_figures(project, cli):
    data = needs_shared("alpaca-eval")
    code, _, err = cli("recorded", "import-alpaca-eval", data, "--run", "ae")
    assert code == 0, err
    code, _, err = cli("report", "ae")
    assert code == 0, err
    models = json.loads((project.root / "results" / "ae" / "report.json").read_text())["graders"][
        "recorded"
    ]["models"]
    assert len(models) == 15
    for name, (wr, se) in PUBLISHED.items():
        assert models[name]["win_rate"] * 100 == pytest.approx(wr, abs=0.5), name
        assert models[name]["se"] * 100 == pytest.approx(se, abs=0.5), name
    assert models["text_davinci_001"]["n"] == 803


def test_judge_self_consistency_from_repeated_runs(cli, tmp_path):
    data = needs_shared("alpaca-eval") / "judge_repeats_gpt4_b1"
    code, _, err = cli("recorded", "judge-consistency", data, "--json", tmp_path / "c.json")
    assert code == 0, err
    out = json.loads((tmp_path / "c.json").read_text())
    assert out["runs"] == 4 and out["pairs"] == 648
    # a judge at temperature 0 is still far from deterministic
    assert 0.05 < out["loo_disagreement"] < 0.3
    assert out["longer_preferred"] > 0.5  # and it leans towards the longer answer
    # AlpacaEval's own definition, named apart, gives its published figure for this judge (0.60)
    assert out["alpaca_eval_probability_prefer_longer"] == pytest.approx(0.600, abs=0.0005)


def test_bad_recorded_files_are_clear_errors(cli, tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "m.json").write_text('[{"generator_1": "a"}]')
    code, _, err = cli("recorded", "import-alpaca-eval", tmp_path, "--workspace", tmp_path / "ws")
    assert code == 2 and "m.json: record 0: expected generator_1/2" in err


def _arena_hard_counts(text: str) -> dict:
    """Arena-Hard's own counting (utils/add_markdown_info.py in lmarena/arena-hard-auto),
    transcribed."""
    import re

    for block in re.findall("```([^`]*)```", text):
        text = text.replace(block, "")
    return {
        "headers": sum(len(re.findall(rf"^#{{{n}}}\s", text, re.M)) for n in range(1, 7)),
        "lists": len(re.findall(r"^\s*\d+\.\s", text, re.M))
        + len(re.findall(r"^\s*[-*+]\s", text, re.M)),
        "bold": len(re.findall(r"\*\*[^*\n]+\*\*", text)) + len(re.findall(r"__[^_\n]+__", text)),
    }


@pytest.mark.parametrize(
    "text",
    [
        "# Title\n\nSome **bold** and __bold__ text.\n\n- a\n- b\n1. one\n2. two\n",
        "```python\n# not a header\n- not a list\n```\n## Real header\n* item",
        "plain text, no markdown at all",
        "### ok\n####### seven is not a header\n  + nested",
        # fences inside fences (two AlpacaEval answers where a plain regex sub differs)
        "````markdown\n```\n# inside\nprint(1)\n```\n````",
        "```\n```markdown\nx\n```\n\n1. out\n```\n```\n1. in\n```\n```\n```",
    ],
)
def test_markdown_counts_are_arena_hards(text):
    from harness import style

    mine = style.features(text)
    assert {k: mine[k] for k in ("headers", "lists", "bold")} == _arena_hard_counts(text)


@pytest.mark.parametrize(
    "text, words",
    [
        ("हिन्दी भाषा", 2),
        ("ภาษาไทย ครับ", 2),
        ("مرحبا بالعالم", 2),
        ("שָׁלוֹם עוֹלָם", 2),
        ("中文文本", 1),
        ("café, été!", 4),
        ("e\u0301te\u0301", 1),
    ],
)
def test_tokens_keep_combining_marks_with_their_word(text, words):
    """Vowel signs, viramas and points are marks, not letters: they belong to the word they sit
    on."""
    from harness import style

    assert style.features(text)["tokens"] == words


def test_style_controlled_ratings_match_arena_hards_formulation_on_alpaca_eval(project, cli):
    """The same battles (AlpacaEval's recorded verdicts), Arena-Hard's covariates transcribed from
    its show_result.py (normalized length difference, markdown density differences, centred and
    scaled with torch.std's n-1), fitted by scikit-learn's unpenalized logistic regression: every
    model's style-controlled rating within 1 point of Holdout's."""

    import numpy as np
    from sklearn.linear_model import LogisticRegression

    data = needs_shared("alpaca-eval")
    assert cli("recorded", "import-alpaca-eval", data, "--run", "ae")[0] == 0
    assert cli("report", "ae")[0] == 0
    section = json.loads((project.root / "results" / "ae" / "report.json").read_text())["graders"][
        "recorded"
    ]
    assert section["style_control"] == "arena-hard"
    ours = {m: r["rating"] for m, r in section["bradley_terry_style_controlled"].items()}
    rows = (
        store_db(project.root)
        .execute(
            "SELECT model, score, detail FROM grades WHERE run_id='ae' AND status='ok' ORDER BY "
            "model, item_id"
        )
        .fetchall()
    )
    baseline = section["baseline"]
    models = sorted({m for m, _, _ in rows})
    feats, y, X = [], [], []
    for model, score, detail in rows:
        d = json.loads(detail)
        a, b = d["style"]["model"], d["style"]["baseline"]
        ta, tb = a["tokens"], b["tokens"]
        row = [(ta - tb) / (ta + tb)]
        for k in ("headers", "lists", "bold"):
            da, db = a[k] / (ta + 1), b[k] / (tb + 1)
            row.append((da - db) / (da + db + 1))
        feats.append(row)
        X.append([1.0 if m == model else 0.0 for m in models])
        y.append(score)
    feats = np.array(feats)
    feats = (feats - feats.mean(axis=0)) / feats.std(axis=0, ddof=1)
    design = np.hstack([np.array(X), feats])
    y = np.array(y)
    # no penalty
    fit = LogisticRegression(C=np.inf, fit_intercept=False, max_iter=10_000, tol=1e-10)
    fit.fit(
        np.vstack([design, design]),
        np.r_[np.ones(len(y)), np.zeros(len(y))],
        sample_weight=np.r_[y, 1 - y],
    )
    scale = 400 / np.log(10)
    theirs = {m: 1000 + scale * c for m, c in zip(models, fit.coef_[0][: len(models)])}
    assert baseline not in models and ours[baseline] == pytest.approx(1000)
    for m in models:
        assert ours[m] == pytest.approx(theirs[m], abs=1.0), m


def test_a_models_lc_win_rate_does_not_depend_on_the_company_it_keeps(project, cli, tmp_path):
    """With the pool's reference stored (`holdout difficulty`), claude-2.1 run alone with the
    baseline gets the LC win rate it gets among all 15 models; without one, the report says where
    difficulty came from."""
    data = needs_shared("alpaca-eval")
    solo = tmp_path / "solo"
    for sub in ("annotations", "model_outputs"):
        (solo / sub).mkdir(parents=True)
        for name in ("claude-2.1", "gpt4_1106_preview"):
            (solo / sub / f"{name}.json").symlink_to(data / sub / f"{name}.json")
    assert cli("recorded", "import-alpaca-eval", solo, "--run", "solo")[0] == 0
    assert cli("report", "solo")[0] == 0
    alone_unreferenced = json.loads(
        (project.root / "results" / "solo" / "report.json").read_text()
    )["graders"]["recorded"]
    assert alone_unreferenced["difficulty_from"] == {"this_run_models": 1}
    code, _, err = cli("difficulty", "solo")
    assert code == 2 and "at least 5" in err  # one model is not a reference
    assert cli("recorded", "import-alpaca-eval", data, "--run", "ae")[0] == 0
    code, out, err = cli("difficulty", "ae")
    assert code == 0 and "15 models" in out, err
    lc = {}
    for run in ("ae", "solo"):
        assert cli("report", run)[0] == 0
        section = json.loads((project.root / "results" / run / "report.json").read_text())[
            "graders"
        ]["recorded"]
        assert (
            section["difficulty_from"]["run"] == "ae"
            and len(section["difficulty_from"]["models"]) == 15
        )
        lc[run] = section["models"]["claude-2.1"]["lc_win_rate"]
    assert lc["solo"] == pytest.approx(lc["ae"], abs=0.005)  # within half a point (here: equal)
    # it did depend before
    assert abs(alone_unreferenced["models"]["claude-2.1"]["lc_win_rate"] - lc["ae"]) > 0.005
