"""`holdout grade`, `report`, `check`, `difficulty`, `recorded`: grades and the numbers from
them."""

from __future__ import annotations

from pathlib import Path

from ..database import store_location
from ..errors import HoldoutError
from ._common import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    _err,
    _out,
    _places,
    _print_json,
    _run_store,
    json_flag,
    results_dir,
    run_config,
    suites_dir,
    workers_flag,
    workspace,
)


def cmd_grade(args) -> int:
    from ..context import open_run
    from ..grading.engine import grade
    from ..runlock import run_lock

    places = _places(args)
    err = _err()
    ctx = open_run(args.run_id, places.workspace, places.config, config=places.run_config)
    try:
        # one payer per run's judge calls
        with run_lock(places.workspace, args.run_id, f"grade {args.run_id}"):
            specs, source = ctx.graders()
            summary = grade(
                args.run_id,
                ctx.store,
                ctx.config,
                specs=specs,
                source=source,
                items=ctx.items(),
                outputs=ctx.outputs,
                on_sent=ctx.pool.on_sent,
                console=err,
                quiet=args.quiet,
                pool_id=ctx.pool.name,
                max_retention=ctx.pool.max_retention,
                base_dir=Path(source).parent,
                regrade=set(args.regrade or ()),
            )
    finally:
        ctx.close()
    out, incomplete = _out(), False
    for name, s in summary.items():
        extra = f", {s['failed']} failed" if s.get("failed") else ""
        out.print(f"{name}: {s['graded_now']} graded now{extra}, {s['calls']} judge calls")
        incomplete |= bool(s.get("failed") or s.get("stopped") or s.get("not_graded"))
        if s.get("stopped"):
            for line in s.get("stop_reasons", []):
                err.print(f"{name}: {line}")
            err.print(f"[yellow]{name} stopped early[/]: `holdout grade {args.run_id}` continues.")
        elif s.get("failed"):
            err.print(
                f"{name}: {s['failed']} grades failed; `holdout grade {args.run_id}` tries them "
                "again"
            )
    err.print(f"report: holdout report {args.run_id}")
    return EXIT_INCOMPLETE if incomplete else EXIT_OK


def _grader_order(config, suite=None) -> tuple[list[str] | None, str | None]:
    """Grader names in the run config's order, and its headline (None, None if the config is
    gone)."""
    if config is None:
        return None, None
    from ..context import graders_of
    from ..graderspecs import grader_names
    from ..suite import load_suite

    specs, source = graders_of(config, suite or load_suite(config.suite, config.suites_dir))
    names = grader_names(specs)
    if config.headline is not None and config.headline not in names:
        raise HoldoutError(
            f"{config.where('headline')}: '{config.headline}' is not a grader of {source} "
            f"(graders: {', '.join(names) or 'none'})"
        )
    return names, config.headline


def _build_report(store, run_id: str, config, *, seed: int, suite=None, calls=None) -> dict:
    from ..report import build_report

    order, headline = _grader_order(config, suite)
    return build_report(store, run_id, seed=seed, order=order, headline=headline, calls=calls)


def cmd_report(args) -> int:
    from ..egress import GATE
    from ..report import print_report

    if (args.run_id is None) == (args.across is None):
        raise HoldoutError("report: give either a RUN_ID or --across SUITE")
    if args.across:
        from .across import cmd_report_across

        return cmd_report_across(args)
    places = _places(args)
    with _run_store(places.workspace, args.run_id) as store:
        report = _build_report(store, args.run_id, places.run_config, seed=args.seed)
    path = GATE.write_json(places.results_dir / args.run_id / "report.json", report)
    if args.json:
        _print_json(report)
    else:
        print_report(_out(), report)
    _err().print(f"written: {path}")
    return EXIT_OK


