"""Routing outputs to people: which ones (a sample, judge disagreement or low confidence, hooks,
gold mixed in unannounced), to whom (never the same reviewer twice, matched on language), and
each reviewer's next assignment."""

from __future__ import annotations

import json
import random
import secrets
import time
from collections import defaultdict
from pathlib import Path

from ..errors import HoldoutError
from ..hooks import load_hook
from .reviewers import setup
from .specs import load_gold


def route(
    db,
    run_id: str,
    spec: dict,
    *,
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
        extra = load_hook(hook, what="human.route.hooks", base_dir=base)(run_id, grades)
        for key in extra:
            chosen.setdefault(tuple(key), f"hook:{hook.partition(':')[2]}")
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
