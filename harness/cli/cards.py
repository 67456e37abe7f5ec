"""`holdout scorecard`, `leaderboard`, `verify`: what labs and the public receive, and checking
it."""

from __future__ import annotations

from pathlib import Path

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
    workers_flag,
    workspace,
)
from .grading import _build_report


def _pool_summary(ctx) -> dict:
    """Pool id, size and exposure per provider (ids and counts only) for a scorecard."""
    info = {"id": ctx.pool.name, "items": ctx.pool.count, "heldout": ctx.pool.heldout}
    if ctx.pool.draft or ctx.config.allow_draft:
        info["draft"] = ctx.pool.draft
        info["allow_draft"] = ctx.config.allow_draft
    if ctx.pool.heldout:
        from ..vault import Vault
        from ..vault.rotation import exposure

        per: dict = {}
        for r in exposure(Vault.open(ctx.config.workspace), ctx.pool.name):
            p = per.setdefault(r["provider"], {"items": 0, "sends": 0})
            p["items"] += 1
            p["sends"] += r["sent"]
        info["exposure"] = per
    return info


def cmd_scorecard(args) -> int:
    from .. import linking, provenance
    from ..callstats import call_stats
    from ..checks import StoreAt, start_checks
    from ..context import open_run
    from ..egress import GATE
    from ..scorecard import build_scorecard, render_html, sign, signing_key
    from ..vault import Vault

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
        vault = Vault.open(places.workspace)
        key = signing_key(vault)
        items = ctx.items()
        pool = _pool_summary(ctx)
        min_size = ctx.config.min_segment_size or ctx.suite.min_segment_size or 10
        # the checks of every card's models run in worker processes while the report is built
        pending = start_checks(
            ctx.store,
            args.run_id,
            ctx.suite.safeguards,
            where=StoreAt.of_run(ctx),
            models=sorted({m for lab in wanted for m in labs[lab]}),
            items=items,
            workers=args.workers,
        )
        try:
            calls = call_stats(ctx.store, args.run_id)  # one summary of its calls for every card
            report = _build_report(
                ctx.store, args.run_id, ctx.config, seed=args.seed, suite=ctx.suite, calls=calls
            )
            rows_sha = ctx.store.rows_fingerprint(args.run_id)  # and one pass over the store
            history = linking.history(
                ctx.store,
                args.run_id,
                grader=report["headline"],
                statuses={m["id"]: m["status"] for m in vault.pools(ctx.suite.name)},
                seed=args.seed,
            )
            checks = pending.result()
        finally:
            pending.close()
        out = _out()
        for lab in wanted:
            card = sign(
                build_scorecard(
                    ctx.store,
                    args.run_id,
                    lab,
                    owned=labs[lab],
                    items=items,
                    strata=ctx.suite.strata,
                    pool=pool,
                    min_segment_size=min_size,
                    seed=args.seed,
                    public=ctx.config.leaderboard_public,
                    safeguard_settings=ctx.suite.safeguards,
                    report=report,
                    provenance=provenance.of_run(ctx.store, args.run_id, ctx.config, labs[lab]),
                    rows_sha256=rows_sha,
                    calls=calls,
                    checks=checks,
                    history=history,
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

    from ..egress import GATE, strict_json

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


def cmd_leaderboard(args) -> int:
    from rich.table import Table

    from ..egress import GATE
    from ..scorecard import build_leaderboard

    places = _places(args)
    with _run_store(places.workspace, args.run_id) as store:
        public = places.run_config is not None and places.run_config.leaderboard_public
        board = build_leaderboard(
            store,
            args.run_id,
            public,
            seed=args.seed,
            report=_build_report(store, args.run_id, places.run_config, seed=args.seed),
        )
        if public:
            _ranks_over_time(board, store, args, places.workspace)
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
    if board.get("ranks_over_time"):
        ranks = board["ranks_over_time"]
        t = Table(title=f"ranks over time (linked on {ranks['scale']}'s scale)")
        versions = list(ranks["by_version"])
        for col in ("model", "linked rank", *versions):
            t.add_column(col)
        for m, r in sorted(ranks["linked"].items(), key=lambda kv: kv[1]):
            retired = " (retired versions only)" if m in ranks["only_retired"] else ""
            t.add_row(
                m + retired, str(r), *(str(ranks["by_version"][v].get(m, "")) for v in versions)
            )
        out.print(t)
    _err().print(f"written: {path}")
    return EXIT_OK


def _ranks_over_time(board: dict, store, args, workspace) -> None:
    """A public board's ranks on every version of its suite, linked through the anchors."""
    from .. import linking
    from ..vault import Vault, VaultError

    try:
        statuses = {m["id"]: m["status"] for m in Vault.open(workspace).pools()}
    except (VaultError, HoldoutError):
        statuses = {}
    history = linking.history(
        store, args.run_id, grader=board["primary"]["grader"], statuses=statuses, seed=args.seed
    )
    if history:
        board["ranks_over_time"] = {
            "scale": history["scale"],
            **linking.ranks_over_time(history),
            "only_retired": sorted(m for m, e in history["models"].items() if e["only_retired"]),
        }


def cmd_verify(args) -> int:
    """A scorecard (JSON or HTML) or an export manifest. Exit 0: intact and from a trusted signer;
    2: changed, or signed by someone else; 3: intact, but the signer is unpinned and no vault here
    can vouch for it."""
    from ..scorecard import vault_fingerprint, verify
    from ..scorecard.sign import strict_load
    from ..vault import Vault, VaultError

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


def register(sub) -> None:
    """The scorecard, leaderboard, verify command(s)."""
    sp = sub.add_parser(
        "scorecard",
        help="signed private scorecards for labs: results/<run>/scorecards/<lab>.{json,html}",
    )
    sp.add_argument("run_id")
    who = sp.add_mutually_exclusive_group(required=True)
    who.add_argument("--lab", help="one lab (from the run config's labs:)")
    who.add_argument("--all", action="store_true", help="one scorecard per lab")
    sp.add_argument("--seed", type=int, default=0, help="bootstrap seed (CIs are reproducible)")
    workers_flag(sp)
    run_config(sp)
    results_dir(sp)
    workspace(sp)
    sp.set_defaults(func=cmd_scorecard)

    sp = sub.add_parser(
        "leaderboard",
        help="the public view: aggregates only, unless the run says leaderboard_public",
    )
    sp.add_argument("run_id")
    sp.add_argument("--seed", type=int, default=0, help="bootstrap seed (CIs are reproducible)")
    run_config(sp)
    results_dir(sp)
    workspace(sp)
    sp.set_defaults(func=cmd_leaderboard)

    sp = sub.add_parser(
        "verify",
        help="check a scorecard (.json or .html) or an export manifest: fails on any change",
    )
    sp.add_argument("file", type=Path, help="a scorecard (.json or .html) or an export manifest")
    workspace(sp)
    sp.add_argument(
        "--key", help="require this signer fingerprint (ed25519:...), as printed when it was issued"
    )
    json_flag(sp)
    sp.set_defaults(func=cmd_verify)