def cmd_check(args) -> int:
    from rich.table import Table

    from ..checks import StoreAt, check_run
    from ..egress import GATE
    from ..safeguards import flags, without_every_id
    from ..suite import load_suite

    places = _places(args)
    settings = load_suite(args.suite, args.suites_dir).safeguards if args.suite else None
    with _run_store(places.workspace, args.run_id) as store:
        heldout = store.run_info(args.run_id)["heldout"]
        if places.config is None and not heldout:  # the config is gone: the outputs alone
            results = check_run(
                store, args.run_id, settings, where=StoreAt(store.path), workers=args.workers
            )
    if places.config is not None or heldout:
        from ..context import open_run

        # held-out outputs: the vault opens them
        ctx = open_run(args.run_id, places.workspace, places.config, config=places.run_config)
        try:
            results = check_run(
                ctx.store,
                args.run_id,
                settings or ctx.suite.safeguards,
                where=StoreAt.of_run(ctx),
                items=ctx.items(),
                workers=args.workers,
            )
        finally:
            ctx.close()
    with _run_store(places.workspace, args.run_id) as store:
        store.record_flags(args.run_id, results)  # the view's safeguard filter
    results = without_every_id(results)
    path = GATE.write_json(places.results_dir / args.run_id / "safeguards.json", results)
    if args.json:
        _print_json(results)
        _err().print(f"written: {path} (counts and item ids, no text)")
        return EXIT_OK
    t = Table(title=f"run {args.run_id}: gaming and degenerate-output checks (rate; * = flagged)")
    detectors = list(next(iter(results.values()), {}))
    t.add_column("model")
    for d in detectors:
        t.add_column(d.replace("_", " "), justify="right")
    for m, res in results.items():
        t.add_row(
            m,
            *(
                f"{res[d]['rate'] * 100:.1f}%" + (" *" if res[d]["flagged"] else "")
                for d in detectors
            ),
        )
    out = _out()
    out.print(t)
    flagged = {m: f for m, f in flags(results).items() if f}
    out.print(
        "flagged: " + ("; ".join(f"{m} ({', '.join(f)})" for m, f in flagged.items()) or "none")
    )
    _err().print(f"written: {path} (counts and item ids, no text)")
    return EXIT_OK


def cmd_difficulty(args) -> int:
    """Store a pool's length-control reference: this run's pairwise battles (numbers only)."""
    from ..lengthref import save_length_reference

    with _run_store(_places(args).workspace, args.run_id) as store:
        info = store.run_info(args.run_id) or {}
        rows = [
            g
            for g in store.iter_grades(args.run_id)
            if g["status"] == "ok" and "baseline" in (g["detail"] or {})
        ]
        graders = sorted({g["grader"] for g in rows})
        grader = args.grader or (graders[0] if len(graders) == 1 else None)
        if grader is None or grader not in graders:
            raise HoldoutError(
                f"run {args.run_id}: "
                + (
                    "no pairwise grades: grade it first"
                    if not graders
                    else f"pairwise graders are {', '.join(graders)}: pass --grader"
                )
            )
        rows = [g for g in rows if g["grader"] == grader]
        models = sorted({g["model"] for g in rows})
        if len(models) < args.min_models:
            raise HoldoutError(
                f"run {args.run_id}: {len(models)} model(s) graded by {grader}; a reference "
                "needs at "
                f"least {args.min_models} (--min-models), or it is a few models' taste"
            )
        save_length_reference(
            store,
            info["pool"],
            run_id=args.run_id,
            grader=grader,
            rows=[
                (g["model"], g["item_id"], g["score"], g["detail"]["style_diff"]["length"])
                for g in rows
            ],
        )
    _out().print(
        f"pool {info['pool']}: length control now uses {len(models)} models of run {args.run_id} "
        f"({grader}) "
        "as its reference; each model's LC win rate on this pool no longer depends on the other "
        "models in "
        "its run"
    )
    return EXIT_OK


def cmd_import_alpaca(args) -> int:
    from ..recorded import import_alpaca_eval
    from ..store import Store

    store = Store(store_location(_places(args).workspace))
    try:
        if store.run_info(args.run) is not None:
            store.delete_run(args.run)
        out = import_alpaca_eval(args.directory, store, args.run)
    finally:
        store.close()
    _out().print(
        f"imported {len(out['models'])} models' recorded verdicts against {out['baseline']} "
        f"({out['outputs']} outputs) as run '{args.run}'. Next: holdout report {args.run}"
    )
    return EXIT_OK


