"""`holdout pool qualify`, `pool activate`: a version is measured by a pilot run before it goes
live, and goes live only if it passes the suite's thresholds (or an override says why,
recorded)."""

from __future__ import annotations

from ..errors import HoldoutError
from ._common import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    _out,
    _places,
    _print_json,
    json_flag,
    suites_dir,
    workspace,
)


def _grader(ctx, asked: str | None) -> str:
    """--grader, else the config's headline, else its first grader that graded the pilot."""
    from ..graderspecs import grader_names

    graded = ctx.store.grader_names(ctx.run_id)
    if asked is not None:
        if asked not in graded:
            raise HoldoutError(
                f"--grader: run '{ctx.run_id}' has no grades from '{asked}' (graders: "
                f"{', '.join(graded) or 'none: run `holdout grade` first'})"
            )
        return asked
    names = [ctx.config.headline] if ctx.config.headline else []
    names += grader_names(ctx.graders()[0]) + sorted(graded)
    for name in names:
        if name in graded:
            return name
    raise HoldoutError(f"run '{ctx.run_id}' has no grades: run `holdout grade {ctx.run_id}` first")


def cmd_pool_qualify(args) -> int:
    """Exit 0: the version passes the suite's thresholds (or it sets none); 3: it fails one."""
    from .. import qualify
    from ..context import open_run
    from ..suite import load_suite
    from ..vault import Vault, gate

    places = _places(args)
    vault = Vault.open(places.workspace)
    manifest = vault.manifest(args.pool_id)
    if manifest["status"] == "retired":
        raise HoldoutError(f"{args.pool_id} is retired: it never goes live again")
    suite = load_suite(manifest["suite"], args.suites_dir)
    ctx = open_run(args.pilot, places.workspace)
    try:
        if ctx.info.get("pool") != args.pool_id:
            raise HoldoutError(
                f"--pilot: run '{args.pilot}' ran on {ctx.info.get('pool')}, not {args.pool_id}: "
                f"a pilot runs the anchor models on the version itself (pool: {args.pool_id}, "
                "allow_draft: true)"
            )
        grader = _grader(ctx, args.grader)
        if args.reference:
            reference = qualify.run_ranking(ctx.store, args.reference, grader, seed=args.seed)
            name = f"run {args.reference}"
        elif suite.qualify.get("reference"):
            reference = qualify.declared_ranking(suite.qualify["reference"])
            name = f"{suite.file}: qualify.reference"
        else:
            reference, name = None, None
        metrics = qualify.measure(
            ctx,
            manifest=manifest,
            grader=grader,
            reference=reference,
            reference_name=name,
            seed=args.seed,
        )
    finally:
        ctx.close()
    thresholds = gate.thresholds_of(suite)
    record = qualify.qualification(
        pool_id=args.pool_id,
        pilot_run=args.pilot,
        grader=grader,
        metrics=metrics,
        thresholds=thresholds,
    )
    vault.note(args.pool_id, "qualification", record)
    if args.json:
        _print_json(record)
    else:
        _print_qualification(record, thresholds)
    return EXIT_OK if record["passed"] else EXIT_INCOMPLETE


def _print_qualification(record: dict, thresholds: dict) -> None:
    from rich.table import Table

    m = record["metrics"]
    console = _out()
    console.print(
        f"{record['pool']}: pilot run {record['pilot_run']}, grader '{record['grader']}', "
        f"{len(m['models'])} models on {m['items']} items; reference: {m['reference'] or 'none'}"
    )
    t = Table(title="qualification (Arena-Hard's benchmark metrics)")
    for col in ("metric", "value", "detail", "threshold", "verdict"):
        t.add_column(col)
    checks = {c["metric"]: c for c in record["checks"]}
    details = {
        "separability": lambda d: f"{d['separated']} of {d['pairs']} pairs apart",
        "agreement": lambda d: f"{d['agree']} agree, {d['disagree']} disagree of {d['pairs']}",
        "brier": lambda d: f"{d['pairs']} pairs the reference separates",
        "source_distance": lambda d: ", ".join(f"{k} {v:.3f}" for k, v in d["by_key"].items()),
        "judge_human": lambda d: ", ".join(
            f"{k} {v:.2f}" for k, v in d["by_criterion"].items() if v is not None
        ),
    }
    for metric, detail in details.items():
        d = m[metric]
        check = checks.get(metric)
        t.add_row(
            metric,
            "-" if d["score"] is None else f"{d['score']:.3f}",
            d["why"] if d["score"] is None else detail(d),
            f"{check['threshold']} {check['bound']:g}" if check else "-",
            "-" if not check else ("pass" if check["passed"] else "FAIL"),
        )
    console.print(t)
    if not thresholds:
        verdict = "the suite sets no qualify: thresholds, so nothing was judged"
    elif record["passed"]:
        verdict = f"passes; `holdout pool activate {record['pool']}` puts it live"
    else:
        failed = ", ".join(c["metric"] for c in record["checks"] if not c["passed"])
        verdict = f"FAILS ({failed}): `pool activate` refuses it unless --override REASON"
    console.print(f"recorded in the vault index: {verdict}")


def cmd_pool_activate(args) -> int:
    from ..suite import load_suite
    from ..vault import Vault, gate

    vault = Vault.open(_places(args).workspace)
    suite = load_suite(vault.manifest(args.pool_id)["suite"], args.suites_dir)
    thresholds = gate.thresholds_of(suite)
    if args.override is not None and not args.override.strip():
        raise HoldoutError("--override: say why the version goes live anyway (it is recorded)")
    previous = vault.activate(args.pool_id, thresholds=thresholds, override=args.override)
    overridden = vault.manifest(args.pool_id).get("activation_override")
    _out().print(
        f"{args.pool_id} is active"
        + (f"; {previous} retired (its embargo starts now)" if previous else "")
        + (
            "; its failed qualification was overridden, recorded: "
            + "; ".join(overridden["failed"])
            if overridden and args.override
            else ""
        )
    )
    return 0


def register(psub) -> None:
    """The pool qualify, pool activate command(s)."""
    pp = psub.add_parser(
        "qualify",
        help="measure a version from a pilot run of the anchor models: separability, agreement "
        "and Brier score against a reference ranking, distance to the source, judge-human "
        "agreement; recorded, and judged against the suite's qualify: thresholds",
    )
    pp.add_argument("pool_id", help="the version, e.g. arena@v4 (usually a draft)")
    pp.add_argument("--pilot", required=True, help="a graded run of the anchor models on it")
    pp.add_argument(
        "--reference",
        help="a graded run on the previous version whose ranking the pilot should agree with "
        "(default: the suite's qualify.reference ranking)",
    )
    pp.add_argument("--grader", help="the grader whose scores rank the models (default: headline)")
    pp.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    suites_dir(pp)
    workspace(pp)
    json_flag(pp)
    pp.set_defaults(func=cmd_pool_qualify)
    pp = psub.add_parser(
        "activate",
        help="make a version active (the previous one is retired); refused if it fails the "
        "suite's qualify: thresholds, unless --override",
    )
    pp.add_argument("pool_id", help="e.g. arena@v3")
    pp.add_argument(
        "--override",
        metavar="REASON",
        help="activate though the version fails its qualification; the reason and the failed "
        "metrics are recorded in the signed vault index",
    )
    suites_dir(pp)
    workspace(pp)
    pp.set_defaults(func=cmd_pool_activate)
