"""A run's figures for the view's run page: calls, errors and cost per model; per grader, the
model x stratum table of scores with 95% CIs and error rates. Aggregated in SQL (one pass over the
grades per stratum key), so the page costs the same whatever the page before it did.

The CIs here are normal intervals over item means (epochs of an item averaged first): quick to
compute on every view. The report's and the scorecard's bootstrap CIs are the reference; at the
sizes a stratum is shown (10 items or more) the two agree to a few thousandths."""

from __future__ import annotations

import math

Z95 = 1.959963984540054
MIN_ITEMS = 10  # a stratum smaller than this shows its n and no score (as on scorecards)


def load_strata(db, run_id: str, items: dict, keys) -> None:
    """Each item's stratum values into a temporary table of this connection (never written to
    the store's file), for the filters and the table to join on."""
    db.execute(
        "CREATE TEMP TABLE IF NOT EXISTS view_strata (run_id TEXT, key TEXT, item_id TEXT, "
        "value TEXT, PRIMARY KEY (run_id, key, item_id)) WITHOUT ROWID"
    )
    db.execute(
        "CREATE INDEX IF NOT EXISTS temp.view_strata_value ON view_strata (run_id, key, value)"
    )
    with db:
        db.execute("DELETE FROM temp.view_strata WHERE run_id=?", (run_id,))
        db.executemany(
            "INSERT INTO temp.view_strata VALUES (?, ?, ?, ?)",
            (
                (run_id, key, item_id, str(it.metadata.get(key, "(none)")))
                for item_id, it in items.items()
                for key in keys
            ),
        )


def stratum_values(db, run_id: str) -> dict[str, list[str]]:
    """key -> its values (the stratum filter's choices)."""
    out: dict = {}
    for key, value in db.execute(
        "SELECT DISTINCT key, value FROM temp.view_strata WHERE run_id=? ORDER BY 1, 2", (run_id,)
    ):
        out.setdefault(key, []).append(value)
    return out


def run_figures(db, run_id: str) -> dict:
    """Per model: calls, errors by kind, cost, pacing (retries, mean latency, calls per second
    over the span the calls finished in); per grader and model: graded, errors, mean score."""
    models: dict = {}
    pacing = {
        model: {
            "retries": retries or 0,
            "latency_s": latency,
            "per_second": n / span if span else None,
        }
        for model, n, retries, latency, span in db.execute(
            "SELECT model, COUNT(*), SUM(attempts - 1), AVG(latency_s), "
            "MAX(finished) - MIN(finished) FROM calls WHERE run_id=? GROUP BY model",
            (run_id,),
        )
    }
    for model, ok, kind, n, cost in db.execute(
        "SELECT model, ok, error_kind, COUNT(*), COALESCE(SUM(cost_usd), 0) FROM calls "
        "WHERE run_id=? GROUP BY model, ok, error_kind",
        (run_id,),
    ):
        m = models.setdefault(
            model, {"calls": 0, "errors": {}, "cost_usd": 0.0, **pacing.get(model, {})}
        )
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


def _cell(n: int, mean: float, mean_sq: float) -> dict:
    if n < MIN_ITEMS:
        return {"n": n, "suppressed": True}
    var = max(mean_sq - mean * mean, 0.0) * n / (n - 1)
    half = Z95 * math.sqrt(var / n)
    return {"n": n, "mean": mean, "ci_low": mean - half, "ci_high": mean + half}


def strata_table(db, run_id: str, grader: str, key: str) -> dict:
    """{value: {model: {n, mean, ci_low, ci_high, error_rate}}} for one grader and stratum key:
    the grader's scores (item means) and the model calls' error rate in each stratum."""
    table: dict = {}
    for model, value, n, mean, mean_sq in db.execute(
        "SELECT g.model, s.value, COUNT(*), AVG(g.m), AVG(g.m * g.m) FROM (SELECT model, "
        "item_id, AVG(score) AS m FROM grades WHERE run_id=? AND grader=? AND status='ok' "
        "GROUP BY model, item_id) g JOIN temp.view_strata s ON s.run_id=? AND s.key=? AND "
        "s.item_id=g.item_id GROUP BY g.model, s.value",
        (run_id, grader, run_id, key),
    ):
        table.setdefault(value, {})[model] = _cell(n, mean, mean_sq)
    for model, value, calls, errors in db.execute(
        "SELECT c.model, s.value, COUNT(*), SUM(1 - c.ok) FROM calls c JOIN temp.view_strata s "
        "ON s.run_id=? AND s.key=? AND s.item_id=c.item_id WHERE c.run_id=? "
        "GROUP BY c.model, s.value",
        (run_id, key, run_id),
    ):
        cell = table.setdefault(value, {}).setdefault(model, {"n": 0, "suppressed": True})
        cell["error_rate"] = errors / calls if calls else None
    return dict(sorted(table.items()))
