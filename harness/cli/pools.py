"""`holdout pool ...`: the vault's pool versions: import, draw, show, rotate, activate."""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import HoldoutError
from . import poolgate
from ._common import (
    _out,
    _places,
    _print_json,
    json_flag,
    suites_dir,
    workspace,
)


def cmd_pool_import(args) -> int:
    from ..suite import load_suite
    from ..vault import Vault, gate, import_pool_file

    suite = load_suite(args.suite, args.suites_dir)
    if args.activate and gate.thresholds_of(suite):
        raise HoldoutError(
            f"--activate: {suite.file} sets qualify: thresholds, so a version goes live only once "
            "a pilot run qualifies it: import it as a draft, run the anchor models on it "
            "(allow_draft: true), `holdout pool qualify`, then `holdout pool activate`. Nothing "
            "was imported."
        )
    vault = Vault.open(_places(args).workspace)
    license_class = "heldout" if args.heldout else args.license
    pool_id = import_pool_file(
        vault,
        suite.name,
        args.file,
        license_class=license_class,
        strata=suite.strata,
        max_retention=args.max_retention,
        data_license=args.data_license,
        distribution=args.distribution,
    )
    m = vault.manifest(pool_id)
    console = _out()
    console.print(
        f"imported {m['items']} items as {pool_id} ({license_class}, draft), encrypted in "
        f"{vault.dir}"
    )
    if args.activate:
        previous = vault.activate(pool_id, thresholds={})
        console.print(f"{pool_id} is active" + (f"; {previous} retired" if previous else ""))
    else:
        console.print(f"activate it with: holdout pool activate {pool_id}")
    return 0


def cmd_pool_list(args) -> int:
    from rich.table import Table

    from ..vault import Vault

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
    if report.get("window"):
        console.print(_window_line(report["window"]))


def _window_line(w: dict) -> str:
    day = lambda t: time.strftime("%Y-%m-%d", time.gmtime(t))  # noqa: E731
    return (
        f"window: the source's last {w['days']:g} days ({day(w['start'])} to {day(w['end'])}): "
        f"{w['in_window']} rows in it, {w['older']} older and {w['undated']} undated left out"
        + (
            f"; {w['files_skipped']} file(s) known to end before it were not read again"
            if w.get("files_skipped")
            else ""
        )
    )


def cmd_pool_draw(args) -> int:
    from ..suite import load_suite
    from ..vault import Vault
    from ..vault.rotation import draw_pool
    from ..vault.window import parse_days

    suite = load_suite(args.suite, args.suites_dir)
    vault = Vault.open(_places(args).workspace)
    stratify = [s for s in args.stratify.split(",") if s] if args.stratify is not None else None
    pool_id, report = draw_pool(
        vault,
        suite,
        args.source,
        size=args.size,
        stratify=stratify,
        seed=args.seed,
        floor=args.floor,
        window_days=parse_days(args.window, "--window") if args.window else None,
    )
    console = _out()
    _print_draw_report(console, pool_id, report)
    console.print(
        f"{pool_id} is a draft in the vault (canary {vault.manifest(pool_id)['canary']}); "
        f"activate it with: holdout pool activate {pool_id}"
    )
    return 0


def cmd_pool_show(args) -> int:
    from ..suite import load_suite
    from ..vault import Vault
    from ..vault.rotation import drift_of
    from ..vault.window import parse_days

    vault = Vault.open(_places(args).workspace)
    m = vault.manifest(args.pool_id)
    if args.drift or args.window:
        days = parse_days(args.window, "--window") if args.window else None
        suite = load_suite(m["suite"], args.suites_dir)
        m["drift"] = drift_of(vault, suite, args.pool_id, window_days=days)
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
    if "drift" in m:
        d = m["drift"]
        against = (
            f"the current {_window_line(d['window'])}"
            if d["window"]
            else "the whole source (it maps no source.timestamp, so it has no window)"
        )
        console.print(
            f"drift from {against}\n  per stratify key (total variation): "
            + (", ".join(f"{k} {v:.3f}" for k, v in d["by_key"].items()) or "-")
        )
    return 0


def cmd_pool_exposure(args) -> int:
    from rich.table import Table

    from ..vault import Vault
    from ..vault.rotation import exposure

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


