"""Holdout's style-controlled Bradley-Terry beside arena-hard-auto's own code, on the same battles.

Not a test (it needs PyTorch and a checkout of lmarena/arena-hard-auto, neither of which the project
depends on); a reference check to run by hand and record in the README:

    python3 -m venv /tmp/ah && /tmp/ah/bin/pip install torch==2.13.0 pandas tqdm numpy tiktoken
    /tmp/ah/bin/python bench/arena_hard_check.py ARENA_HARD_CHECKOUT WORKSPACE RUN_ID [GRADER]

WORKSPACE is a Holdout project directory where `holdout report RUN_ID` has run. Arena-Hard's
`show_result.print_leaderboard_with_style_features` computes the covariates (normalized length and
markdown-density differences, centred and scaled) and fits them with its own LBFGS Bradley-Terry;
the only change is that its 100 bootstrap rounds are replaced by one fit on all battles, so the
point estimates can be compared (its printed table is rounded to 0.1% of win rate, about 2 rating
points). Its `count_markdown_elements` is also run on every stored answer of a public pool and
compared with Holdout's counts. Prints both ratings per model and the largest difference; exit 1
above 1 point."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sqlite3
import sys
import tempfile
from pathlib import Path

FIT_OPTIONS = json.loads(os.environ.get("ARENA_HARD_FIT", "{}"))


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    checkout, workspace, run_id = Path(argv[0]).resolve(), Path(argv[1]).resolve(), argv[2]
    report = json.loads((workspace / "results" / run_id / "report.json").read_text())
    graders = report["graders"]
    grader = (
        argv[3]
        if len(argv) == 4
        else next(n for n, g in graders.items() if "bradley_terry_style_controlled" in g)
    )
    section = graders[grader]
    baseline = section["baseline"]
    ours = {m: r["rating"] for m, r in section["bradley_terry_style_controlled"].items()}
    db = sqlite3.connect(workspace / ".holdout" / "store.sqlite")
    rows = db.execute(
        "SELECT model, item_id, detail FROM grades WHERE run_id=? AND grader=? AND status='ok'",
        (run_id, grader),
    ).fetchall()

    sys.path.insert(0, str(checkout))
    import pandas as pd
    import show_result
    import torch
    from utils import judge_utils, math_utils

    # the same battles in Arena-Hard's layout: one row per game (a strong verdict three times), and
    # each
    # answer's metadata (token_len first, then the markdown counts) in
    # data/<benchmark>/model_answer/
    battles, metadata = [], {}
    for model, item, detail in rows:
        d = json.loads(detail)
        for side, name in (("model", model), ("baseline", baseline)):
            f = d["style"][side]
            metadata.setdefault(name, {})[item] = {
                "token_len": f["tokens"],
                "header_count": f["headers"],
                "list_count": f["lists"],
                "bold_count": f["bold"],
            }
        for score, strong in d["games"]:
            battles += [
                {"uid": item, "model": model, "category": "holdout", "scores": float(score)}
            ] * (3 if strong else 1)
    judge_utils.JUDGE_SETTINGS["holdout"] = {"baseline": baseline, "system_prompt": ""}
    fitted = []

    options = dict(FIT_OPTIONS)
    if options.pop("float64", False):  # a diagnosis: the same fit in double precision
        torch.set_default_dtype(torch.float64)

    def one_fit(features, outcomes, loss_type="bt", num_round=100):
        torch.manual_seed(0)
        dtype = torch.get_default_dtype()
        logits, _ = math_utils.fit_pairwise_model(
            features.to(dtype), outcomes.to(dtype), loss_type, **options
        )
        fitted.append(logits)
        return logits[None, :], None

    show_result.bootstrap_pairwise_model = one_fit
    with tempfile.TemporaryDirectory() as tmp:
        answers = Path(tmp) / "data" / "holdout" / "model_answer"
        answers.mkdir(parents=True)
        for k, (name, per_item) in enumerate(metadata.items()):
            pd.DataFrame(
                [{"uid": u, "model": name, "metadata": m} for u, m in per_item.items()]
            ).to_json(answers / f"{k}.jsonl", orient="records", lines=True)
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                show_result.print_leaderboard_with_style_features(
                    pd.DataFrame(battles), "holdout", "holdout", ["length", "markdown"]
                )
        finally:
            os.chdir(cwd)
    models = sorted(set([b["model"] for b in battles] + [baseline]))
    logits = fitted[0].numpy()[: len(models)]
    factor = 400 / math.log(10)
    theirs = {
        m: 1000 + factor * (logits[i] - logits[models.index(baseline)])
        for i, m in enumerate(models)
    }
    worst = 0.0
    print(f"{'model':34s} {'Holdout':>9s} {'arena-hard':>10s} {'diff':>6s}")
    for m in sorted(theirs, key=theirs.get, reverse=True):
        diff = ours[m] - theirs[m]
        worst = max(worst, abs(diff))
        print(f"{m:34s} {ours[m]:9.2f} {theirs[m]:10.2f} {diff:6.2f}")
    print(
        f"largest difference: {worst:.2f} rating points over {len(models)} models, "
        f"{len(battles)} games"
    )
    mismatched = _markdown_counts_differ(db, run_id, show_result, checkout)
    if mismatched is not None:
        print(
            f"markdown counts: {mismatched[0]} of {mismatched[1]} answers differ from "
            "Arena-Hard's counting"
        )
    return 0 if worst <= 1.0 and not (mismatched and mismatched[0]) else 1


def _markdown_counts_differ(db, run_id: str, show_result, checkout: Path) -> tuple[int, int] | None:
    """Arena-Hard's own count_markdown_elements (code blocks removed first) against Holdout's, on
    the stored outputs of a public pool; None when the outputs are not readable here (a held-out
    pool)."""
    try:
        from utils import add_markdown_info
    except ImportError:  # it imports tiktoken at module level
        return None
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    try:
        from harness import style
    except ImportError:
        return None
    import re

    pattern = re.compile("```([^`]*)```")
    try:
        outputs = [
            r[0] if isinstance(r[0], str) else r[0].decode()
            for r in db.execute(
                "SELECT output FROM calls WHERE run_id=? AND output IS NOT NULL", (run_id,)
            )
        ]
    except UnicodeDecodeError:  # encrypted: a held-out pool's outputs are not readable here
        return None
    if not outputs:
        return None
    differ = 0
    for text in outputs:
        c = add_markdown_info.count_markdown_elements(
            add_markdown_info.remove_pattern(text, pattern), suffix=""
        )
        theirs = {
            "headers": sum(c["header_count"].values()),
            "lists": sum(c["list_count"].values()),
            "bold": sum(c["bold_count"].values()),
        }
        mine = style.features(text)
        differ += any(mine[k] != theirs[k] for k in theirs)
    return differ, len(outputs)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
