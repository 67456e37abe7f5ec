"""Workers on a shared store: several `holdout run` (or `holdout grade`) processes, on one machine
or many, share one run's calls by leasing them from PostgreSQL.

A worker leases a chunk of (model, item, epoch) jobs before it queues them: one statement inserts a
lease row per job, or takes over one whose lease ran out, and returns the jobs it won (`INSERT … ON
CONFLICT DO UPDATE … WHERE`: a lease another worker holds is row-locked until that worker's
transaction ends, and is then re-checked, so two workers never win the same job). A job that already
has a final answer in the store is never leased. The result is written in the same transaction that
marks its lease done (Store.flush), so a job is either leased, or done with its row in the store.

A worker renews its leases every few seconds; one killed with `kill -9` stops renewing, and after
LEASE_S its jobs go to whoever asks next: it loses only the calls it had in flight. A worker that
has run out of jobs to lease waits, while another worker still holds leases, for those to finish or
run out, so the last worker standing finishes a run whose other workers died.

A failed call (an error the next run retries) marks its lease done too: within one pass no worker
retries it. A worker that starts later retries it: a done lease is taken over by a worker that
joined after the lease was finished. Times are the server's clock, so machines need not agree."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

from .callkinds import ITEM_KINDS

LEASE_S = 15.0  # a worker's jobs go to others this long after its last renewal
RENEW_S = 3.0
POLL_S = 0.25  # how often a worker with nothing left to lease looks at the others' leases
NOW = "extract(epoch from clock_timestamp())"


_WORKER: list[str] = []


def worker_id() -> str:
    """This process's name among the workers: host, pid and a random part (pids are reused)."""
    if not _WORKER:
        _WORKER.append(f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}")
    return _WORKER[0]


@dataclass
class Claims:
    """One worker's leases on one run (model calls, or a grading's judge calls)."""

    db: object  # postgres.PgDatabase, shared with the store
    run_id: str
    worker: str
    started: float  # when this worker joined, by the server's clock
    won: int = 0
    lost: int = 0  # chunk places another worker had, or that were done already
    _final: tuple = field(default_factory=lambda: tuple(sorted(ITEM_KINDS)))

    @classmethod
    def join(cls, store, run_id: str) -> Claims:
        worker = worker_id()
        started = store.db.execute(f"SELECT {NOW}").fetchone()[0]
        store.leases_held = True  # its flushes mark leases done
        return cls(store.db, run_id, worker, started)

    def claim(self, keys: list[tuple[str, str, int]]) -> set[tuple[str, str, int]]:
        """The jobs of `keys` ((model, item_id, epoch)) this worker now holds."""
        if not keys:
            return set()
        values = ",".join(["(?,?,?)"] * len(keys))
        kinds = ",".join(["?"] * len(self._final))
        rows = self.db.execute(
            f"WITH cand(model, item_id, epoch) AS (VALUES {values}) "
            "INSERT INTO leases (run_id, model, item_id, epoch, worker, until, state, finished) "
            f"SELECT ?, cand.model, cand.item_id, cand.epoch, ?, {NOW} + ?, 'held', NULL "
            "FROM cand WHERE NOT EXISTS (SELECT 1 FROM calls c WHERE c.run_id=? AND "
            "c.model=cand.model AND c.item_id=cand.item_id AND c.epoch=cand.epoch AND "
            f"(c.ok=1 OR c.error_kind IN ({kinds}))) "
            "ON CONFLICT (run_id, model, item_id, epoch) DO UPDATE SET worker=excluded.worker, "
            "until=excluded.until, state='held', finished=NULL WHERE "
            f"(leases.state='held' AND leases.until < {NOW}) OR "
            "(leases.state='done' AND leases.finished < ?) "
            "RETURNING model, item_id, epoch",
            (
                *(v for k in keys for v in k),
                self.run_id,
                self.worker,
                LEASE_S,
                self.run_id,
                *self._final,
                self.started,
            ),
        ).fetchall()
        won = {(m, i, int(e)) for m, i, e in rows}
        self.won += len(won)
        self.lost += len(keys) - len(won)
        return won

    def renew(self) -> None:
        self.db.execute(
            f"UPDATE leases SET until={NOW} + ? WHERE run_id=? AND worker=? AND state='held'",
            (LEASE_S, self.run_id, self.worker),
        )

    def others_holding(self, models: list[str]) -> tuple[int, int]:
        """(leases other workers hold on these models' jobs, how many of them have run out)."""
        marks = ",".join(["?"] * len(models))
        held, expired = self.db.execute(
            f"SELECT COUNT(*), COUNT(*) FILTER (WHERE until < {NOW}) FROM leases WHERE run_id=? "
            f"AND state='held' AND worker != ? AND model IN ({marks})",
            (self.run_id, self.worker, *models),
        ).fetchone()
        return held, expired

    def keep_alive(self, *, store, progress) -> asyncio.Task:
        """Renew this worker's leases, and show the whole run's progress, until `leave`."""
        return asyncio.create_task(_renewing(self, store=store, progress=progress))

    def leave(self, renewing: asyncio.Task) -> None:
        """Stop renewing, and free the leases this worker holds but did not finish (stopped,
        budget full) now, rather than when they run out."""
        renewing.cancel()
        self.db.execute(
            "DELETE FROM leases WHERE run_id=? AND worker=? AND state='held'",
            (self.run_id, self.worker),
        )


