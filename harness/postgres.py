"""PostgreSQL as the shared store: a psycopg 3 connection that runs the store's SQL as sqlite3 does.

Holdout's SQL is written once, in the common dialect of SQLite and PostgreSQL (`ON CONFLICT`, row
values, `substr`, `COALESCE`); the few SQLite spellings it keeps are rewritten here, once per
statement: `?` placeholders, `BEGIN IMMEDIATE`, `INSERT OR IGNORE`, the temp schema, and in DDL the
column types (BLOB is bytea: an encrypted output stays bytes). The schema is the same numbered steps
as SQLite's (harness/sqlite.Schema), versioned per schema name in `holdout_schema`, applied under an
advisory lock so that two workers meeting a new database upgrade it once.

A connection is in autocommit mode with explicit `BEGIN ... COMMIT` blocks, as the SQLite
connections are (isolation_level=None), so one code path serves both."""

from __future__ import annotations

import functools
import hashlib
import re
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

from .errors import HoldoutError
from .sqlite import Schema, SchemaTooNew

SCHEMES = ("postgresql://", "postgres://")
DDL_TYPES = ((re.compile(r"\bBLOB\b"), "BYTEA"), (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"))
DDL_INTEGER = re.compile(r"\bINTEGER\b")


def is_dsn(location: str | None) -> bool:
    return isinstance(location, str) and location.startswith(SCHEMES)


def redacted(dsn: str) -> str:
    """A DSN fit for a message: no password."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


@functools.lru_cache(maxsize=1024)
def translate(sql: str, bound: bool = True) -> str:
    """SQLite's spelling of a statement -> PostgreSQL's (`bound`: it has parameters, so a literal
    % is written %%)."""
    head = sql.lstrip()[:12].upper()
    if head.startswith("BEGIN"):
        return "BEGIN"
    out = sql.replace("%", "%%").replace("?", "%s") if bound else sql
    out = out.replace("temp.", "pg_temp.")
    if "INSERT OR IGNORE INTO" in out:
        out = out.replace("INSERT OR IGNORE INTO", "INSERT INTO") + " ON CONFLICT DO NOTHING"
    if head.startswith(("CREATE", "ALTER")):
        for pattern, kind in DDL_TYPES:
            out = pattern.sub(kind, out)
        out = DDL_INTEGER.sub("BIGINT", out).replace("WITHOUT ROWID", "")
        # SQLite names a temp table's index's schema; PostgreSQL puts it beside its table
        out = out.replace("INDEX IF NOT EXISTS pg_temp.", "INDEX IF NOT EXISTS ")
    return out


def _plain(row):
    """sqlite3 stores True as 1; PostgreSQL will not put a boolean in an integer column."""
    return tuple(int(v) if v is True or v is False else v for v in row)


class PgDatabase:
    """The part of `sqlite3.Connection` the store uses, over one psycopg connection."""

    kind = "postgresql"

    def __init__(self, dsn: str, write_lock: int = 0):
        try:
            import psycopg
        except ImportError:
            raise HoldoutError(
                f"HOLDOUT_STORE names a PostgreSQL server ({redacted(dsn)}), but psycopg is not "
                "installed: pip install 'holdout[postgres]' (or unset HOLDOUT_STORE to use the "
                "workspace's SQLite store)"
            ) from None

        self.write_lock = write_lock
        try:
            self.conn = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
        except psycopg.Error as e:
            raise HoldoutError(
                f"cannot connect to the PostgreSQL store at {redacted(dsn)} "
                f"({type(e).__name__}: {_first_line(e)})"
            ) from None
        _load_numeric_as_numbers(self.conn)
        self.dsn = dsn
        self._reader = None  # opened by the first stream

    def execute(self, sql: str, params=()):
        if sql.startswith("BEGIN IMMEDIATE"):
            return self._begin_writing()
        if not params:
            return self.conn.execute(translate(sql, False))
        return self.conn.execute(translate(sql), _plain(params))

    def executemany(self, sql: str, seq):
        cur = self.conn.cursor()
        cur.executemany(translate(sql), [_plain(r) for r in seq])
        return cur

    def _begin_writing(self):
        """SQLite's BEGIN IMMEDIATE: one writer at a time (per schema: the ledger's chain is
        extended by one worker at a time), taken at the start, not at the first write."""
        self.conn.execute("BEGIN")
        return self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (self.write_lock,))

    def stream(self, sql: str, params=()):
        """Rows as they arrive, on a second connection of its own (a stream holds its connection
        for as long as it is read, and the reader may write meanwhile: grades as it grades)."""
        if self._reader is None:
            import psycopg

            self._reader = psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)
            _load_numeric_as_numbers(self._reader)
        yield from self._reader.cursor().stream(
            translate(sql, bool(params)), _plain(params) if params else None
        )

    @contextmanager
    def pipelined(self):
        """Statements whose results nobody reads, sent together and answered at the block's end:
        a store flush's statements are one round trip to the server, not one each (the event loop
        waits for every round trip). End the transaction after the block: inside it, the
        connection's transaction status is not yet known."""
        with self.conn.pipeline():
            yield self

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        """As sqlite3's: commit an open transaction, or roll it back on an exception."""
        from psycopg.pq import TransactionStatus

        status = self.conn.info.transaction_status
        if status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
            self.conn.execute(
                "ROLLBACK" if kind or status == TransactionStatus.INERROR else "COMMIT"
            )
        return False

    def close(self) -> None:
        self.conn.close()
        if self._reader is not None:
            self._reader.close()


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else ""


