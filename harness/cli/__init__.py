"""The `holdout` command: a client of the flows below it. One module per command group, each with
its handlers and a `register(subparsers)`; `build_parser` puts them together."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from .. import __version__
from ..egress import GATE
from ..errors import HoldoutError
from . import cards, exports, grading, pools, review, runs, tools, vaults, view
from ._common import EXIT_BUG, EXIT_ERROR, EXIT_INTERRUPTED

EPILOG = (
    "Exit codes: 0 done; 2 bad input or refused (nothing done); 3 ran, but some calls or "
    "judgments failed or "
    "were not made (re-run to retry), or an export refused something; 130 interrupted (re-run to "
    "resume); "
    "1 a bug in holdout. Results go to stdout, progress and diagnostics to stderr. "
    "Docs: README.md. Config schema: harness/schemas/run.schema.json."
)


RUN_ID_HELP = (
    "the run's id: its config's run_id, else the config file's name (`holdout status` lists them)"
)


class Parser(argparse.ArgumentParser):
    """argparse, with --help that helps: a command's page opens with what the command list says
    of it (unless it has a description of its own), and a run_id argument says what it is."""

    def add_subparsers(self, **kwargs):
        action = super().add_subparsers(**kwargs)  # its parsers are Parsers too
        plain = action.add_parser

        def add_parser(name, **kw):
            if kw.get("help") and "description" not in kw:
                kw["description"] = kw["help"][0].upper() + kw["help"][1:] + "."
            return plain(name, **kw)

        action.add_parser = add_parser
        return action

    def add_argument(self, *args, **kwargs):
        if args == ("run_id",) and "help" not in kwargs:
            kwargs["help"] = RUN_ID_HELP
        return super().add_argument(*args, **kwargs)


def build_parser() -> argparse.ArgumentParser:

    p = Parser(
        prog="holdout",
        description="Run language models against private, rotating, held-out evaluation suites.",
        epilog=EPILOG,
    )
    p.add_argument("--version", action="version", version=f"holdout {__version__}")
    p.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="log verbosity (logs pass through the egress gate)",
    )
    p.add_argument("--log-file", type=Path, help="also write logs to this file")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for group in (runs, grading, cards, exports, review, view, vaults, pools, tools):
        group.register(sub)
    return p


def _setup_logging(level: str, log_file) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        handlers=handlers,
        force=True,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _private_by_default() -> None:
    """Every file this process creates (store, ledger, logs, keys, results, exports) is the owner's
    alone (0600, directories 0700); SIGTERM unwinds like Ctrl-C so cleanups run on every exit
    path."""
    os.umask(0o077)

    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_term)


# The garbage collector's first generation is collected after this many new container objects, not
# CPython's 700: importing an SDK's type tree (pydantic models by the thousand) otherwise runs
# hundreds of collections that find nothing (about 0.1 s of start-up here; bench/startup.py).
GC_THRESHOLDS = (100_000, 50, 100)


def entry() -> None:
    """The `holdout` command: main() with fewer collections while the SDKs load, then an exit
    without the interpreter's last collection over every object they left alive (0.2-0.3 s after
    the last reply on this 2-core machine). `gc.freeze` hides them from that collection only:
    atexit handlers, finalizers and file closing run as before."""
    gc.set_threshold(*GC_THRESHOLDS)
    code = main()
    gc.freeze()
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    GATE.install()
    _private_by_default()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    _setup_logging(args.log_level, args.log_file)
    try:
        return args.func(args)
    except HoldoutError as e:
        print(f"error: {GATE.scan(str(e))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(
            "interrupted; nothing in the store was lost. Re-run the same command to resume.",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except Exception as e:  # a bug: show the traceback, but only through the gate
        sys.stderr.write(GATE.format_exception(e))
        print(
            "error: unexpected failure (a bug in holdout); the store is consistent, re-run to "
            "resume.",
            file=sys.stderr,
        )
        return EXIT_BUG
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
