"""A lab's scorecard: the truth about its own models on the held-out suite, and nothing else.

Only numbers and the lab's own model names: no item text, no outputs, and other labs' models only
as the field's aggregates (median and best), unless the run's leaderboard is public.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict

from .. import paired, stats
from ..callstats import call_stats
from ..checks import check_run
from ..report import build_report, by_headline, headline_metric
from ..review import quality
from ..store import Store

SCHEMA_ID = "holdout.scorecard/1"


MIN_FIELD_SIZE = 3  # other models a field aggregate needs before its median and best are shown


def _primary(report: dict) -> tuple[str | None, str | None]:
    """(grader, metric) the headline and ranking use: the run config's `headline:`, else its first
    grader."""
    name = report.get("headline")
    if name is None:
        return None, None
    return name, headline_metric(report["graders"][name])


def ranks(entries: dict[str, dict], metric: str) -> dict[str, dict]:
    """Rank with uncertainty: a model's best possible rank counts only models clearly better (CI
    entirely above), its worst counts every model not clearly worse. Overlapping CIs share ranks."""
    out = {}
    for m, e in entries.items():
        if e.get(metric) is None:
            continue
        better = sum(
            1
            for o, f in entries.items()
            if o != m and f.get(metric) is not None and f["ci_low"] > e["ci_high"]
        )
        not_worse = sum(
            1
            for o, f in entries.items()
            if o != m and f.get(metric) is not None and f["ci_high"] >= e["ci_low"]
        )
        point = 1 + sum(
            1 for o, f in entries.items() if o != m and (f.get(metric) or -1) > e[metric]
        )
        out[m] = {"rank": point, "best": 1 + better, "worst": 1 + not_worse, "of": len(entries)}
    return out


def _segments(
    grades: list[dict], grader: str, model: str, *, items: dict, strata, min_size: int, seed: int
) -> dict:
    by = defaultdict(lambda: defaultdict(list))
    for g in grades:
        if (
            g["grader"] == grader
            and g["model"] == model
            and g["status"] == "ok"
            and g["item_id"] in items
        ):
            meta = items[g["item_id"]].metadata
            for key in strata:
                by[key][str(meta.get(key, "(none)"))].append((g["item_id"], g["score"]))
    out: dict = {}
    shown = []  # (key, value, items, rows): the segments big enough to show, bootstrapped together
    for key, values in by.items():
        out[key] = {}
        for value, rows in sorted(values.items()):
            n_items = len({i for i, _ in rows})
            if n_items < min_size:
                out[key][value] = {"suppressed": True, "reason": f"fewer than {min_size} items"}
            else:
                out[key][value] = None  # keeps the sorted order
                shown.append((key, value, n_items, rows))
    samples = [stats.clustered([s for _, s in rows], [i for i, _ in rows]) for *_, rows in shown]
    for (key, value, n_items, _), b in zip(shown, stats.bootstrap_means(samples, seed=seed)):
        out[key][value] = {
            "n": n_items,
            "mean": b["mean"],
            "ci_low": b["ci_low"],
            "ci_high": b["ci_high"],
        }
    return out


def _call_figures(c: dict) -> dict:
    """A model's calls, errors, cost, tokens and latency, from its `call_stats`."""
    n = c["calls"]
    return {
        "calls": n,
        "error_rate": c["errors"] / n if n else None,
        "refusal_rate": c["error_kinds"].get("content_filter", 0) / n if n else None,
        "error_kinds": c["error_kinds"],
        "cost": {
            "total_usd": c["cost_usd"],
            "per_1k_items_usd": c["cost_usd"] / n * 1000 if n else None,
        },
        "tokens": {"input": c["input_tokens"], "output": c["output_tokens"]},
        "latency_s": {"p50": c["latency_p50_s"], "p95": c["latency_p95_s"]},
    }


def _scores_by_grader(report: dict, grades: list[dict]) -> dict:
    """grader -> one model's `paired.item_scores`, for each grader that scores (not pairwise)."""
    return {
        name: paired.item_scores([g for g in grades if g["grader"] == name and g["status"] == "ok"])
        for name, section in report["graders"].items()
        if section["kind"] == "scores"
    }


def _own_pairs(own_items: dict[str, dict], *, seed: int) -> dict:
    """Per grader, every pair of the lab's own models (in the card's order, the headline's best
    first): the difference on the items both scored, with a paired bootstrap CI. Only the lab's
    models: another lab's never enter."""
    models = list(own_items)
    out = {}
    for grader in sorted({g for scores in own_items.values() for g in scores}):
        names = [
            (a, b)
            for i, a in enumerate(models)
            for b in models[i + 1 :]
            if grader in own_items[a] and grader in own_items[b]
        ]
        pairs = [paired.aligned(own_items[b][grader], own_items[a][grader]) for a, b in names]
        out[grader] = [
            {"model": a, "versus": b, **d.summary()}
            for (a, b), d in zip(names, paired.differences(pairs, seed=seed))
        ]
    return {g: rows for g, rows in out.items() if rows}


def _field(report: dict, owned, min_field_size: int) -> dict:
    """Per grader, the field's size, median and best (suppressed with too few other models)."""
    field = {}
    for name, g in report["graders"].items():
        key = "mean" if g["kind"] == "scores" else "win_rate"
        values = [e[key] for e in g["models"].values() if e.get(key) is not None]
        others = sum(m not in owned for m, e in g["models"].items() if e.get(key) is not None)
        if not values:
            continue
        # with one or two others, the median and best would be their scores
        if others < min_field_size:
            field[name] = {
                "models": len(values),
                "metric": key,
                "suppressed": True,
                "reason": f"fewer than {min_field_size} other models",
            }
        else:
            field[name] = {
                "models": len(values),
                "median": statistics.median(values),
                "best": max(values),
                "metric": key,
            }
    return field


