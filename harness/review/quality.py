"""Review quality: agreement between people (Krippendorff's alpha), gold accuracy and time per
reviewer, flagged reviewers, judge-vs-human agreement, and a model's human summary for its card.
Numbers only, no text."""

from __future__ import annotations

import json
from collections import defaultdict

from .. import stats
from .decisions import FLAGS
from .reviewers import setup


def _judge_view(grade: dict) -> dict:
    """What a judge said of an output, keyed like people's answers: rubric criteria, or the pairwise
    preference."""
    detail = grade["detail"] or {}
    return (
        {"model_preference": grade["score"]} if "baseline" in detail else detail.get("criteria", {})
    )


def status(
    db, run_id: str, criteria: list[dict], *, grades: list[dict], min_gold_accuracy: float = 0.7
) -> dict:
    """Queue size, done, agreement between people (Krippendorff's alpha per criterion), per-reviewer
    gold accuracy and time per item, flagged reviewers, and judge-vs-human agreement per criterion.
    No text."""
    setup(db)
    rows = db.execute(
        "SELECT model, item_id, epoch, reviewer, gold, opened, done, scores, flag FROM assignments "
        "WHERE run_id=?",
        (run_id,),
    ).fetchall()
    done = [r for r in rows if r[6] is not None]
    per_reviewer = defaultdict(lambda: {"done": 0, "gold": 0, "gold_hits": 0, "seconds": []})
    units = defaultdict(lambda: defaultdict(list))
    for model, item, epoch, reviewer, gold, opened, finished, scores, _flag in done:
        s = json.loads(scores or "{}")
        pr = per_reviewer[reviewer]
        pr["done"] += 1
        if opened:
            pr["seconds"].append(finished - opened)
        if gold:
            g = json.loads(gold)
            pr["gold"] += 1
            # within one point
            pr["gold_hits"] += all(abs(s.get(c, -99) - v) <= 1 for c, v in g.items())
        names = ["model_preference"] if "model_preference" in s else [c["name"] for c in criteria]
        # a pairwise answer is compared as the model's preference (positions differ per reviewer)
        for c in names:
            if c in s:
                units[c][(model, item, epoch)].append(s[c])
    reviewers = {}
    for name, pr in per_reviewer.items():
        acc = pr["gold_hits"] / pr["gold"] if pr["gold"] else None
        reviewers[name] = {
            "done": pr["done"],
            "gold_items": pr["gold"],
            "gold_accuracy": acc,
            "median_seconds": sorted(pr["seconds"])[len(pr["seconds"]) // 2]
            if pr["seconds"]
            else None,
            "flagged": acc is not None and acc < min_gold_accuracy,
        }
    agreement = {c: stats.krippendorff_alpha(dict(u), "interval") for c, u in units.items()}
    judge = {
        (g["model"], g["item_id"], g["epoch"]): _judge_view(g)
        for g in grades
        if g["status"] == "ok"
    }
    judge_human = {}
    for c, u in units.items():
        pairs = [
            (judge[k][c], sum(v) / len(v)) for k, v in u.items() if k in judge and c in judge[k]
        ]
        if len(pairs) >= 2:
            judge_human[c] = {
                "krippendorff_alpha": stats.krippendorff_alpha(
                    {i: list(p) for i, p in enumerate(pairs)}, "interval"
                ),
                "items": len(pairs),
            }
    return {
        "assigned": len(rows),
        "done": len(done),
        "queue": len(rows) - len(done),
        "flags": {f: sum(r[8] == f for r in done) for f in FLAGS},
        "reviewers": reviewers,
        "agreement": agreement,
        "judge_human": judge_human,
    }


def human_summary(db, run_id: str, model: str, *, grades: list[dict], min_size: int) -> dict | None:
    """For one model's scorecard: people's mean score per criterion, judge-vs-people agreement, and
    segments by reviewer profile (country, age band, education), suppressed below `min_size`
    reviews. None if nobody reviewed."""
    setup(db)
    rows = db.execute(
        "SELECT a.item_id, a.epoch, a.scores, r.country, r.age_band, r.education FROM "
        "assignments a "
        "JOIN reviewers r ON r.name=a.reviewer WHERE a.run_id=? AND a.model=? AND a.done IS NOT "
        "NULL "
        "AND a.gold IS NULL",
        (run_id, model),
    ).fetchall()
    if not rows:
        return None
    per_crit, per_item, segments = (
        defaultdict(list),
        defaultdict(lambda: defaultdict(list)),
        defaultdict(lambda: defaultdict(list)),
    )
    for item, epoch, scores, country, age, edu in rows:
        answer = json.loads(scores or "{}")
        if "model_preference" in answer:
            answer = {"model_preference": answer["model_preference"]}
        for c, v in answer.items():
            per_crit[c].append(v)
            per_item[c][(item, epoch)].append(v)
            for key, value in (("country", country), ("age_band", age), ("education", edu)):
                if value:
                    segments[f"{key}/{c}"][value].append(v)
    judge = {
        (g["item_id"], g["epoch"]): _judge_view(g)
        for g in grades
        if g["model"] == model and g["status"] == "ok"
    }
    agreement = {}
    for c, units in per_item.items():
        pairs = {
            k: [judge[k][c], sum(v) / len(v)] for k, v in units.items() if c in judge.get(k, {})
        }
        if len(pairs) >= 2:
            agreement[c] = {
                "krippendorff_alpha": stats.krippendorff_alpha(pairs, "interval"),
                "items": len(pairs),
            }
    return {
        "reviews": len(rows),
        "mean_scores": {c: sum(v) / len(v) for c, v in per_crit.items()},
        "judge_human": agreement,
        "segments": {
            k: {
                val: (
                    {"n": len(v), "mean": sum(v) / len(v)}
                    if len(v) >= min_size
                    else {"suppressed": True, "reason": f"fewer than {min_size} reviews"}
                )
                for val, v in sorted(vals.items())
            }
            for k, vals in segments.items()
        },
    }