def _load_numeric_as_numbers(conn) -> None:
    """SUM and AVG of integers are `numeric` in PostgreSQL; as sqlite3 gives them: int or float."""
    from psycopg.adapt import Loader

    class NumberLoader(Loader):
        def load(self, data):
            text = bytes(data).decode()
            return int(text) if text.lstrip("-").isdigit() else float(text)

    conn.adapters.register_loader("numeric", NumberLoader)


def columns(db, table: str) -> set[str]:
    """A table's column names, on either backend."""
    if getattr(db, "kind", "sqlite") == "postgresql":
        return {
            r[0]
            for r in db.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name=? "
                "AND table_schema=current_schema()",
                (table,),
            )
        }
    return {r[1] for r in db.execute(f"PRAGMA table_info({table})")}


def connect(dsn: str, schema: Schema) -> PgDatabase:
    db = PgDatabase(dsn, write_lock=_lock_of(schema))
    try:
        upgrade(db, schema)
    except BaseException:
        db.close()
        raise
    return db


def upgrade(db: PgDatabase, schema: Schema) -> None:
    """Apply the steps this database has not had, once, whoever else is connecting."""
    import psycopg

    lock = _lock_of(Schema(f"upgrade {schema.name}", ()))
    try:
        if _version(db, schema) == schema.version:
            return
        with db:
            db.execute("BEGIN")
            db.execute("SELECT pg_advisory_xact_lock(?)", (lock,))
            db.execute(
                "CREATE TABLE IF NOT EXISTS holdout_schema (name TEXT PRIMARY KEY, "
                "version INTEGER NOT NULL)"
            )
            current = _version(db, schema) or 0
            if current > schema.version:
                raise SchemaTooNew(
                    f"{redacted(db.dsn)}: this {schema.name} was written by a newer Holdout "
                    f"(schema version {current}; this one knows up to {schema.version}). Upgrade "
                    "Holdout to open it; nothing was changed."
                )
            for step in schema.steps[current:]:
                step(db)
            db.execute(
                "INSERT INTO holdout_schema VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET "
                "version=excluded.version",
                (schema.name, schema.version),
            )
    except psycopg.Error as e:
        raise HoldoutError(
            f"{redacted(db.dsn)}: cannot set up the {schema.name} ({_first_line(e)})"
        ) from None


def _lock_of(schema: Schema) -> int:
    """An advisory lock's number for a schema."""
    return int.from_bytes(hashlib.sha256(schema.name.encode()).digest()[:8], "big", signed=True)


def _version(db: PgDatabase, schema: Schema) -> int | None:
    if not db.execute("SELECT to_regclass('holdout_schema') IS NOT NULL").fetchone()[0]:
        return None
    found = db.execute("SELECT version FROM holdout_schema WHERE name=?", (schema.name,)).fetchone()
    return found[0] if found else None
