"""`holdout run`, `status` (`runs list`), `runs delete`, `runs diff`, `runs items`: making runs,
seeing where they stand, listing their items, and comparing two."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..database import describe, store_location
from ..errors import HoldoutError
from ._common import (
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    _err,
    _out,
    _places,
    _print_json,
    _run_store,
    finite_float,
    json_flag,
    run_config,
    workspace,
)


def cmd_run(args) -> int:
    from ..run import run

    outcome = run(
        args.config,
        out=_out(),
        err=_err(),
        quiet=args.quiet,
        recall_changed=args.recall_changed,
        wait=args.wait,
    )
    if outcome.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if outcome.complete else EXIT_INCOMPLETE


def cmd_status(args) -> int:
    from rich.table import Table

    from ..store import NoStore, Store

    places = _places(args)
    try:
        store = Store(store_location(places.workspace), create=False)
    except NoStore:
        rows = []
    else:
        try:
            rows = store.status()
            in_flight = _batches_in_flight(store)
        finally:
            store.close()
        for r in rows:
            r["batches_in_flight"] = in_flight.get(r["run_id"])
    if args.json:
        _print_json(rows)
        return EXIT_OK
    if not rows:
        _err().print(f"no runs in {describe(store_location(places.workspace))}")
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
    for r in rows:
        b = r["batches_in_flight"]
        if b:
            _out().print(
                f"run {r['run_id']}: {b['count']} batch{'es' if b['count'] > 1 else ''} in flight "
                f"at the provider (oldest sent {b['oldest_s'] / 60:.0f} min ago; answered by "
                f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(b['expected_by']))} at the "
                "latest); `holdout run` of its config collects them"
            )
    return EXIT_OK


def _batches_in_flight(store) -> dict:
    """run id -> {count, oldest_s, expected_by} of its batches not yet collected (a provider
    answers a batch within 24 hours)."""
    out: dict = {}
    now = time.time()
    for rec in store.batches():
        if rec.status == "collected":
            continue
        b = out.setdefault(rec.run_id, {"count": 0, "oldest_s": 0.0, "expected_by": 0.0})
        b["count"] += 1
        b["oldest_s"] = max(b["oldest_s"], now - rec.created)
        b["expected_by"] = max(b["expected_by"], rec.created + 24 * 3600)
    return out


def cmd_runs_items(args) -> int:
    """The maintainers' view's item list on the command line: ids, models, epochs, statuses,
    scores and the judges' parsed verdicts (never text), under the same filters."""
    from ..view import figures, queries

    if not 1 <= args.limit <= 1_000_000:
        raise HoldoutError(f"--limit: expected a whole number from 1 to 1000000, got {args.limit}")
    places = _places(args)
    ctx = None
    with _run_store(places.workspace, args.run_id) as store:
        graders = store.grader_names(args.run_id)
        if args.grader is not None and args.grader not in graders:
            raise HoldoutError(
                f"run '{args.run_id}' has no grades from '{args.grader}' (graders: "
                f"{', '.join(graders) or 'none: run `holdout grade` first'})"
            )
        if not graders:
            raise HoldoutError(f"run '{args.run_id}' has no grades: run `holdout grade` first")
        db = store.db
        stratum = None
        if args.stratum:
            from ..context import open_run

            key, sep, value = args.stratum.partition("=")
            if not sep:
                raise HoldoutError(f"--stratum: expected KEY=VALUE, got '{args.stratum}'")
            ctx = open_run(args.run_id, places.workspace, places.config)
            db = ctx.store.db
            figures.load_strata(db, args.run_id, ctx.items(), [key])
            stratum = (key, value)
        try:
            f = queries.Filter(
                grader=args.grader or graders[0],
                model=args.model,
                show=args.show,
                stratum=stratum,
                score_min=args.min,
                score_max=args.max,
                error_kind=args.error,
                safeguard=args.safeguard,
                sort=args.sort,
                size=args.limit,
            )
            listing = queries.grade_page(db, args.run_id, f)
        finally:
            if ctx is not None:
                ctx.close()
    if args.json:
        _print_json({"grader": f.grader, "more": listing.next_after is not None, **vars(listing)})
        return EXIT_OK
    out = _out()
    for r in listing.rows:
        status = f"call failed: {r['call_error']}" if r["call_error"] else r["status"] or "-"
        score = "-" if r["score"] is None else f"{r['score']:.3f}"
        out.print(f"{r['model']}\t{r['item_id']}\t{r['epoch']}\t{status}\t{score}")
    _err().print(
        f"{len(listing.rows)} row(s), grader {f.grader}"
        + (f"; more after the first {args.limit} (--limit)" if listing.next_after else "")
    )
    return EXIT_OK


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


