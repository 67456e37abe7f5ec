"""Opening the project's SQLite files (run store, exposure ledger) safely from several processes at
once."""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import HoldoutError


def make_private(path: Path) -> None:
    """0600 for a database and its WAL files, including ones an older version created 0644."""
    for p in (Path(path), Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            os.chmod(p, 0o600)
        except FileNotFoundError:
            pass


@dataclass(frozen=True)
class Schema:
    """A database's schema as numbered steps; `PRAGMA user_version` says how many a file has had.
    Step 1 makes the tables as they were when versions began, and brings a file written before then
    (user_version 0) up to them; each later step is one change, applied once, in order, in one
    transaction with the version it reaches. A file from a newer Holdout is refused, not misread."""

    name: str  # what the file is, for messages: "run store", "exposure ledger"
    steps: tuple[Callable[[sqlite3.Connection], None], ...]

    @property
    def version(self) -> int:
        return len(self.steps)


class SchemaTooNew(HoldoutError):
    pass


def statements(sql: str) -> list[str]:
    """The statements of a DDL script (no triggers: a `;` always ends one), to run inside a
    transaction, which `executescript` would commit."""
    return [stmt.strip() for stmt in sql.split(";") if stmt.strip()]


def upgrade(db: sqlite3.Connection, schema: Schema, path: Path | str) -> None:
    """Apply the steps this file has not had; under a write lock, so two processes opening an old
    file at once upgrade it once."""
    if _version(db) == schema.version:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        current = _version(db)
        if current > schema.version:
            raise SchemaTooNew(
                f"{path}: this {schema.name} was written by a newer Holdout (schema version "
                f"{current}; this one knows up to {schema.version}). Upgrade Holdout to open it; "
                "nothing was changed."
            )
        for step in schema.steps[current:]:
            step(db)
        db.execute(f"PRAGMA user_version = {schema.version}")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _version(db: sqlite3.Connection) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def connect(path: Path, schema: Schema, attempts: int = 50) -> sqlite3.Connection:
    """A WAL-mode connection to a file at `schema`'s version. Switching a new file to WAL is not
    covered by SQLite's busy timeout, so two processes creating the same file at once can see
    'database is locked': retry."""
    for attempt in range(attempts):
        db = sqlite3.connect(path, timeout=60, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # durable across a process kill; fsync at checkpoints
            db.execute("PRAGMA synchronous=NORMAL")
            upgrade(db, schema, path)
            make_private(path)
            return db
        except sqlite3.OperationalError as e:
            db.close()
            if "locked" not in str(e) or attempt == attempts - 1:
                raise
            time.sleep(0.02 + random.random() * 0.05)
        except BaseException:
            db.close()
            raise
    raise AssertionError("unreachable")
