"""The log of held-out items shown in the maintainers' view: who saw which item of which run, and
when. Each row carries a MAC, made with the vault's key, over the row and the previous row's MAC,
so a row changed, removed or inserted outside holdout breaks the chain, and `holdout view log`
says where. The count of rows is witnessed in the vault's exposure ledger (another file, a MAC
under the same key), so rows cut from the end show too, unless both files are rolled back
together. Ids and times only, no text."""

from __future__ import annotations

from dataclasses import dataclass

from .. import clock

GENESIS = "holdout-view-log"


@dataclass
class Viewed:
    seq: int
    at: float
    maintainer: str
    run_id: str
    item_id: str
    prev: str
    mac: str

    def signed_part(self) -> dict:
        return {
            "seq": self.seq,
            "at": self.at,
            "maintainer": self.maintainer,
            "run_id": self.run_id,
            "item_id": self.item_id,
            "prev": self.prev,
        }


WITNESS = "view-log"


def record(db, vault, *, maintainer: str, run_id: str, item_id: str) -> None:
    """Append one view, before the page is sent: no log row, no page. The row is committed
    before the ledger witnesses it (a crash between leaves the ledger behind, never ahead)."""
    with db:
        db.execute("BEGIN IMMEDIATE")
        last = db.execute("SELECT seq, mac FROM view_log ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
        row = Viewed(seq, clock.now(), maintainer, run_id, item_id, prev, "")
        row.mac = vault.sign(row.signed_part())["mac"]
        db.execute(
            "INSERT INTO view_log (seq, at, maintainer, run_id, item_id, prev, mac) "
            "VALUES (?,?,?,?,?,?,?)",
            (row.seq, row.at, row.maintainer, row.run_id, row.item_id, row.prev, row.mac),
        )
    vault.ledger.witness(WITNESS, row.seq)


def rows(db) -> list[Viewed]:
    return [
        Viewed(*r)
        for r in db.execute(
            "SELECT seq, at, maintainer, run_id, item_id, prev, mac FROM view_log ORDER BY seq"
        )
    ]


def verify(log: list[Viewed], vault) -> list[str]:
    """Where the chain is broken (empty: every row is as holdout wrote it, in order)."""
    problems, prev = [], GENESIS
    for expected, row in enumerate(log, start=1):
        if row.seq != expected:
            problems.append(f"row {row.seq}: expected row {expected} (rows removed or inserted)")
        if row.prev != prev:
            problems.append(f"row {row.seq}: does not follow the row before it")
        if not vault.signed_by_this_vault({**row.signed_part(), "mac": row.mac}):
            problems.append(f"row {row.seq}: changed outside holdout (its MAC does not match)")
        prev = row.mac
    seen = vault.ledger.witnessed(WITNESS)
    if seen < 0:
        problems.append("the ledger's witness of the log was changed outside holdout")
    elif seen > len(log):
        problems.append(
            f"rows {len(log) + 1}-{seen} were removed from the end (the ledger saw {seen} rows)"
        )
    return problems
