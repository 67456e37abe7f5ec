"""Recorded verdicts from other tools, loaded as ordinary Holdout runs.

`import_alpaca_eval` reads AlpacaEval's files (model_outputs/<model>.json, annotations/<model>.json:
the judge's preference for each model against one baseline) into the store as a run whose calls
are the recorded outputs and whose pairwise grades are the recorded preferences. Then `holdout
report`, length control and the gaming detectors work on them exactly as on a live run.

`judge_self_consistency` reads repeated runs of one judge over the same pairs and measures how
often a run disagrees with the majority of the others, and how often the longer answer wins.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from . import style
from .errors import HoldoutError
from .rows import CallRow, GradeRow
from .store import Store

GRADER = "recorded"


def _load(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HoldoutError(f"{path}: not found") from None
    except ValueError as e:
        raise HoldoutError(f"{path}: not valid JSON ({e})") from None


def item_id(instruction: str) -> str:
    return "ae-" + hashlib.sha1(instruction.encode()).hexdigest()[:12]


def import_alpaca_eval(directory: Path, store: Store, run_id: str) -> dict:
    directory = Path(directory)
    files = sorted((directory / "annotations").glob("*.json"))
    if not files:
        raise HoldoutError(
            f"{directory}/annotations: no <model>.json files (expected AlpacaEval's layout)"
        )
    counts, baseline = {}, None
    calls, grades = [], []
    seen_outputs: set = set()
    for f in files:
        records = _load(f)
        for n, r in enumerate(records):
            try:
                base, model = r["generator_1"], r["generator_2"]
                pref = float(r["preference"])
                out1, out2, ins = r["output_1"], r["output_2"], r["instruction"]
            except (KeyError, TypeError, ValueError):
                raise HoldoutError(
                    f"{f}: record {n}: expected generator_1/2, output_1/2, instruction and a "
                    "numeric "
                    "preference"
                ) from None
            if not 1.0 <= pref <= 2.0:
                raise HoldoutError(f"{f}: record {n}: preference {pref} is outside [1, 2]")
            baseline = baseline or base
            iid = item_id(ins)
            for m, out in ((base, out1), (model, out2)):
                if (m, iid) not in seen_outputs:
                    seen_outputs.add((m, iid))
                    calls.append(
                        CallRow(
                            run_id,
                            m,
                            iid,
                            0,
                            True,
                            out,
                            "stop",
                            len(ins) // 4,
                            len(out) // 4,
                            None,
                            0.0,
                            1,
                            None,
                            None,
                            0.0,
                        )
                    )
            if model == base:
                continue
            mine, theirs = style.features(out2), style.features(out1)
            grades.append(
                GradeRow(
                    run_id,
                    GRADER,
                    model,
                    iid,
                    0,
                    "ok",
                    pref - 1.0,
                    {
                        "baseline": base,
                        "verdicts": {},
                        "games": [[pref - 1.0, False]],
                        "consistent": True,
                        "style": {"model": mine, "baseline": theirs},
                        "style_diff": {k: mine[k] - theirs[k] for k in mine},
                        "dataset": r.get("dataset"),
                    },
                )
            )
            counts[model] = counts.get(model, 0) + 1
    models = sorted({c.model for c in calls})
    store.begin_run(
        run_id,
        "recorded:alpaca_eval",
        "alpaca_eval",
        pool="alpaca_eval/recorded",
        heldout=False,
        total=len(calls),
        models=models,
        config_file=str(directory),
    )
    for c in calls:
        store.add(c)
    store.flush()
    store.put_grades(grades)
    return {"baseline": baseline, "models": counts, "outputs": len(calls)}


def judge_self_consistency(directory: Path) -> dict:
    """From k repeated runs over the same pairs (AlpacaEval's seed{0..k}.json): leave-one-out
    disagreement with the others' majority, agreement of all runs, and the judge's preference for
    the longer output."""
    runs = [_load(f) for f in sorted(Path(directory).glob("seed*.json"))]
    if len(runs) < 3:
        raise HoldoutError(
            f"{directory}: need at least 3 repeated runs (seed*.json), found {len(runs)}"
        )
    n = len(runs[0])
    if any(len(r) != n for r in runs):
        raise HoldoutError(f"{directory}: the runs do not cover the same pairs")
    disagree = total = unanimous = 0
    longer_wins = decisive = 0
    for i in range(n):
        votes = [int(float(r[i]["preference"])) for r in runs]
        for k, v in enumerate(votes):
            others = votes[:k] + votes[k + 1 :]
            majority = max(set(others), key=others.count)
            # a strict majority exists among the others
            if others.count(majority) * 2 > len(others):
                total += 1
                disagree += v != majority
        unanimous += len(set(votes)) == 1
        len1, len2 = len(runs[0][i]["output_1"]), len(runs[0][i]["output_2"])
        if len1 != len2:
            for r in runs:
                pref = float(r[i]["preference"])
                if pref != 1.5:  # a tie prefers neither
                    decisive += 1
                    longer_wins += (pref < 1.5) == (len1 > len2)
    return {
        "runs": len(runs),
        "pairs": n,
        "loo_disagreement": disagree / total,
        "unanimous": unanimous / n,
        "longer_preferred": longer_wins / decisive if decisive else None,
        "alpaca_eval_probability_prefer_longer": prefer_longer_alpaca_eval(runs[0]),
    }


def prefer_longer_alpaca_eval(
    annotations: list[dict], significant_delta_length: int = 30
) -> float | None:
    """AlpacaEval's own definition (`Analyzer.get_length_biases`): over one annotation per pair,
    among pairs whose outputs differ in length by more than 30 characters, the share where the
    preferred output is the longer one; a tie (1.5) prefers output_2 as both best and worse, so it
    is never such a pair. Holdout's `longer_preferred` differs: every vote of every run, any length
    difference, ties left out."""
    longer = total = 0
    for a in annotations:
        pref = float(a["preference"])
        best = a["output_1"] if 1 <= pref < 1.5 else a["output_2"]
        worse = a["output_1"] if 1.5 < pref <= 2 else a["output_2"]
        if abs(len(best) - len(worse)) > significant_delta_length:
            total += 1
            longer += len(best) > len(worse)
    return longer / total if total else None
