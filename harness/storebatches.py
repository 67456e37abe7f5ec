"""The run store's record of batches sent to a provider's Batch API (harness/batches.py): each is
written as an intent before anything is uploaded, then its provider ids, then its results with
the calls they became (one transaction), then the provider-side files deleted. So a process
killed at any point leaves a row that says what to do next: find the batch the provider already
has (by the submission key it carries), poll it, collect it, or finish deleting. A mixin of
`Store`. Ids, keys and counts only: a batch's requests are built in memory and never stored."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from .failpoints import hit
from .rows import UPSERT_CALL

# what a row's status says is next: submitting -> find or submit; submitted -> poll and collect;
# collected -> delete the provider's files; done
OPEN = ("submitting", "submitted", "collected")


@dataclass
class BatchRecord:
    submission: str  # our key, sent as the batch's metadata and its file's name
    run_id: str
    provider: str
    status: str
    jobs: dict  # custom_id -> [model, item key, epoch]
    worst_usd: float  # what the budget reserved for it
    created: float
    batch_id: str | None = None
    input_file: str | None = None
    files: list = field(default_factory=list)  # provider-side file ids still to delete
    deleted: list = field(default_factory=list)
    outcome: str | None = None  # the provider's last status (completed, expired, ...)
    resubmits: str | None = None  # the submission whose unanswered requests this one sends again


class Batches:
    db: object  # the store's sqlite3 connection
    spend: object  # the shared budget, on a shared store (sharedbudget.py); else None
    changed: object  # Store.changed

    def batches(self, run_id: str | None = None, *, open_only: bool = True) -> list[BatchRecord]:
        sql, args = "SELECT * FROM batches", []
        where = []
        if run_id is not None:
            where.append("run_id=?")
            args.append(run_id)
        if open_only:
            where.append(f"status IN ({', '.join('?' * len(OPEN))})")
            args += OPEN
        if where:
            sql += " WHERE " + " AND ".join(where)
        cols = [c[0] for c in self.db.execute(sql + " LIMIT 0", args).description]
        out = []
        for r in self.db.execute(sql + " ORDER BY created", args):
            d = dict(zip(cols, r))
            for k in ("jobs", "files", "deleted"):
                d[k] = json.loads(d[k]) if d[k] else ({} if k == "jobs" else [])
            out.append(BatchRecord(**d))
        return out

    def batch_rounds(self, run_id: str) -> dict[tuple, int]:
        """(model, item key, epoch) -> how many batches of the run included it."""
        rounds: dict = {}
        for (jobs,) in self.db.execute("SELECT jobs FROM batches WHERE run_id=?", (run_id,)):
            for key in json.loads(jobs).values():
                k = tuple(key)
                rounds[k] = rounds.get(k, 0) + 1
        return rounds

    def batch_intent(self, rec: BatchRecord) -> None:
        """The batch about to be uploaded: committed before anything leaves."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(
                "INSERT INTO batches (submission, run_id, provider, status, jobs, worst_usd, "
                "created, resubmits) VALUES (?, ?, ?, 'submitting', ?, ?, ?, ?)",
                (
                    rec.submission,
                    rec.run_id,
                    rec.provider,
                    json.dumps(rec.jobs),
                    rec.worst_usd,
                    rec.created,
                    rec.resubmits,
                ),
            )

    def batch_submitted(self, submission: str, *, batch_id: str, input_file: str | None) -> None:
        """The provider's ids for a batch (an input file: OpenAI's, to delete after collection)."""
        with self.db:
            self.db.execute(
                "UPDATE batches SET status='submitted', batch_id=?, input_file=?, files=? "
                "WHERE submission=?",
                (batch_id, input_file, json.dumps([input_file] if input_file else []), submission),
            )

    def batch_collected(
        self, rec: BatchRecord, rows: list, *, outcome: str, files: list[str]
    ) -> None:
        """A finished batch's calls and its new status, in one transaction: collected once."""
        values = [self.values_of(r) for r in rows]
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(UPSERT_CALL, values)
            if self.spend is not None:
                self.spend.written(sum(r.cost_usd or 0.0 for r in rows))
            self.db.execute(
                "UPDATE batches SET status='collected', outcome=?, files=? WHERE submission=?",
                (outcome, json.dumps(files), rec.submission),
            )
            self.db.execute("UPDATE runs SET updated=? WHERE run_id=?", (time.time(), rec.run_id))
            self.changed([rec.run_id])
            hit("store.batch_collected.before_commit")

    def batch_file_deleted(self, rec: BatchRecord, file_id: str) -> None:
        """One provider-side file is gone (recorded); the batch is done when all are."""
        rec.files = [f for f in rec.files if f != file_id]
        rec.deleted = [*rec.deleted, file_id]
        with self.db:
            self.db.execute(
                "UPDATE batches SET files=?, deleted=?, status=? WHERE submission=?",
                (
                    json.dumps(rec.files),
                    json.dumps(rec.deleted),
                    rec.status if rec.files else "done",
                    rec.submission,
                ),
            )
