"""`holdout report`: per model, scores with 95% CIs, win rates, Bradley-Terry ratings (plain and
style-controlled), judge agreement, and error rates shown apart from scores. Numbers only."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable

import numpy as np
from rich.console import Console
from rich.table import Table

from . import lengthcontrol, paired, stats, style
from .callstats import call_stats
from .lengthref import load_length_reference
from .store import Store

STYLE_KEYS = ("length", "headers", "lists", "bold")


def _fmt_ci(d: dict, key: str = "mean", pct: bool = False) -> str:
    if not d or d.get(key) is None:
        return "-"
    k = 100 if pct else 1
    return (
        f"{d[key] * k:.1f} [{d['ci_low'] * k:.1f}, {d['ci_high'] * k:.1f}]"
        if pct
        else f"{d[key]:.3f} [{d['ci_low']:.3f}, {d['ci_high']:.3f}]"
    )


def pairwise_section(
    rows: list[dict], baseline: str, seed: int = 0, reference: tuple[list, dict] | None = None
) -> dict:
    """Win rates vs the baseline, LC win rates, BT ratings from every game, and the style-controlled
    view.

    `reference`: the pool's stored length-control reference (`holdout difficulty`): battles of a
    declared set of models, and where they came from. Each model's LC rate is fitted against the
    reference without that model, so it depends on the model and the pool only. Without a stored
    reference, the run's other models serve, and the section says so (`difficulty_from`): then LC
    moves with the company a model keeps."""
    by_model = defaultdict(list)
    for r in rows:
        if r["status"] == "ok":
            by_model[r["model"]].append(r)
    out = {"baseline": baseline, "models": {}}
    battles, weights, covs = [], [], []
    length = lambda r: r["detail"]["style_diff"]["length"]  # noqa: E731
    if reference is None:
        ref_rows = [
            (m, r["item_id"], r["score"], length(r)) for m, rs in by_model.items() for r in rs
        ]
        out["difficulty_from"] = {"this_run_models": len(by_model)}
    else:
        ref_rows, out["difficulty_from"] = reference
    for model, rs in sorted(by_model.items()):
        prefs = [r["score"] for r in rs]
        boot = stats.bootstrap_mean(prefs, clusters=[r["item_id"] for r in rs], seed=seed)
        wr = stats.win_rate(prefs)
        # never a model's own items
        without = lengthcontrol.length_reference([x for x in ref_rows if x[0] != model])
        lc = lengthcontrol.length_controlled_win_rate(
            [(r["item_id"], r["score"], length(r)) for r in rs], without, seed=seed
        )
        out["models"][model] = {
            "win_rate": boot["mean"],
            "ci_low": boot["ci_low"],
            "ci_high": boot["ci_high"],
            "se": wr["se"],
            "n": len(rs),
            "lc_win_rate": lc["lc_win_rate"],
            "lc_se": lc["se"],
            "length_slope": lc["length_slope"],
            "inconsistent_rate": sum(not r["detail"]["consistent"] for r in rs) / len(rs),
        }
        for r in rs:
            # every judge game is a battle; ">>" counts 3 times
            for score, strong in r["detail"]["games"]:
                battles.append((model, baseline, score))
                weights.append(3.0 if strong else 1.0)
                covs.append(r["detail"].get("style") or r["detail"]["style_diff"])
    if battles:
        out["bradley_terry"] = stats.bradley_terry(
            battles, anchor=baseline, weights=weights, seed=seed
        )["ratings"]
        if all("model" in c for c in covs):
            cov, form = style.covariates([(c["model"], c["baseline"]) for c in covs]), "arena-hard"
        # grades made before both sides' counts were kept: raw differences (re-grade for
        # Arena-Hard's form)
        else:
            raw = np.array([[c[k] for k in STYLE_KEYS] for c in covs], dtype=float)
            sd = raw.std(axis=0)
            cov, form = np.where(sd > 0, raw / np.where(sd > 0, sd, 1), 0.0), "raw-differences"
        styled = stats.bradley_terry(
            battles, anchor=baseline, weights=weights, covariates=cov, seed=seed
        )
        out["bradley_terry_style_controlled"] = styled["ratings"]
        out["style_control"] = form
        out["style_coefficients"] = dict(zip(style.COVARIATES, styled["coefficients"]))
    return out


def build_report(
    store: Store,
    run_id: str,
    seed: int = 0,
    *,
    order: list[str] | None = None,
    headline: str | None = None,
    calls: dict | None = None,
) -> dict:
    """`order`: grader names as the config lists them (graders it no longer lists follow, by name);
    `headline`: the grader that heads the report and orders models (default: the first in order);
    `calls`: the run's `call_stats`, if the caller has them."""
    calls = calls if calls is not None else call_stats(store, run_id)
    graders = store.grader_names(run_id)
    order = [n for n in (order or []) if n in graders] + [
        n for n in graders if n not in (order or [])
    ]
    judge_costs = store.judge_costs(run_id)
    report = {
        "run_id": run_id,
        "seed": seed,
        "models": {},
        "graders": {},
        "headline": headline if headline in graders else (order[0] if order else None),
        "judge_cost_usd": judge_costs,
        # calls sent in batches not collected yet, per model: the figures below leave them out
        "awaiting_batches": awaiting_batches(store, run_id),
    }
    for model, c in calls.items():
        report["models"][model] = {
            "calls": c["calls"],
            "errors": c["errors"],
            "error_rate": c["errors"] / c["calls"] if c["calls"] else None,
            "error_kinds": c["error_kinds"],
            "cost_usd": c["cost_usd"],
            "latency_p50_s": c["latency_p50_s"],
            "latency_p95_s": c["latency_p95_s"],
        }
    for grader in order:
        baseline = store.pairwise_baseline(run_id, grader)
        if baseline is not None:
            info = store.run_info(run_id) or {}
            section = pairwise_section(
                list(store.iter_grades(run_id, grader)),
                baseline,
                seed,
                load_length_reference(store, info.get("pool") or "", grader),
            )
            section["kind"] = "pairwise"
        else:
            section = scores_section(store.iter_grades(run_id, grader), seed=seed)
        section["judge_cost_usd"] = judge_costs.get(grader, 0.0)
        section["separability"] = stats.separability(
            {m: (e.get("ci_low"), e.get("ci_high")) for m, e in section["models"].items()}
        )
        report["graders"][grader] = section
    return report


