"""`holdout mock-server`: a local model server for trying things offline; `holdout local-postgres`:
a PostgreSQL server of one's own for trying the shared store."""

from __future__ import annotations

import argparse


def _faults(text: str) -> tuple[str, ...]:
    """--faults: each a fault the mock knows or an HTTP status."""
    from ..mockreplies import FAULTS

    faults = tuple(f.strip() for f in text.split(",") if f.strip())
    known = (*FAULTS, "no_choices")
    unknown = [f for f in faults if f not in known and not (f.isdigit() and len(f) == 3)]
    if unknown or not faults:
        raise argparse.ArgumentTypeError(
            f"unknown fault(s) {', '.join(unknown) or '(none given)'}: expected an HTTP status "
            f"(500, 429 ...) or one of {', '.join(known)}"
        )
    return faults


def cmd_mock_server(args) -> int:
    from ..mockserver import MockBehaviour, serve_forever

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
            faults=args.faults,
            retry_after_s=args.retry_after,
        ),
    )
    return 0


def cmd_local_postgres(args) -> int:
    from ..localpg import LocalPostgres
    from ._common import _err, _out

    server = LocalPostgres(args.directory, port=args.port or 0)
    if args.stop:
        server.stop()
        _err().print(f"stopped the PostgreSQL server in {args.directory}")
        return 0
    server.start()
    _err().print(
        f"PostgreSQL {server.directory / 'data'} on 127.0.0.1:{server.port} (log: "
        f"{server.directory / 'server.log'}); stop it with `holdout local-postgres "
        f"{args.directory} --stop`. Every holdout command with this set uses it as the store:"
    )
    _out().print(f"export HOLDOUT_STORE={server.dsn}", soft_wrap=True)
    return 0


def register(sub) -> None:
    """The mock-server and local-postgres commands."""
    lp = sub.add_parser(
        "local-postgres",
        help="start (or stop) a PostgreSQL server of your own for the shared store, and print "
        "the HOLDOUT_STORE to use",
    )
    lp.add_argument("directory", help="where its data lives (created on first use)")
    lp.add_argument("--port", type=int, help="its port (first start: a free one; then the same)")
    lp.add_argument("--stop", action="store_true", help="stop the server in DIRECTORY")
    lp.set_defaults(func=cmd_local_postgres)
    sp = sub.add_parser(
        "mock-server", help="a local OpenAI/Anthropic-compatible server for trying things offline"
    )
    sp.add_argument("--port", type=int, default=8765, help="on 127.0.0.1 (default 8765)")
    sp.add_argument("--latency-ms", type=float, default=0.0, help="each answer's delay")
    sp.add_argument("--jitter-ms", type=float, default=0.0, help="+/- this, at random")
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
        type=_faults,
        default=("500",),
        help="comma-separated faults taken in turn at --error-rate: an HTTP "
        "status (500, 429, 400 ...), 429_bare (no Retry-After), reset, hang, garbled, truncated, "
        "empty, no_choices, content_filter, content_filter_400, context_length, model_not_found, "
        "refusal",
    )
    sp.add_argument(
        "--retry-after", type=float, default=1.0, help="the Retry-After of a 429 fault, in seconds"
    )
    sp.set_defaults(func=cmd_mock_server)
