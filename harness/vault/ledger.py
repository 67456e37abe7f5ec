"""The exposure ledger: every time an item is sent to a provider (model or judge), in the vault.

Rotation reads it: an item a provider has seen too often is spent. Rows are ids and names only.

- Written before the request: `record` returns once the row is committed, and a call is sent only
  after that. An attempt that never reached the provider may be counted; a send is never missing. A
  failed write raises LedgerError and the call is not made.
- Tamper-evident: each row carries a MAC chained over the previous row's (keyed from the vault key),
  and a head row holds the count and last MAC, so a changed, removed or re-ordered row, or a cut
  tail, fails `verify`. The head also remembers the vault index's serial, so an older `index.json`
  restored over a newer one is detected (see Vault._index). Someone without the vault key cannot
  re-sign.
- Writes are batched per event-loop turn like the run store (one transaction for every call that
  starts in that turn), and two processes may write at once: the chain is extended under SQLite's
  write lock.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from pathlib import Path

from .. import clock
from ..database import describe, open_database, store_location
from ..errors import HoldoutError
from ..postgres import columns as table_columns
from ..postgres import is_dsn
from ..sqlite import Schema, statements

# Version 1: the tables as they were when schema versions began (2026-12-03). A ledger from before
# MACs (no `mac` column) is signed by `_adopt_unsigned`, which needs the key.
TABLES_V1 = """
CREATE TABLE IF NOT EXISTS exposures (
  seq INTEGER PRIMARY KEY, pool_id TEXT NOT NULL, item_id TEXT NOT NULL, provider TEXT NOT NULL,
  model TEXT NOT NULL, run_id TEXT, role TEXT NOT NULL DEFAULT 'model', at REAL NOT NULL,
  mac TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS exposures_pool ON exposures(pool_id, item_id);
CREATE TABLE IF NOT EXISTS witness (
  name TEXT PRIMARY KEY, value INTEGER NOT NULL, mac TEXT NOT NULL);
"""


def _tables_v1(db) -> None:
    columns = table_columns(db, "exposures")
    if columns and "mac" not in columns:  # written before MACs: kept aside until it is signed
        db.execute("ALTER TABLE exposures RENAME TO exposures_unsigned")
        db.execute("DROP INDEX IF EXISTS exposures_pool")
    for stmt in statements(TABLES_V1):
        db.execute(stmt)


LEDGER_SCHEMA = Schema("exposure ledger", steps=(_tables_v1,))
WITNESS_UPSERT = "ON CONFLICT (name) DO UPDATE SET value=excluded.value, mac=excluded.mac"
FIELDS = ("pool_id", "item_id", "provider", "model", "run_id", "role", "at")


class LedgerError(HoldoutError):
    """The ledger could not be written (nothing was sent), or it was changed outside holdout."""


class Ledger:
    def __init__(self, vault_dir: Path, key: bytes):
        """In the vault, or in the shared PostgreSQL store when there is one (every worker records
        its sends in one chain)."""
        shared = store_location(vault_dir)
        location = shared if is_dsn(shared) else Path(vault_dir) / "ledger.sqlite"
        self.path = describe(location)
        self.db = open_database(location, LEDGER_SCHEMA)
        self._key = key
        if not is_dsn(location):
            self._adopt_unsigned()
        self.pending: list[tuple] = []
        self._written: asyncio.Future | None = None

    def _adopt_unsigned(self) -> None:
        """A ledger written by a version without MACs: its rows are signed as they are, once
        (resumed if that was interrupted: the unsigned table is dropped only after its rows are in
        the chain)."""
        if self.db.execute(
            "SELECT 1 FROM sqlite_master WHERE name='exposures_unsigned'"
        ).fetchone():
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                rows = self.db.execute(
                    f"SELECT {', '.join(FIELDS)} FROM exposures_unsigned ORDER BY rowid"
                ).fetchall()
                self._append(rows)
                self.db.execute("DROP TABLE exposures_unsigned")

    # -- MACs -----------------------------------------------------------------
    def _row_mac(self, prev: str, seq: int, row: tuple) -> str:
        body = "\x1f".join(
            [
                prev,
                str(seq),
                *("" if v is None else repr(v) if isinstance(v, float) else str(v) for v in row),
            ]
        )
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()

    def _witness_mac(self, name: str, value: int, extra: str = "") -> str:
        return hmac.new(
            self._key, f"witness|{name}|{value}|{extra}".encode(), hashlib.sha256
        ).hexdigest()

    def _head(self) -> tuple[int, str]:
        """(rows, last row's MAC) as the head row says; (0, '') for a ledger never written."""
        row = self.db.execute("SELECT value FROM witness WHERE name='ledger'").fetchone()
        if row is None:
            return 0, ""
        last = self.db.execute("SELECT mac FROM exposures WHERE seq=?", (row[0],)).fetchone()
        return row[0], last[0] if last else ""

    # -- writing --------------------------------------------------------------
    async def record(
        self,
        pool_id: str,
        item_id: str,
        provider: str,
        *,
        model: str,
        run_id: str | None,
        role: str = "model",
    ) -> None:
        """Commit one exposure before its request is sent (every record of this event-loop turn in
        one transaction). Raises LedgerError if the write failed: the caller must not send."""
        self.pending.append((pool_id, item_id, provider, model, run_id, role, clock.now()))
        if self._written is None:
            loop = asyncio.get_running_loop()
            self._written = loop.create_future()
            loop.call_soon(self._commit_batch)
        await asyncio.shield(self._written)

    def _commit_batch(self) -> None:
        written, self._written = self._written, None
        try:
            self.flush()
        except LedgerError as e:
            written.set_exception(e)
        else:
            written.set_result(None)

    def flush(self) -> None:
        if not self.pending:
            return
        rows, self.pending = self.pending, []
        try:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                self._append(rows)
        except (
            Exception
        ) as e:  # sqlite3 errors, a full disk: no row of this batch is in, none may be sent
            raise LedgerError(
                f"{self.path}: the exposure ledger could not be written ({type(e).__name__}: {e}); "
                f"{len(rows)} request(s) were not sent"
            ) from None

    def _append(self, rows: list[tuple]) -> None:
        """Inside a write transaction: extend the chain by `rows` and move the head."""
        seq, prev = self._head()
        signed = []
        for row in rows:
            seq += 1
            prev = self._row_mac(prev, seq, tuple(row))
            signed.append((seq, *row, prev))
        self.db.executemany("INSERT INTO exposures VALUES (?,?,?,?,?,?,?,?,?)", signed)
        self.db.execute(
            "INSERT INTO witness VALUES ('ledger', ?, ?) " + WITNESS_UPSERT,
            (seq, self._witness_mac("ledger", seq, prev)),
        )

    def note_index(self, serial: int) -> None:
        """Remember the vault index's serial (called after each index write)."""
        self.witness("index", serial)

    def index_serial(self) -> int:
        """The highest index serial this ledger has seen (0: none, or its witness row was
        forged)."""
        return self.witnessed("index")

    def witness(self, name: str, value: int) -> None:
        """Remember that a count kept elsewhere (the view log's rows) has reached `value`: a file
        cut back below it then shows, unless this one is rolled back with it."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            if value > self.witnessed(name):
                self.db.execute(
                    "INSERT INTO witness VALUES (?, ?, ?) " + WITNESS_UPSERT,
                    (name, value, self._witness_mac(name, value)),
                )

    def witnessed(self, name: str) -> int:
        """The highest count witnessed for `name` (0: none; -1: its row was forged)."""
        row = self.db.execute("SELECT value, mac FROM witness WHERE name=?", (name,)).fetchone()
        if row is None or not hmac.compare_digest(row[1], self._witness_mac(name, row[0])):
            return 0 if row is None else -1
        return row[0]

    # -- reading --------------------------------------------------------------
    def rows(self) -> int:
        return self._head()[0]

    def verify(self, expect_at_least: int = 0) -> list[str]:
        """Everything wrong with the chain: changed or missing rows, a cut tail, a forged head.
        `expect_at_least`: rows the vault index saw when it was last written (fewer now: rows were
        removed)."""
        problems = []
        prev, expected = "", 1
        for seq, *row, mac in self.db.execute(
            f"SELECT seq, {', '.join(FIELDS)}, mac FROM exposures ORDER BY seq"
        ):
            if seq != expected:
                problems.append((f"exposure rows {expected}-{seq - 1} were removed"))
            if not hmac.compare_digest(mac, self._row_mac(prev, seq, tuple(row))):
                problems.append((f"exposure row {seq} was changed (or rows before it were)"))
                break
            prev, expected = mac, seq + 1
        last = expected - 1
        head = self.db.execute("SELECT value, mac FROM witness WHERE name='ledger'").fetchone()
        if head is None and last:
            problems.append(("the ledger's head row was removed"))
        elif head is not None:
            if not hmac.compare_digest(
                head[1], self._witness_mac("ledger", head[0], prev if head[0] == last else "")
            ):
                problems.append(
                    (
                        f"the last {head[0] - last} exposure rows were removed"
                        if head[0] > last
                        else "the ledger's head row was changed"
                    )
                )
        if expect_at_least > max(last, head[0] if head else 0):
            problems.append(
                (
                    f"the ledger holds {last} rows but had {expect_at_least} when the vault "
                    "index was "
                    "last written (rows removed, or an older ledger restored)"
                )
            )
        if self.index_serial() < 0:
            problems.append(("the ledger's record of the index serial was changed"))
        return problems

    def check(self, expect_at_least: int = 0) -> None:
        problems = self.verify(expect_at_least)
        if problems:
            raise LedgerError(
                f"{self.path}: the exposure ledger was changed outside holdout: "
                + "; ".join(problems)
                + " (see `holdout vault verify`)"
            )

    def counts(self, pool_id: str) -> list[tuple]:
        """(item_id, provider, times sent, first seen, last seen) for one pool."""
        self.flush()
        return self.db.execute(
            "SELECT item_id, provider, COUNT(*), MIN(at), MAX(at) FROM exposures WHERE pool_id=? "
            "GROUP BY item_id, provider ORDER BY item_id, provider",
            (pool_id,),
        ).fetchall()

    def item_sends(self, pool_id: str, item_id: str) -> int:
        """How often one item of a pool was sent, to any provider."""
        self.flush()
        return self.db.execute(
            "SELECT COUNT(*) FROM exposures WHERE pool_id=? AND item_id=?", (pool_id, item_id)
        ).fetchone()[0]

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.db.close()
