"""Per-model figures of a run's calls, from the store in one pass: counts, errors by kind, tokens,
cost, latency p50/p95. Ids and numbers only: summaries, reports and cards read them."""

from __future__ import annotations

from .store import Store


def call_stats(store: Store, run_id: str) -> dict[str, dict]:
    """Per model: n, ok, errors by kind, tokens, cost, latency p50/p95. Ids and numbers only, never
    text."""
    per: dict[str, dict] = {}
    for model, ok, kind, fin, tin, tout, lat, cost, attempts in store.db.execute(
        "SELECT model, ok, error_kind, finish_reason, input_tokens, output_tokens, latency_s, "
        "cost_usd, attempts "
        "FROM calls WHERE run_id=?",
        (run_id,),
    ):
        s = per.setdefault(
            model,
            {
                "calls": 0,
                "ok": 0,
                "errors": 0,
                "error_kinds": {},
                "finish_reasons": {},
                "input_tokens": 0,
                "output_tokens": 0,
                "cost_usd": 0.0,
                "attempts": 0,
                "_lat": [],
            },
        )
        s["calls"] += 1
        s["attempts"] += attempts or 0
        s["input_tokens"] += tin or 0
        s["output_tokens"] += tout or 0
        s["cost_usd"] += cost or 0.0
        if ok:
            s["ok"] += 1
            s["_lat"].append(lat or 0.0)
            s["finish_reasons"][fin or "unknown"] = s["finish_reasons"].get(fin or "unknown", 0) + 1
        else:
            s["errors"] += 1
            s["error_kinds"][kind] = s["error_kinds"].get(kind, 0) + 1
    for s in per.values():
        lat = sorted(s.pop("_lat"))
        s["latency_p50_s"] = _quantile(lat, 0.5)
        s["latency_p95_s"] = _quantile(lat, 0.95)
        s["cost_usd"] = round(s["cost_usd"], 6)
    return per


def _quantile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return round(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo), 4)