def build_scorecard(
    store: Store,
    run_id: str,
    lab: str | None,
    *,
    owned: list[str],
    items: dict,
    strata,
    pool: dict,
    min_segment_size: int = 10,
    seed: int = 0,
    public: bool = False,
    safeguard_settings: dict | None = None,
    report: dict | None = None,
    min_field_size: int = MIN_FIELD_SIZE,
    provenance: dict | None = None,
    rows_sha256: str | None = None,
    calls: dict | None = None,
    checks: dict | None = None,
    history: dict | None = None,
) -> dict:
    """`rows_sha256`, `calls`, `checks`: the store rows' fingerprint, `call_stats` and the
    safeguard checks (of these models at least), if the caller computed them once for several
    cards; `history`: `linking.history` of the run (the lab's models across pool versions)."""
    report = report or build_report(store, run_id, seed=seed)
    if checks is None and owned:
        checks = check_run(store, run_id, safeguard_settings, models=list(owned), items=items)
    calls = calls if calls is not None else call_stats(store, run_id)
    primary, metric = _primary(report)
    everyone = report["graders"][primary]["models"] if primary else {}
    rank = ranks(everyone, metric) if primary else {}
    card = {
        "schema": SCHEMA_ID,
        "run_id": run_id,
        "lab": lab,
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "pool": pool,
        "primary": {"grader": primary, "metric": metric},
        "seed": seed,
        "min_segment_size": min_segment_size,
        "models": {},
        "field": {},
    }
    own_items: dict[str, dict] = {}  # model -> grader -> its item scores, to compare the lab's
    for model in by_headline(report, owned):
        c = calls.get(model)
        if c is None:
            continue
        # one model's at a time, by grader (each a seek on the grades' key, not a scan of the run)
        grades = [
            g for name in report["graders"] for g in store.iter_grades(run_id, name, model=model)
        ]
        entry = {
            "graders": {},
            "rank": rank.get(model),
            **_call_figures(c),
            "safeguards": {
                d: {k: r[k] for k in ("flagged", "rate", "count", "threshold")}
                for d, r in (checks or {}).get(model, {}).items()
            },
        }
        for name, g in report["graders"].items():
            if model in g["models"]:
                entry["graders"][name] = {"kind": g["kind"], **g["models"][model]}
                if g["kind"] == "pairwise":
                    entry["graders"][name]["baseline"] = g["baseline"]
                    entry["graders"][name]["lc_reference"] = g.get("difficulty_from")
                    for view in ("bradley_terry", "bradley_terry_style_controlled"):
                        if model in g.get(view, {}):
                            entry["graders"][name][view] = g[view][model]
                if strata:
                    entry["graders"][name]["segments"] = _segments(
                        grades,
                        name,
                        model,
                        items=items,
                        strata=strata,
                        min_size=min_segment_size,
                        seed=seed,
                    )
        human = quality.human_summary(
            store.db, run_id, model, grades=grades, min_size=min_segment_size
        )
        if human:
            entry["human_review"] = human
        card["models"][model] = entry
        own_items[model] = _scores_by_grader(report, grades)
    card["own_models_compared"] = _own_pairs(own_items, seed=seed)
    # the lab's calls still in batches at the provider: this card leaves them out
    card["awaiting_batches"] = {
        m: n for m, n in report.get("awaiting_batches", {}).items() if m in owned
    }
    card["history"] = _own_history(history, owned)
    card["field"] = _field(report, owned, min_field_size)
    card["min_field_size"] = min_field_size
    if provenance is not None:
        card["provenance"] = provenance
    card["built_from"] = {"store_rows_sha256": rows_sha256 or store.rows_fingerprint(run_id)}
    if public:
        card["all_models"] = {
            m: {
                "rank": rank.get(m),
                metric: e.get(metric),
                "ci_low": e.get("ci_low"),
                "ci_high": e.get("ci_high"),
            }
            for m, e in everyone.items()
        }
    return card


def _own_history(history: dict | None, owned) -> dict | None:
    """The lab's own models across pool versions: the linked score, and each version's mean on the
    scale with its CI (a trend), marked where a version is retired. Other models appear only in
    the versions' counts of anchors."""
    if history is None:
        return None
    return {
        "scale": history["scale"],
        "grader": history["grader"],
        "models": {m: e for m, e in history["models"].items() if m in owned},
        "versions": {
            p: {"status": e["status"], "linked": e["linked"], "anchors": len(e["anchors"])}
            for p, e in history["versions"].items()
        },
    }


def build_leaderboard(
    store: Store, run_id: str, public: bool, *, seed: int = 0, report: dict | None = None
) -> dict:
    """The public view: per grader the field's size, median and best; model names only if the run
    says public."""
    report = report or build_report(store, run_id, seed=seed)
    card = build_scorecard(
        store,
        run_id,
        None,
        owned=[],
        items={},
        strata=(),
        pool={},
        seed=seed,
        public=public,
        report=report,
        min_field_size=0 if public else MIN_FIELD_SIZE,
    )
    board = {
        "schema": "holdout.leaderboard/1",
        "run_id": run_id,
        "generated": card["generated"],
        "public": public,
        "field": card["field"],
        "primary": card["primary"],
    }
    if public:
        board["models"] = card["all_models"]
        pairwise = {n: g for n, g in report["graders"].items() if g["kind"] == "pairwise"}
        board["pairwise"] = {
            n: {
                m: {k: e[k] for k in ("win_rate", "se", "lc_win_rate", "lc_se")}
                for m, e in g["models"].items()
            }
            for n, g in pairwise.items()
        }
    return board
