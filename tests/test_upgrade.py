"""Files written by the version before schema versions open and upgrade: a workspace made by commit
3bf4ee6 (tests/fixtures/make_landed_workspace.py says how), with a held-out pool in a vault, a run,
its grades, a reviewer and assignments. Every later schema step adds a case here."""

from __future__ import annotations

import base64
import json
import sqlite3
import tarfile
from pathlib import Path

import pytest

from harness.sqlite import Schema, connect
from harness.storeschema import STORE_SCHEMA
from harness.vault.ledger import LEDGER_SCHEMA

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "landed-workspace.tar.gz"
KEY = base64.urlsafe_b64encode(b"holdout-landed-fixture-key-32-by").decode()


@pytest.fixture
def landed(tmp_path, monkeypatch):
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, filter="data")
    ws = tmp_path / "ws"
    monkeypatch.chdir(ws)
    monkeypatch.setenv("HOLDOUT_VAULT_KEY", KEY)
    return ws


def _version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("PRAGMA user_version").fetchone()[0]


def test_a_landed_workspace_opens_upgrades_and_reads_the_same(landed, cli):
    store, ledger = (
        landed / ".holdout" / "store.sqlite",
        landed / ".holdout" / "vault" / "ledger.sqlite",
    )
    assert _version(store) == 0 and _version(ledger) == 0  # as that version wrote them
    before = json.loads((landed / "results" / "landed" / "report.json").read_text())

    code, _, err = cli("report", "landed")
    assert code == 0, err
    after = json.loads((landed / "results" / "landed" / "report.json").read_text())
    assert after["graders"]["correct"] == before["graders"]["correct"]  # the same numbers
    assert _version(store) == STORE_SCHEMA.version

    code, out, err = cli("review", "status", "landed")  # the review tables, in the same store
    assert code == 0, err
    assert "24 assigned, 0 done, 24 waiting" in out
    code, out, err = cli("vault", "verify")  # the ledger's chain, the index, the manifests
    assert code == 0, out + err
    assert _version(ledger) == LEDGER_SCHEMA.version
    code, _, err = cli("run", "configs/landed.yaml", "-q")  # resumes: every call is there already
    assert code == 0, err
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM calls WHERE run_id='landed'").fetchone()[0] == 24


def test_a_file_from_a_newer_holdout_is_refused_and_left_alone(landed, cli):
    store = landed / ".holdout" / "store.sqlite"
    with sqlite3.connect(store) as db:
        db.execute(f"PRAGMA user_version = {STORE_SCHEMA.version + 1}")
    before = store.read_bytes()
    code, _, err = cli("report", "landed")
    assert code == 2
    assert "store.sqlite" in err and "newer Holdout" in err and "Traceback" not in err
    assert store.read_bytes() == before


def test_each_step_runs_once_even_when_two_connections_open_an_old_file(tmp_path):
    """Steps run under a write lock and are counted by the version they reach."""
    ran = []

    def step(db):
        ran.append(1)
        db.execute("CREATE TABLE t (x)")

    schema = Schema("test file", steps=(step,))
    path = tmp_path / "f.sqlite"
    first, second = connect(path, schema), connect(path, schema)
    assert ran == [1]
    assert first.execute("PRAGMA user_version").fetchone()[0] == 1
    second.close()
    first.close()


def test_a_failed_step_leaves_the_file_at_its_version(tmp_path):
    def good(db):
        db.execute("CREATE TABLE a (x)")

    def bad(db):
        db.execute("CREATE TABLE b (x)")
        raise RuntimeError("a step that fails half-way")

    path = tmp_path / "f.sqlite"
    connect(path, Schema("test file", steps=(good,))).close()
    with pytest.raises(RuntimeError):
        connect(path, Schema("test file", steps=(good, bad)))
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"a"}  # the half-made step is rolled back
