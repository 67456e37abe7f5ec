"""The human review loop: reviewers, routing outputs to people, assignment, decisions, quality.

Tables live in the run store (inside the boundary). Tokens are stored hashed. Routing policy, from
the `human:` grader of the suite or run config:
    route: {sample: 0.05, when: [judge_disagreement, low_judge_confidence], gold: gold.jsonl,
            hooks: [mod:fn]}
    overlap: 3                 # reviewers per item, never the same one twice, matched on language
    rubric: same-as-judge      # or {criteria: [...]}
    compare: pairwise          # optional: people compare each output with the pairwise
                               # grader's baseline
    push: {hook: mod:fn, destination: name}   # send assignments to your own tool
Held-out text goes to a push hook only if the run config lists its destination under
`trusted_destinations`; otherwise the push is refused. Gold items (a JSONL of {"item_id", "model",
"scores": {criterion: value}}) are mixed in unannounced
and measure each reviewer. A hook is `fn(run_id, grades) -> [(model, item_id, epoch), ...]`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import random
import secrets
import time
from collections import defaultdict
from pathlib import Path

from .. import clock, stats
from ..errors import ConfigError, HoldoutError
from ..sqlite import upgrade
from ..store import STORE_SCHEMA

FLAGS = ("ambiguous", "broken")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


LINK_HOURS = 72  # a login link not used within this is dead
SESSION_HOURS = 12


def setup(db) -> None:
    """The review tables are the run store's (harness/store.py), at its schema version."""
    upgrade(db, STORE_SCHEMA, "the run store")


def add_reviewer(
    db,
    name: str,
    languages: list[str],
    country: str | None = None,
    age_band: str | None = None,
    education: str | None = None,
    *,
    link_hours: float = LINK_HOURS,
) -> str:
    """Register (or re-issue) a reviewer; returns a one-time login token (only its hash is stored),
    valid for `link_hours`. Re-issuing ends the reviewer's open sessions and any earlier link."""
    setup(db)
    token = secrets.token_urlsafe(24)
    with db:
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT INTO reviewers (name, token_hash, languages, country, age_band, education, "
            "created, "
            "token_expires) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(name) DO UPDATE SET "
            "token_hash=excluded.token_hash, token_expires=excluded.token_expires, "
            "languages=excluded.languages, "
            "country=excluded.country",
            (
                name,
                _hash(token),
                ",".join(languages),
                country,
                age_band,
                education,
                clock.now(),
                clock.now() + link_hours * 3600,
            ),
        )
        db.execute("DELETE FROM review_sessions WHERE reviewer=?", (name,))
    return token


def revoke(db, name: str) -> bool:
    """Kill a reviewer's login link and sessions (their decisions stay). False: no such reviewer."""
    setup(db)
    with db:
        db.execute("BEGIN IMMEDIATE")
        found = db.execute(
            "UPDATE reviewers SET token_hash=NULL, token_expires=NULL WHERE name=?", (name,)
        ).rowcount
        db.execute("DELETE FROM review_sessions WHERE reviewer=?", (name,))
    return bool(found)


def login(db, token: str) -> str | None:
    """Exchange a one-time token for a session id (the token is spent). None if it is unknown, spent
    or expired."""
    with db:
        db.execute("BEGIN IMMEDIATE")
        row = db.execute(
            "SELECT name FROM reviewers WHERE token_hash=? AND token_expires>?",
            (_hash(token), clock.now()),
        ).fetchone()
        if not row:
            return None
        session = secrets.token_urlsafe(32)
        db.execute(
            "UPDATE reviewers SET token_hash=NULL, token_expires=NULL WHERE name=?", (row[0],)
        )
        db.execute(
            "INSERT INTO review_sessions VALUES (?,?,?)",
            (_hash(session), row[0], clock.now() + SESSION_HOURS * 3600),
        )
    return session


def logout(db, session: str | None) -> None:
    if session:
        db.execute("DELETE FROM review_sessions WHERE session_hash=?", (_hash(session),))


def reviewer_for(db, session: str | None) -> str | None:
    if not session:
        return None
    row = db.execute(
        "SELECT reviewer FROM review_sessions WHERE session_hash=? AND expires>?",
        (_hash(session), clock.now()),
    ).fetchone()
    return row[0] if row else None


