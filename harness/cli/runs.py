"""`holdout run`, `status`, `runs delete`, `runs diff`: making runs, seeing where they stand, and
comparing two."""

from __future__ import annotations

import time
from pathlib import Path

from ._common import (
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    _err,
    _out,
    _places,
    _print_json,
    _run_store,
    json_flag,
    run_config,
    workspace,
)


def cmd_run(args) -> int:
    from ..run import run

    outcome = run(
        args.config, out=_out(), err=_err(), quiet=args.quiet, recall_changed=args.recall_changed
    )
    if outcome.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if outcome.complete else EXIT_INCOMPLETE


def cmd_status(args) -> int:
    from rich.table import Table

    from ..store import NoStore, Store

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
    fp.add_argument("run_a")
    fp.add_argument("run_b")
    fp.add_argument("--grader", help="whose scores (default: the one grader both runs have)")
    fp.add_argument("--seed", type=int, default=0, help="bootstrap seed (CIs are reproducible)")
    run_config(fp)
    workspace(fp)
    json_flag(fp)
    fp.set_defaults(func=cmd_runs_diff)
