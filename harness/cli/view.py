"""`holdout view ...`: the maintainers' web app (the third door for held-out text), its
maintainers, and the log of held-out items they looked at."""

from __future__ import annotations

from ..database import store_location
from ..errors import HoldoutError
from ._common import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    _err,
    _out,
    _places,
    _print_json,
    json_flag,
    workspace,
)


def cmd_view_add(args) -> int:
    import math

    from .. import sessions
    from ..store import Store

    if not (math.isfinite(args.expires_hours) and 0 < args.expires_hours <= 24 * 30):
        raise HoldoutError("view add-maintainer: --expires-hours must be more than 0, at most 720")
    store = Store(store_location(_places(args).workspace))
    try:
        token = sessions.issue_link(
            store.db, sessions.MAINTAINERS, args.name, hours=args.expires_hours
        )
    finally:
        store.close()
    base = args.public_url or f"http://{args.host}:{args.port}"
    _out().print(
        f"maintainer {args.name}: one-time sign-in link (valid {args.expires_hours:g} h, send it "
        f"privately):\n{base}/login?token={token}"
    )
    return EXIT_OK


def cmd_view_revoke(args) -> int:
    from .. import sessions
    from ..store import Store

    store = Store(store_location(_places(args).workspace))
    try:
        found = sessions.revoke(store.db, sessions.MAINTAINERS, args.name)
    finally:
        store.close()
    if not found:
        raise HoldoutError(f"no maintainer '{args.name}'")
    _out().print(f"maintainer {args.name}: link and sessions revoked")
    return EXIT_OK


def cmd_view_serve(args) -> int:
    import asyncio

    from ..context import open_run
    from ..vault import Vault, VaultError
    from ..view.app import ViewApp

    places = _places(args)
    contexts = {}
    try:
        for run_id in args.run_ids:
            contexts[run_id] = open_run(run_id, places.workspace)
        try:
            vault = Vault.open(places.workspace)
        except VaultError:
            vault = None
        if vault is None and any(c.pool.heldout for c in contexts.values()):
            raise HoldoutError("a held-out run needs the vault (its key) to be shown")
        app = ViewApp(places.workspace, contexts, vault=vault, public_url=args.public_url)
        _err().print(f"loading {', '.join(args.run_ids)}: items, strata and figures ...")
        app.warm()
        _err().print(
            f"maintainers' view of {', '.join(args.run_ids)} on http://{args.host}:{args.port}/ "
            "(Ctrl-C to stop)"
        )
        try:
            asyncio.run(app.serve(args.host, args.port))
        except KeyboardInterrupt:
            pass
    finally:
        for ctx in contexts.values():
            ctx.close()
    return EXIT_OK


def cmd_view_log(args) -> int:
    """Exit 0: the log is as holdout wrote it; 3: its chain is broken (each break named)."""
    import time

    from ..store import Store
    from ..vault import Vault
    from ..view import accesslog

    places = _places(args)
    vault = Vault.open(places.workspace)
    store = Store(store_location(places.workspace), create=False)
    try:
        rows = accesslog.rows(store.db)
    finally:
        store.close()
    problems = accesslog.verify(rows, vault)
    if args.json:
        _print_json(
            {"intact": not problems, "problems": problems, "views": [vars(r) for r in rows]}
        )
    else:
        console = _out()
        for r in rows:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.at))
            console.print(f"{r.seq:6d} {when} {r.maintainer} {r.run_id} {r.item_id}")
        console.print(
            f"{len(rows)} held-out item view(s); "
            + ("chain intact" if not problems else "BROKEN:\n  " + "\n  ".join(problems))
        )
    return EXIT_OK if not problems else EXIT_INCOMPLETE


def register(sub) -> None:
    """The view command(s)."""
    sp = sub.add_parser(
        "view",
        help="the maintainers' web app: runs, items, outputs and grades (held-out views logged)",
    )
    vsub = sp.add_subparsers(dest="view_command", metavar="ACTION", required=True)
    vp = vsub.add_parser("add-maintainer", help="a one-time sign-in link for a maintainer")
    vp.add_argument("name", help="the maintainer's name, as the view log will record it")
    vp.add_argument(
        "--expires-hours", type=float, default=24.0, help="the link dies if unused this long"
    )
    vp.add_argument("--host", default="127.0.0.1", help="the view's host in the link")
    vp.add_argument("--port", type=int, default=8788, help="the view's port in the link")
    vp.add_argument("--public-url", help="the https:// address behind a TLS proxy")
    workspace(vp)
    vp.set_defaults(func=cmd_view_add)
    vp = vsub.add_parser("revoke", help="end a maintainer's link and sessions")
    vp.add_argument("name", help="the maintainer's name")
    workspace(vp)
    vp.set_defaults(func=cmd_view_revoke)
    vp = vsub.add_parser("serve", help="serve the view of these runs (maintainers only)")
    vp.add_argument("run_ids", nargs="+", metavar="RUN", help="the runs it shows")
    vp.add_argument(
        "--host", default="127.0.0.1", help="bind address (default loopback; TLS proxy for more)"
    )
    vp.add_argument("--port", type=int, default=8788, help="default 8788")
    vp.add_argument("--public-url", help="the https:// address behind a TLS proxy")
    workspace(vp)
    vp.set_defaults(func=cmd_view_serve)
    vp = vsub.add_parser(
        "log", help="who looked at which held-out item, when; and whether the log is intact"
    )
    workspace(vp)
    json_flag(vp)
    vp.set_defaults(func=cmd_view_log)