def scores_section(rows: Iterable[dict], *, seed: int) -> dict:
    """Per model: the mean score with a bootstrap CI over items, counts of skipped and failed
    grades, and a rubric's criteria; rows come by model, and one model's are held at a time."""
    section: dict = {"kind": "scores", "models": {}}
    several_judges, samples, per_item = [], {}, {}
    for model, group in itertools.groupby(rows, key=lambda r: r["model"]):
        rs = list(group)
        ok = [r for r in rs if r["status"] == "ok"]
        samples[model] = stats.clustered([r["score"] for r in ok], [r["item_id"] for r in ok])
        per_item[model] = paired.item_scores(ok)
        entry = {
            "graded": len(ok),
            "skipped": sum(r["status"] == "skipped" for r in rs),
            "grade_errors": sum(r["status"] == "error" for r in rs),
        }
        crit = [r["detail"]["criteria"] for r in ok if r["detail"] and "criteria" in r["detail"]]
        if crit:
            entry["criteria"] = {k: float(np.mean([c[k] for c in crit])) for k in crit[0]}
            entry["judge_disagreement"] = float(np.mean([r["detail"]["disagreement"] for r in ok]))
        section["models"][model] = entry
        several_judges += [
            r for r in ok if len((r["detail"] or {}).get("judge_criteria") or ()) > 1
        ]
    # one bootstrap for every model: models graded on the same items share its draws
    boots = stats.bootstrap_means(list(samples.values()), seed=seed)
    for model, boot in zip(samples, boots):
        section["models"][model] = {**boot, **section["models"][model]}
    agreement = _judge_agreement(several_judges)
    if agreement:
        section["judge_agreement"] = agreement
    section["neighbours"] = _neighbours(section["models"], per_item, seed=seed)
    return section


def _neighbours(models: dict, per_item: dict, *, seed: int) -> list[dict]:
    """Each model against the next one down (by mean score): the difference on the items both
    scored, with a paired bootstrap CI. Two overlapping CIs do not mean a tie; this says whether
    the order of neighbours is certain."""
    ranked = sorted(
        (m for m in models if models[m].get("mean") is not None), key=lambda m: -models[m]["mean"]
    )
    names = list(zip(ranked, ranked[1:]))
    pairs = [paired.aligned(per_item[lower], per_item[upper]) for upper, lower in names]
    return [
        {"higher": upper, "lower": lower, **d.summary()}
        for (upper, lower), d in zip(names, paired.differences(pairs, seed=seed))
    ]


def headline_metric(section: dict) -> str:
    return "win_rate" if section["kind"] == "pairwise" else "mean"


def by_headline(report: dict, models) -> list[str]:
    """Models, best headline score first (models without one last, by name)."""
    head = report["graders"].get(report.get("headline") or "")
    if head is None:
        return sorted(models)
    metric = headline_metric(head)
    score = lambda m: (head["models"].get(m) or {}).get(metric)  # noqa: E731
    return sorted(models, key=lambda m: (score(m) is None, -(score(m) or 0.0), m))


def _judge_agreement(rows: list[dict]) -> dict:
    """Krippendorff's alpha (interval) per criterion between judges, when a rubric has several."""
    per_crit = defaultdict(dict)
    for r in rows:
        jc = (r["detail"] or {}).get("judge_criteria")
        if r["status"] == "ok" and jc and len(jc) > 1:
            for judge_scores in [jc]:
                for crit in next(iter(judge_scores.values())):
                    per_crit[crit][(r["model"], r["item_id"], r["epoch"])] = [
                        s[crit] for s in judge_scores.values()
                    ]
    return {
        crit: {
            "krippendorff_alpha": stats.krippendorff_alpha(units, "interval"),
            "units": len(units),
        }
        for crit, units in per_crit.items()
    }


