"""The real check: AlpacaEval 2.0's recorded verdicts for real models, through Holdout's own report,
against the published leaderboard (tatsu-lab/alpaca_eval, weighted_alpaca_eval_gpt4_turbo)."""
import json

import pytest

from conftest import needs_shared

# model: (published win rate %, standard error %)
PUBLISHED = {
    "claude-2.1": (15.73, 1.12), "claude-instant-1.2": (16.13, 1.13), "gpt-3.5-turbo-1106": (9.18, 0.89),
    "OpenHermes-2.5-Mistral-7B": (10.34, 0.94), "humpback-llama2-70b": (10.12, 0.94), "gemma-7b-it": (6.94, 0.79),
    "vicuna-7b-v1.5": (4.80, 0.67), "alpaca-7b": (2.59, 0.49), "falcon-7b-instruct": (2.15, 0.45),
    "text_davinci_001": (2.76, 0.52), "gpt4_gamed": (3.74, 0.63),
}


def test_win_rates_and_standard_errors_match_the_published_figures(project, cli):
    data = needs_shared("alpaca-eval")
    code, _, err = cli("recorded", "import-alpaca-eval", data, "--run", "ae")
    assert code == 0, err
    code, _, err = cli("report", "ae")
    assert code == 0, err
    models = json.loads((project.root / "results" / "ae" / "report.json").read_text())["graders"]["recorded"]["models"]
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
    assert 0.05 < out["loo_disagreement"] < 0.3          # a judge at temperature 0 is still far from deterministic
    assert out["longer_preferred"] > 0.5                  # and it leans towards the longer answer


def test_bad_recorded_files_are_clear_errors(cli, tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "m.json").write_text('[{"generator_1": "a"}]')
    code, _, err = cli("recorded", "import-alpaca-eval", tmp_path, "--workspace", tmp_path / "ws")
    assert code == 2 and "m.json: record 0: expected generator_1/2" in err
