"""The `holdout` command."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

from rich.console import Console

from . import __version__
from .egress import GATE
from .errors import HoldoutError

EPILOG = (
    "Exit codes: 0 done; 2 bad input or refused (nothing done); 3 ran, but some calls or "
    "judgments failed or "
    "were not made (re-run to retry), or an export refused something; 130 interrupted (re-run to "
    "resume); "
    "1 a bug in holdout. Results go to stdout, progress and diagnostics to stderr. "
    "Docs: README.md. Config schema: harness/schemas/run.schema.json."
)


# Exit codes (README: "Exit codes"). 1 is reserved for a bug in holdout.
EXIT_OK = 0
EXIT_BUG = 1
EXIT_ERROR = 2  # bad input, a refusal, nothing done
# it ran, but some calls or judgments failed or were not made (budget, a dead provider),
EXIT_INCOMPLETE = 3
# or an export refused something: re-running retries what failed
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM: what finished is saved; re-run to resume


def _console(file=None) -> Console:
    # off a terminal (pipes, CI logs) tables keep all their columns instead of squeezing into 80
    file = file or sys.stderr
    return Console(file=file, highlight=False, soft_wrap=True, width=None if file.isatty() else 200)


def _err() -> Console:
    """Progress, notes and diagnostics: stderr, for people."""
    return _console(sys.stderr)


def _out() -> Console:
    """Results (tables, what was done): stdout, so `holdout status | grep x` works. Both pass the
    egress gate."""
    return _console(sys.stdout)


def _print_json(doc) -> None:
    """`--json`: one JSON document on stdout, nothing else there."""
    from .egress import strict_json

    sys.stdout.write(strict_json(doc) + "\n")


def _places(args):
    """Workspace and results directory for this command: one resolution for all
    (harness/context.py)."""
    from .context import locate

    return locate(
        getattr(args, "run_id", None),
        workspace=getattr(args, "workspace", None),
        results_dir=getattr(args, "results_dir", None),
        config=getattr(args, "config", None),
    )


def cmd_run(args) -> int:
    from .run import run

    outcome = run(
        args.config, out=_out(), err=_err(), quiet=args.quiet, recall_changed=args.recall_changed
    )
    if outcome.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if outcome.complete else EXIT_INCOMPLETE


def cmd_status(args) -> int:
    from rich.table import Table

    from .store import NoStore, Store

    places = _places(args)
    try:
        store = Store(places.workspace / "store.sqlite", create=False)
    except NoStore:
        rows = []
    else:
        try:
            rows = store.status()
        finally:
            store.close()
    if args.json:
        _print_json(rows)
        return EXIT_OK
    if not rows:
        _err().print(f"no runs in {places.workspace}/store.sqlite")
        return EXIT_OK
    table = Table(title=f"runs in {places.workspace}")
    for col in ("run", "suite", "pool", "done", "errors", "models $", "judges $", "updated"):
        table.add_column(
            col, justify="right" if col in ("done", "errors", "models $", "judges $") else "left"
        )
    for r in rows:
        judges = sum(r["judge_cost_usd"].values())
        table.add_row(
            r["run_id"],
            r["suite"],
            r["pool"],
            f"{r['done']}/{r['total']}",
            str(r["errors"]),
            f"{r['cost_usd']:.4f}",
            f"{judges:.4f}" if r["judge_cost_usd"] else "-",
            time.strftime("%Y-%m-%d %H:%M", time.localtime(r["updated"])),
        )
    _out().print(table)
    return EXIT_OK


@contextlib.contextmanager
def _run_store(workspace, run_id: str):
    """The store, checked to hold `run_id`; closed afterwards. A missing store is not created."""
    from .store import Store

    store = Store(workspace / "store.sqlite", create=False)
    try:
        if store.run_info(run_id) is None or "/grade/" in run_id:
            known = ", ".join(r["run_id"] for r in store.status()) or "none"
            raise HoldoutError(f"no run '{run_id}' in {workspace}/store.sqlite (runs: {known})")
        yield store
    finally:
        store.close()


def cmd_runs_delete(args) -> int:
    places = _places(args)
    with _run_store(places.workspace, args.run_id) as store:
        d = store.delete_run(args.run_id)
    _out().print(
        f"deleted run {args.run_id}: {d.calls} calls, {d.grades} grades, {d.judge_calls} judge "
        "calls, "
        f"{d.assignments} review assignments"
    )
    return EXIT_OK


def cmd_grade(args) -> int:
    from .context import open_run
    from .grading.engine import grade
    from .runlock import run_lock

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
                specs,
                source,
                ctx.items(),
                ctx.outputs,
                ctx.pool.on_sent,
                err,
                args.quiet,
                ctx.pool.name,
                ctx.pool.max_retention,
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
            err.print(
                f"[yellow]{name} stopped early[/] (interrupt, budget or a dead provider): re-run "
                f"`holdout grade {args.run_id}` to continue."
            )
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
    from .context import graders_of
    from .grading.engine import grader_names
    from .suite import load_suite

    specs, source = graders_of(config, suite or load_suite(config.suite, config.suites_dir))
    names = grader_names(specs)
    if config.headline is not None and config.headline not in names:
        raise HoldoutError(
            f"{config.where('headline')}: '{config.headline}' is not a grader of {source} "
            f"(graders: {', '.join(names) or 'none'})"
        )
    return names, config.headline


def _build_report(store, run_id: str, config, seed: int, suite=None) -> dict:
    from .report import build_report

    order, headline = _grader_order(config, suite)
    return build_report(store, run_id, seed=seed, order=order, headline=headline)


def cmd_report(args) -> int:
    from .egress import GATE
    from .report import print_report

    places = _places(args)
    with _run_store(places.workspace, args.run_id) as store:
        report = _build_report(store, args.run_id, places.run_config, args.seed)
    path = GATE.write_json(places.results_dir / args.run_id / "report.json", report)
    if args.json:
        _print_json(report)
    else:
        print_report(_out(), report)
    _err().print(f"written: {path}")
    return EXIT_OK


def cmd_import_alpaca(args) -> int:
    from .recorded import import_alpaca_eval
    from .store import Store

    store = Store(_places(args).workspace / "store.sqlite")
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
    from .egress import GATE
    from .recorded import judge_self_consistency

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


def _pool_summary(ctx) -> dict:
    """Pool id, size and exposure per provider (ids and counts only) for a scorecard."""
    info = {"id": ctx.pool.name, "items": ctx.pool.count, "heldout": ctx.pool.heldout}
    if ctx.pool.draft or ctx.config.allow_draft:
        info["draft"] = ctx.pool.draft
        info["allow_draft"] = ctx.config.allow_draft
    if ctx.pool.heldout:
        from .vault import Vault
        from .vault.rotation import exposure

        per: dict = {}
        for r in exposure(Vault.open(ctx.config.workspace), ctx.pool.name):
            p = per.setdefault(r["provider"], {"items": 0, "sends": 0})
            p["items"] += 1
            p["sends"] += r["sent"]
        info["exposure"] = per
    return info


def cmd_scorecard(args) -> int:
    from . import provenance
    from .context import open_run
    from .egress import GATE
    from .scorecard import build_scorecard, render_html, sign, signing_key
    from .vault import Vault

    places = _places(args)
    ctx = open_run(args.run_id, places.workspace, places.config, config=places.run_config)
    try:
        labs = ctx.config.labs
        if not labs:
            raise HoldoutError(
                f"{ctx.config.file}: no labs: section (lab name -> its model names); nothing to "
                "issue"
            )
        wanted = sorted(labs) if args.all else [args.lab]
        for lab in wanted:
            if lab not in labs:
                raise HoldoutError(
                    f"no lab '{lab}' in {ctx.config.file} (labs: {', '.join(sorted(labs))})"
                )
        key = signing_key(Vault.open(places.workspace))
        items = ctx.items()
        pool = _pool_summary(ctx)
        min_size = ctx.config.min_segment_size or ctx.suite.raw.get("min_segment_size") or 10
        report = _build_report(ctx.store, args.run_id, ctx.config, args.seed, ctx.suite)
        out = _out()
        rows_sha = ctx.store.rows_fingerprint(args.run_id)  # one pass over the store for every card
        for lab in wanted:
            card = sign(
                build_scorecard(
                    ctx.store,
                    args.run_id,
                    lab,
                    labs[lab],
                    items,
                    ctx.suite.strata,
                    pool,
                    min_size,
                    args.seed,
                    ctx.config.leaderboard_public,
                    ctx.suite.raw.get("safeguards"),
                    report=report,
                    provenance=provenance.of_run(ctx.store, args.run_id, ctx.config, labs[lab]),
                    rows_sha256=rows_sha,
                ),
                key,
            )
            folder = places.results_dir / args.run_id / "scorecards"
            GATE.write_json(folder / f"{lab}.json", card)
            GATE.write_text(folder / f"{lab}.html", render_html(card))
            out.print(
                f"{lab}: {folder / lab}.json and .html (signed {card['signature']['fingerprint']})"
            )
            changed = _audit_issue(folder, lab, card)
            if changed:
                _err().print(
                    f"[yellow]note[/]: {lab}'s card was issued before from different store rows "
                    f"({changed[:12]}… then, {card['built_from']['store_rows_sha256'][:12]}… now); "
                    f"both issues are in {folder / 'audit.jsonl'}"
                )
    finally:
        ctx.close()
    return EXIT_OK


def _audit_issue(folder: Path, lab: str, card: dict) -> str | None:
    """Append this issue to the scorecards' audit trail; return the previous issue's store
    fingerprint if it differs."""
    import hashlib
    import json

    from .egress import GATE, strict_json

    audit = folder / "audit.jsonl"
    previous = None
    if audit.exists():
        for line in audit.read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            if entry.get("lab") == lab:
                previous = entry.get("store_rows_sha256")
    rows = card["built_from"]["store_rows_sha256"]
    entry = {
        "issued": card["generated"],
        "lab": lab,
        "signer": card["signature"]["fingerprint"],
        "store_rows_sha256": rows,
        "card_sha256": hashlib.sha256(strict_json(card).encode()).hexdigest(),
    }
    GATE.append_line(audit, strict_json(entry, None))
    return previous if previous not in (None, rows) else None


def cmd_difficulty(args) -> int:
    """Store a pool's length-control reference: this run's pairwise battles (numbers only)."""
    with _run_store(_places(args).workspace, args.run_id) as store:
        info = store.run_info(args.run_id) or {}
        rows = [
            g
            for g in store.grades(args.run_id)
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
        store.put_length_reference(
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


def cmd_leaderboard(args) -> int:
    from rich.table import Table

    from .egress import GATE
    from .scorecard import build_leaderboard

    places = _places(args)
    with _run_store(places.workspace, args.run_id) as store:
        public = places.run_config is not None and places.run_config.leaderboard_public
        board = build_leaderboard(
            store,
            args.run_id,
            public,
            args.seed,
            report=_build_report(store, args.run_id, places.run_config, args.seed),
        )
    path = GATE.write_json(places.results_dir / args.run_id / "leaderboard.json", board)
    out = _out()
    t = Table(
        title=f"leaderboard {args.run_id}"
        + ("" if board["public"] else " (aggregates only: the run is not public)")
    )
    for col in ("grader", "models", "median %", "best %"):
        t.add_column(col)
    for name, f in board["field"].items():
        if f.get("suppressed"):
            t.add_row(name, str(f["models"]), "-", f"- ({f['reason']})")
        else:
            t.add_row(name, str(f["models"]), f"{f['median'] * 100:.1f}", f"{f['best'] * 100:.1f}")
    out.print(t)
    if board.get("models"):
        t = Table(title="models (public run)")
        for col in ("model", "rank (range)", "score %", "95% CI"):
            t.add_column(col)
        metric = board["primary"]["metric"]
        for m, e in sorted(
            board["models"].items(), key=lambda kv: (kv[1]["rank"] or {}).get("rank", 99)
        ):
            r = e["rank"] or {}
            t.add_row(
                m,
                f"{r.get('rank')} ({r.get('best')}-{r.get('worst')})",
                f"{e[metric] * 100:.1f}",
                f"{e['ci_low'] * 100:.1f}-{e['ci_high'] * 100:.1f}",
            )
        out.print(t)
    _err().print(f"written: {path}")
    return EXIT_OK


def cmd_check(args) -> int:
    from rich.table import Table

    from .egress import GATE
    from .safeguards import check_run, flags
    from .suite import load_suite

    places = _places(args)
    settings = load_suite(args.suite, args.suites_dir).raw.get("safeguards") if args.suite else None
    with _run_store(places.workspace, args.run_id) as store:
        heldout = store.run_info(args.run_id)["heldout"]
        if places.config is None and not heldout:  # the config is gone: the outputs alone
            results = check_run(store, args.run_id, settings)
    if places.config is not None or heldout:
        from .context import open_run

        # held-out outputs: the vault opens them
        ctx = open_run(args.run_id, places.workspace, places.config, config=places.run_config)
        try:
            results = check_run(
                ctx.store,
                args.run_id,
                settings or ctx.suite.raw.get("safeguards"),
                items=ctx.items(),
            )
        finally:
            ctx.close()
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


def _embargo(args, suite, command: str):
    """The suite's embargo (license.embargo_days, default 60), lengthened by --embargo-days, or
    shortened only with --justification."""
    from .policy import DEFAULT_EMBARGO_DAYS, choose_embargo

    policy_days = (suite.raw.get("license") or {}).get("embargo_days", DEFAULT_EMBARGO_DAYS)
    return choose_embargo(
        policy_days, args.embargo_days, getattr(args, "justification", None), command
    )


def _print_refusals(console, refused: list[dict]) -> None:
    for r in refused:
        ids = (
            r.get("pool")
            or f"{r['model']}: {r['count']} outputs, e.g. {', '.join(r['item_ids'][:5])}"
        )
        console.print(f"[red]refused[/] {ids}: rule {r['rule']}: {r['why']}")


def cmd_export_items(args) -> int:
    from .export import export_items
    from .suite import load_suite
    from .vault import Vault

    suite = load_suite(args.suite, args.suites_dir)
    embargo = _embargo(args, suite, "export items")
    exported, refused = export_items(
        Vault.open(_places(args).workspace), suite.name, args.purpose, args.out, embargo
    )
    console = _out()
    for m in exported:
        console.print(
            f"exported {m['rows']} items of {m['pool']} to {args.out / m['file']} (rule: "
            f"{m['why']})"
        )
    _print_refusals(console, refused)
    if not exported:
        console.print("nothing was exported")
    return 0 if exported else 3


def cmd_export_outputs(args) -> int:
    from .context import open_run
    from .export import export_outputs

    places = _places(args)
    ctx = open_run(args.run_id, places.workspace, places.config, config=places.run_config)
    try:
        if args.lab and args.lab not in ctx.config.labs:
            raise HoldoutError(
                f"no lab '{args.lab}' in {ctx.config.file} (labs: "
                f"{', '.join(ctx.config.labs) or 'none'})"
            )
        manifest, refused = export_outputs(
            ctx, args.purpose, args.out, args.lab, _embargo(args, ctx.suite, "export outputs")
        )
    finally:
        ctx.close()
    console = _out()
    if manifest:
        console.print(
            f"exported {manifest['rows']} outputs of {', '.join(manifest['models'])} to "
            f"{args.out / manifest['file']}"
        )
    _print_refusals(console, refused)
    return 0 if manifest else 3


def cmd_policy_explain(args) -> int:
    from . import clock
    from .policy import PURPOSES, decide_pool
    from .suite import load_suite
    from .vault import Vault

    m = Vault.open(_places(args).workspace).manifest(args.pool_id)
    embargo = args.embargo_days
    if embargo is None:
        try:
            embargo = _embargo(args, load_suite(m["suite"], args.suites_dir), "policy explain").days
        except HoldoutError:
            from .policy import DEFAULT_EMBARGO_DAYS

            embargo = DEFAULT_EMBARGO_DAYS
    console = _out()
    console.print(
        f"{m['id']}: {m['license_class']}, {m['status']}, data licence "
        f"{m['provenance'].get('data_license') or 'unknown'}, distribution "
        f"{m['provenance'].get('distribution') or '-'}"
    )
    for purpose in [args.purpose] if args.purpose else PURPOSES:
        d = decide_pool(m, purpose, clock.now(), embargo)
        console.print(
            f"  {purpose:10s} {'ALLOWED' if d.allowed else 'refused'} ({d.rule}): {d.why}"
        )
    return 0


def _review_context(args, places):
    from .context import open_run
    from .review import queue

    ctx = open_run(args.run_id, places.workspace, places.config, config=places.run_config)
    graders, _ = ctx.graders()
    spec = queue.human_spec(graders)
    return ctx, graders, spec, queue.criteria_for(spec, graders)


def cmd_review_add(args) -> int:
    import math

    from .review import queue
    from .store import Store

    if not (math.isfinite(args.expires_hours) and 0 < args.expires_hours <= 24 * 365):
        raise HoldoutError(
            f"review add-reviewer: --expires-hours must be more than 0 and at most a year "
            f"(got {args.expires_hours:g})"
        )
    base = _public_url(args.public_url) if args.public_url else f"http://{args.host}:{args.port}"
    store = Store(_places(args).workspace / "store.sqlite")
    try:
        token = queue.add_reviewer(
            store.db,
            args.name,
            [x for x in (args.languages or "").split(",") if x],
            args.country,
            args.age_band,
            args.education,
            link_hours=args.expires_hours,
        )
    finally:
        store.close()
    # the link is a credential: it goes to stdout, once, for the maintainer to hand over
    print(f"{base}/login?token={token}")
    _err().print(
        f"reviewer {args.name} added; the one-time login link above works once, within "
        f"{args.expires_hours:g} hours (any earlier link and session of {args.name} has ended)"
    )
    return 0


def cmd_review_revoke(args) -> int:
    from .review import queue
    from .store import Store

    store = Store(_places(args).workspace / "store.sqlite")
    try:
        found = queue.revoke(store.db, args.name)
    finally:
        store.close()
    if not found:
        raise HoldoutError(f"no reviewer '{args.name}' (see `holdout review add-reviewer`)")
    _out().print(f"{args.name}: login link and sessions ended; their decisions are kept")
    return 0


def _public_url(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if (
        parts.scheme not in ("https", "http")
        or not parts.netloc
        or parts.path not in ("", "/")
        or parts.query
    ):
        raise HoldoutError(
            "--public-url: expected the app's origin, such as https://review.example.org (got "
            f"{url!r})"
        )
    return f"{parts.scheme}://{parts.netloc}"


def cmd_review_route(args) -> int:
    from .review import queue

    places = _places(args)
    ctx, graders, spec, _ = _review_context(args, places)
    try:
        items, outputs = ctx.items(), ctx.outputs()
        counts = queue.route(
            ctx.store.db,
            args.run_id,
            spec,
            ctx.store.grades(args.run_id),
            outputs,
            items,
            args.seed,
            ctx.suite.dir,
            queue.pairwise_baseline(spec, graders),
        )
        pushed = queue.push(
            ctx.store.db,
            args.run_id,
            spec,
            ctx.config.trusted_destinations,
            ctx.pool.heldout,
            items,
            outputs,
            queue.criteria_for(spec, graders),
        )
    finally:
        ctx.close()
    _out().print(
        f"assigned: {', '.join(f'{k} {v}' for k, v in counts.items()) or 'nothing new'}"
        + (
            f"; {pushed} open assignments pushed to {spec['push'].get('destination')}"
            if pushed
            else ""
        )
    )
    return 0


def cmd_review_serve(args) -> int:
    import asyncio
    import ipaddress

    from .review import ReviewApp
    from .review.queue import comment_sealer

    public = _public_url(args.public_url) if args.public_url else None
    try:
        loopback = args.host == "localhost" or ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not (public or "").startswith("https://"):
        _err().print(
            f"[bold red]WARNING[/]: serving held-out text on {args.host} over plain HTTP. Anyone "
            "on the "
            "network path can read the pages and steal sessions. Put a TLS-terminating proxy in "
            "front and "
            "pass --public-url https://… (README: the reviewers' app behind TLS)."
        )
    places = _places(args)
    ctx, _, _, criteria = _review_context(args, places)
    app = ReviewApp(
        places.workspace / "store.sqlite",
        {args.run_id: (ctx.items(), ctx.outputs())},
        criteria,
        seal_comment=comment_sealer(ctx.pool.cipher, args.run_id),
        public_url=public,
    )
    _err().print(
        f"reviewers' app for run {args.run_id} on http://{args.host}:{args.port}/"
        + (f", reached as {public}" if public else "")
        + " (Ctrl-C to stop)"
    )
    try:
        asyncio.run(app.serve(args.host, args.port))
    except KeyboardInterrupt:
        pass
    finally:
        ctx.close()
    return 0


def cmd_review_status(args) -> int:
    from rich.table import Table

    from .egress import GATE
    from .review import queue

    places = _places(args)
    ctx, _, spec, criteria = _review_context(args, places)
    try:
        st = queue.status(
            ctx.store.db,
            args.run_id,
            criteria,
            ctx.store.grades(args.run_id),
            spec.get("min_gold_accuracy", 0.7),
        )
    finally:
        ctx.close()
    path = GATE.write_json(places.results_dir / args.run_id / "review_status.json", st)
    if args.json:
        _print_json(st)
        return 0
    _err().print(f"written: {path}")
    console = _out()
    console.print(
        f"run {args.run_id}: {st['assigned']} assigned, {st['done']} done, {st['queue']} "
        "waiting; flagged items: " + ", ".join(f"{k} {v}" for k, v in st["flags"].items())
    )
    t = Table(title="reviewers")
    for col in ("reviewer", "done", "gold items", "gold accuracy", "median s/item", "flagged"):
        t.add_column(col)
    for name, r in sorted(st["reviewers"].items()):
        acc = "-" if r["gold_accuracy"] is None else f"{r['gold_accuracy'] * 100:.0f}%"
        t.add_row(
            name,
            str(r["done"]),
            str(r["gold_items"]),
            acc,
            "-" if r["median_seconds"] is None else f"{r['median_seconds']:.0f}",
            "yes" if r["flagged"] else "",
        )
    console.print(t)
    for c, alpha in st["agreement"].items():
        people = "-" if alpha is None else f"{alpha:.2f}"
        jh = st["judge_human"].get(c)
        judge = (
            "-"
            if not jh or jh["krippendorff_alpha"] is None
            else f"{jh['krippendorff_alpha']:.2f} over {jh['items']} items"
        )
        console.print(
            f"{c}: agreement between people (Krippendorff's alpha) {people}; judge vs people "
            f"{judge}"
        )
    return 0


def cmd_review_import(args) -> int:
    from .review import queue

    places = _places(args)
    ctx, _, _, criteria = _review_context(args, places)
    try:
        n = queue.import_decisions(
            ctx.store.db,
            args.run_id,
            args.file,
            criteria,
            seal=queue.comment_sealer(ctx.pool.cipher, args.run_id),
        )
    finally:
        ctx.close()
    _out().print(f"imported {n} decisions")
    return 0


def cmd_verify(args) -> int:
    """A scorecard (JSON or HTML) or an export manifest. Exit 0: intact and from a trusted signer;
    2: changed, or signed by someone else; 3: intact, but the signer is unpinned and no vault here
    can vouch for it."""
    from .scorecard import vault_fingerprint, verify
    from .scorecard.sign import strict_load
    from .vault import Vault, VaultError

    try:
        vault = Vault.open(_places(args).workspace)
    except (VaultError, HoldoutError):
        vault = None
    if not args.file.is_file():
        raise HoldoutError(f"{args.file}: not found")
    if args.file.suffix == ".json" and args.file.name.endswith(".manifest.json"):
        manifest = strict_load(
            args.file.read_text(encoding="utf-8", errors="replace"), str(args.file)
        )
        if vault is None:
            raise HoldoutError(
                f"{args.file}: an export manifest is signed with the vault key: run this where "
                "the vault is"
            )
        if not vault.signed_by_this_vault(manifest):
            raise HoldoutError(
                f"{args.file}: NOT signed by this vault (changed after export, or from elsewhere)"
            )
        _out().print(f"OK: {args.file} is intact, signed by this vault")
        return EXIT_OK
    v = verify(args.file, args.key, vault_fingerprint(vault) if vault and not args.key else None)
    if args.json:
        _print_json(
            {
                "file": str(args.file),
                "intact": True,
                "fingerprint": v.fingerprint,
                "pinned": v.pinned,
                "signed_by_this_vault": v.this_vault,
                "trusted": v.trusted,
            }
        )
    elif v.trusted:
        _out().print(
            f"OK: {args.file} is intact, signed by {v.fingerprint}"
            + (" (the pinned key)" if v.pinned else " (this vault's scorecard key)")
        )
    else:
        _out().print(
            f"UNPINNED: {args.file} is intact and signed by {v.fingerprint}, but nothing here "
            "says that key "
            "is the evaluator's: anyone can sign a card. Pass --key with the fingerprint the "
            "evaluator gave you."
        )
    return EXIT_OK if v.trusted else EXIT_INCOMPLETE


def cmd_vault_init(args) -> int:
    from .vault import Vault

    vault, source = Vault.init(_places(args).workspace)
    _out().print(
        f"vault created at {vault.dir}\nkey: {source}\n"
        "Keep a copy of the key somewhere safe (a password manager or secrets store): without it "
        "the "
        "vault's pools and held-out run outputs cannot be read. To keep it out of the workspace, "
        "move it "
        "and point HOLDOUT_VAULT_KEY_FILE at it, or put its contents in HOLDOUT_VAULT_KEY."
    )
    return 0


def cmd_vault_verify(args) -> int:
    """Exit 0: intact; 3: something was changed outside holdout (each named)."""
    from .vault import Vault

    vault = Vault.open(_places(args).workspace)
    problems = vault.verify()
    index = vault._read_signed(vault.dir / "index.json")
    summary = {
        "intact": not problems,
        "problems": problems,
        "index_serial": index.get("serial", 0),
        "pools": len(index["pools"]),
        "ledger_rows": vault.ledger.rows(),
    }
    if args.json:
        _print_json(summary)
    elif problems:
        _err().print(
            "the vault was changed outside holdout:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    else:
        _out().print(
            f"OK: vault intact (index serial {summary['index_serial']}, {summary['pools']} pools, "
            f"{summary['ledger_rows']} exposure rows in an unbroken chain). Keep the serial: an "
            "older "
            "index restored together with an older ledger can only be told from it."
        )
    return EXIT_OK if not problems else EXIT_INCOMPLETE


def cmd_pool_import(args) -> int:
    from .suite import load_suite
    from .vault import Vault, import_pool_file

    suite = load_suite(args.suite, args.suites_dir)
    vault = Vault.open(_places(args).workspace)
    license_class = "heldout" if args.heldout else args.license
    pool_id = import_pool_file(
        vault,
        suite.name,
        args.file,
        license_class,
        suite.strata,
        args.max_retention,
        args.data_license,
        args.distribution,
    )
    m = vault.manifest(pool_id)
    console = _out()
    console.print(
        f"imported {m['items']} items as {pool_id} ({license_class}, draft), encrypted in "
        f"{vault.dir}"
    )
    if args.activate:
        previous = vault.activate(pool_id)
        console.print(f"{pool_id} is active" + (f"; {previous} retired" if previous else ""))
    else:
        console.print(f"activate it with: holdout pool activate {pool_id}")
    return 0


def cmd_pool_list(args) -> int:
    from rich.table import Table

    from .vault import Vault

    vault = Vault.open(_places(args).workspace)
    pools = vault.pools(args.suite)
    if args.json:
        _print_json(pools)
        return 0
    table = Table(title=f"pools in {vault.dir}")
    for col in ("pool", "status", "class", "items", "created", "strata"):
        table.add_column(col)
    for m in pools:
        strata = "; ".join(f"{k}: {len(v)}" for k, v in m["strata"].items())
        table.add_row(
            m["id"],
            m["status"],
            m["license_class"],
            str(m["items"]),
            time.strftime("%Y-%m-%d", time.gmtime(m["created"])),
            strata,
        )
    _out().print(table if pools else "no pools in the vault")
    return 0


def _print_draw_report(console, pool_id: str, report: dict) -> None:
    from rich.table import Table

    t = Table(
        title=f"{pool_id}: strata, source vs pool (total variation distance "
        f"{report['total_variation']:.3f})"
    )
    for col in ("stratum", "source", "source %", "pool", "pool %", "short"):
        t.add_column(col, justify="left" if col == "stratum" else "right")
    for r in report["strata"]:
        t.add_row(
            r["stratum"],
            str(r["source"]),
            f"{r['source_share'] * 100:.1f}",
            str(r["pool"]),
            f"{r['pool_share'] * 100:.1f}",
            str(r["short"]) if r["short"] else "",
        )
    console.print(t)
    dropped = (
        ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in report["dropped"].items()) or "none"
    )
    console.print(
        f"{report['size']} items (asked {report['requested']}) from {report['source_rows']} "
        "source rows; "
        f"dropped before entering the pool: {dropped}"
    )
    if report.get("groups") is False:
        console.print(
            "[yellow]note[/]: translations and variants of one prompt are not detected across "
            "languages "
            "(near-duplicate checks compare text): declare source.group, the column that ties them"
        )
    if report.get("marginals"):
        console.print(
            "each key's shares against the source's (total variation): "
            + ", ".join(f"{k} {d:.3f}" for k, d in report["marginals"].items())
        )


def cmd_pool_draw(args) -> int:
    from .suite import load_suite
    from .vault import Vault
    from .vault.rotation import draw_pool

    suite = load_suite(args.suite, args.suites_dir)
    vault = Vault.open(_places(args).workspace)
    stratify = [s for s in args.stratify.split(",") if s] if args.stratify is not None else None
    pool_id, report = draw_pool(
        vault, suite, args.source, args.size, stratify, args.seed, args.floor
    )
    console = _out()
    _print_draw_report(console, pool_id, report)
    console.print(
        f"{pool_id} is a draft in the vault (canary {vault.manifest(pool_id)['canary']}); "
        f"activate it with: holdout pool activate {pool_id}"
    )
    return 0


def cmd_pool_show(args) -> int:
    from .vault import Vault

    m = Vault.open(_places(args).workspace).manifest(args.pool_id)
    if args.json:
        _print_json(m)
        return 0
    console = _out()
    stamp = lambda t: time.strftime("%Y-%m-%d %H:%M", time.gmtime(t)) if t else "-"  # noqa: E731
    console.print(
        f"{m['id']}: {m['status']}, {m['license_class']}, {m['items']} items, created "
        f"{stamp(m['created'])}, "
        f"activated {stamp(m.get('activated_at'))}, retired {stamp(m.get('retired_at'))}\n"
        f"canary {m['canary']}; content sha256 {m['content_sha256'][:16]}...; source "
        f"{m['provenance'].get('source')}; distribution "
        f"{m['provenance'].get('distribution') or '-'}"
    )
    if "draw_report" in m:
        _print_draw_report(console, m["id"], m["draw_report"])
    else:
        console.print("strata: " + "; ".join(f"{k}: {v}" for k, v in m["strata"].items()))
    return 0


def cmd_pool_exposure(args) -> int:
    from rich.table import Table

    from .vault import Vault
    from .vault.rotation import exposure

    vault = Vault.open(_places(args).workspace)
    pool_id = args.pool or vault.active_pool(args.suite)
    if pool_id is None:
        raise HoldoutError(f"suite '{args.suite}' has no active pool; name one with --pool")
    rows = exposure(vault, pool_id)
    if args.json:
        _print_json({"pool": pool_id, "items": vault.manifest(pool_id)["items"], "exposure": rows})
        return 0
    console = _out()
    per_provider: dict = {}
    for r in rows:
        p = per_provider.setdefault(r["provider"], {"items": 0, "sends": 0, "max": 0})
        p["items"] += 1
        p["sends"] += r["sent"]
        p["max"] = max(p["max"], r["sent"])
    n_items = vault.manifest(pool_id)["items"]
    t = Table(title=f"{pool_id}: exposure by provider ({n_items} items)")
    for col in ("provider", "items seen", "sends", "max sends of one item"):
        t.add_column(col, justify="left" if col == "provider" else "right")
    for prov, p in sorted(per_provider.items()):
        t.add_row(prov, str(p["items"]), str(p["sends"]), str(p["max"]))
    console.print(t if rows else f"{pool_id}: no item has been sent to any provider yet")
    if args.items and rows:
        t = Table(title="per item")
        for col in ("item", "provider", "sent", "first seen", "last seen"):
            t.add_column(col)
        for r in rows:
            t.add_row(
                r["item_id"],
                r["provider"],
                str(r["sent"]),
                time.strftime("%Y-%m-%d %H:%M", time.gmtime(r["first_seen"])),
                time.strftime("%Y-%m-%d %H:%M", time.gmtime(r["last_seen"])),
            )
        console.print(t)
    return 0


def _days(text: str | None) -> float | None:
    if text is None:
        return None
    if not re.fullmatch(r"\d+(\.\d+)?d?", text):
        raise HoldoutError(f"--max-age: expected a number of days such as 30d, not {text!r}")
    return float(text.rstrip("d"))


def cmd_pool_rotate(args) -> int:
    from .suite import load_suite
    from .vault import Vault
    from .vault.rotation import rotate

    suite = load_suite(args.suite, args.suites_dir)
    policy = suite.raw.get("rotation") or {}
    max_exposure = args.max_exposure or policy.get("max_exposure")
    max_age = _days(args.max_age) or policy.get("max_age_days")
    vault = Vault.open(_places(args).workspace)
    reasons, pool_id, report = rotate(vault, suite, max_exposure, max_age, args.force)
    console = _out()
    if not pool_id:
        console.print(
            f"no rotation needed for '{suite.name}' (max exposure {max_exposure or '-'}, max age "
            f"{max_age or '-'} days); active: {vault.active_pool(suite.name)}"
        )
        return 0
    console.print("rotating: " + "; ".join(reasons))
    _print_draw_report(console, pool_id, report)
    console.print(
        f"{pool_id} is now active; the previous version is retired (its embargo starts now)"
    )
    return 0


def cmd_pool_activate(args) -> int:
    from .vault import Vault

    previous = Vault.open(_places(args).workspace).activate(args.pool_id)
    _out().print(
        f"{args.pool_id} is active"
        + (f"; {previous} retired (its embargo starts now)" if previous else "")
    )
    return 0


def cmd_pool_retire(args) -> int:
    from .vault import Vault

    Vault.open(_places(args).workspace).retire(args.pool_id)
    _out().print(f"{args.pool_id} retired (its embargo starts now)")
    return 0


def cmd_mock_server(args) -> int:
    from .mockserver import MockBehaviour, serve_forever

    serve_forever(
        args.port,
        MockBehaviour(
            latency_s=args.latency_ms / 1000,
            jitter_s=args.jitter_ms / 1000,
            reply=args.reply,
            rate_limit_rps=args.rate_limit,
            advertise_limits=not args.no_limit_headers,
            max_concurrency=args.max_concurrency,
            error_rate=args.error_rate,
            faults=tuple(f for f in args.faults.split(",") if f),
            retry_after_s=args.retry_after,
        ),
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    from pathlib import Path

    p = argparse.ArgumentParser(
        prog="holdout",
        description="Run language models against private, rotating, held-out evaluation suites.",
        epilog=EPILOG,
    )
    p.add_argument("--version", action="version", version=f"holdout {__version__}")
    p.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="log verbosity (logs pass through the egress gate)",
    )
    p.add_argument("--log-file", type=Path, help="also write logs to this file")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def workspace(sp):
        sp.add_argument(
            "--workspace",
            type=Path,
            help="store and vault directory (default: the run config's workspace, else .holdout)",
        )

    def json_flag(sp):
        sp.add_argument(
            "--json", action="store_true", help="print the result as one JSON document on stdout"
        )

    def results_dir(sp):
        sp.add_argument(
            "--results-dir",
            type=Path,
            help="where results go (default: the run config's results_dir, else results)",
        )

    def run_config(sp):
        sp.add_argument(
            "--config",
            type=Path,
            help="the run's config: decides workspace and results_dir (default: "
            "the config the run was made from)",
        )

    sp = sub.add_parser(
        "run",
        help="run a config: call every model on every item, resuming what is done",
        description="Run a YAML config. Re-running the same config resumes: calls already in the "
        "store are not made again. Ctrl-C stops new calls, waits for those in flight, and saves.",
    )
    sp.add_argument("config", type=Path, help="run config (YAML), e.g. configs/demo.yaml")
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sp.add_argument(
        "--recall-changed",
        action="store_true",
        help="items edited (or removed) since this run called "
        "them: delete their calls, grades and judge calls and call them again (without this, "
        "such a "
        "re-run is refused and the items are named)",
    )
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser(
        "status", help="runs in the store: done/total, errors, model and judge cost"
    )
    run_config(sp)
    workspace(sp)
    json_flag(sp)
    sp.set_defaults(func=cmd_status)

    sp = sub.add_parser("runs", help="manage runs in the store")
    rsub = sp.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    dp = rsub.add_parser(
        "delete",
        help="delete a run and everything made from it: calls, grades, judge calls, "
        "review assignments",
    )
    dp.add_argument("run_id")
    run_config(dp)
    workspace(dp)
    dp.set_defaults(func=cmd_runs_delete)

    sp = sub.add_parser(
        "grade",
        help="grade a run's outputs with the suite's (or config's) graders; resumable",
        description="Grade what is not graded yet. Judge calls go through the same engine as model "
        "calls (limits, retries, budget, resume): grading a graded run again calls nothing.",
    )
    sp.add_argument("run_id")
    run_config(sp)
    sp.add_argument("-q", "--quiet", action="store_true")
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
    sp.add_argument("run_id")
    sp.add_argument("--seed", type=int, default=0, help="bootstrap seed (reports are reproducible)")
    run_config(sp)
    results_dir(sp)
    workspace(sp)
    json_flag(sp)
    sp.set_defaults(func=cmd_report)

    sp = sub.add_parser(
        "scorecard",
        help="signed private scorecards for labs: results/<run>/scorecards/<lab>.{json,html}",
    )
    sp.add_argument("run_id")
    who = sp.add_mutually_exclusive_group(required=True)
    who.add_argument("--lab", help="one lab (from the run config's labs:)")
    who.add_argument("--all", action="store_true", help="one scorecard per lab")
    sp.add_argument("--seed", type=int, default=0, help="bootstrap seed (CIs are reproducible)")
    run_config(sp)
    results_dir(sp)
    workspace(sp)
    sp.set_defaults(func=cmd_scorecard)

    sp = sub.add_parser(
        "leaderboard",
        help="the public view: aggregates only, unless the run says leaderboard_public",
    )
    sp.add_argument("run_id")
    sp.add_argument("--seed", type=int, default=0)
    run_config(sp)
    results_dir(sp)
    workspace(sp)
    sp.set_defaults(func=cmd_leaderboard)

    purposes = ["evaluation", "research", "training", "license"]

    def embargo_flags(p):
        p.add_argument(
            "--embargo-days",
            type=float,
            help="lengthen the suite's license.embargo_days (default 60); "
            "a shorter value needs --justification",
        )
        p.add_argument(
            "--justification",
            help="why the embargo is shortened (written into the signed manifest)",
        )

    sp = sub.add_parser(
        "export", help="the one way items or outputs leave: only what the licence policy allows"
    )
    esub = sp.add_subparsers(dest="export_command", metavar="WHAT", required=True)
    ep = esub.add_parser("items", help="a suite's pool versions that may be exported for a purpose")
    ep.add_argument("--suite", required=True)
    ep.add_argument("--purpose", required=True, choices=purposes)
    ep.add_argument("--out", type=Path, required=True)
    embargo_flags(ep)
    ep.add_argument("--suites-dir", type=Path, default=Path("suites"))
    workspace(ep)
    ep.set_defaults(func=cmd_export_items)
    ep = esub.add_parser("outputs", help="a run's outputs whose providers' terms allow the purpose")
    ep.add_argument("run_id")
    ep.add_argument("--purpose", required=True, choices=purposes)
    ep.add_argument("--out", type=Path, required=True)
    ep.add_argument("--lab", help="only this lab's models (what a lab may receive)")
    embargo_flags(ep)
    run_config(ep)
    workspace(ep)
    ep.set_defaults(func=cmd_export_outputs)
    sp = sub.add_parser("policy", help="explain the licence policy")
    psub2 = sp.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    pp = psub2.add_parser("explain", help="why a pool version is or is not exportable, per purpose")
    pp.add_argument("pool_id")
    pp.add_argument("--purpose", choices=purposes)
    pp.add_argument("--embargo-days", type=float)
    pp.add_argument("--suites-dir", type=Path, default=Path("suites"))
    workspace(pp)
    pp.set_defaults(func=cmd_policy_explain)

    sp = sub.add_parser(
        "review", help="human review: reviewers, routing, the reviewers' app, status"
    )
    rvs = sp.add_subparsers(dest="review_command", metavar="ACTION", required=True)
    rp = rvs.add_parser("add-reviewer", help="register a reviewer; prints a one-time login link")
    rp.add_argument("name")
    rp.add_argument(
        "--languages",
        help="comma-separated, e.g. en,ja: items with a language go to reviewers who read it",
    )
    rp.add_argument("--country")
    rp.add_argument("--age-band")
    rp.add_argument("--education")
    rp.add_argument("--host", default="127.0.0.1")
    rp.add_argument("--port", type=int, default=8700)
    rp.add_argument(
        "--public-url",
        help="the app's address behind a TLS proxy (https://review.example.org): the link uses it",
    )
    rp.add_argument(
        "--expires-hours",
        type=float,
        default=72.0,
        help="the link dies if unused this long (default 72)",
    )
    workspace(rp)
    rp.set_defaults(func=cmd_review_add)
    rp = rvs.add_parser(
        "revoke", help="end a reviewer's login link and sessions now (their decisions stay)"
    )
    rp.add_argument("name")
    workspace(rp)
    rp.set_defaults(func=cmd_review_revoke)
    for name, func, text in (
        (
            "route",
            cmd_review_route,
            "queue outputs for people by the human: grader's policy, and assign them",
        ),
        ("serve", cmd_review_serve, "the reviewers' web app"),
        (
            "status",
            cmd_review_status,
            "queue, agreement, gold accuracy, flagged reviewers (no text)",
        ),
        ("import", cmd_review_import, "decisions made in another tool (JSONL), validated"),
    ):
        rp = rvs.add_parser(name, help=text)
        rp.add_argument("run_id")
        if name == "import":
            rp.add_argument("file", type=Path)
        if name == "route":
            rp.add_argument("--seed", type=int, default=0)
        if name == "serve":
            rp.add_argument(
                "--host",
                default="127.0.0.1",
                help="bind address (default loopback; put a TLS proxy in front for anything else)",
            )
            rp.add_argument("--port", type=int, default=8700)
            rp.add_argument(
                "--public-url",
                help="the https:// address reviewers use, served by a TLS-terminating "
                "proxy in front: forms must come from it, and cookies are Secure",
            )
        if name == "status":
            results_dir(rp)
            json_flag(rp)
        run_config(rp)
        workspace(rp)
        rp.set_defaults(func=func)

    sp = sub.add_parser(
        "check",
        help="flag judge injection, prompt-independent, terse, truncated and refusing outputs",
    )
    sp.add_argument("run_id")
    sp.add_argument("--suite", help="take thresholds from this suite's safeguards: section")
    sp.add_argument("--suites-dir", type=Path, default=Path("suites"))
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
        "verify",
        help="check a scorecard (.json or .html) or an export manifest: fails on any change",
    )
    sp.add_argument("file", type=Path)
    workspace(sp)
    sp.add_argument(
        "--key", help="require this signer fingerprint (ed25519:...), as printed when it was issued"
    )
    json_flag(sp)
    sp.set_defaults(func=cmd_verify)

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

    sp = sub.add_parser("vault", help="the encrypted store of held-out pools")
    vsub = sp.add_subparsers(dest="vault_command", metavar="ACTION", required=True)
    vp = vsub.add_parser(
        "init", help="create the vault and its key (a 0600 key file, or HOLDOUT_VAULT_KEY)"
    )
    workspace(vp)
    vp.set_defaults(func=cmd_vault_init)
    vp = vsub.add_parser(
        "verify",
        help="check everything a command-line user without the key could have changed: "
        "index (and rollback), manifests, pool contents, the exposure ledger's chain",
    )
    workspace(vp)
    json_flag(vp)
    vp.set_defaults(func=cmd_vault_verify)

    sp = sub.add_parser("pool", help="pool versions in the vault: import, list, activate, retire")
    psub = sp.add_subparsers(dest="pool_command", metavar="ACTION", required=True)
    pp = psub.add_parser(
        "import", help="import a JSONL file as a new (draft) pool version, encrypted"
    )
    pp.add_argument("file", type=Path)
    pp.add_argument("--suite", required=True, help="suite name (suites/<name>/suite.yaml)")
    cls = pp.add_mutually_exclusive_group()
    cls.add_argument("--heldout", action="store_true", help="license class heldout: never exported")
    cls.add_argument(
        "--license",
        choices=["public", "licensable", "heldout"],
        default="heldout",
        help="license class (default heldout)",
    )
    pp.add_argument(
        "--max-retention",
        help="only send to providers that keep prompts at most this long (zero, 30d)",
    )
    pp.add_argument("--activate", action="store_true", help="make it the suite's active pool now")
    pp.add_argument(
        "--data-license",
        help="the source data's licence (SPDX id, e.g. CC-BY-NC-4.0); limits exports",
    )
    pp.add_argument(
        "--distribution",
        help="distribution id if drawn from a live stream (embargoed after retirement)",
    )
    pp.add_argument("--suites-dir", type=Path, default=Path("suites"))
    workspace(pp)
    pp.set_defaults(func=cmd_pool_import)
    pp = psub.add_parser(
        "draw", help="draw a new draft version from the arena source: stratified, deduplicated"
    )
    pp.add_argument("--suite", required=True)
    pp.add_argument(
        "--source",
        help="hub id, file, or glob of jsonl/parquet/csv (default: the suite's source.data)",
    )
    pp.add_argument("--size", type=int, help="items to draw (default: the suite's draw.size)")
    pp.add_argument(
        "--stratify",
        help="comma-separated metadata keys (default: the suite's draw.stratify or strata)",
    )
    pp.add_argument("--seed", type=int, help="the same seed and source give the same pool")
    pp.add_argument(
        "--floor", type=int, help="at least this many items per stratum where available"
    )
    pp.add_argument("--suites-dir", type=Path, default=Path("suites"))
    workspace(pp)
    pp.set_defaults(func=cmd_pool_draw)
    pp = psub.add_parser(
        "show", help="a version's manifest: strata vs source, distance, dedup counts (no text)"
    )
    pp.add_argument("pool_id")
    workspace(pp)
    json_flag(pp)
    pp.set_defaults(func=cmd_pool_show)
    pp = psub.add_parser(
        "exposure", help="how often each item was sent to each provider (ids and counts)"
    )
    pp.add_argument("suite")
    pp.add_argument("--pool", help="a version other than the active one")
    pp.add_argument("--items", action="store_true", help="also list every item")
    workspace(pp)
    json_flag(pp)
    pp.set_defaults(func=cmd_pool_exposure)
    pp = psub.add_parser(
        "rotate", help="draw and activate a fresh version when the rotation policy says so"
    )
    pp.add_argument("suite")
    pp.add_argument(
        "--max-exposure", type=int, help="rotate once an item was sent this often to one provider"
    )
    pp.add_argument("--max-age", help="rotate once the active version is this old, e.g. 30d")
    pp.add_argument("--force", action="store_true", help="rotate now whatever the policy says")
    pp.add_argument("--suites-dir", type=Path, default=Path("suites"))
    workspace(pp)
    pp.set_defaults(func=cmd_pool_rotate)
    pp = psub.add_parser("list", help="versions, item counts, status (never item text)")
    pp.add_argument("--suite")
    workspace(pp)
    json_flag(pp)
    pp.set_defaults(func=cmd_pool_list)
    for name, func, text in (
        ("activate", cmd_pool_activate, "make a version active; the previous one is retired"),
        ("retire", cmd_pool_retire, "retire a version; its embargo clock starts"),
    ):
        pp = psub.add_parser(name, help=text)
        pp.add_argument("pool_id", help="e.g. arena@v3")
        workspace(pp)
        pp.set_defaults(func=func)

    sp = sub.add_parser(
        "mock-server", help="a local OpenAI/Anthropic-compatible server for trying things offline"
    )
    sp.add_argument("--port", type=int, default=8765)
    sp.add_argument("--latency-ms", type=float, default=0.0)
    sp.add_argument("--jitter-ms", type=float, default=0.0)
    sp.add_argument("--reply", default="echo", help="'echo' (repeat the prompt) or a fixed text")
    sp.add_argument(
        "--rate-limit",
        type=float,
        default=None,
        help="requests/s above which it answers 429 "
        "(advertised as a per-minute limit in x-ratelimit-* headers, as OpenAI does)",
    )
    sp.add_argument(
        "--no-limit-headers",
        action="store_true",
        help="do not advertise the rate limit: the client learns it only from 429s",
    )
    sp.add_argument(
        "--max-concurrency",
        type=int,
        default=None,
        help="requests in flight above which it answers 429",
    )
    sp.add_argument(
        "--error-rate", type=float, default=0.0, help="fraction of requests answered with a fault"
    )
    sp.add_argument(
        "--faults",
        default="500",
        help="comma-separated faults taken in turn at --error-rate: an HTTP "
        "status (500, 429, 400 ...), reset, hang, garbled, truncated, empty, no_choices, "
        "content_filter",
    )
    sp.add_argument(
        "--retry-after", type=float, default=1.0, help="the Retry-After of a 429 fault, in seconds"
    )
    sp.set_defaults(func=cmd_mock_server)
    return p


def _setup_logging(level: str, log_file) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        handlers=handlers,
        force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _private_by_default() -> None:
    """Every file this process creates (store, ledger, logs, keys, results, exports) is the owner's
    alone (0600, directories 0700); SIGTERM unwinds like Ctrl-C so cleanups run on every exit
    path."""
    os.umask(0o077)

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_term)


def main(argv: list[str] | None = None) -> int:
    GATE.install()
    _private_by_default()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    _setup_logging(args.log_level, args.log_file)
    try:
        return args.func(args)
    except HoldoutError as e:
        print(f"error: {GATE.scan(str(e))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(
            "interrupted; nothing in the store was lost. Re-run the same command to resume.",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except Exception as e:  # a bug: show the traceback, but only through the gate
        sys.stderr.write(GATE.format_exception(e))
        print(
            "error: unexpected failure (a bug in holdout); the store is consistent, re-run to "
            "resume.",
            file=sys.stderr,
        )
        return EXIT_BUG
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
