"""Opening the project's SQLite files (run store, exposure ledger) safely from several processes at once."""
from __future__ import annotations

import os
import random
import sqlite3
import time
from pathlib import Path


def make_private(path: Path) -> None:
    """0600 for a database and its WAL files, including ones an older version created 0644."""
    for p in (Path(path), Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            os.chmod(p, 0o600)
        except FileNotFoundError:
            pass


def connect(path: Path, schema: str, attempts: int = 50) -> sqlite3.Connection:
    """A WAL-mode connection with `schema` applied. Switching a new file to WAL is not covered by SQLite's
    busy timeout, so two processes creating the same file at once can see 'database is locked': retry."""
    for attempt in range(attempts):
        db = sqlite3.connect(path, timeout=60, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # durable across a process kill; fsync at checkpoints
            db.executescript(schema)
            make_private(path)
            return db
        except sqlite3.OperationalError as e:
            db.close()
            if "locked" not in str(e) or attempt == attempts - 1:
                raise
            time.sleep(0.02 + random.random() * 0.05)
    raise AssertionError("unreachable")
