"""What every command group shares: consoles, JSON output, where a command's files are, and the
options several commands take."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from rich.console import Console

from ..database import describe, store_location
from ..errors import HoldoutError

# Exit codes (README: "Exit codes"). 1 is reserved for a bug in holdout.
EXIT_OK = 0
EXIT_BUG = 1
EXIT_ERROR = 2  # bad input, a refusal, nothing done
# it ran, but some calls or judgments failed or were not made (budget, a dead provider), or an
# export refused something: re-running retries what failed
EXIT_INCOMPLETE = 3
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM: what finished is saved; re-run to resume


def _console(file=None) -> Console:
    # off a terminal (pipes, CI logs) tables keep all their columns instead of squeezing into 80
    file = file or sys.stderr
    return Console(file=file, highlight=False, soft_wrap=True, width=None if file.isatty() else 200)


def _err() -> Console:
    """Progress, notes and diagnostics: stderr, for people."""
    return _console(sys.stderr)


def _out() -> Console:
    """Results (tables, what was done): stdout, so `holdout status | grep x` works. Both pass the
    egress gate."""
    return _console(sys.stdout)


def _print_json(doc) -> None:
    """`--json`: one JSON document on stdout, nothing else there."""
    from ..egress import strict_json

    sys.stdout.write(strict_json(doc) + "\n")


def _places(args):
    """Workspace and results directory for this command: one resolution for all
    (harness/context.py)."""
    from ..context import locate

    return locate(
        getattr(args, "run_id", None),
        workspace=getattr(args, "workspace", None),
        results_dir=getattr(args, "results_dir", None),
        config=getattr(args, "config", None),
    )


def suites_dir(sp):
    sp.add_argument(
        "--suites-dir",
        type=Path,
        default=Path("suites"),
        help="where suites live (default ./suites)",
    )


def workspace(sp):
    sp.add_argument(
        "--workspace",
        type=Path,
        help="store and vault directory (default: the run config's workspace, else .holdout)",
    )


def _worker_count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of processes, 1 or more: {text!r}"
        )
    return n


def workers_flag(sp):
    sp.add_argument(
        "--workers",
        type=_worker_count,
        metavar="N",
        help="check models in N processes at once (default: one per CPU; 1: in this process)",
    )


def json_flag(sp):
    sp.add_argument(
        "--json", action="store_true", help="print the result as one JSON document on stdout"
    )


def results_dir(sp):
    sp.add_argument(
        "--results-dir",
        type=Path,
        help="where results go (default: the run config's results_dir, else results)",
    )


def run_config(sp):
    sp.add_argument(
        "--config",
        type=Path,
        help="the run's config: decides workspace and results_dir (default: "
        "the config the run was made from)",
    )


@contextlib.contextmanager
def _run_store(workspace, run_id: str):
    """The store, checked to hold `run_id`; closed afterwards. A missing store is not created."""
    from ..store import Store

    store = Store(store_location(workspace), create=False)
    try:
        if store.run_info(run_id) is None or "/grade/" in run_id:
            known = ", ".join(r["run_id"] for r in store.status()) or "none"
            raise HoldoutError(
                f"no run '{run_id}' in {describe(store_location(workspace))} (runs: {known})"
            )
        yield store
    finally:
        store.close()


def finite_float(text: str) -> float:
    """An argparse type: a finite number (NaN and infinities are refused, as in every schema)."""
    import argparse
    import math

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got '{text}'")
    return v
