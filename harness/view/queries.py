"""What the maintainers' view reads from the run store: a run's figures per model and grader, a
page of its grades under a filter, and one item's human decisions. SQL with bound parameters only;
pages of a fixed size, walked by key, so a page costs the same at item 50 and at item 99,950."""

from __future__ import annotations

import json
from dataclasses import dataclass

PAGE = 50
SHOWS = {
    "all": "",
    # rubric judges who disagree, or a pairwise verdict that flips with the order
    "disagree": " AND (json_extract(detail, '$.disagreement') > 0 "
    "OR json_extract(detail, '$.consistent') = 0)",
    "error": " AND status = 'error'",
    "skipped": " AND status = 'skipped'",
    "low": " AND score <= 0.25",
}


@dataclass
class Listing:
    rows: list[dict]
    next_after: tuple | None  # the key to start the next page after, if there is one


def run_figures(db, run_id: str) -> dict:
    """Per model: calls, errors by kind, cost; per grader and model: graded, errors, mean score."""
    models: dict = {}
    for model, ok, kind, n, cost in db.execute(
        "SELECT model, ok, error_kind, COUNT(*), COALESCE(SUM(cost_usd), 0) FROM calls "
        "WHERE run_id=? GROUP BY model, ok, error_kind",
        (run_id,),
    ):
        m = models.setdefault(model, {"calls": 0, "errors": {}, "cost_usd": 0.0})
        m["calls"] += n
        m["cost_usd"] += cost
        if not ok:
            m["errors"][kind or "unknown"] = n
    graders: dict = {}
    for grader, model, status, n, mean in db.execute(
        "SELECT grader, model, status, COUNT(*), AVG(score) FROM grades WHERE run_id=? "
        "GROUP BY grader, model, status",
        (run_id,),
    ):
        g = graders.setdefault(grader, {}).setdefault(model, {"ok": 0, "other": 0, "mean": None})
        if status == "ok":
            g["ok"], g["mean"] = n, mean
        else:
            g["other"] += n
    return {"models": models, "graders": graders}


def grade_page(
    db,
    run_id: str,
    *,
    grader: str,
    model: str | None,
    show: str,
    after: tuple | None,
    size: int = PAGE,
) -> Listing:
    """One page of a grader's grades (of one model, if given) matching `show`, in key order,
    starting after the key `after` (model, item, epoch)."""
    sql = (
        "SELECT model, item_id, epoch, status, score, detail FROM grades "
        "WHERE run_id=? AND grader=?"
    )
    args: list = [run_id, grader]
    if model:
        sql += " AND model=?"
        args.append(model)
    sql += SHOWS[show]
    if after:
        sql += " AND (model, item_id, epoch) > (?, ?, ?)"
        args += list(after)
    sql += " ORDER BY model, item_id, epoch LIMIT ?"
    args.append(size + 1)
    found = [
        {
            "model": m,
            "item_id": i,
            "epoch": e,
            "status": st,
            "score": sc,
            "detail": json.loads(d) if d and d != "{}" else {},
        }
        for m, i, e, st, sc, d in db.execute(sql, args)
    ]
    more = len(found) > size
    rows = found[:size]
    last = rows[-1] if rows else None
    return Listing(rows, (last["model"], last["item_id"], last["epoch"]) if more else None)


def decisions(db, run_id: str, item_id: str) -> list[dict]:
    """People's decisions on an item: reviewer, model, epoch, scores, flag, comment (as stored:
    encrypted for a held-out run), when."""
    if not db.execute("SELECT 1 FROM sqlite_master WHERE name='assignments'").fetchone():
        return []
    keys = ("id", "reviewer", "model", "epoch", "scores", "flag", "comment", "done")
    return [
        dict(zip(keys, r))
        for r in db.execute(
            "SELECT id, reviewer, model, epoch, scores, flag, comment, done FROM assignments "
            "WHERE run_id=? AND item_id=? AND done IS NOT NULL ORDER BY model, epoch, reviewer",
            (run_id, item_id),
        )
    ]
