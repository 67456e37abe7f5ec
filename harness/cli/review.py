"""`holdout review ...`: reviewers, routing, the reviewers' app, decisions."""

from __future__ import annotations

from pathlib import Path

from ..database import store_location
from ..errors import HoldoutError
from ._common import _err, _out, _places, _print_json, json_flag, results_dir, run_config, workspace


def _review_context(args, places):
    from ..context import open_run
    from ..review import specs

    ctx = open_run(args.run_id, places.workspace, places.config, config=places.run_config)
    graders, _ = ctx.graders()
    spec = specs.human_spec(graders)
    return ctx, graders, spec, specs.criteria_for(spec, graders)


def cmd_review_add(args) -> int:
    import math

    from ..review import reviewers
    from ..store import Store

    if not (math.isfinite(args.expires_hours) and 0 < args.expires_hours <= 24 * 365):
        raise HoldoutError(
            f"review add-reviewer: --expires-hours must be more than 0 and at most a year "
            f"(got {args.expires_hours:g})"
        )
    base = _public_url(args.public_url) if args.public_url else f"http://{args.host}:{args.port}"
    store = Store(store_location(_places(args).workspace))
    try:
        token = reviewers.add_reviewer(
            store.db,
            args.name,
            [x for x in (args.languages or "").split(",") if x],
            country=args.country,
            age_band=args.age_band,
            education=args.education,
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
    from ..review import reviewers
    from ..store import Store

    store = Store(store_location(_places(args).workspace))
    try:
        found = reviewers.revoke(store.db, args.name)
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
    from ..review import push, routing, specs

    places = _places(args)
    ctx, graders, spec, _ = _review_context(args, places)
    try:
        items, outputs = ctx.items(), ctx.outputs()
        counts = routing.route(
            ctx.store.db,
            args.run_id,
            spec,
            grades=list(ctx.store.iter_grades(args.run_id)),
            outputs=outputs,
            items=items,
            seed=args.seed,
            base=ctx.suite.dir,
            baseline=specs.pairwise_baseline(spec, graders),
        )
        pushed = push.push(
            ctx.store.db,
            args.run_id,
            spec,
            trusted=ctx.config.trusted_destinations,
            heldout=ctx.pool.heldout,
            items=items,
            outputs=outputs,
            criteria=specs.criteria_for(spec, graders),
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

    from ..review import ReviewApp
    from ..review.decisions import comment_sealer

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
        store_location(places.workspace),
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

    from ..egress import GATE
    from ..review import quality

    places = _places(args)
    ctx, _, spec, criteria = _review_context(args, places)
    try:
        st = quality.status(
            ctx.store.db,
            args.run_id,
            criteria,
            grades=list(ctx.store.iter_grades(args.run_id)),
            min_gold_accuracy=spec.get("min_gold_accuracy", 0.7),
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
    from ..review import decisions

    places = _places(args)
    ctx, _, _, criteria = _review_context(args, places)
    try:
        n = decisions.import_decisions(
            ctx.store.db,
            args.run_id,
            args.file,
            criteria=criteria,
            seal=decisions.comment_sealer(ctx.pool.cipher, args.run_id),
        )
    finally:
        ctx.close()
    _out().print(f"imported {n} decisions")
    return 0


def register(sub) -> None:
    """The review command(s)."""
    sp = sub.add_parser(
        "review", help="human review: reviewers, routing, the reviewers' app, status"
    )
    rvs = sp.add_subparsers(dest="review_command", metavar="ACTION", required=True)
    rp = rvs.add_parser("add-reviewer", help="register a reviewer; prints a one-time login link")
    rp.add_argument("name", help="the reviewer's name, as decisions will record it")
    rp.add_argument(
        "--languages",
        help="comma-separated, e.g. en,ja: items with a language go to reviewers who read it",
    )
    for field in ("--country", "--age-band", "--education"):
        rp.add_argument(field, help="recorded for segmenting agreement (optional)")
    rp.add_argument("--host", default="127.0.0.1", help="the app's host in the link")
    rp.add_argument("--port", type=int, default=8700, help="the app's port in the link")
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
    rp.add_argument("name", help="the reviewer's name")
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
            rp.add_argument("file", type=Path, help="decisions as JSONL (`review export`)")
        if name == "route":
            rp.add_argument("--seed", type=int, default=0, help="the sample's seed")
        if name == "serve":
            rp.add_argument(
                "--host",
                default="127.0.0.1",
                help="bind address (default loopback; put a TLS proxy in front for anything else)",
            )
            rp.add_argument("--port", type=int, default=8700, help="default 8700")
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
