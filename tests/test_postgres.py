"""The shared PostgreSQL store (#23) against a real server the tests start themselves
(conftest.postgres_server): workers leasing one run's jobs, a worker killed mid-run, one budget and
one key schedule across workers, two workspaces sharing a run, and no held-out plaintext in the
server's data directory. The rest of the suite runs against PostgreSQL too with
HOLDOUT_TEST_STORE=postgresql (`make test` runs a part of it that way)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time

import pytest
from conftest import QUESTIONS, free_port, fresh_schema, holdout_subprocess, login, wait_for_http

from harness.pgpace import PgKeyLane
from harness.postgres import PgDatabase, redacted, translate


@pytest.fixture
def shared(postgres_server, monkeypatch):
    """HOLDOUT_STORE for this test: a schema of its own on the tests' server."""
    dsn = fresh_schema(postgres_server)
    monkeypatch.setenv("HOLDOUT_STORE", dsn)
    return dsn


def _public_config(project, url, *, n, concurrency=4, extra="", model_extra=""):
    project.suite(n=n)
    return project.config(
        "suite: mini\nproviders:\n  mock:\n    type: openai-compatible\n"
        f"    base_url: {url}/v1\n    api_key_env: MOCK_KEY\n    concurrency: {concurrency}\n"
        "    max_attempts: 3\nmodels:\n  - provider: mock\n    model: m\n"
        f"{model_extra}{extra}"
    )


def _workers(project, *args, count: int, env=None):
    return [holdout_subprocess(*args, cwd=project.root, env=env) for _ in range(count)]


def _finish(procs, timeout=180):
    out = []
    for p in procs:
        p.wait(timeout=timeout)
        out.append((p.returncode, p.communicate()[1]))
    return out


def test_four_workers_share_one_heldout_run_each_call_once_and_the_ledger_counts_every_send(
    shared, heldout, project, mock_server, postgres_server
):
    mock_server.behaviour.latency_s = 0.05
    path = heldout(extra="epochs: 3\n", models=("m1", "m2"))
    results = _finish(_workers(project, "run", path, "-q", count=4))
    assert all(code == 0 for code, _ in results), [e[-1500:] for _, e in results]
    n = len(QUESTIONS) * 2 * 2 * 3  # items x models x epochs
    with project.db() as db:
        done = db.execute("SELECT COUNT(*) FROM calls WHERE ok=1").fetchone()[0]
        ledger = dict(
            db.execute("SELECT item_id, COUNT(*) FROM exposures GROUP BY item_id").fetchall()
        )
        held = db.execute("SELECT COUNT(*) FROM leases WHERE state='held'").fetchone()[0]
    assert done == n and mock_server.stats.requests == n  # every job once, by the server's count
    assert held == 0  # every lease ended with its result
    # the exposure ledger (in the shared store) counts each item exactly as often as it was sent
    sent = {}
    for (_model, prompt), count in mock_server.stats.by_prompt.items():
        i = int(prompt.rsplit("(", 1)[1].rstrip(")"))
        sent[f"h{i}"] = sent.get(f"h{i}", 0) + count
    assert ledger == sent
    # the leak hunt: nothing in PostgreSQL's files is held-out plaintext, in any script
    _checkpoint(shared)
    canaries = [q.encode() for q in QUESTIONS if len(q.encode()) >= 6]
    canaries += [f"answer-{i}-of-the-pool".encode() for i in range(len(QUESTIONS) * 2)]
    found = []
    for root, _, files in os.walk(postgres_server.directory):
        for name in files:
            try:
                data = open(os.path.join(root, name), "rb").read()
            except OSError:
                continue
            found += [(name, c.decode()[:20]) for c in canaries if c in data]
    assert not found


def _checkpoint(dsn: str) -> None:
    """Flush the server's buffers to its data files, so the hunt reads what the disk holds."""
    db = PgDatabase(dsn)
    try:
        db.execute("CHECKPOINT")
    finally:
        db.close()


def test_a_worker_killed_mid_run_loses_only_its_calls_in_flight(shared, project, mock_server):
    mock_server.behaviour.latency_s = 0.15
    n, concurrency = 80, 4
    path = _public_config(project, mock_server.url, n=n, concurrency=concurrency)
    procs = _workers(project, "run", path, "-q", count=3)
    victim = procs[0]
    deadline = time.monotonic() + 60
    while mock_server.stats.requests < 12 and time.monotonic() < deadline:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    results = _finish(procs[1:])
    assert all(code == 0 for code, _ in results), [e[-1500:] for _, e in results]
    with project.db() as db:
        done = db.execute("SELECT COUNT(*) FROM calls WHERE ok=1").fetchone()[0]
    assert done == n  # nothing lost: the survivors took over the dead worker's leases
    # extra paid calls: at most what the killed worker had in flight
    assert n <= mock_server.stats.requests <= n + concurrency