def human_spec(graders: list[dict]) -> dict:
    spec = next((g["human"] for g in graders if "human" in g), None)
    if spec is None:
        raise HoldoutError(
            "no `human:` grader in the suite or run config; nothing routes items to review"
        )
    return spec


PREFERENCE = {
    "name": "preference",
    "scale": [1, 5],
    "guide": "1: response 1 much better, 2: better, 3: tie, 4: response 2 better, 5: much better",
}


def pairwise_baseline(spec: dict, graders: list[dict]) -> str | None:
    if spec.get("compare") != "pairwise":
        return None
    pair = next((g["pairwise"] for g in graders if "pairwise" in g), None)
    if pair is None:
        raise ConfigError(
            "human.compare: pairwise, but there is no pairwise grader to take the baseline from"
        )
    return pair["baseline"]


def swapped(assignment_id: str) -> bool:
    """Whether the model's output is shown first: fixed per assignment, random across
    assignments."""
    return int(hashlib.sha256(assignment_id.encode()).hexdigest(), 16) % 2 == 1


def model_preference(assignment_id: str, answer: int) -> float:
    """A 1-5 answer about (response 1, response 2) as the model's preference in [0, 1] against the
    baseline."""
    toward_2 = (answer - 1) / 4  # 0: response 1 much better ... 1: response 2 much better
    return 1 - toward_2 if swapped(assignment_id) else toward_2


def criteria_for(spec: dict, graders: list[dict]) -> list[dict]:
    if spec.get("compare") == "pairwise":
        return [PREFERENCE]
    rubric = spec.get("rubric", "same-as-judge")
    if rubric == "same-as-judge":
        judge = next((g["rubric"] for g in graders if "rubric" in g), None)
        if judge is None:
            raise ConfigError(
                "human.rubric: same-as-judge, but there is no rubric grader to copy criteria from"
            )
        return judge["criteria"]
    return rubric["criteria"]


def load_gold(path: Path | None) -> dict[tuple, dict]:
    if not path:
        return {}
    gold = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            try:
                obj = json.loads(line)
                gold[(obj["model"], obj["item_id"], obj.get("epoch", 0))] = obj["scores"]
            except (ValueError, KeyError, TypeError):
                raise ConfigError(
                    f'{path}:{n}: expected {{"item_id", "model", "scores": {{criterion: value}}}}'
                ) from None
    return gold


def route(
    db,
    run_id: str,
    spec: dict,
    grades: list[dict],
    outputs: dict,
    items: dict,
    seed: int = 0,
    base: Path = Path("."),
    baseline: str | None = None,
) -> dict:
    """Queue outputs for people and assign them; returns counts by reason. Idempotent: a re-route
    adds nothing twice. With a `baseline`, each queued output is compared with the baseline's output
    for the same item."""
    setup(db)
    rules = spec.get("route", {})
    rng = random.Random(seed)
    chosen: dict[tuple, str] = {}
    if baseline is not None:
        outputs = {
            k: v
            for k, v in outputs.items()
            if k[0] != baseline and (baseline, k[1], k[2]) in outputs
        }
        grades = [g for g in grades if (g["detail"] or {}).get("baseline") == baseline]
    for key in sorted(outputs):
        if rng.random() < rules.get("sample", 0.0):
            chosen.setdefault(key, "sample")
    for g in grades:
        key, detail = (g["model"], g["item_id"], g["epoch"]), g["detail"] or {}
        if "judge_disagreement" in rules.get("when", []) and (
            detail.get("disagreement", 0) >= rules.get("disagreement", 0.25)
            or detail.get("consistent") is False
        ):
            chosen.setdefault(key, "judge_disagreement")
        if "low_judge_confidence" in rules.get("when", []) and (
            detail.get("confidence") or 1
        ) < rules.get("confidence", 0.5):
            chosen.setdefault(key, "low_judge_confidence")
    for hook in rules.get("hooks", []):
        module, _, fn = hook.partition(":")
        try:
            extra = getattr(importlib.import_module(module), fn)(run_id, grades)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"human.route.hooks: cannot load {hook!r} ({e})") from None
        for key in extra:
            chosen.setdefault(tuple(key), f"hook:{fn}")
    gold = load_gold((base / rules["gold"]) if rules.get("gold") else None)
    for key in gold:
        if key in outputs:
            chosen[key] = "gold"  # mixed in unannounced: the reviewer sees no difference
    reviewers = [
        (n, set(filter(None, (langs or "").split(","))))
        for n, langs in db.execute("SELECT name, languages FROM reviewers ORDER BY name")
    ]
    if chosen and not reviewers:
        raise HoldoutError(
            "no reviewers: add some with `holdout review add-reviewer NAME --languages en`"
        )
    load = defaultdict(
        int,
        {
            r: n
            for r, n in db.execute(
                "SELECT reviewer, COUNT(*) FROM assignments WHERE done IS NULL GROUP BY reviewer"
            )
        },
    )
    overlap = spec.get("overlap", 1)
    counts = defaultdict(int)
    for key, reason in chosen.items():
        have = {
            r
            for (r,) in db.execute(
                "SELECT reviewer FROM assignments WHERE run_id=? AND model=? AND item_id=? AND "
                "epoch=?",
                (run_id, *key),
            )
        }
        lang = items[key[1]].metadata.get("language") if key[1] in items else None
        able = [
            r
            for r, langs in reviewers
            if r not in have and (lang is None or not langs or lang in langs)
        ]
        able.sort(key=lambda r: (load[r], r))
        for r in able[: max(0, overlap - len(have))]:
            db.execute(
                "INSERT INTO assignments(id, run_id, model, item_id, epoch, reviewer, reason, "
                "gold, assigned, baseline) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    secrets.token_urlsafe(12),
                    run_id,
                    *key,
                    r,
                    reason,
                    json.dumps(gold[key]) if key in gold else None,
                    time.time(),
                    baseline,
                ),
            )
            load[r] += 1
            counts[reason] += 1
    return dict(counts)


