"""One process at a time per run: the lock that keeps two `holdout run` (or `grade`) of one run from
paying every call twice, and from each keeping its own budget.

An advisory lock (flock) on a small file in the workspace, held for as long as the command runs. The
kernel releases it on any exit, `kill -9` included, so a crash never leaves a stale lock behind; the
file only says who holds it, for the message.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from pathlib import Path

from .database import store_location
from .errors import HoldoutError
from .postgres import is_dsn


class RunBusy(HoldoutError):
    pass


def _lock_file(workspace: Path, run_id: str) -> Path:
    return (
        Path(workspace) / "locks" / f"run-{hashlib.sha256(run_id.encode()).hexdigest()[:16]}.lock"
    )


@contextlib.contextmanager
def run_lock(workspace: Path, run_id: str, command: str):
    """Hold the run's lock for the duration, or refuse at once (naming the holder) if another
    process has it. On a shared PostgreSQL store there is none: workers lease the run's jobs
    (harness/workers.py) and any number may work on it at once."""
    if is_dsn(store_location(workspace)):
        yield
        return
    path = _lock_file(workspace, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunBusy(
                f"run '{run_id}' is in use by another holdout process ({_holder(fd)}); two at "
                "once would "
                "pay for the same calls twice. Wait for it to finish (or stop it), then run this "
                "again: "
                "nothing was sent."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(
            fd,
            json.dumps({"pid": os.getpid(), "command": command, "since": time.time()}).encode(),
            0,
        )
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def batch_lock(store, run_id: str):
    """On a shared store, one worker at a time submits and collects a run's batches (a batch is
    one request for many jobs, found again after a kill by the store's record of it): a session
    lock on the server, let go when the worker's connection ends, `kill -9` included."""
    if not store.shared:
        yield  # the run's own lock (run_lock) already holds it to one process
        return
    number = int.from_bytes(hashlib.sha256(f"batches|{run_id}".encode()).digest()[:8], "big") >> 1
    if not store.db.execute("SELECT pg_try_advisory_lock(?)", (number,)).fetchone()[0]:
        raise RunBusy(
            f"run '{run_id}': another worker is submitting or collecting its batches (mode: "
            "batch); one worker at a time does that on a shared store. Run this worker without "
            "the batch-mode providers, or wait for that one: nothing was sent."
        )
    try:
        yield
    finally:
        store.db.execute("SELECT pg_advisory_unlock(?)", (number,))


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["since"]))
        return f"`holdout {info['command']}`, pid {info['pid']}, since {since}"
    except (ValueError, KeyError, TypeError, OSError):
        return "it is starting"
