"""What the maintainers' view reads from the run store: a page of a run's model calls with one
grader's grades under a filter, and one item's human decisions. SQL with bound parameters only;
pages of a fixed size, walked by key, so a page costs the same at item 50 and at item 99,950."""

from __future__ import annotations

import json
from dataclasses import dataclass

PAGE = 50
SHOWS = {
    "all": "",
    # rubric judges who disagree, or a pairwise verdict that flips with the order
    "disagree": " AND (json_extract(g.detail, '$.disagreement') > 0 "
    "OR json_extract(g.detail, '$.consistent') = 0)",
    # a person's decision more than a point from the judge's on a criterion, or a preference
    # half the scale away from the judge's (the people's decisions, few, lead the search)
    "human": " AND (c.model, c.item_id, c.epoch) IN (SELECT model, item_id, epoch FROM "
    "assignments WHERE run_id=c.run_id AND done IS NOT NULL) AND EXISTS (SELECT 1 FROM "
    "assignments a WHERE a.run_id=c.run_id AND a.model=c.model AND a.item_id=c.item_id AND "
    "a.epoch=c.epoch AND a.done IS NOT NULL AND ("
    "abs(json_extract(a.scores, '$.model_preference') - g.score) >= 0.5 OR EXISTS ("
    "SELECT 1 FROM json_each(a.scores) h WHERE h.key != 'model_preference' AND "
    "abs(h.value - json_extract(g.detail, '$.criteria.\"' || h.key || '\"')) > 1)))",
    "failed": " AND c.ok = 0",  # the model call failed
    "grade-error": " AND g.status = 'error'",
    "skipped": " AND g.status = 'skipped'",
    "ungraded": " AND g.status IS NULL",
}
# the shows that need a grade: the listing walks the grades and looks each call up
GRADED_SHOWS = {"disagree", "grade-error", "skipped"}
SORTS = {  # name -> the order, walking an index (grades' primary key, or grades_by_score)
    "item": "c.model, c.item_id, c.epoch",
    "lowest": "g.score, g.model, g.item_id, g.epoch",
    "highest": "g.score DESC, g.model DESC, g.item_id DESC, g.epoch DESC",
}


@dataclass
class Filter:
    """Which grades a listing shows, in which order, from where."""

    grader: str
    model: str | None = None
    show: str = "all"  # a key of SHOWS
    stratum: tuple[str, str] | None = None  # (metadata key, value)
    score_min: float | None = None
    score_max: float | None = None
    error_kind: str | None = None  # the model call's error kind
    safeguard: str | None = None  # a detector that flagged the item (as `holdout check` found)
    sort: str = "item"  # a key of SORTS
    after: tuple | None = None  # the key of the last row of the previous page
    size: int = PAGE


@dataclass
class Listing:
    rows: list[dict]
    next_after: tuple | None  # the key to start the next page after, if there is one


def _by_grade(f: Filter) -> bool:
    """Whether only graded calls can match: the listing then walks the grades (in their key's
    order) and looks each call up."""
    return f.sort != "item" or f.show in GRADED_SHOWS or {f.score_min, f.score_max} != {None}


def _where(run_id: str, f: Filter) -> tuple[str, list]:
    if _by_grade(f):
        sql = (
            " FROM grades g JOIN calls c ON c.run_id=g.run_id AND c.model=g.model AND "
            "c.item_id=g.item_id AND c.epoch=g.epoch WHERE g.run_id=? AND g.grader=?"
        )
        args: list = [run_id, f.grader]
    else:
        sql = (
            " FROM calls c LEFT JOIN grades g ON g.run_id=c.run_id AND g.grader=? AND "
            "g.model=c.model AND g.item_id=c.item_id AND g.epoch=c.epoch WHERE c.run_id=?"
        )
        args = [f.grader, run_id]
    if f.model:
        sql += " AND c.model=?"
        args.append(f.model)
    sql += SHOWS[f.show]
    if f.stratum:
        sql += (
            " AND c.item_id IN (SELECT item_id FROM temp.view_strata WHERE run_id=? AND key=? "
            "AND value=?)"
        )
        args += [run_id, *f.stratum]
    if f.score_min is not None:
        sql += " AND g.score >= ?"
        args.append(f.score_min)
    if f.score_max is not None:
        sql += " AND g.score <= ?"
        args.append(f.score_max)
    if f.error_kind:
        sql += " AND c.ok = 0 AND c.error_kind=?"
        args.append(f.error_kind)
    if f.safeguard:
        sql += (
            " AND (c.model, c.item_id) IN (SELECT model, item_id FROM safeguard_flags WHERE "
            "run_id=? AND detector=?)"
        )
        args += [run_id, f.safeguard]
    if f.sort != "item":
        sql += " AND g.score IS NOT NULL"  # a listing by score holds the scored grades
    return sql, args


def grade_page(db, run_id: str, f: Filter) -> Listing:
    """One page of the run's calls with the grader's grades, matching the filter, in its order,
    after `f.after`. A call the grader did not grade (an error, say) has no status or score."""
    sql, args = _where(run_id, f)
    key = (
        ("model", "item_id", "epoch")
        if f.sort == "item"
        else ("score", "model", "item_id", "epoch")
    )
    side = "g." if _by_grade(f) else "c."
    order = SORTS[f.sort].replace("c.", side)
    if f.after:
        cols = ", ".join(side + k for k in key)
        sql += f" AND ({cols}) {'<' if f.sort == 'highest' else '>'} ({', '.join('?' * len(key))})"
        args += list(f.after)
    found = [
        {
            "model": m,
            "item_id": i,
            "epoch": e,
            "call_error": None if ok else kind,
            "status": st,
            "score": sc,
            "detail": json.loads(d) if d and d != "{}" else {},
        }
        for m, i, e, ok, kind, st, sc, d in db.execute(
            "SELECT c.model, c.item_id, c.epoch, c.ok, c.error_kind, g.status, g.score, g.detail"
            f"{sql} ORDER BY {order} LIMIT ?",
            [*args, f.size + 1],
        )
    ]
    more = len(found) > f.size
    rows = found[: f.size]
    last = rows[-1] if rows else None
    return Listing(rows, tuple(last[k] for k in key) if more and last else None)


def error_kinds(db, run_id: str) -> list[str]:
    """The error kinds the run's model calls ended with (the filter's choices)."""
    return [
        k
        for (k,) in db.execute(
            "SELECT DISTINCT error_kind FROM calls WHERE run_id=? AND ok=0 AND error_kind IS NOT "
            "NULL ORDER BY 1",
            (run_id,),
        )
    ]


def safeguard_detectors(db, run_id: str) -> list[str]:
    """The detectors that flagged some item of the run (at its last `holdout check`)."""
    return [
        d
        for (d,) in db.execute(
            "SELECT DISTINCT detector FROM safeguard_flags WHERE run_id=? ORDER BY 1", (run_id,)
        )
    ]


def decisions(db, run_id: str, item_id: str) -> list[dict]:
    """People's decisions on an item: reviewer, model, epoch, scores, flag, comment (as stored:
    encrypted for a held-out run), when."""
    keys = ("id", "reviewer", "model", "epoch", "scores", "flag", "comment", "done")
    return [
        dict(zip(keys, r))
        for r in db.execute(
            "SELECT id, reviewer, model, epoch, scores, flag, comment, done FROM assignments "
            "WHERE run_id=? AND item_id=? AND done IS NOT NULL ORDER BY model, epoch, reviewer",
            (run_id, item_id),
        )
    ]
