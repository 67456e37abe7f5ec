"""The exposure ledger: every time an item is sent to a provider (model or judge), in the vault.

Rotation reads it: an item a provider has seen too often is spent. Rows are ids and names only.
Writes are batched per event-loop turn like the run store, and two processes may write at once.
"""
from __future__ import annotations

import asyncio
from pathlib import Path

from ..sqlite import connect
from .pools import _now

SCHEMA = """
CREATE TABLE IF NOT EXISTS exposures (
  pool_id TEXT NOT NULL, item_id TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL,
  run_id TEXT, role TEXT NOT NULL DEFAULT 'model', at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS exposures_pool ON exposures(pool_id, item_id);
"""


class Ledger:
    def __init__(self, vault_dir: Path):
        self.db = connect(Path(vault_dir) / "ledger.sqlite", SCHEMA)
        self.pending: list[tuple] = []

    def record(self, pool_id: str, item_id: str, provider: str, model: str, run_id: str | None, role: str = "model"):
        """Queue one exposure; it is committed at the end of this event-loop turn (or now, outside a loop)."""
        self.pending.append((pool_id, item_id, provider, model, run_id, role, _now()))
        if len(self.pending) == 1:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:
                self.flush()

    def flush(self) -> None:
        if self.pending:
            rows, self.pending = self.pending, []
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.executemany("INSERT INTO exposures VALUES (?,?,?,?,?,?,?)", rows)

    def counts(self, pool_id: str) -> list[tuple]:
        """(item_id, provider, times sent, first seen, last seen) for one pool."""
        self.flush()
        return self.db.execute(
            "SELECT item_id, provider, COUNT(*), MIN(at), MAX(at) FROM exposures WHERE pool_id=? "
            "GROUP BY item_id, provider ORDER BY item_id, provider", (pool_id,)).fetchall()

    def close(self) -> None:
        self.flush()
        self.db.close()
