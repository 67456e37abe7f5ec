"""`holdout report --across SUITE`: every model that ran on a version of the suite, on one scale,
linked through the anchor models (harness/linking.py)."""

from __future__ import annotations

from ..database import store_location
from ..errors import HoldoutError
from ._common import EXIT_OK, _err, _out, _places, _print_json


def _fmt(e: dict) -> str:
    return f"{e['score']:.3f} [{e['ci_low']:.3f}, {e['ci_high']:.3f}]"


def cmd_report_across(args) -> int:
    from .. import linking
    from ..egress import GATE
    from ..graderspecs import grader_names
    from ..store import Store
    from ..suite import load_suite
    from ..vault import Vault

    places = _places(args)
    suite = load_suite(args.across, args.suites_dir)
    statuses = {m["id"]: m["status"] for m in Vault.open(places.workspace).pools(suite.name)}
    store = Store(store_location(places.workspace), create=False)
    try:
        graded = set(store.grader_names())  # a look at the grades, not the calls' figures
        grader = args.grader or next(
            (g for g in grader_names(list(suite.graders)) if g in graded),
            next(iter(graded)) if len(graded) == 1 else None,
        )
        if grader is None or grader not in graded:
            raise HoldoutError(
                f"--across {suite.name}: pass --grader (graders with grades: "
                f"{', '.join(sorted(graded)) or 'none'})"
            )
        versions, notes = linking.collect(store, suite.name, grader=grader, statuses=statuses)
    finally:
        store.close()
    graded_versions = [v.pool for v in versions]
    active = [p for p, s in statuses.items() if s == "active" and p in graded_versions]
    scale = args.scale or (active[0] if active else graded_versions[-1])  # newest graded
    out = linking.link(versions, scale=scale, anchors=suite.anchors, seed=args.seed).as_dict()
    out.update(suite=suite.name, grader=grader, notes=notes)
    path = GATE.write_json(places.results_dir / "across" / f"{suite.name}.json", out)
    if args.json:
        _print_json(out)
    else:
        _print_across(out)
    _err().print(f"written: {path}")
    return EXIT_OK


def _print_across(out: dict) -> None:
    from rich.table import Table

    console = _out()
    versions = list(out["versions"])
    t = Table(
        title=f"{out['suite']}: linked scores on {out['scale']}'s scale ('{out['grader']}', 95% CI)"
    )
    for col in ("model", "linked score", *versions, "note"):
        t.add_column(col)
    ranked = sorted(out["models"].items(), key=lambda kv: -kv[1]["score"])
    for model, e in ranked:
        t.add_row(
            model,
            _fmt(e),
            *(f"{e['versions'][v]:.3f}" if v in e["versions"] else "" for v in versions),
            "only on retired versions" if e["only_retired"] else "",
        )
    console.print(t)
    console.print("the version columns are raw means on each version's own items")
    v = Table(title="how each version is linked")
    for col in ("version", "status", "models", "shared models", "items", "offset vs scale"):
        v.add_column(col)
    for pool, e in out["versions"].items():
        v.add_row(
            pool,
            e["status"],
            str(e["models"]),
            ", ".join(e["anchors"]) or "-",
            str(e["items"]),
            (
                "0 (the scale)"
                if pool == out["scale"]
                else f"{e['offset']:+.3f} [{e['ci_low']:+.3f}, {e['ci_high']:+.3f}]"
                if e["linked"]
                else "not linked (no shared model)"
            ),
        )
    console.print(v)
    for pool, e in out["versions"].items():
        if e["missing_anchors"]:
            console.print(
                f"[yellow]note[/]: {pool} lacks the suite's anchors "
                f"{', '.join(e['missing_anchors'])}: its link rests on the other shared models"
            )
    for model, seen in sorted(out["unlinked"].items()):
        console.print(
            f"not on the scale: {model} ("
            + ", ".join(f"{p} {s:.3f}" for p, s in seen.items())
            + "): no anchor links its version"
        )
    for note in out["notes"]:
        console.print(f"left out: {note}")
