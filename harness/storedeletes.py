"""Deleting from the run store: a run, some items' calls, a grader's grades, and everything made
from them (judge calls, review assignments), each in one transaction. A mixin of `Store`."""

from __future__ import annotations

from .rows import Deleted


class Deletions:
    db: object  # the store's sqlite3 connection
    changed: object  # Store.changed

    def delete_run(self, run_id: str) -> Deleted:
        """A run and everything made from it: calls, grades, judge calls, review assignments."""
        judge_runs = f"{run_id}/grade/"
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            d = Deleted(
                calls=self.db.execute("DELETE FROM calls WHERE run_id=?", (run_id,)).rowcount,
                grades=self.db.execute("DELETE FROM grades WHERE run_id=?", (run_id,)).rowcount,
                judge_calls=self.db.execute(
                    "DELETE FROM calls WHERE substr(run_id, 1, ?)=?", (len(judge_runs), judge_runs)
                ).rowcount,
                assignments=self._delete_assignments("run_id=?", (run_id,)),
            )
            self.db.execute("DELETE FROM safeguard_flags WHERE run_id=?", (run_id,))
            self.db.execute(
                "DELETE FROM runs WHERE run_id=? OR substr(run_id, 1, ?)=?",
                (run_id, len(judge_runs), judge_runs),
            )
        return d

    def delete_items(self, run_id: str, item_ids: list[str]) -> Deleted:
        """The calls of these items (every model and epoch) and everything made from them, so they
        are called afresh: grades, judge calls (their keys start with the item id), review
        assignments."""
        judge_runs = f"{run_id}/grade/"
        d = Deleted()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.changed([run_id])
            for item in item_ids:
                d.calls += self.db.execute(
                    "DELETE FROM calls WHERE run_id=? AND item_id=?", (run_id, item)
                ).rowcount
                d.grades += self.db.execute(
                    "DELETE FROM grades WHERE run_id=? AND item_id=?", (run_id, item)
                ).rowcount
                d.judge_calls += self.db.execute(
                    "DELETE FROM calls WHERE substr(run_id, 1, ?)=? AND substr(item_id, 1, ?)=?",
                    (len(judge_runs), judge_runs, len(item) + 1, item + "|"),
                ).rowcount
                d.assignments += self._delete_assignments("run_id=? AND item_id=?", (run_id, item))
                self.db.execute(
                    "DELETE FROM safeguard_flags WHERE run_id=? AND item_id=?", (run_id, item)
                )
        return d

    def delete_grader(self, run_id: str, grader: str) -> Deleted:
        """A grader's grades and judge calls (`grade --regrade`)."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.changed([run_id])
            return Deleted(
                grades=self.db.execute(
                    "DELETE FROM grades WHERE run_id=? AND grader=?", (run_id, grader)
                ).rowcount,
                judge_calls=self.db.execute(
                    "DELETE FROM calls WHERE run_id=?", (f"{run_id}/grade/{grader}",)
                ).rowcount,
            )

    def _delete_assignments(self, where: str, args: tuple) -> int:
        return self.db.execute(f"DELETE FROM assignments WHERE {where}", args).rowcount