def cmd_judge_consistency(args) -> int:
    from ..egress import GATE
    from ..recorded import judge_self_consistency

    out = judge_self_consistency(args.directory)
    _out().print(
        f"{out['runs']} runs of one judge over {out['pairs']} pairs:\n"
        f"  a run disagrees with the majority of the others: {out['loo_disagreement'] * 100:.1f}%\n"
        f"  all runs agree: {out['unanimous'] * 100:.1f}% of pairs\n"
        f"  the longer output is preferred: {out['longer_preferred'] * 100:.1f}% of decisive votes "
        "(Holdout's measure: every vote, any length difference, ties left out)\n"
        "  AlpacaEval's 'Proba. prefer longer': "
        f"{out['alpaca_eval_probability_prefer_longer']:.3f} "
        "(first run only, pairs more than 30 characters apart)"
    )
    if args.json:
        GATE.write_json(args.json, out)
    return EXIT_OK


def register(sub) -> None:
    """The grade, report, check, difficulty, recorded command(s)."""
    sp = sub.add_parser(
        "grade",
        help="grade a run's outputs with the suite's (or config's) graders; resumable",
        description="Grade what is not graded yet. Judge calls go through the same engine as model "
        "calls (limits, retries, budget, resume): grading a graded run again calls nothing.",
    )
    sp.add_argument("run_id")
    run_config(sp)
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sp.add_argument(
        "--regrade",
        action="append",
        metavar="GRADER",
        help="delete this grader's grades and judge calls "
        "and grade again (repeatable); needed after its settings change",
    )
    workspace(sp)
    sp.set_defaults(func=cmd_grade)

    sp = sub.add_parser(
        "report", help="scores with 95%% CIs, win rates, ratings, error rates; writes report.json"
    )
    sp.add_argument("run_id", nargs="?", help="the run (or --across SUITE)")
    sp.add_argument("--seed", type=int, default=0, help="bootstrap seed (reports are reproducible)")
    sp.add_argument(
        "--across",
        metavar="SUITE",
        help="every model run on any version of SUITE, on the active version's scale, linked "
        "through the anchor models; writes results/across/SUITE.json",
    )
    sp.add_argument("--scale", help="with --across: the version whose scale to use (e.g. arena@v3)")
    sp.add_argument("--grader", help="with --across: the grader (default: the suite's first)")
    suites_dir(sp)
    run_config(sp)
    results_dir(sp)
    workspace(sp)
    json_flag(sp)
    sp.set_defaults(func=cmd_report)

    sp = sub.add_parser(
        "check",
        help="flag judge injection, prompt-independent, terse, truncated and refusing outputs",
    )
    sp.add_argument("run_id")
    sp.add_argument("--suite", help="take thresholds from this suite's safeguards: section")
    suites_dir(sp)
    workers_flag(sp)
    run_config(sp)
    results_dir(sp)
    workspace(sp)
    json_flag(sp)
    sp.set_defaults(func=cmd_check)

    sp = sub.add_parser(
        "difficulty",
        help="make a run's pairwise battles the pool's reference for length control "
        "(LC win rates become a property of the model and the pool)",
    )
    sp.add_argument("run_id")
    sp.add_argument("--grader", help="the pairwise grader (needed if the run has several)")
    sp.add_argument(
        "--min-models", type=int, default=5, help="reference models required (default 5)"
    )
    workspace(sp)
    sp.set_defaults(func=cmd_difficulty)

    sp = sub.add_parser(
        "recorded", help="load verdicts recorded by other tools (AlpacaEval) as a Holdout run"
    )
    rsub = sp.add_subparsers(dest="recorded_command", metavar="ACTION", required=True)
    rp = rsub.add_parser(
        "import-alpaca-eval", help="model outputs + judge preferences vs the baseline -> a run"
    )
    rp.add_argument("directory", type=Path, help="a folder with annotations/ and model_outputs/")
    rp.add_argument("--run", default="alpaca-eval", help="run id to create (replaced if it exists)")
    workspace(rp)
    rp.set_defaults(func=cmd_import_alpaca)
    rp = rsub.add_parser(
        "judge-consistency", help="self-consistency and length preference of a judge run k times"
    )
    rp.add_argument("directory", type=Path, help="a folder of seed*.json runs over the same pairs")
    rp.add_argument("--json", type=Path, help="also write the figures here")
    rp.set_defaults(func=cmd_judge_consistency)