def test_workers_spend_from_one_budget(shared, project, mock_server):
    mock_server.behaviour.latency_s = 0.02
    budget = 0.02
    path = _public_config(
        project,
        mock_server.url,
        n=150,
        extra=f"budget_usd: {budget}\n",
        model_extra=(
            "    params: {max_tokens: 16}\n    price: {input_per_mtok: 10, output_per_mtok: 10}\n"
        ),
    )
    results = _finish(_workers(project, "run", path, "-q", count=3))
    assert all(code in (0, 3) for code, _ in results), results
    assert any("Budget reached" in err for _, err in results)
    with project.db() as db:
        rows, spent = db.execute("SELECT COUNT(*), SUM(cost_usd) FROM calls").fetchone()
    assert mock_server.stats.requests == rows and 0 < spent <= budget


def test_workers_on_two_machines_share_one_key_schedule(shared, project):
    """Two lanes of one key (as two workers on two machines would hold them, each with its own
    connection) take their send times from one schedule: every reservation is spaced from every
    other one, whoever made it."""
    project.suite(n=1)
    from harness.store import Store

    Store(shared).close()  # the schema
    lanes = [
        PgKeyLane.for_key(shared, provider_type="openai", base_url="u", api_key="k", lane="")
        for _ in range(2)
    ]
    numbers, spacing = [], 0.01

    def take(lane):
        for _ in range(50):
            numbers.append(lane.reserve(spacing).number)

    threads = [threading.Thread(target=take, args=(lane,)) for lane in lanes]
    start = lanes[0].db.execute("SELECT extract(epoch from clock_timestamp())").fetchone()[0]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    next_at = lanes[0].db.execute("SELECT next_at FROM key_lanes").fetchone()[0]
    for lane in lanes:
        lane.close()
    assert sorted(numbers) == list(range(1, 101))  # each slot given once
    assert next_at >= start + 100 * spacing - 1e-6  # 100 slots, one spacing apart, in all


def test_a_worker_that_knows_no_rate_counts_its_idle_sends_on_the_shared_lane(shared, project):
    """A worker with no rate, on a lane no one paces, asks the server once per look, not per
    request; what it sent meanwhile is in the row's count at the next look, and at its close."""
    project.suite(n=1)
    from harness.pgpace import IDLE_LOOK_S
    from harness.store import Store

    Store(shared).close()  # the schema
    idle, pacing = (
        PgKeyLane.for_key(shared, provider_type="openai", base_url="u", api_key="k", lane="idle")
        for _ in range(2)
    )
    slots = [idle.reserve(None) for _ in range(100)]
    assert [s.number for s in slots] == list(range(1, 101))
    paced = pacing.reserve(5.0)  # the row has counted 1 of idle's: this is number 2
    assert paced.number == 2
    time.sleep(IDLE_LOOK_S)
    joined = idle.reserve(None)
    assert joined.number == 102 and joined.at >= paced.at + 5.0 - 0.05
    assert idle.reserve(None).number == 103  # the schedule is live: each send asks the server
    pacing.close()
    idle.close()
    db = PgDatabase(shared)
    assert db.execute("SELECT reserved FROM key_lanes WHERE lane=?", (idle.name,)).fetchone() == (
        103,
    )
    db.close()


def test_two_workspaces_share_a_run_one_runs_one_grades_one_reviews(
    shared, project, mock_server, tmp_path, cli
):
    path = _public_config(
        project,
        mock_server.url,
        n=8,
        extra="graders:\n  - {name: says, rules: {type: regex, pattern: Question}}\n",
    )
    assert cli("run", path, "-q")[0] == 0
    # another machine: its own directory with the same suite and config, and only the DSN
    other = tmp_path / "machine-b"
    other.mkdir()
    shutil.copytree(project.root / "suites", other / "suites")
    shutil.copytree(project.root / "configs", other / "configs")
    graded = holdout_subprocess(
        "grade", "run", "--config", other / "configs" / "run.yaml", "-q", cwd=other
    )
    assert graded.wait(timeout=120) == 0, graded.communicate()[1]
    code, out, err = cli("report", "run", "--json")
    assert code == 0, err
    says = json.loads(out)["graders"]["says"]["models"]["m"]
    assert says["n"] == 8 and says["mean"] == 1.0  # graded over there, seen here
    listed = holdout_subprocess("runs", "list", "--json", cwd=tmp_path)
    assert listed.wait(timeout=60) == 0
    assert [r["run_id"] for r in json.loads(listed.communicate()[0])] == ["run"]


