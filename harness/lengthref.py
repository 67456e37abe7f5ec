"""A pool's length-control reference, kept in the run store: the battles `holdout difficulty` made
the pool's reference (model, item, preference, length difference), and where they came from."""

from __future__ import annotations

import json
import time

from .store import Store


def save_length_reference(
    store: Store, pool: str, *, run_id: str, grader: str, rows: list[tuple]
) -> None:
    """Replace the pool's reference battles (model, item, preference, length difference) from
    `run_id`."""
    with store.db:
        store.db.execute("BEGIN IMMEDIATE")
        store.db.execute("DELETE FROM length_reference WHERE pool=?", (pool,))
        store.db.executemany(
            "INSERT INTO length_reference VALUES (?,?,?,?,?)",
            [(pool, m, str(i), float(p), float(d)) for m, i, p, d in rows],
        )
        store.db.execute(
            "INSERT INTO length_reference_sources VALUES (?,?,?,?,?) ON CONFLICT (pool) DO UPDATE "
            "SET run_id=excluded.run_id, grader=excluded.grader, models=excluded.models, "
            "created=excluded.created",
            (pool, run_id, grader, json.dumps(sorted({r[0] for r in rows})), time.time()),
        )


def load_length_reference(
    store: Store, pool: str, grader: str | None = None
) -> tuple[list, dict] | None:
    """(reference battles, where they came from) for a pool, or None if none was stored.
    `grader`: the reference is used for the grader it was made from only (another judge has
    another taste)."""
    src = store.db.execute(
        "SELECT run_id, grader, models, created FROM length_reference_sources WHERE pool=?",
        (pool,),
    ).fetchone()
    if src is None or (grader is not None and src[1] != grader):
        return None
    rows = [
        tuple(r)
        for r in store.db.execute(
            "SELECT model, item_id, preference, length_diff FROM length_reference WHERE pool=?",
            (pool,),
        )
    ]
    return rows, {
        "run": src[0],
        "grader": src[1],
        "models": json.loads(src[2]),
        "stored": src[3],
    }