async def leased(
    jobs: Callable[[], Iterable],
    claims: Claims,
    *,
    models: list[str],
    done: set,
    chunk: int,
    stopped: Callable[[], bool],
    store,
) -> AsyncIterator:
    """The jobs of these models this worker wins, a chunk at a time as its queue takes them; then,
    while another worker holds leases, those whose leases run out (a worker that died), until none
    is left. `done`: what the store had done when the run began."""
    names = set(models)
    while True:
        chunk_jobs: list = []
        for job in jobs():
            if job.model.name not in names or (job.model.name, job.key, job.epoch) in done:
                continue
            chunk_jobs.append(job)
            if len(chunk_jobs) >= chunk:
                for won in _won(claims, chunk_jobs):
                    yield won
                chunk_jobs = []
            if stopped():
                return
        for won in _won(claims, chunk_jobs):
            yield won
        if stopped() or not await _until_takeable(claims, models, stopped):
            return
        done = store.done_keys(claims.run_id)


async def _until_takeable(claims: Claims, models: list[str], stopped) -> bool:
    """Wait while other workers hold this lane's remaining jobs. True when some may be taken now (a
    lease ran out, or was let go); False when none is held any more (the run is done)."""
    seen_held = False
    while not stopped():
        held, expired = claims.others_holding(models)
        if expired:
            return True
        if not held:
            return seen_held  # they finished, or let some go, since the scan: look once more
        seen_held = True
        await asyncio.sleep(POLL_S)
    return False


def _won(claims: Claims, jobs: list) -> list:
    won = claims.claim([(j.model.name, j.key, j.epoch) for j in jobs])
    return [j for j in jobs if (j.model.name, j.key, j.epoch) in won]


async def _renewing(claims: Claims, *, store, progress) -> None:
    while True:
        await asyncio.sleep(RENEW_S)
        claims.renew()
        if store.spend is not None:
            store.spend.renew()
        progress.whole(store.done_count(claims.run_id))


async def pending(
    jobs: Callable[[], Iterable],
    *,
    models: list[str],
    done: set,
    claims: Claims | None,
    store,
    chunk: int,
    stopped: Callable[[], bool],
) -> AsyncIterator:
    """A lane's jobs not yet done; on a shared store, those this worker leases."""
    if claims is not None:
        async for job in leased(
            jobs, claims, models=models, done=done, chunk=chunk, stopped=stopped, store=store
        ):
            yield job
        return
    names = set(models)
    for job in jobs():
        if job.model.name in names and (job.model.name, job.key, job.epoch) not in done:
            yield job


def mark_done(db, keys: list[tuple]) -> None:
    """Inside the store's write transaction: the leases of these written calls ((run_id, model,
    item_id, epoch) each) end. One statement for the whole write."""
    values = ",".join(["(?,?,?,?)"] * len(keys))
    db.execute(
        f"UPDATE leases l SET state='done', finished={NOW} FROM (VALUES {values}) "
        "AS v(run_id, model, item_id, epoch) WHERE l.run_id=v.run_id AND l.model=v.model AND "
        "l.item_id=v.item_id AND l.epoch=v.epoch",
        tuple(v for k in keys for v in k),
    )