def cmd_pool_rotate(args) -> int:
    from ..suite import load_suite
    from ..vault import Vault
    from ..vault.rotation import rotate
    from ..vault.window import parse_days

    suite = load_suite(args.suite, args.suites_dir)
    policy = suite.rotation
    max_exposure = args.max_exposure or policy.get("max_exposure")
    max_age = (parse_days(args.max_age, "--max-age") if args.max_age else None) or policy.get(
        "max_age_days"
    )
    max_drift = args.max_drift if args.max_drift is not None else policy.get("max_drift")
    vault = Vault.open(_places(args).workspace)
    reasons, pool_id, report, live = rotate(
        vault, suite, max_exposure, max_age_days=max_age, max_drift=max_drift, force=args.force
    )
    console = _out()
    if not pool_id:
        console.print(
            f"no rotation needed for '{suite.name}' (max exposure {max_exposure or '-'}, max age "
            f"{max_age or '-'} days, max drift {'-' if max_drift is None else max_drift}); "
            f"active: {vault.active_pool(suite.name)}"
        )
        return 0
    console.print("rotating: " + "; ".join(reasons))
    _print_draw_report(console, pool_id, report)
    console.print(
        f"{pool_id} is now active; the previous version is retired (its embargo starts now)"
        if live
        else f"{pool_id} is a draft: the suite sets qualify: thresholds. Run the anchor models on "
        f"it (pool: {pool_id}, allow_draft: true), then `holdout pool qualify {pool_id} --pilot "
        f"RUN` and `holdout pool activate {pool_id}`; {vault.active_pool(suite.name)} stays active"
    )
    return 0


def cmd_pool_retire(args) -> int:
    from ..vault import Vault

    Vault.open(_places(args).workspace).retire(args.pool_id)
    _out().print(f"{args.pool_id} retired (its embargo starts now)")
    return 0


def register(sub) -> None:
    """The pool command(s)."""
    sp = sub.add_parser("pool", help="pool versions in the vault: import, list, activate, retire")
    psub = sp.add_subparsers(dest="pool_command", metavar="ACTION", required=True)
    pp = psub.add_parser(
        "import", help="import a JSONL file as a new (draft) pool version, encrypted"
    )
    pp.add_argument("file", type=Path, help="a JSONL file, one item per line (README: Pools)")
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
    suites_dir(pp)
    workspace(pp)
    pp.set_defaults(func=cmd_pool_import)
    pp = psub.add_parser(
        "draw", help="draw a new draft version from the arena source: stratified, deduplicated"
    )
    pp.add_argument("--suite", required=True, help="the suite whose source: it names")
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
    pp.add_argument(
        "--window",
        help="draw only from the source's last N days, e.g. 30d (needs source.timestamp; default "
        "the suite's draw.window_days)",
    )
    suites_dir(pp)
    workspace(pp)
    pp.set_defaults(func=cmd_pool_draw)
    pp = psub.add_parser(
        "show", help="a version's manifest: strata vs source, distance, dedup counts (no text)"
    )
    pp.add_argument("pool_id", help="the version, e.g. arena@v3")
    pp.add_argument(
        "--drift",
        action="store_true",
        help="also measure how far its strata are from the source's recent window (reads the "
        "source)",
    )
    pp.add_argument("--window", help="the window for --drift, e.g. 30d (default: the suite's)")
    suites_dir(pp)
    workspace(pp)
    json_flag(pp)
    pp.set_defaults(func=cmd_pool_show)
    pp = psub.add_parser(
        "exposure", help="how often each item was sent to each provider (ids and counts)"
    )
    pp.add_argument("suite", help="the suite's name")
    pp.add_argument("--pool", help="a version other than the active one")
    pp.add_argument("--items", action="store_true", help="also list every item")
    workspace(pp)
    json_flag(pp)
    pp.set_defaults(func=cmd_pool_exposure)
    pp = psub.add_parser(
        "rotate", help="draw and activate a fresh version when the rotation policy says so"
    )
    pp.add_argument("suite", help="the suite's name")
    pp.add_argument(
        "--max-exposure", type=int, help="rotate once an item was sent this often to one provider"
    )
    pp.add_argument("--max-age", help="rotate once the active version is this old, e.g. 30d")
    pp.add_argument(
        "--max-drift",
        type=float,
        help="rotate once a stratify key of the active version is this far (total variation) "
        "from the source's recent window",
    )
    pp.add_argument("--force", action="store_true", help="rotate now whatever the policy says")
    suites_dir(pp)
    workspace(pp)
    pp.set_defaults(func=cmd_pool_rotate)
    pp = psub.add_parser("list", help="versions, item counts, status (never item text)")
    pp.add_argument("--suite", help="one suite only (default: every suite)")
    workspace(pp)
    json_flag(pp)
    pp.set_defaults(func=cmd_pool_list)
    poolgate.register(psub)
    pp = psub.add_parser("retire", help="retire a version; its embargo clock starts")
    pp.add_argument("pool_id", help="e.g. arena@v3")
    workspace(pp)
    pp.set_defaults(func=cmd_pool_retire)
