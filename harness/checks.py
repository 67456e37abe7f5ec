"""A run's safeguard checks, each model's in a worker process.

The detectors (safeguards.py) are Python over one model's outputs, so ten models take ten times
one. With several cores, models are checked in worker processes while the command goes on with
its other work (a scorecard builds its report meanwhile). A worker is a fresh interpreter started
for the purpose (not a fork: it inherits no open store, key, cipher or text of the command, and
no script's main module is imported again). It is sent one JSON line per model, with a store's
path, a run id, a model name, the thresholds and item ids, and answers with ids and numbers. It
opens the store itself and, for a held-out run, reads the vault key as the command did (from the
environment or the key file). A worker's bug comes back as its type and place, never its message,
which could quote an output.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path

from .database import shared_dsn
from .errors import HoldoutError
from .postgres import is_dsn
from .safeguards import check_model, short_reference_items
from .store import Store

WORKER = "from harness.checks import serve; serve()"
SHARED = "$HOLDOUT_STORE"


@dataclass(frozen=True)
class StoreAt:
    """How a worker opens a run's store: where it is and, for a held-out run, the workspace whose
    vault key opens its outputs (the key is read again there, never sent)."""

    path: Path | str  # a SQLite file, or the shared store's DSN
    vault_workspace: Path | None = None

    @classmethod
    def of_run(cls, ctx) -> StoreAt:
        """Of a reopened run (context.RunContext)."""
        heldout = ctx.pool.cipher is not None
        return cls(ctx.store.location, ctx.config.workspace if heldout else None)

    def open(self) -> Store:
        cipher = None
        if self.vault_workspace is not None:
            from .vault import Vault

            cipher = Vault.open(self.vault_workspace).output_cipher()
        return Store(self.path, cipher=cipher, create=False)


class CheckFailed(HoldoutError):
    """A worker's check raised something that is not a HoldoutError: a bug, named by type and
    place only."""


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class CheckJob:
    """What a worker is sent for one model: where the store is, and nothing secret."""

    where: StoreAt
    run_id: str
    model: str
    settings: dict | None
    short_refs: frozenset  # ids of items whose reference is short

    def to_line(self) -> str:
        vault = self.where.vault_workspace
        return json.dumps(
            {
                # the shared store: the worker has $HOLDOUT_STORE too (no password on the pipe)
                "store": SHARED if is_dsn(self.where.path) else str(self.where.path),
                "vault": None if vault is None else str(vault),
                "run_id": self.run_id,
                "model": self.model,
                "settings": self.settings,
                "short_refs": sorted(self.short_refs),
            }
        )

    @classmethod
    def from_line(cls, line: str) -> CheckJob:
        d = json.loads(line)
        vault = None if d["vault"] is None else Path(d["vault"])
        where = StoreAt(shared_dsn() if d["store"] == SHARED else Path(d["store"]), vault)
        return cls(where, d["run_id"], d["model"], d["settings"], frozenset(d["short_refs"]))


def check_stored(job: CheckJob) -> dict:
    """In a worker: one model's checks, from the store."""
    try:
        store = job.where.open()
        try:
            outputs = list(store.outputs(job.run_id, job.model))
            return check_model(outputs, job.settings, job.short_refs)
        finally:
            store.close()
    except HoldoutError:
        raise  # written for people: says what and where, never text
    except Exception as e:
        frame = traceback.extract_tb(e.__traceback__)[-1]
        raise CheckFailed(
            f"the checks of model {job.model} failed: {type(e).__name__} at "
            f"{Path(frame.filename).name}:{frame.lineno} (a bug; run with --workers 1 to see it)"
        ) from None


def serve(jobs=None, replies=None) -> None:
    """A worker's loop: one job line in, one reply line out, until its input ends (the command
    closed it, or died). Ctrl-C is the command's to handle: it stops its workers itself. The
    egress gate stands in front of the worker's output and tracebacks as in the command (the
    outputs it decrypts are registered with it)."""
    from .egress import GATE

    GATE.install()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    jobs, replies = jobs or sys.stdin, replies or sys.stdout
    for line in jobs:
        job = CheckJob.from_line(line)
        try:
            reply = {"result": check_stored(job)}
        except HoldoutError as e:
            reply = {"error": str(e), "bug": isinstance(e, CheckFailed)}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


class PendingChecks:
    """Checks started by `start_checks`: `result()` waits for them, in the models' order."""

    def __init__(self, names: list[str], *, compute=None, jobs=(), workers: int = 0):
        self._names = names
        self._compute = compute  # in this process, when result() is asked for
        self._results: dict[str, dict] = {}
        self._errors: list[HoldoutError] = []
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        for job in jobs:
            self._queue.put(job)
        self._procs: list[subprocess.Popen] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._lane, daemon=True) for _ in range(workers)]
        for t in self._threads:
            t.start()

    def _lane(self) -> None:
        """One worker process, fed jobs from the queue until it is empty or something fails."""
        proc = subprocess.Popen(
            [sys.executable, "-c", WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        with self._lock:
            self._procs.append(proc)
        try:
            while not self._errors:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    return
                try:
                    proc.stdin.write(job.to_line() + "\n")
                    proc.stdin.flush()
                    line = proc.stdout.readline()
                except (BrokenPipeError, OSError, ValueError):
                    line = ""
                if not line:
                    self._errors.append(
                        HoldoutError(
                            "a check worker process stopped before it finished (out of memory, "
                            "or killed); nothing was written. Run again, or with --workers 1"
                        )
                    )
                    return
                reply = json.loads(line)
                if "error" in reply:
                    kind = CheckFailed if reply["bug"] else HoldoutError
                    self._errors.append(kind(reply["error"]))
                    return
                self._results[job.model] = reply["result"]
        finally:
            with contextlib.suppress(OSError):
                proc.stdin.close()
            proc.wait()

    def result(self) -> dict:
        if self._compute is not None:
            return self._compute()
        for t in self._threads:
            t.join()
        if self._errors:
            raise self._errors[0]
        return {m: self._results[m] for m in self._names}

    def close(self) -> None:
        """Stop the workers that are still running (on an error elsewhere, or Ctrl-C)."""
        with self._lock:
            for proc in self._procs:
                if proc.poll() is None:
                    proc.kill()
        for t in self._threads:
            t.join()


def start_checks(
    store: Store,
    run_id: str,
    settings: dict | None = None,
    *,
    where: StoreAt | None = None,
    models: list[str] | None = None,
    items: dict | None = None,
    workers: int | None = None,
) -> PendingChecks:
    """Start checking every model of a run (or the given ones): `result()` is
    {model: {detector: result}}. `items` (id -> Item) lets the short-answer check leave out items
    whose reference is short. `workers`: processes (default: the CPUs this process may use; 1,
    or no `where` to reopen the store at, checks in this process, one model in memory at a
    time)."""
    short_refs = short_reference_items(items, settings)
    names = [m for m in store.models(run_id) if models is None or m in models]
    workers = min(len(names), workers or available_cpus()) if where is not None else 1
    if workers <= 1:

        def compute() -> dict:
            return {
                m: check_model(list(store.outputs(run_id, m)), settings, short_refs) for m in names
            }

        return PendingChecks(names, compute=compute)
    refs = frozenset(short_refs)
    jobs = [CheckJob(where, run_id, m, settings, refs) for m in names]
    return PendingChecks(names, jobs=jobs, workers=workers)


def check_run(store: Store, run_id: str, settings: dict | None = None, **kw) -> dict:
    """`start_checks(...).result()`."""
    return start_checks(store, run_id, settings, **kw).result()