def next_assignment(db, reviewer: str, run_ids) -> dict | None:
    """The reviewer's oldest open assignment among the runs being served."""
    runs = sorted(run_ids)
    row = db.execute(
        "SELECT id, run_id, model, item_id, epoch FROM assignments WHERE reviewer=? AND done IS "
        "NULL "
        f"AND run_id IN ({','.join('?' * len(runs))}) ORDER BY assigned, id LIMIT 1",
        (reviewer, *runs),
    ).fetchone()
    if not row:
        return None
    db.execute(
        "UPDATE assignments SET opened=COALESCE(opened, ?) WHERE id=?", (time.time(), row[0])
    )
    return dict(zip(("id", "run_id", "model", "item_id", "epoch"), row))


def comment_sealer(cipher, run_id: str):
    """For a held-out run, how a reviewer's comment is stored: encrypted like outputs (it may quote
    the item)."""
    if cipher is None:
        return None
    return lambda assignment_id, text: cipher.encrypt_output(
        run_id, "review-comment", assignment_id, text
    )


def submit(
    db,
    reviewer: str,
    assignment_id: str,
    scores: dict,
    criteria: list[dict],
    flag: str | None,
    comment: str,
    *,
    seal=None,
) -> None:
    """Validate and save a decision; only the assigned reviewer may submit it. With `seal` (held-out
    runs) the comment is stored encrypted."""
    row = db.execute(
        "SELECT reviewer, done FROM assignments WHERE id=?", (assignment_id,)
    ).fetchone()
    if not row or row[0] != reviewer:
        raise PermissionError("not your assignment")
    if row[1] is not None:
        raise ValueError("already submitted")
    clean = {}
    for c in criteria:
        lo, hi = c["scale"]
        v = scores.get(c["name"])
        try:
            v = int(v)
        except (TypeError, ValueError):
            if flag:
                continue  # a flagged item may be left unscored
            raise ValueError(f"{c['name']}: expected a whole number from {lo} to {hi}") from None
        if not lo <= v <= hi:
            raise ValueError(f"{c['name']}: expected a whole number from {lo} to {hi}, got {v}")
        clean[c["name"]] = v
    if flag and flag not in FLAGS:
        raise ValueError(f"flag: expected one of {', '.join(FLAGS)}")
    if len(comment) > 2000:
        raise ValueError("comment: at most 2000 characters")
    if (
        "preference" in clean
        and db.execute("SELECT baseline FROM assignments WHERE id=?", (assignment_id,)).fetchone()[
            0
        ]
    ):
        clean["model_preference"] = model_preference(assignment_id, clean["preference"])
    stored = seal(assignment_id, comment) if seal is not None and comment else comment
    db.execute(
        "UPDATE assignments SET done=?, scores=?, flag=?, comment=? WHERE id=?",
        (time.time(), json.dumps(clean), flag, stored, assignment_id),
    )