def cmd_runs_diff(args) -> int:
    from rich.table import Table

    from ..paired import diff_runs

    places = _places(args)
    with _run_store(places.workspace, args.run_a) as store:
        diff = diff_runs(store, args.run_a, args.run_b, grader=args.grader, seed=args.seed)
    grader = diff["grader"]
    if args.json:
        _print_json(diff)
        return EXIT_OK
    t = Table(
        title=f"{args.run_b} minus {args.run_a}, grader {grader}: on the items both runs scored "
        "(paired 95% CI over items; * = the CI leaves out 0)"
    )
    for col in ("model", "items", args.run_a, args.run_b, "difference", "95% CI", "up", "down"):
        t.add_column(col, justify="left" if col == "model" else "right")
    for model, d in diff["models"].items():
        t.add_row(
            model,
            str(d["n"]),
            f"{d['mean_a']:.3f}",
            f"{d['mean_b']:.3f}",
            f"{d['difference']:+.3f}" + (" *" if d["separated"] else ""),
            f"[{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]",
            str(d["better"]),
            str(d["worse"]),
        )
    out = _out()
    out.print(t)
    if diff["pool_a"] != diff["pool_b"]:
        out.print(f"pools differ ({diff['pool_a']}, {diff['pool_b']}): only shared items compared")
    if diff["edited_between_runs"]:
        out.print(
            f"{diff['edited_between_runs']} item(s) edited between the runs (same id, other "
            f"content) were left out: {', '.join(diff['edited_item_ids'])}"
        )
    if diff["not_in_both"]:
        out.print(f"not graded by {grader} in both runs: {', '.join(diff['not_in_both'])}")
    return EXIT_OK


def register(sub) -> None:
    """The run, status, runs command(s)."""
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
    sp.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="batch mode: wait for the batches (default), or return once they are submitted "
        "(--no-wait; exit 3; a later `holdout run` of the config collects them)",
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
    fp = rsub.add_parser(
        "diff",
        help="RUN_B minus RUN_A per model, on the items both scored with the same content: "
        "score differences with paired bootstrap CIs, and the items that changed most",
    )
    fp.add_argument("run_a", help="the run to compare against")
    fp.add_argument("run_b", help="the run compared")
    fp.add_argument("--grader", help="whose scores (default: the one grader both runs have)")
    fp.add_argument("--seed", type=int, default=0, help="bootstrap seed (CIs are reproducible)")
    run_config(fp)
    workspace(fp)
    json_flag(fp)
    fp.set_defaults(func=cmd_runs_diff)
    lp = rsub.add_parser("list", help="the runs in the store (the same as `holdout status`)")
    run_config(lp)
    workspace(lp)
    json_flag(lp)
    lp.set_defaults(func=cmd_status)
    _items_parser(rsub)


def _items_parser(rsub) -> None:
    from ..view.queries import PAGE, SHOWS, SORTS

    ip = rsub.add_parser(
        "items",
        help="a run's calls with one grader's grades, filtered and sorted as in the maintainers' "
        "view: ids, statuses, scores, verdicts (never text)",
    )
    ip.add_argument("run_id")
    ip.add_argument("--grader", help="whose grades (default: the run's first grader)")
    ip.add_argument("--model", help="one model's calls only (its name in the config)")
    ip.add_argument(
        "--show",
        choices=list(SHOWS),
        default="all",
        help="disagree: the judges disagree (or a pairwise verdict flips with the order); human: "
        "a person's decision far from the judges'; failed: the model call failed; grade-error; "
        "skipped; ungraded",
    )
    ip.add_argument("--stratum", metavar="KEY=VALUE", help="items with this metadata value")
    ip.add_argument("--min", type=finite_float, help="scores at least this")
    ip.add_argument("--max", type=finite_float, help="scores at most this")
    ip.add_argument("--error", metavar="KIND", help="calls that failed with this error kind")
    ip.add_argument(
        "--safeguard", metavar="DETECTOR", help="items this detector flagged (`holdout check`)"
    )
    ip.add_argument("--sort", choices=list(SORTS), default="item", help="default: by item id")
    ip.add_argument("--limit", type=int, default=PAGE * 20, help="at most this many rows")
    run_config(ip)
    workspace(ip)
    json_flag(ip)
    ip.set_defaults(func=cmd_runs_items)