def test_the_dialect_and_the_dsn_in_messages():
    assert translate("SELECT a FROM t WHERE b=? AND c LIKE '%x'") == (
        "SELECT a FROM t WHERE b=%s AND c LIKE '%%x'"
    )
    assert translate("INSERT OR IGNORE INTO t VALUES (?)").endswith("ON CONFLICT DO NOTHING")
    assert translate("CREATE TABLE t (a BLOB, b REAL, c INTEGER) WITHOUT ROWID") == (
        "CREATE TABLE t (a BYTEA, b DOUBLE PRECISION, c BIGINT) "
    )
    assert redacted("postgresql://u:s3cret@h:5/d") == "postgresql://u:***@h:5/d"
    assert "s3cret" not in redacted("postgresql://u:s3cret@h/d?options=x")


def test_an_unreachable_server_is_a_clear_error(project, cli, monkeypatch):
    monkeypatch.setenv("HOLDOUT_STORE", f"postgresql://u:s3cret@127.0.0.1:{free_port()}/x")
    project.suite(n=1)
    path = project.config(
        "suite: mini\nproviders:\n  r:\n    type: replay\n    path: nowhere\n"
        "models:\n  - {provider: r, model: a}\n"
    )
    code, out, err = cli("run", path, "-q")
    assert code != 0 and "cannot connect to the PostgreSQL store" in err
    assert "s3cret" not in err + out and "Traceback" not in err


def test_a_third_machine_serves_review_of_a_run_made_and_graded_elsewhere(
    shared, reviewed, tmp_path
):
    """The review queue and reviewers' sessions are the shared store's: a reviewer added on one
    machine signs in to an app served from another, which has only the suite, the config and the
    DSN, and gets an item routed there."""
    project, tokens = reviewed
    third = tmp_path / "machine-c"
    third.mkdir()
    shutil.copytree(project.root / "suites", third / "suites")
    shutil.copytree(project.root / "configs", third / "configs")
    port = free_port()
    served = holdout_subprocess(
        "review", "serve", "run", "--config", third / "configs" / "run.yaml", "--port", port,
        cwd=third,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(url + "/next")
        alice = login(url, tokens["alice"])
        where = alice.get("/next").headers["location"]
        page = alice.get(where)
        assert page.status_code == 200 and "Review question" in page.text
    finally:
        served.terminate()
        served.wait(10)
    assert not (third / ".holdout").exists()  # nothing of the run was kept on that machine


def test_a_worker_elsewhere_needs_only_the_dsn_and_the_vault_key(
    shared, heldout, project, mock_server, tmp_path, monkeypatch
):
    """The vault's files are in the shared store: a machine with an empty directory, the suite,
    the config, $HOLDOUT_STORE and the vault key runs the held-out run with the first machine; a
    copy that falls behind is brought up to date, one signing key serves both, and `vault init`
    there refuses to make a second vault."""
    key = (project.root / ".holdout" / "vault.key").read_text().strip()
    path = heldout(models=("m1",))
    other = tmp_path / "machine-b"
    other.mkdir()
    shutil.copytree(project.root / "suites", other / "suites")
    shutil.copytree(project.root / "configs", other / "configs")
    env = {"HOLDOUT_VAULT_KEY": key}
    workers = [
        holdout_subprocess("run", path, "-q", cwd=project.root),
        holdout_subprocess("run", other / "configs" / "run.yaml", "-q", cwd=other, env=env),
    ]
    results = _finish(workers)
    assert all(code == 0 for code, _ in results), [e[-1500:] for _, e in results]
    assert mock_server.stats.requests == len(QUESTIONS) * 2  # each call once, between them
    assert (other / ".holdout" / "vault" / "keycheck").exists()
    # the scorecard signing key, made on first use on either machine: one for both
    from harness.vault import Vault

    monkeypatch.setenv("HOLDOUT_VAULT_KEY", key)
    here, there = Vault.open(project.root / ".holdout"), Vault.open(other / ".holdout")
    first = there.create_once("scorecard-signing.key", lambda: b"made over there")
    assert first == here.create_once("scorecard-signing.key", lambda: b"made here")
    refused = holdout_subprocess("vault", "init", cwd=other, env=env)
    assert refused.wait(timeout=60) == 2 and "already exists" in refused.communicate()[1]
