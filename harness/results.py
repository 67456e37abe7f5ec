"""results/<run_id>/: what leaves the boundary after a run. Item ids and numbers, never text."""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .callstats import call_stats
from .egress import GATE
from .store import Store


def write_summary(
    store: Store, run_id: str, results_dir: Path, extra: dict | None = None
) -> tuple[Path, dict]:
    info = store.run_info(run_id) or {}
    stats = call_stats(store, run_id)
    summary = {
        "run_id": run_id,
        "suite": info.get("suite"),
        "pool": info.get("pool"),
        "heldout": bool(info.get("heldout")),
        "total_calls": info.get("total"),
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "models": stats,
        "complete": store.done_count(run_id)
        == info.get("total"),  # every call has an output or a refusal
        **(extra or {}),
    }
    path = GATE.write_json(Path(results_dir) / run_id / "summary.json", summary)
    return path, summary


def print_summary(console: Console, summary: dict) -> None:
    table = Table(
        title=f"run {summary['run_id']}  (suite {summary['suite']}, pool {summary['pool']})"
    )
    for col in ("model", "ok", "errors", "in tok", "out tok", "cost $", "p50 s", "p95 s"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, s in summary["models"].items():
        errs = f"{s['errors']}" + (
            f" ({', '.join(f'{k} {v}' for k, v in s['error_kinds'].items())})"
            if s["errors"]
            else ""
        )
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        table.add_row(
            name,
            str(s["ok"]),
            errs,
            f"{s['input_tokens']:,}",
            f"{s['output_tokens']:,}",
            f"{s['cost_usd']:.4f}",
            fmt(s["latency_p50_s"]),
            fmt(s["latency_p95_s"]),
        )
    console.print(table)