def awaiting_batches(store: Store, run_id: str) -> dict[str, int]:
    """model -> its calls in batches still at the provider (submitted, not collected)."""
    out: dict[str, int] = {}
    for rec in store.batches(run_id):
        if rec.status in ("submitting", "submitted"):
            for model, *_ in rec.jobs.values():
                out[model] = out.get(model, 0) + 1
    return out


def print_report(console: Console, report: dict) -> None:
    t = Table(
        title=f"run {report['run_id']}: calls"
        + (f" (headline: {report['headline']})" if report["headline"] else "")
    )
    for col in ("model", "calls", "errors", "error rate", "cost $", "p50 s"):
        t.add_column(col, justify="left" if col == "model" else "right")
    for m in by_headline(report, report["models"]):
        s = report["models"][m]
        t.add_row(
            m,
            str(s["calls"]),
            str(s["errors"]),
            f"{(s['error_rate'] or 0) * 100:.1f}%",
            f"{s['cost_usd']:.4f}",
            "-" if s["latency_p50_s"] is None else f"{s['latency_p50_s']:.3f}",
        )
    console.print(t)
    for m, n in sorted(report.get("awaiting_batches", {}).items()):
        console.print(
            f"[yellow]{m}: {n} call(s) are in batches at the provider, not collected yet[/]: "
            "these figures leave them out; `holdout run` of the run's config collects them"
        )
    for name, g in report["graders"].items():
        if g["kind"] == "pairwise":
            t = Table(
                title=f"{name}: pairwise vs {g['baseline']} (win rate %, 95% CI; errors excluded)"
            )
            for col in (
                "model",
                "win rate",
                "SE",
                "LC win rate",
                "BT rating",
                "BT style-controlled",
                "inconsistent",
                "n",
            ):
                t.add_column(col, justify="left" if col == "model" else "right")
            bt, sbt = g.get("bradley_terry", {}), g.get("bradley_terry_style_controlled", {})
            for m in by_headline(report, g["models"]):
                s = g["models"][m]
                lc = (
                    "-"
                    if s["lc_win_rate"] is None
                    else f"{s['lc_win_rate'] * 100:.1f} ± {s['lc_se'] * 100:.1f}"
                )
                t.add_row(
                    m,
                    _fmt_ci(s, "win_rate", pct=True),
                    f"{s['se'] * 100:.1f}",
                    lc,
                    _fmt_rating(bt.get(m)),
                    _fmt_rating(sbt.get(m)),
                    f"{s['inconsistent_rate'] * 100:.0f}%",
                    str(s["n"]),
                )
            src = g.get("difficulty_from") or {}
            t.caption = (
                f"LC: per model, against the pool's reference ({len(src['models'])} models of "
                f"run {src['run']})"
                if "run" in src
                else "LC: item difficulty from this run's other models "
                f"({src.get('this_run_models', 0)} in all): "
                "it moves with the company a model keeps; `holdout difficulty RUN` stores a "
                "fixed reference"
            )
        else:
            t = Table(title=f"{name}: mean score, 95% CI (bootstrap over items; errors excluded)")
            for col in ("model", "score", "graded", "skipped", "grade errors", "criteria"):
                t.add_column(col, justify="left" if col in ("model", "criteria") else "right")
            for m in by_headline(report, g["models"]):
                s = g["models"][m]
                crit = ", ".join(f"{k} {v:.2f}" for k, v in s.get("criteria", {}).items())
                score = (
                    _fmt_ci(s)
                    if s["graded"]
                    else f"- (all {s['grade_errors']} failed)"
                    if s["grade_errors"]
                    else "-"
                )
                t.add_row(
                    m, score, str(s["graded"]), str(s["skipped"]), str(s["grade_errors"]), crit
                )
            if g.get("neighbours"):
                t.caption = "next one down, on the same items (paired 95% CI; * = certain): " + (
                    "; ".join(
                        f"{n['higher']} - {n['lower']} {n['difference']:+.3f} "
                        f"[{n['ci_low']:+.3f}, {n['ci_high']:+.3f}]"
                        + (" *" if n["separated"] else "")
                        for n in g["neighbours"]
                        if n["n"]
                    )
                )
        sep = g.get("separability") or {}
        lines = [t.caption] if t.caption else []
        if sep.get("pairs"):
            lines.append(
                f"separability: {sep['separated']} of {sep['pairs']} model pairs "
                f"({sep['share'] * 100:.0f}%) have 95% CIs that do not overlap"
            )
        if g.get("judge_cost_usd"):
            lines.append(f"judge calls: ${g['judge_cost_usd']:.4f}")
        t.caption = "\n".join(lines) or None
        console.print(t)


def _fmt_rating(r: dict | None) -> str:
    return "-" if not r else f"{r['rating']:.0f} [{r['ci_low']:.0f}, {r['ci_high']:.0f}]"
