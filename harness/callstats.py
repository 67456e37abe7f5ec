"""Per-model figures of a run's calls, from the store in one pass: counts, errors by kind, tokens,
cost, latency p50/p95. Ids and numbers only: summaries, reports and cards read them."""

from __future__ import annotations

import numpy as np

from .store import Store


def call_stats(store: Store, run_id: str) -> dict[str, dict]:
    """Per model: n, ok, errors by kind, tokens, cost, latency p50/p95. Ids and numbers only, never
    text. Summed by SQLite, so a million calls cost a few queries, not a Python loop."""
    db = store.db
    per: dict[str, dict] = {}
    for model, calls, ok, attempts, tin, tout, cost in db.execute(
        "SELECT model, COUNT(*), SUM(CASE WHEN ok != 0 THEN 1 ELSE 0 END), "
        "SUM(COALESCE(attempts, 0)), "
        "SUM(COALESCE(input_tokens, 0)), SUM(COALESCE(output_tokens, 0)), "
        "SUM(COALESCE(cost_usd, 0.0)) FROM calls WHERE run_id=? GROUP BY model",
        (run_id,),
    ):
        per[model] = {
            "calls": calls,
            "ok": ok,
            "errors": calls - ok,
            "error_kinds": {},
            "finish_reasons": {},
            "input_tokens": tin,
            "output_tokens": tout,
            "cost_usd": round(cost, 6),
            "attempts": attempts,
        }
    for model, kind, n in db.execute(
        "SELECT model, error_kind, COUNT(*) FROM calls WHERE run_id=? AND ok = 0 "
        "GROUP BY model, error_kind",
        (run_id,),
    ):
        per[model]["error_kinds"][kind] = n
    for model, reason, n in db.execute(
        "SELECT model, COALESCE(NULLIF(finish_reason, ''), 'unknown'), COUNT(*) FROM calls "
        "WHERE run_id=? AND ok != 0 GROUP BY 1, 2",
        (run_id,),
    ):
        per[model]["finish_reasons"][reason] = n
    for model, s in per.items():
        cursor = db.execute(
            # a call answered in a batch has no latency of its own (NULL): left out, not 0
            "SELECT latency_s FROM calls WHERE run_id=? AND model=? AND ok != 0 "
            "AND latency_s IS NOT NULL",
            (run_id, model),
        )
        lat = np.sort(np.fromiter((r[0] for r in cursor), float))
        s["latency_p50_s"] = _quantile(lat, 0.5)
        s["latency_p95_s"] = _quantile(lat, 0.95)
    return per


def _quantile(sorted_values: np.ndarray, q: float) -> float | None:
    if not len(sorted_values):
        return None
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return round(float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)), 4)
