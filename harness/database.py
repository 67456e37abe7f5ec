"""Where the shared tables live: an embedded SQLite file in the workspace (the zero-setup default),
or a PostgreSQL server that several workers and machines share, named by $HOLDOUT_STORE. An
environment variable rather than a config key: it reaches every command (`report`, `review serve`,
`vault verify` take no run config), and a password in it never lands in a file."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from . import sqlite as sqlite_backend
from .postgres import is_dsn, redacted
from .sqlite import Schema

ENV = "HOLDOUT_STORE"


def store_location(workspace: Path | str) -> str | Path:
    """$HOLDOUT_STORE when it names a PostgreSQL server, else the workspace's store.sqlite."""
    return shared_dsn() or Path(workspace) / "store.sqlite"


def shared_dsn() -> str | None:
    """The shared PostgreSQL store's DSN, when $HOLDOUT_STORE names one."""
    chosen = os.environ.get(ENV)
    return chosen if is_dsn(chosen) else None


def describe(location: str | Path) -> str:
    """The location for a message (a DSN without its password)."""
    return redacted(location) if is_dsn(location) else str(location)


def open_database(location: str | Path, schema: Schema):
    """A connection at `schema`'s version: psycopg for a DSN, sqlite3 for a file."""
    if is_dsn(location):
        from .postgres import connect

        return connect(str(location), schema)
    return sqlite_backend.connect(Path(location), schema)


def pipelined(db):
    """A block whose statements go to the server together (PostgreSQL: one round trip, not one per
    statement); on SQLite, which has no round trips, nothing."""
    if getattr(db, "kind", "sqlite") == "postgresql":
        return db.pipelined()
    return contextlib.nullcontext()


def errors(db) -> tuple[type[Exception], ...]:
    """What a failed statement raises on this connection's backend."""
    if getattr(db, "kind", "sqlite") == "postgresql":
        import psycopg

        return (psycopg.Error,)
    return (sqlite3.Error,)
