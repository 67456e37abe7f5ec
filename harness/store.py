"""The run store: one SQLite file (WAL) in the workspace, one row per (run, model, item, epoch).

Rows are written as calls finish (grouped into one commit per event-loop turn), so a killed run
loses only calls in flight and a re-run skips everything already done. Outputs of held-out runs
are encrypted with the vault key before they reach the file (`cipher`), so a copied store file
reveals no held-out text.
"""
from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import HoldoutError
from .failpoints import hit
from .sqlite import connect

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY, identity TEXT NOT NULL, suite TEXT NOT NULL, pool TEXT NOT NULL,
  heldout INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL, models TEXT NOT NULL,
  created REAL NOT NULL, updated REAL NOT NULL, config_file TEXT);
CREATE TABLE IF NOT EXISTS calls (
  run_id TEXT NOT NULL, model TEXT NOT NULL, item_id TEXT NOT NULL, epoch INTEGER NOT NULL,
  ok INTEGER NOT NULL, output BLOB, finish_reason TEXT, input_tokens INTEGER, output_tokens INTEGER,
  latency_s REAL, cost_usd REAL, attempts INTEGER, error_kind TEXT, error TEXT, finished REAL,
  PRIMARY KEY (run_id, model, item_id, epoch)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS grades (
  run_id TEXT NOT NULL, grader TEXT NOT NULL, model TEXT NOT NULL, item_id TEXT NOT NULL, epoch INTEGER NOT NULL,
  status TEXT NOT NULL, score REAL, detail TEXT,
  PRIMARY KEY (run_id, grader, model, item_id, epoch)) WITHOUT ROWID;
"""


@dataclass(slots=True)
class CallRow:
    run_id: str
    model: str
    item_id: str
    epoch: int
    ok: bool
    output: str | None
    finish_reason: str | None
    input_tokens: int
    output_tokens: int
    latency_s: float | None
    cost_usd: float
    attempts: int
    error_kind: str | None
    error: str | None
    finished: float


CALL_FIELDS = tuple(CallRow.__dataclass_fields__)

# A provider may put anything in its finish reason; the store keeps only these words (plaintext is safe).
FINISH_REASONS = frozenset({"stop", "length", "content_filter", "tool_calls", "function_call", "refusal",
                            "end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "eos"})


def finish_reason_word(value) -> str | None:
    """The provider's finish reason if it is a known word, else 'other'."""
    if value is None:
        return None
    return value if value in FINISH_REASONS else "other"


class Store:
    def __init__(self, path: Path, cipher=None):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = connect(self.path, SCHEMA)
        except (sqlite3.Error, OSError) as e:
            raise HoldoutError(f"{self.path}: cannot open the run store ({e})") from None
        self.cipher = cipher
        self.pending: list[tuple] = []

    # -- runs -----------------------------------------------------------------
    def begin_run(self, run_id: str, identity: str, suite: str, pool: str, heldout: bool, total: int,
                  models: list[str], config_file: str) -> bool:
        """Register a run or check a resumed one matches. Returns True if resuming."""
        row = self.db.execute("SELECT identity, suite, pool FROM runs WHERE run_id=?", (run_id,)).fetchone()
        now = time.time()
        if row and row[0] != identity:
            raise HoldoutError(
                f"run '{run_id}' already exists in {self.path} with a different suite, pool, epochs or model settings "
                f"(it was suite '{row[1]}', pool '{row[2]}'). Its results would not be comparable: set a new run_id "
                "in the config, or delete the old run with `holdout runs delete " + run_id + "`.")
        self.db.execute(
            "INSERT INTO runs(run_id, identity, suite, pool, heldout, total, models, created, updated, config_file) "
            "VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(run_id) DO UPDATE SET total=excluded.total, "
            "models=excluded.models, updated=excluded.updated",
            (run_id, identity, suite, pool, int(heldout), total, json.dumps(models), now, now, config_file))
        return row is not None

    def run_info(self, run_id: str) -> dict | None:
        cur = self.db.execute("SELECT * FROM runs WHERE run_id=?", (run_id,))
        row = cur.fetchone()
        return dict(zip([d[0] for d in cur.description], row)) if row else None

    def delete_run(self, run_id: str) -> int:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            n = self.db.execute("DELETE FROM calls WHERE run_id=?", (run_id,)).rowcount
            self.db.execute("DELETE FROM runs WHERE run_id=?", (run_id,))
        return n

    def status(self) -> list[dict]:
        """Per run: done/total, errors, cost. No text."""
        cur = self.db.execute(
            "SELECT r.run_id, r.suite, r.pool, r.total, r.updated, "
            "COALESCE(SUM(c.ok),0), COALESCE(SUM(1-c.ok),0), COALESCE(SUM(c.cost_usd),0) "
            "FROM runs r LEFT JOIN calls c ON c.run_id=r.run_id WHERE r.run_id NOT LIKE '%/grade/%' "
            "GROUP BY r.run_id ORDER BY r.updated DESC")
        keys = ("run_id", "suite", "pool", "total", "updated", "done", "errors", "cost_usd")
        return [dict(zip(keys, r)) for r in cur]

    # -- calls ----------------------------------------------------------------
    def done_keys(self, run_id: str) -> set[tuple[str, str, int]]:
        return set(self.db.execute("SELECT model, item_id, epoch FROM calls WHERE run_id=? AND ok=1", (run_id,)))

    def spent(self, run_id: str) -> float:
        return self.db.execute("SELECT COALESCE(SUM(cost_usd),0) FROM calls WHERE run_id=?", (run_id,)).fetchone()[0]

    def add(self, row: CallRow) -> None:
        """Queue a finished call; `flush` writes everything queued in one transaction."""
        row.finish_reason = finish_reason_word(row.finish_reason)
        values = tuple(getattr(row, f) for f in CALL_FIELDS)   # dataclasses.astuple deep-copies: slow per row
        if self.cipher is not None and row.output is not None:
            values = values[:5] + (self.cipher.encrypt_output(row.run_id, row.model, row.item_id, row.output),) + values[6:]
        self.pending.append(values)

    def flush(self) -> None:
        if not self.pending:
            return
        rows, self.pending = self.pending, []
        try:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.executemany("INSERT OR REPLACE INTO calls VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
                self.db.execute("UPDATE runs SET updated=? WHERE run_id=?", (time.time(), rows[-1][0]))
                hit("store.flush.before_commit")
        except sqlite3.Error as e:
            self.pending = rows + self.pending  # keep them for a retry; the file itself stays consistent
            raise HoldoutError(f"{self.path}: cannot write results ({e}); the store is unchanged since the last "
                               "successful write, re-run to resume") from None

    def calls(self, run_id: str, model: str | None = None) -> Iterator[CallRow]:
        sql = "SELECT * FROM calls WHERE run_id=?" + (" AND model=?" if model else "") + " ORDER BY model, item_id, epoch"
        for values in self.db.execute(sql, (run_id, model) if model else (run_id,)):
            row = CallRow(*values)
            if self.cipher is not None and row.output is not None:
                row.output = self.cipher.decrypt_output(row.run_id, row.model, row.item_id, row.output)
            yield row

    # -- grades (numbers and labels only, never text) ---------------------------
    def put_grades(self, rows: list[tuple]) -> None:
        """(run_id, grader, model, item_id, epoch, status, score, detail dict)."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT OR REPLACE INTO grades VALUES (?,?,?,?,?,?,?,?)",
                                [r[:7] + (json.dumps(r[7]),) for r in rows])

    def grades(self, run_id: str, grader: str | None = None) -> list[dict]:
        sql = "SELECT grader, model, item_id, epoch, status, score, detail FROM grades WHERE run_id=?"
        args: tuple = (run_id,)
        if grader:
            sql, args = sql + " AND grader=?", (run_id, grader)
        keys = ("grader", "model", "item_id", "epoch", "status", "score", "detail")
        return [dict(zip(keys, r[:6] + (json.loads(r[6]),))) for r in self.db.execute(sql + " ORDER BY 1,2,3,4", args)]

    def graded_keys(self, run_id: str, grader: str) -> set:
        return set(self.db.execute("SELECT model, item_id, epoch FROM grades WHERE run_id=? AND grader=? "
                                   "AND status IN ('ok','skipped')", (run_id, grader)))

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.db.close()


def call_stats(store: Store, run_id: str) -> dict[str, dict]:
    """Per model: n, ok, errors by kind, tokens, cost, latency p50/p95. Ids and numbers only, never text."""
    per: dict[str, dict] = {}
    for model, ok, kind, fin, tin, tout, lat, cost, attempts in store.db.execute(
            "SELECT model, ok, error_kind, finish_reason, input_tokens, output_tokens, latency_s, cost_usd, attempts "
            "FROM calls WHERE run_id=?", (run_id,)):
        s = per.setdefault(model, {"calls": 0, "ok": 0, "errors": 0, "error_kinds": {}, "finish_reasons": {},
                                   "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "attempts": 0, "_lat": []})
        s["calls"] += 1
        s["attempts"] += attempts or 0
        s["input_tokens"] += tin or 0
        s["output_tokens"] += tout or 0
        s["cost_usd"] += cost or 0.0
        if ok:
            s["ok"] += 1
            s["_lat"].append(lat or 0.0)
            s["finish_reasons"][fin or "unknown"] = s["finish_reasons"].get(fin or "unknown", 0) + 1
        else:
            s["errors"] += 1
            s["error_kinds"][kind] = s["error_kinds"].get(kind, 0) + 1
    for s in per.values():
        lat = sorted(s.pop("_lat"))
        s["latency_p50_s"] = _quantile(lat, 0.5)
        s["latency_p95_s"] = _quantile(lat, 0.95)
        s["cost_usd"] = round(s["cost_usd"], 6)
    return per


def _quantile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return round(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo), 4)
