"""The run store: one SQLite file (WAL) in the workspace, one row per (run, model, item, epoch).

Rows are written as calls finish (grouped into one commit per event-loop turn), so a killed run
loses only calls in flight and a re-run skips everything already done. Outputs of held-out runs
are encrypted with the vault key before they reach the file (`cipher`), so a copied store file
reveals no held-out text.

Grades belong to outputs: a successful call is never overwritten (a write over it is ignored), and
the only way to change one is to delete it, which deletes every grade, judge call and review
assignment made from its item in the same transaction. So a grade in the store always describes the
output that is there now. Each call records the digest of the item content it was made from.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Iterator

from .callkinds import ITEM_KINDS
from .database import describe, errors, open_database, pipelined
from .errors import HoldoutError
from .failpoints import hit
from .postgres import is_dsn
from .rows import CALL_FIELDS, UPSERT_CALL, CallRow, GradeRow, Output, finish_reason_word
from .storebatches import Batches
from .storedeletes import Deletions
from .storeschema import STORE_SCHEMA
from .workers import mark_done

_COST = CALL_FIELDS.index("cost_usd")


class NoStore(HoldoutError):
    pass


class Store(Deletions, Batches):
    def __init__(self, location: Path | str, cipher=None, *, create: bool = True):
        """`location`: a SQLite file, or a PostgreSQL DSN (harness/database.py). `create=False`: a
        command that only reads refuses a missing store file instead of creating one."""
        self.shared = is_dsn(location)  # PostgreSQL: other workers and machines use it too
        self.location = location if self.shared else Path(location)
        self.path = describe(self.location)  # for messages
        if not self.shared and not create and not self.location.exists():
            raise NoStore(
                f"no run store at {self.path} (no run has been made with this workspace; "
                "pass --workspace, or --config with the run's config)"
            )
        try:
            if not self.shared:
                self.location.parent.mkdir(parents=True, exist_ok=True)
            self.db = open_database(self.location, STORE_SCHEMA)
        except (sqlite3.Error, OSError) as e:
            raise HoldoutError(f"{self.path}: cannot open the run store ({e})") from None
        self.db_errors = errors(self.db)
        self.cipher = cipher
        self.pending: list[tuple] = []
        self.leases_held = False  # a worker on a shared store (harness/workers.py)
        self.spend = None  # its SharedBudget, told what each write cost

    # -- runs -----------------------------------------------------------------
    def begin_run(
        self,
        run_id: str,
        identity: str,
        suite: str,
        *,
        pool: str,
        heldout: bool,
        total: int,
        models: list[str],
        config_file: str,
        identity_doc: dict | None = None,
    ) -> bool:
        """Register a run or check a resumed one matches. Returns True if resuming."""
        row = self.db.execute(
            "SELECT identity, suite, pool, identity_doc FROM runs WHERE run_id=?", (run_id,)
        ).fetchone()
        now = time.time()
        if row and row[0] != identity:
            from .identity import describe_change

            was = json.loads(row[3]) if row[3] else None
            raise HoldoutError(
                f"{config_file}: run '{run_id}' already exists in {self.path} and what decides "
                "its answers has changed: "
                f"{describe_change(was, identity_doc)}. Its results would not be comparable "
                "(nothing was "
                f"called). Set a new run_id in the config, or delete the old run with "
                f"`holdout runs delete {run_id}`"
                + (
                    f", or pin `pool: {row[2]}` to continue it"
                    if identity_doc and row[2] != pool
                    else ""
                )
                + "."
            )
        self.db.execute(
            "INSERT INTO runs(run_id, identity, suite, pool, heldout, total, models, created, "
            "updated, config_file, "
            "identity_doc) VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(run_id) DO UPDATE SET "
            "total=excluded.total, "
            "models=excluded.models, updated=excluded.updated, config_file=excluded.config_file",
            (
                run_id,
                identity,
                suite,
                pool,
                int(heldout),
                total,
                json.dumps(models),
                now,
                now,
                config_file,
                json.dumps(identity_doc, sort_keys=True) if identity_doc is not None else None,
            ),
        )
        return row is not None

    def run_info(self, run_id: str) -> dict | None:
        cur = self.db.execute("SELECT * FROM runs WHERE run_id=?", (run_id,))
        row = cur.fetchone()
        return dict(zip([d[0] for d in cur.description], row)) if row else None

    def status(self) -> list[dict]:
        """Per run: done/total, errors, model cost, and judge cost per grader. No text."""
        cur = self.db.execute(
            "SELECT r.run_id, r.suite, r.pool, r.total, r.updated, "
            "COALESCE(SUM(c.ok),0), COALESCE(SUM(1-c.ok),0), COALESCE(SUM(c.cost_usd),0) "
            "FROM runs r LEFT JOIN calls c ON c.run_id=r.run_id WHERE r.run_id NOT LIKE "
            "'%/grade/%' "
            "GROUP BY r.run_id ORDER BY r.updated DESC"
        )
        keys = ("run_id", "suite", "pool", "total", "updated", "done", "errors", "cost_usd")
        runs = [dict(zip(keys, r)) for r in cur]
        judges: dict[str, dict] = {}  # every run's judge spend in one pass
        for rid, cost in self.db.execute(
            "SELECT run_id, COALESCE(SUM(cost_usd),0) FROM calls "
            "WHERE run_id LIKE '%/grade/%' GROUP BY run_id"
        ):
            run, _, grader = rid.partition("/grade/")
            judges.setdefault(run, {})[grader] = round(cost, 6)
        for r in runs:
            r["judge_cost_usd"] = judges.get(r["run_id"], {})
        return runs

    def judge_costs(self, run_id: str) -> dict[str, float]:
        """grader -> dollars spent on its judge calls for this run."""
        prefix = f"{run_id}/grade/"
        return {
            rid[len(prefix) :]: round(cost, 6)
            for rid, cost in self.db.execute(
                "SELECT run_id, COALESCE(SUM(cost_usd),0) FROM calls WHERE substr(run_id, 1, "
                "?)=? GROUP BY run_id",
                (len(prefix), prefix),
            )
        }

    # -- calls ----------------------------------------------------------------
    # calls with a final answer: an output, or a refusal or context overflow (about the item:
    # calling again would pay for the same answer); other failures are retried by the next run
    _FINAL = f"run_id=? AND (ok=1 OR error_kind IN ({', '.join('?' * len(ITEM_KINDS))}))"

    def done_keys(self, run_id: str) -> set[tuple[str, str, int]]:
        """The calls with a final answer (what a run skips)."""
        return set(
            self.db.execute(
                f"SELECT model, item_id, epoch FROM calls WHERE {self._FINAL}",
                (run_id, *sorted(ITEM_KINDS)),
            )
        )

    def done_count(self, run_id: str) -> int:
        """How many calls have a final answer, counted by SQLite (a set of every key only to take
        its length held 15 MB at 100k calls, at the end of every run)."""
        return self.db.execute(
            f"SELECT COUNT(*) FROM calls WHERE {self._FINAL}", (run_id, *sorted(ITEM_KINDS))
        ).fetchone()[0]

    def item_digests(self, run_id: str) -> dict[str, set]:
        """item_id -> the item-content digests its successful calls were made from (one, unless
        edited)."""
        out: dict[str, set] = {}
        for item, sha in self.db.execute(
            "SELECT DISTINCT item_id, item_sha FROM calls WHERE run_id=? AND ok=1", (run_id,)
        ):
            out.setdefault(item, set()).add(sha)
        return out

    def spent(self, run_id: str) -> float:
        return self.db.execute(
            "SELECT COALESCE(SUM(cost_usd),0) FROM calls WHERE run_id=?", (run_id,)
        ).fetchone()[0]

    def add(self, row: CallRow) -> None:
        """Queue a finished call; `flush` writes everything queued in one transaction."""
        self.pending.append(self.values_of(row))

    def values_of(self, row: CallRow) -> tuple:
        """A call's row as stored: its output encrypted in a held-out run."""
        row.finish_reason = finish_reason_word(row.finish_reason)
        # dataclasses.astuple deep-copies: slow per row
        values = tuple(getattr(row, f) for f in CALL_FIELDS)
        if self.cipher is not None and row.output is not None:
            sealed = self.cipher.encrypt_output(row.run_id, row.model, row.item_id, row.output)
            return values[:5] + (sealed,) + values[6:]
        if self.shared and isinstance(row.output, str):
            return values[:5] + (row.output.encode(),) + values[6:]  # bytea takes bytes
        return values

    def flush(self) -> None:
        if not self.pending:
            return
        rows, self.pending = self.pending, []
        try:
            with self.db:  # (PostgreSQL: the statements in one round trip, the COMMIT in one)
                with pipelined(self.db):
                    self.db.execute("BEGIN IMMEDIATE")
                    self.db.executemany(UPSERT_CALL, rows)
                    if self.leases_held:  # a worker's results and their leases' end, together
                        mark_done(self.db, [r[:4] for r in rows])
                    if self.spend is not None:  # ... and what they cost, in the shared budget
                        self.spend.written(sum(r[_COST] or 0.0 for r in rows))
                    self.db.executemany(  # when each run was last written; changed(), in one
                        "UPDATE runs SET updated=?, changes = changes + 1 WHERE run_id=?",
                        [(time.time(), run_id) for run_id in {r[0] for r in rows}],
                    )
                hit("store.flush.before_commit")
        except self.db_errors as e:  # keep them for a retry; the store stays consistent
            self.pending = rows + self.pending
            raise HoldoutError(
                f"{self.path}: cannot write results ({e}); the store is unchanged since the last "
                "successful write, re-run to resume"
            ) from None

    def calls(
        self, run_id: str, model: str | None = None, *, item: str | None = None
    ) -> Iterator[CallRow]:
        """A run's calls (of one model; of one item, or for judge calls, of the keys that start
        with `item|`: what the maintainers' view shows of an item)."""
        sql = f"SELECT {', '.join(CALL_FIELDS)} FROM calls WHERE run_id=?"
        args: tuple = (run_id,)
        if model:
            sql, args = sql + " AND model=?", (*args, model)
        if item and "/grade/" in run_id:  # "item|..." sorts from "item|" to "item}" (| < })
            sql, args = sql + " AND item_id >= ? AND item_id < ?", (*args, item + "|", item + "}")
        elif item:
            sql, args = sql + " AND item_id=?", (*args, item)
        read = self.db.stream if self.shared else self.db.execute  # PostgreSQL: not all held
        for values in read(sql + " ORDER BY model, item_id, epoch", args):
            row = CallRow(*values)
            row.output = self._opened(
                row.output, run_id=row.run_id, model=row.model, item=row.item_id
            )
            yield row

    def _opened(self, output, *, run_id: str, model: str, item: str):
        """A stored output as the caller may use it: decrypted (Sealed) for a held-out run."""
        if self.cipher is None or output is None:
            # PostgreSQL's bytea gives back bytes what SQLite's BLOB column kept as text
            return output.decode() if isinstance(output, bytes | memoryview) else output
        return self.cipher.decrypt_output(run_id, model, item, output)

    def models(self, run_id: str) -> list[str]:
        """The models a run called, by name."""
        sql = "SELECT DISTINCT model FROM calls WHERE run_id=? ORDER BY 1"
        return [m for (m,) in self.db.execute(sql, (run_id,))]

    def outputs(self, run_id: str, model: str) -> Iterator[Output]:
        """One model's answers, by item and epoch: the few columns the safeguards read (a full
        CallRow per call is most of the time of `check` over a million calls)."""
        for item_id, ok, output, finish, kind in self.db.execute(
            "SELECT item_id, ok, output, finish_reason, error_kind FROM calls WHERE run_id=? "
            "AND model=? ORDER BY item_id, epoch",
            (run_id, model),
        ):
            text = self._opened(output, run_id=run_id, model=model, item=item_id) if ok else None
            yield Output(item_id, text, finish, kind)

    # -- grades (numbers and labels only, never text) ---------------------------
    def changed(self, run_ids) -> None:
        """Count a write to these runs' rows (inside the writer's transaction): `changes`."""
        self.db.executemany(
            "UPDATE runs SET changes = changes + 1 WHERE run_id=?", [(r,) for r in run_ids]
        )

    def changes(self, run_id: str) -> int | None:
        """How many writes the run's calls, grades and flags have had (None: no such run): a
        figure computed from them is current while this stays the same."""
        row = self.db.execute("SELECT changes FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return row[0] if row else None

    def put_grades(self, rows: list[GradeRow]) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.changed({r.run_id for r in rows})
            self.db.executemany(
                "INSERT INTO grades VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (run_id, grader, model, "
                "item_id, epoch) DO UPDATE SET status=excluded.status, score=excluded.score, "
                "detail=excluded.detail, grader_sha=excluded.grader_sha",
                [
                    (
                        r.run_id,
                        r.grader,
                        r.model,
                        r.item_id,
                        r.epoch,
                        r.status,
                        r.score,
                        json.dumps(r.detail),
                        r.grader_sha,
                    )
                    for r in rows
                ],
            )

    def iter_grades(
        self,
        run_id: str,
        grader: str | None = None,
        *,
        model: str | None = None,
        item: str | None = None,
    ) -> Iterator[dict]:
        """A run's grades (of one grader, of one model), by grader, model, item and epoch, one at a
        time: a report over a million grades holds one model's at once, not all of them."""
        sql = (
            "SELECT grader, model, item_id, epoch, status, score, detail FROM grades WHERE run_id=?"
        )
        args: tuple = (run_id,)
        if grader:
            sql, args = sql + " AND grader=?", (*args, grader)
        if model:
            sql, args = sql + " AND model=?", (*args, model)
        if item:
            sql, args = sql + " AND item_id=?", (*args, item)
        keys = ("grader", "model", "item_id", "epoch", "status", "score", "detail")
        for r in self.db.execute(sql + " ORDER BY 1,2,3,4", args):
            detail = {} if r[6] == "{}" else json.loads(r[6])  # most rules' grades: no detail
            yield dict(zip(keys, r[:6] + (detail,)))

    def grader_names(self, run_id: str | None = None) -> list[str]:
        """The graders with grades in a run (None: in any run of the store)."""
        if run_id is None:
            return [r[0] for r in self.db.execute("SELECT DISTINCT grader FROM grades ORDER BY 1")]
        sql = "SELECT DISTINCT grader FROM grades WHERE run_id=? ORDER BY 1"
        return [r[0] for r in self.db.execute(sql, (run_id,))]

    def pairwise_baseline(self, run_id: str, grader: str) -> str | None:
        """The baseline a pairwise grader compared against (None: the grader is not pairwise)."""
        row = self.db.execute(
            "SELECT detail FROM grades WHERE run_id=? AND grader=? AND detail LIKE ? LIMIT 1",
            (run_id, grader, '%"baseline"%'),
        ).fetchone()
        return json.loads(row[0]).get("baseline") if row else None

    def served_models(self, run_id: str) -> dict[str, dict[str, int]]:
        """model -> {the model id the provider said served it: calls}."""
        out: dict[str, dict[str, int]] = {}
        for model, served, n in self.db.execute(
            "SELECT model, served, COUNT(*) FROM calls WHERE run_id=? AND ok=1 "
            "AND served IS NOT NULL GROUP BY 1, 2",
            (run_id,),
        ):
            out.setdefault(model, {})[served] = n
        return out

    def rows_fingerprint(self, run_id: str) -> str:
        """SHA-256 over every call and grade row of a run that a scorecard is built from (numbers,
        digests and labels; never text): cards issued before and after an edit of the store carry
        different fingerprints."""
        h = hashlib.sha256()
        for sql in (
            "SELECT model, item_id, epoch, ok, error_kind, cost_usd, input_tokens, "
            "output_tokens, latency_s, "
            "item_sha FROM calls WHERE run_id=? ORDER BY model, item_id, epoch",
            "SELECT grader, model, item_id, epoch, status, score, detail, grader_sha FROM grades "
            "WHERE run_id=? "
            "ORDER BY grader, model, item_id, epoch",
        ):
            cursor = self.db.execute(sql, (run_id,))
            while rows := cursor.fetchmany(10_000):  # the bytes of one update per row, joined
                h.update("".join(map(repr, rows)).encode())
        return h.hexdigest()

    def graded_keys(self, run_id: str, grader: str) -> set:
        return set(
            self.db.execute(
                "SELECT model, item_id, epoch FROM grades WHERE run_id=? AND grader=? "
                "AND status IN ('ok','skipped')",
                (run_id, grader),
            )
        )

    def grader_digests(self, run_id: str) -> dict[str, set]:
        """grader -> the settings digests its grades were made with (one, unless its settings
        changed)."""
        out: dict[str, set] = {}
        for grader, sha in self.db.execute(
            "SELECT DISTINCT grader, grader_sha FROM grades WHERE run_id=?", (run_id,)
        ):
            out.setdefault(grader, set()).add(sha)
        return out

    def record_flags(self, run_id: str, results: dict) -> int:
        """Replace the run's safeguard flags of these models with what a check found: results is
        {model: {detector: {"every_item_id": [...]}}}. Returns how many were recorded."""
        now, rows = time.time(), []
        for model, detectors in results.items():
            for detector, r in detectors.items():
                rows += [(run_id, model, detector, i, now) for i in r.get("every_item_id", ())]
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(
                "DELETE FROM safeguard_flags WHERE run_id=? AND model=?",
                [(run_id, m) for m in results],
            )
            self.db.executemany("INSERT INTO safeguard_flags VALUES (?, ?, ?, ?, ?)", rows)
            self.changed([run_id])
        return len(rows)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.db.close()
