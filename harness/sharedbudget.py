"""One budget across the workers of a run on a shared store.

On SQLite one process works on a run at a time (runlock.py), so its Budget sees everything. On a
shared PostgreSQL store several workers spend from one `budget_usd`; each admits a call only if it
fits in what is left after everything spent and everything any live worker has in flight:

- `run_spend` holds what the run's calls cost, as written: a worker's flush adds its rows' costs in
  the transaction that writes them (Store.flush), so the figure is exactly the store's.
- `budget_holds` holds, per worker, the worst case of its calls in flight plus the actual cost of
  calls it has finished but not yet written. It is renewed with the worker's leases; a worker
  killed with `kill -9` stops renewing, and its hold stops counting after workers.LEASE_S.

A reservation reads both under the run's row lock and adds its worst case to the worker's hold, so
two workers never both take the last dollars. What a killed worker had in flight and was billed for
is not written, so the budget can be passed by at most the cost of those calls (the same calls the
lease design may pay twice).

A worker that joins a run no one else is working on recounts `run_spend` from the calls, so a
deletion since (`runs delete`, `--recall-changed`) is reflected, as SQLite's Budget would see it."""

from __future__ import annotations

from .budget import Budget
from .workers import LEASE_S, NOW, worker_id


class SharedBudget(Budget):
    def __init__(self, limit_usd: float | None, *, store, scope: str, recount: tuple):
        """`scope`: the budget's name (a run's model calls, or a run graded: calls and judges);
        `recount`: (SQL, params) that sums what the scope's calls cost."""
        self.db, self.scope, self.worker = store.db, scope, worker_id()
        self.held = 0.0  # this worker's: worst cases in flight + finished, unwritten costs
        super().__init__(limit_usd, spent_usd=self._join(*recount))
        store.spend = self

    def _join(self, sql: str, params: tuple) -> float:
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (f"budget|{self.scope}",))
            others = self._others_held()
            row = self.db.execute(
                "SELECT spent FROM run_spend WHERE scope=?", (self.scope,)
            ).fetchone()
            if row is None or not others:
                spent = self.db.execute(sql, params).fetchone()[0]
                self.db.execute(
                    "INSERT INTO run_spend VALUES (?, ?) ON CONFLICT (scope) DO UPDATE SET "
                    "spent=excluded.spent",
                    (self.scope, spent),
                )
                return spent
            return row[0]

    def _others_held(self) -> float:
        return self.db.execute(
            f"SELECT COALESCE(SUM(held), 0) FROM budget_holds WHERE scope=? AND worker != ? AND "
            f"until > {NOW}",
            (self.scope, self.worker),
        ).fetchone()[0]

    def reserve(self, worst_case_usd: float) -> bool:
        if self.limit is None:
            return True
        with self.db:
            self.db.execute("BEGIN")
            spent = self.db.execute(
                "SELECT spent FROM run_spend WHERE scope=? FOR UPDATE", (self.scope,)
            ).fetchone()[0]
            if spent + self._others_held() + self.held + worst_case_usd > self.limit:
                self.spent = spent  # what the message at the end says was spent
                return False
            self.held += worst_case_usd
            self._write_hold()
        self.reserved += worst_case_usd
        self.spent = spent
        return True

    def hold(self, worst_case_usd: float) -> None:
        if self.limit is not None:
            self.held += worst_case_usd
            self._write_hold()
        super().hold(worst_case_usd)

    def settle(self, reserved_usd: float, actual_usd: float) -> None:
        if self.limit is not None:
            self.held += actual_usd - reserved_usd  # written: its cost moves to run_spend
            self._write_hold()
        super().settle(reserved_usd, actual_usd)

    def written(self, cost_usd: float) -> None:
        """Inside the store's write transaction: calls costing this were written."""
        self.db.execute(
            "UPDATE run_spend SET spent = spent + ? WHERE scope=?", (cost_usd, self.scope)
        )
        if self.limit is not None:
            self.held -= cost_usd
            self._write_hold()

    def renew(self) -> None:
        self.db.execute(
            f"UPDATE budget_holds SET until = {NOW} + ? WHERE scope=? AND worker=?",
            (LEASE_S, self.scope, self.worker),
        )

    def _write_hold(self) -> None:
        self.db.execute(
            f"INSERT INTO budget_holds VALUES (?, ?, ?, {NOW} + ?) ON CONFLICT (scope, worker) "
            "DO UPDATE SET held=excluded.held, until=excluded.until",
            (self.scope, self.worker, max(0.0, self.held), LEASE_S),
        )


def budget_for(limit_usd: float | None, *, store, scope: str, recount: tuple) -> Budget:
    """The run's budget: this process's own on SQLite (one process per run), the workers' shared
    one on PostgreSQL."""
    if store.shared:
        return SharedBudget(limit_usd, store=store, scope=scope, recount=recount)
    sql, params = recount
    return Budget(limit_usd, spent_usd=store.db.execute(sql, params).fetchone()[0])
