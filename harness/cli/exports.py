"""`holdout export`, `policy explain`: what may leave, through the licence policy."""

from __future__ import annotations

from pathlib import Path

from ..errors import HoldoutError
from ..policy import PURPOSES
from ._common import _out, _places, run_config, suites_dir, workspace


def _embargo(args, suite, command: str):
    """The suite's embargo (license.embargo_days, default 60), lengthened by --embargo-days, or
    shortened only with --justification."""
    from ..policy import DEFAULT_EMBARGO_DAYS, choose_embargo

    policy_days = suite.license.get("embargo_days", DEFAULT_EMBARGO_DAYS)
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
    from ..export import export_items
    from ..suite import load_suite
    from ..vault import Vault

    suite = load_suite(args.suite, args.suites_dir)
    embargo = _embargo(args, suite, "export items")
    exported, refused = export_items(
        Vault.open(_places(args).workspace), suite.name, args.purpose, out=args.out, embargo=embargo
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


def _export_run(args, what: str, exporter, **extra) -> dict | None:
    """`export outputs` / `export results` of a run: open it, check --lab, export, print what was
    exported and each refusal; the manifest, or None if everything was refused."""
    from ..context import open_run

    places = _places(args)
    ctx = open_run(args.run_id, places.workspace, places.config, config=places.run_config)
    try:
        if args.lab and args.lab not in ctx.config.labs:
            raise HoldoutError(
                f"no lab '{args.lab}' in {ctx.config.file} (labs: "
                f"{', '.join(ctx.config.labs) or 'none'})"
            )
        manifest, refused = exporter(
            ctx,
            args.purpose,
            args.out,
            lab=args.lab,
            embargo=_embargo(args, ctx.suite, f"export {what}"),
            **extra,
        )
    finally:
        ctx.close()
    console = _out()
    if manifest:
        graders = manifest.get("graders")
        console.print(
            f"exported {manifest['rows']} {what}"
            + (
                f" (prompt, output, grades of {', '.join(graders) or 'no grader'})"
                if graders is not None
                else ""
            )
            + f" of {', '.join(manifest['models'])} to {args.out / manifest['file']}"
        )
    _print_refusals(console, refused)
    return manifest


def cmd_export_outputs(args) -> int:
    """Exit 0: something was exported; 3: everything was refused (each refusal named)."""
    from ..export import export_outputs

    return 0 if _export_run(args, "outputs", export_outputs) else 3


def cmd_export_results(args) -> int:
    """Exit 0: something was exported; 3: everything was refused (each refusal named)."""
    from ..export import export_results

    return 0 if _export_run(args, "results", export_results, fmt=args.format) else 3


def cmd_policy_explain(args) -> int:
    from .. import clock
    from ..policy import PURPOSES, decide_pool
    from ..suite import load_suite
    from ..vault import Vault

    m = Vault.open(_places(args).workspace).manifest(args.pool_id)
    embargo = args.embargo_days
    if embargo is None:
        try:
            embargo = _embargo(args, load_suite(m["suite"], args.suites_dir), "policy explain").days
        except HoldoutError:
            from ..policy import DEFAULT_EMBARGO_DAYS

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


def embargo_flags(p) -> None:
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


def export_target(ep):
    """What an export is for and where it goes."""
    ep.add_argument(
        "--purpose",
        required=True,
        choices=PURPOSES,
        help="what for: the policy decides per purpose",
    )
    ep.add_argument("--out", type=Path, required=True, help="the file to write")


def register(sub) -> None:
    """The export, policy command(s)."""
    sp = sub.add_parser(
        "export", help="the one way items or outputs leave: only what the licence policy allows"
    )
    esub = sp.add_subparsers(dest="export_command", metavar="WHAT", required=True)
    ep = esub.add_parser("items", help="a suite's pool versions that may be exported for a purpose")
    ep.add_argument("--suite", required=True, help="the suite whose pool versions")
    export_target(ep)
    embargo_flags(ep)
    suites_dir(ep)
    workspace(ep)
    ep.set_defaults(func=cmd_export_items)
    ep = esub.add_parser("outputs", help="a run's outputs whose providers' terms allow the purpose")
    ep.add_argument("run_id")
    export_target(ep)
    ep.add_argument("--lab", help="only this lab's models (what a lab may receive)")
    embargo_flags(ep)
    run_config(ep)
    workspace(ep)
    ep.set_defaults(func=cmd_export_outputs)
    ep = esub.add_parser(
        "results",
        help="per item and model: prompt, output and every grade, for the outputs the policy "
        "releases (a public pool's run in full; a held-out one only once its pool may leave)",
    )
    ep.add_argument("run_id")
    export_target(ep)
    ep.add_argument("--lab", help="only this lab's models")
    ep.add_argument("--format", choices=["jsonl", "csv"], default="jsonl", help="default jsonl")
    embargo_flags(ep)
    run_config(ep)
    workspace(ep)
    ep.set_defaults(func=cmd_export_results)
    sp = sub.add_parser("policy", help="explain the licence policy")
    psub2 = sp.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    pp = psub2.add_parser("explain", help="why a pool version is or is not exportable, per purpose")
    pp.add_argument("pool_id", help="the version, e.g. arena@v3")
    pp.add_argument("--purpose", choices=PURPOSES, help="one purpose only (default: each)")
    pp.add_argument(
        "--embargo-days", type=float, help="the embargo to judge by (default: the suite's)"
    )
    suites_dir(pp)
    workspace(pp)
    pp.set_defaults(func=cmd_policy_explain)