def import_decisions(db, run_id: str, path: Path, criteria: list[dict], *, seal=None) -> int:
    """Decisions made in another tool: {"reviewer", "model", "item_id", "epoch"?, "scores", "flag"?,
    "comment"?} per line. Every line is validated first; nothing is saved unless all are good."""
    todo, errors = [], []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            key = (run_id, obj["model"], obj["item_id"], obj.get("epoch", 0), obj["reviewer"])
        except (ValueError, KeyError, TypeError):
            errors.append(
                f"{path}:{n}: expected a JSON object with reviewer, model, item_id and scores"
            )
            continue
        row = db.execute(
            "SELECT id, reviewer FROM assignments WHERE run_id=? AND model=? AND item_id=? AND "
            "epoch=? "
            "AND reviewer=?",
            key,
        ).fetchone()
        if not row:
            errors.append(
                f"{path}:{n}: item {obj['item_id']!r} of {obj['model']!r} is not assigned to "
                f"{obj['reviewer']!r}"
            )
            continue
        todo.append((n, row[1], row[0], obj))
    if errors:
        raise HoldoutError(
            f"{path}: {len(errors)} bad decision(s); nothing was imported:\n"
            + "\n".join(errors[:20])
        )
    with db:
        db.execute("BEGIN IMMEDIATE")
        for n, reviewer, aid, obj in todo:
            try:
                submit(
                    db,
                    reviewer,
                    aid,
                    obj.get("scores") or {},
                    criteria,
                    obj.get("flag"),
                    obj.get("comment", ""),
                    seal=seal,
                )
            except ValueError as e:
                raise HoldoutError(f"{path}:{n}: {e}; nothing was imported") from None
    return len(todo)


def _judge_view(grade: dict) -> dict:
    """What a judge said of an output, keyed like people's answers: rubric criteria, or the pairwise
    preference."""
    detail = grade["detail"] or {}
    return (
        {"model_preference": grade["score"]} if "baseline" in detail else detail.get("criteria", {})
    )


def status(
    db, run_id: str, criteria: list[dict], grades: list[dict], min_gold_accuracy: float = 0.7
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


def human_summary(db, run_id: str, model: str, grades: list[dict], min_size: int) -> dict | None:
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


def push(
    db,
    run_id: str,
    spec: dict,
    trusted: tuple[str, ...],
    heldout: bool,
    items: dict,
    outputs: dict,
    criteria: list[dict],
) -> int:
    """Hand open assignments to the team's own tool via `human.push.hook(destination, rows)`.
    Held-out text is released only to a destination the run config declares trusted."""
    cfg = spec.get("push")
    if not cfg:
        return 0
    destination = cfg.get("destination", "")
    if heldout and destination not in trusted:
        raise ConfigError(
            f"human.push: destination {destination!r} is not in the run config's "
            "trusted_destinations; "
            "refusing to send held-out text to it"
        )
    module, _, fn = cfg.get("hook", "").partition(":")
    try:
        hook = getattr(importlib.import_module(module), fn)
    except (ImportError, AttributeError, ValueError) as e:
        raise ConfigError(f"human.push.hook: cannot load {cfg.get('hook')!r} ({e})") from None
    from ..sealed import reveal

    rows = []
    for aid, model, item_id, epoch, reviewer in db.execute(
        "SELECT id, model, item_id, epoch, reviewer FROM assignments WHERE run_id=? AND done IS "
        "NULL",
        (run_id,),
    ):
        output = outputs.get((model, item_id, epoch))
        rows.append(
            {
                "assignment": aid,
                "reviewer": reviewer,
                "item_id": item_id,
                "criteria": criteria,
                "prompt": reveal(items[item_id].prompt),
                "output": reveal(output) if output is not None else None,
            }
        )
    hook(destination, rows)
    return len(rows)
