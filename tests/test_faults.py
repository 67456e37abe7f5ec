"""Faults and bad input: nothing lost, nothing wrong, every error clear."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import holdout_subprocess, ledger_db, sqlite_only, store_db

from harness.mockreplies import FAULTS
from harness.mockserver import MockBehaviour, MockServer

KNOWN_ERROR_KINDS = {
    "timeout",
    "connection",
    "server_error",
    "rate_limited",
    "bad_response",
    "empty",
    "content_filter",
}


def two_provider_config(url, extra=""):
    return (
        f"suite: mini\nproviders:\n  oa:\n    type: openai-compatible\n    base_url: {url}/v1\n"
        f"    api_key_env: MOCK_KEY\n    timeout_s: 0.5\n    max_attempts: 6\n    concurrency: 8\n"
        f"  an:\n    type: anthropic\n    base_url: {url}\n    api_key_env: MOCK_KEY\n    "
        "timeout_s: 0.5\n"
        f"    max_attempts: 6\n    concurrency: 8\nmodels:\n  - {{provider: oa, model: m-oa}}\n"
        f"  - {{provider: an, model: m-an}}\n{extra}"
    )


def test_every_provider_fault_ends_as_success_or_a_recorded_error(project, cli, mock_server):
    project.suite(n=40)
    mock_server.behaviour = MockBehaviour(
        error_rate=0.2, faults=FAULTS, hang_s=2.0, retry_after_s=0.1, seed=3
    )
    path = project.config(
        two_provider_config(mock_server.url, "graders:\n  - rules: {type: contains}\n")
    )
    code, _, err = cli("run", path, "-q")
    assert code == 0, err
    assert set(mock_server.stats.faults) >= {
        "429",
        "500",
        "reset",
        "hang",
        "garbled",
        "truncated",
        "empty",
    }
    with project.db() as db:
        rows = db.execute(
            "SELECT ok, output, error_kind, attempts FROM calls WHERE run_id='run'"
        ).fetchall()
    assert len(rows) == 80
    for ok, output, kind, _attempts in rows:
        if ok:
            assert output  # an empty completion is never a success
        else:
            assert kind in KNOWN_ERROR_KINDS  # every error has its cause
    assert any(a > 1 for *_, a in rows)  # faults were retried into successes
    assert sum(ok for ok, *_ in rows) >= 60
    # errors are never graded as wrong answers; the report keeps them apart
    assert cli("grade", "run", "-q")[0] == 0
    cli("report", "run")
    report = json.loads((project.root / "results" / "run" / "report.json").read_text())
    with project.db() as db:
        graded = db.execute("SELECT COUNT(*) FROM grades WHERE run_id='run'").fetchone()[0]
    assert graded == sum(ok for ok, *_ in rows)
    errors = sum(1 - ok for ok, *_ in rows)
    assert sum(m["errors"] for m in report["models"].values()) == errors


def _final_state(root, run_id="run", dsn=None):
    db = store_db(root, dsn=dsn)
    calls = db.execute(
        "SELECT model, item_id, epoch, ok, output FROM calls WHERE run_id=? ORDER BY 1,2,3",
        (run_id,),
    ).fetchall()
    grades = db.execute(
        "SELECT grader, model, item_id, epoch, status, score FROM grades WHERE run_id=? ORDER BY "
        "1,2,3,4",
        (run_id,),
    ).fetchall()
    db.close()
    return calls, grades


@pytest.mark.parametrize(
    "command,failpoint",
    [
        ("run", "runner.after_call=kill@7"),  # during calls
        ("run", "store.flush.before_commit=kill@3"),  # inside a store commit
        ("grade", "runner.after_call=kill@9"),  # during grading (judge calls)
        ("grade", "store.flush.before_commit=kill@2"),  # inside a commit of judge results
    ],
)
def test_kill_9_anywhere_then_resume_equals_an_uninterrupted_run(
    tmp_path, command, failpoint, own_store
):
    n = 24
    results = {}
    for label in ("clean", "killed"):
        server = MockServer(
            MockBehaviour(
                latency_s=0.01,
                responder=lambda api, body: (
                    json.dumps({"scores": {"q": 3}}) if body["model"] == "judge" else None
                ),
            )
        )
        server.start()
        root = tmp_path / label
        (root / "suites" / "mini").mkdir(parents=True)
        (root / "suites" / "mini" / "suite.yaml").write_text(
            "name: mini\npublic_pool: items.jsonl\ngraders:\n  - rules: {type: contains}\n"
            "  - rubric:\n      judge: {provider: oa, model: judge}\n      criteria: [{name: q, "
            "scale: [1, 5]}]\n"
        )
        (root / "suites" / "mini" / "items.jsonl").write_text(
            "".join(
                json.dumps({"id": f"q{i}", "prompt": f"prompt {i}", "reference": f"{i}"}) + "\n"
                for i in range(n)
            )
        )
        (root / "run.yaml").write_text(
            f"suite: mini\nproviders:\n  oa:\n    type: openai-compatible\n"
            f"    base_url: {server.url}/v1\n    concurrency: 3\n"
            f"models:\n  - {{provider: oa, model: m1}}\n"
        )
        env = {"MOCK_KEY": "x", **own_store()}
        steps = [("run", "run.yaml"), ("grade", "run")]
        for cmd, arg in steps:
            if label == "killed" and cmd == command:
                proc = holdout_subprocess(cmd, arg, "-q", cwd=root, env=env, failpoints=failpoint)
                proc.communicate(timeout=60)
                assert proc.returncode == -signal.SIGKILL, "the failpoint did not fire"
            proc = holdout_subprocess(cmd, arg, "-q", cwd=root, env=env)
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
        results[label] = (
            _final_state(root, dsn=env.get("HOLDOUT_STORE")),
            server.stats.requests,
        )
        server.stop()
    (clean_state, clean_requests), (killed_state, killed_requests) = (
        results["clean"],
        results["killed"],
    )
    assert killed_state == clean_state  # same outputs, same grades
    assert killed_requests <= clean_requests + 3  # nothing paid twice but the 3 in flight


def test_interrupted_activation_leaves_the_previous_pool_active(tmp_path, monkeypatch):
    from harness.vault import Vault, import_pool_file

    monkeypatch.delenv("HOLDOUT_VAULT_KEY", raising=False)
    vault, _ = Vault.init(tmp_path / "ws")
    pool = tmp_path / "p.jsonl"
    pool.write_text('{"id": "a", "prompt": "x"}\n')
    v1 = import_pool_file(vault, "arena", pool, license_class="heldout")
    v2 = import_pool_file(vault, "arena", pool, license_class="heldout")
    vault.activate(v1, thresholds={})
    code = (
        "import sys; from pathlib import Path; from harness import failpoints; from "
        "harness.vault import Vault; "
        "failpoints.arm('vault.activate.before_index=kill'); "
        "Vault.open(Path(sys.argv[1])).activate(sys.argv[2], thresholds={})"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "ws"), v2], env=os.environ)
    assert proc.returncode == -signal.SIGKILL
    assert vault.active_pool("arena") == v1 and vault.manifest(v2)["status"] == "draft"


def test_two_runs_at_once_on_one_store_and_vault(project, mock_server, monkeypatch, tmp_path):
    project.suite(name="arena")
    monkeypatch.delenv("HOLDOUT_VAULT_KEY", raising=False)
    mock_server.behaviour.latency_s = 0.01
    items = "".join(
        json.dumps({"id": f"h{i}", "prompt": f"held-out question {i}"}) + "\n" for i in range(30)
    )
    (tmp_path / "pool.jsonl").write_text(items)
    for args in (
        ["vault", "init"],
        ["pool", "import", tmp_path / "pool.jsonl", "--suite", "arena", "--heldout", "--activate"],
    ):
        proc = holdout_subprocess(*args, cwd=project.root)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    procs = []
    for run_id in ("first", "second"):
        path = project.config(
            f"run_id: {run_id}\nsuite: arena\npool: heldout\nproviders:\n  p:\n"
            f"    type: openai-compatible\n    base_url: {mock_server.url}/v1\n    concurrency: 4\n"
            f"models:\n  - {{provider: p, model: m}}\n",
            name=f"{run_id}.yaml",
        )
        procs.append(holdout_subprocess("run", path, "-q", cwd=project.root))
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    assert len(project.rows("first")) == 30 and len(project.rows("second")) == 30
    ledger = ledger_db(project.root)
    counts = ledger.execute(
        "SELECT run_id, COUNT(*) FROM exposures GROUP BY run_id ORDER BY 1"
    ).fetchall()
    assert counts == [("first", 30), ("second", 30)]
    if not os.environ.get("HOLDOUT_STORE"):  # SQLite's own check of the file
        assert store_db(project.root).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_unwritable_results_directory_is_a_clear_error_and_loses_nothing(project, cli, mock_server):
    project.suite(n=5)
    path = project.config(
        f"suite: mini\nresults_dir: /proc/holdout-results\nproviders:\n  p:\n"
        f"    type: openai-compatible\n    base_url: {mock_server.url}/v1\nmodels:\n  - "
        f"{{provider: p, model: m}}\n"
    )
    code, _, err = cli("run", path, "-q")
    assert (
        code == 2
        and "/proc/holdout-results/run/summary.json: cannot write" in err
        and "nothing in the store was lost" in err
    )
    assert len(project.rows("run")) == 5
    path.write_text(path.read_text().replace("/proc/holdout-results", "results"))
    code, _, err = cli("run", path, "-q")
    assert code == 0 and mock_server.stats.requests == 5 and "0 calls made this time" in err


@sqlite_only
def test_disk_full_store_is_a_clear_error_and_stays_consistent(tmp_path, mock_server):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a small tmpfs here to fill a disk")
    try:
        (tmp_path / "suites" / "mini").mkdir(parents=True)
        (tmp_path / "suites" / "mini" / "suite.yaml").write_text(
            "name: mini\npublic_pool: items.jsonl\n"
        )
        (tmp_path / "suites" / "mini" / "items.jsonl").write_text(
            "".join(json.dumps({"id": f"q{i}", "prompt": "x" * 2000}) + "\n" for i in range(300))
        )
        (tmp_path / "run.yaml").write_text(
            f"suite: mini\nworkspace: {mnt}\nproviders:\n  p:\n"
            f"    type: openai-compatible\n    base_url: {mock_server.url}/v1\n"
            f"models:\n  - {{provider: p, model: m}}\n"
        )
        proc = holdout_subprocess("run", "run.yaml", "-q", cwd=tmp_path)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 2 and "cannot write results" in err and "Traceback" not in err
        db = sqlite3.connect(mnt / "store.sqlite")
        try:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert 0 < db.execute("SELECT COUNT(*) FROM calls").fetchone()[0] < 300
        finally:
            db.close()
    finally:
        subprocess.run(["umount", str(mnt)])


def test_ctrl_c_stops_new_calls_saves_and_says_how_to_resume(project, mock_server):
    n = 80
    project.suite(n=n)
    mock_server.behaviour.latency_s = 0.1
    path = project.config(
        "suite: mini\nproviders:\n  p:\n    type: openai-compatible\n    base_url: "
        f"{mock_server.url}/v1\n"
        f"    concurrency: 4\nmodels:\n  - {{provider: p, model: m}}\n"
    )
    proc = holdout_subprocess("run", path, cwd=project.root)
    while mock_server.stats.requests < 12:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "Interrupted" in err and f"Resume with `holdout run {path}`" in err
    done = len(project.rows("run"))
    assert 0 < done < n and mock_server.stats.requests <= done + 4
    proc = holdout_subprocess("run", path, "-q", cwd=project.root)
    proc.communicate(timeout=60)
    assert len(project.rows("run")) == n and mock_server.stats.requests <= n + 4
