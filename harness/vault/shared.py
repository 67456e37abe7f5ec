"""The vault's files in the shared store, so that a worker on another machine needs only
$HOLDOUT_STORE and the vault key.

The vault stays a directory: its atomic writes, its lock and its repairs are the file system's. On
a shared store every write of the index publishes the directory's files to `vault_files` (what a
copy of the directory holds: encrypted pools, signed manifests and index, the keycheck, the
encrypted signing key; never a lock, a temporary file or an import in progress), and opening a
vault on a machine whose copy is missing or older (by the index's serial) fetches them first.
Nothing is trusted for having come from the server: every file is checked as a local one is (the
keycheck, MACs, signatures, and the shared ledger's memory of the index's serial, which refuses a
stale copy)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from ..database import shared_dsn
from ..postgres import connect
from ..storeschema import STORE_SCHEMA
from .files import atomic_write

LOCAL_ONLY = ("ledger.sqlite",)  # a SQLite ledger: not used on a shared store


def _files(vdir: Path) -> dict[str, bytes]:
    out = {}
    for path in sorted(vdir.rglob("*")):
        rel = path.relative_to(vdir)
        if not path.is_file() or any(p.startswith(".") for p in rel.parts):
            continue
        if rel.name.startswith(LOCAL_ONLY):
            continue
        out[rel.as_posix()] = path.read_bytes()
    return out


def _serial(index: bytes | None) -> int:
    try:
        return int(json.loads(index or b"{}").get("serial", 0))
    except (ValueError, TypeError, AttributeError):
        return 0


def published() -> bool:
    """Whether the shared store (if there is one) holds a vault."""
    dsn = shared_dsn()
    if not dsn:
        return False
    db = connect(dsn, STORE_SCHEMA)
    try:
        return bool(db.execute("SELECT 1 FROM vault_files WHERE name='keycheck'").fetchone())
    finally:
        db.close()


def publish(vdir: Path) -> None:
    """After a write of the index, under the vault's lock: the server's copy becomes this one."""
    dsn = shared_dsn()
    if not dsn:
        return
    files = _files(vdir)
    db = connect(dsn, STORE_SCHEMA)
    try:
        with db:
            db.execute("BEGIN IMMEDIATE")
            have = dict(db.execute("SELECT name, sha FROM vault_files").fetchall())
            for name, data in files.items():
                sha = hashlib.sha256(data).hexdigest()
                if have.get(name) != sha:
                    db.execute(
                        "INSERT INTO vault_files VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE "
                        "SET data=excluded.data, sha=excluded.sha",
                        (name, data, sha),
                    )
            for name in set(have) - set(files):
                db.execute("DELETE FROM vault_files WHERE name=?", (name,))
    finally:
        db.close()


def fetch(vdir: Path) -> bool:
    """This machine's copy, brought up to the server's if it is missing or older. True if it
    was."""
    dsn = shared_dsn()
    if not dsn:
        return False
    db = connect(dsn, STORE_SCHEMA)
    try:
        row = db.execute("SELECT data FROM vault_files WHERE name='index.json'").fetchone()
        local = vdir / "index.json"
        if row is None or (
            local.exists() and _serial(local.read_bytes()) >= _serial(bytes(row[0]))
        ):
            return False
        rows = db.execute("SELECT name, data FROM vault_files ORDER BY name").fetchall()
    finally:
        db.close()
    vdir.mkdir(parents=True, exist_ok=True)
    os.chmod(vdir, 0o700)
    for name, data in sorted(rows, key=lambda r: r[0] == "index.json"):  # the index last
        path = vdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, bytes(data))
        os.chmod(path, 0o600)
    return True


@contextlib.contextmanager
def locked(vdir: Path) -> Iterator[None]:
    """Held with the vault's own lock: the server's lock on the vault, then the latest copy, so two
    machines write the index one after the other, each over the other's last version."""
    dsn = shared_dsn()
    if not dsn:
        yield
        return
    db = connect(dsn, STORE_SCHEMA)
    try:
        db.execute("SELECT pg_advisory_lock(hashtext('holdout vault'))")
        fetch(vdir)
        yield
    finally:
        db.close()  # the lock ends with the session


def create_once(name: str, make) -> bytes | None:
    """A vault file made once for every machine (the scorecard signing key): the server's, or
    `make()`'s if it had none. None when there is no shared store."""
    dsn = shared_dsn()
    if not dsn:
        return None
    db = connect(dsn, STORE_SCHEMA)
    try:
        row = db.execute("SELECT data FROM vault_files WHERE name=?", (name,)).fetchone()
        if row is None:
            data = make()
            db.execute(
                "INSERT INTO vault_files VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
                (name, data, hashlib.sha256(data).hexdigest()),
            )
            row = db.execute("SELECT data FROM vault_files WHERE name=?", (name,)).fetchone()
        return bytes(row[0])
    finally:
        db.close()
