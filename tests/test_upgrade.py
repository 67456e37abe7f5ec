"""Files written by the version before schema versions open and upgrade: a workspace made by commit
3bf4ee6 (tests/fixtures/make_landed_workspace.py says how), with a held-out pool in a vault, a run,
its grades, a reviewer and assignments. Every later schema step adds a case here."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from conftest import sqlite_only

from harness.sqlite import Schema, connect
from harness.storeschema import STORE_SCHEMA
from harness.vault.ledger import LEDGER_SCHEMA

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "landed-workspace.tar.gz"
KEY = base64.urlsafe_b64encode(b"holdout-landed-fixture-key-32-by").decode()

pytestmark = sqlite_only  # the SQLite files' own schema versions


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
    now, then = after["graders"]["correct"], before["graders"]["correct"]
    assert {k: now[k] for k in then} == then  # the same numbers
    assert set(now) - set(then) == {"neighbours", "separability"}  # what later versions add
    assert _version(store) == STORE_SCHEMA.version

    # The review tables, in the same store. The workspace was made in another directory, so the
    # config path the run recorded is gone and is passed.
    code, out, err = cli("review", "status", "landed", "--config", "configs/landed.yaml")
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


OPEN_STORE = """
import sys
from pathlib import Path
from harness.store import Store
sys.stdin.readline()                       # start together
Store(Path(sys.argv[1])).close()
"""


def test_four_processes_opening_an_old_store_at_once_upgrade_it_once(tmp_path):
    """A store from before versions, missing columns added later (calls.served, grades.grader_sha):
    four processes open it at the same moment; each succeeds and the columns are added once."""
    path = tmp_path / "store.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(
            "CREATE TABLE calls (run_id TEXT NOT NULL, model TEXT NOT NULL, item_id TEXT NOT NULL, "
            "epoch INTEGER NOT NULL, ok INTEGER NOT NULL, output BLOB, finish_reason TEXT, "
            "input_tokens INTEGER, output_tokens INTEGER, latency_s REAL, cost_usd REAL, "
            "attempts INTEGER, error_kind TEXT, error TEXT, finished REAL, "
            "PRIMARY KEY (run_id, model, item_id, epoch)) WITHOUT ROWID;"
            "CREATE TABLE grades (run_id TEXT NOT NULL, grader TEXT NOT NULL, model TEXT NOT NULL, "
            "item_id TEXT NOT NULL, epoch INTEGER NOT NULL, status TEXT NOT NULL, score REAL, "
            "detail TEXT, PRIMARY KEY (run_id, grader, model, item_id, epoch)) WITHOUT ROWID;"
            "INSERT INTO calls VALUES ('r', 'm', 'q1', 0, 1, 'an answer', 'stop', 1, 2, 0.1, 0.0, "
            "1, NULL, NULL, 1.0);"
        )
    root = Path(__file__).resolve().parent.parent
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_STORE, str(path)],
            cwd=root,
            text=True,
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
        for _ in range(4)
    ]
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert _version(path) == STORE_SCHEMA.version
    with sqlite3.connect(path) as db:
        calls = [r[1] for r in db.execute("PRAGMA table_info(calls)")]
        grades = [r[1] for r in db.execute("PRAGMA table_info(grades)")]
        assert db.execute("SELECT output, served FROM calls").fetchall() == [("an answer", None)]
    assert calls.count("served") == 1 and calls.count("item_sha") == 1
    assert grades.count("grader_sha") == 1
