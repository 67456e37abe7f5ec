"""Safeguard checks in worker processes (harness/checks.py): the same results as in one process,
for held-out outputs in many scripts, with nothing secret sent to a worker and nothing of a
worker's bug but its type and place coming back."""

import base64
import json
import os
from pathlib import Path

import pytest
from conftest import QUESTIONS, holdout_subprocess, sqlite_only

from harness.checks import CheckFailed, CheckJob, StoreAt, check_run, check_stored
from harness.database import store_location
from harness.store import Store
from harness.vault.keys import load_key


def _cards(project, run_id):
    out = {}
    for lab in ("acme", "globex"):
        card = json.loads(
            (project.root / "results" / run_id / "scorecards" / f"{lab}.json").read_text()
        )
        for volatile in ("generated", "signature"):
            card.pop(volatile)
        out[lab] = card
    return out


def test_checks_in_workers_equal_checks_in_one_process(heldout, project, cli):
    """A held-out run of four models on prompts in many scripts: `check` and `scorecard --all`
    with two workers write what one process writes, and the workers decrypt with the vault key
    they read themselves."""
    models = ("m1", "m2", "m3", "m4")
    config = heldout("run_id: hw\nlabs:\n  acme: [m1, m3]\n  globex: [m2, m4]\n", models=models)
    assert cli("run", config, "-q")[0] == 0
    written = {}
    for workers in ("1", "2"):
        code, _, err = cli("check", "hw", "--workers", workers)
        assert code == 0, err
        written[workers] = json.loads((project.root / "results/hw/safeguards.json").read_text())
        code, _, err = cli("scorecard", "hw", "--all", "--workers", workers)
        assert code == 0, err
        written[f"cards{workers}"] = _cards(project, "hw")
    assert set(written["1"]) == set(models)
    assert written["1"] == written["2"]
    assert written["cards1"] == written["cards2"]
    assert written["cards2"]["acme"]["models"]["m1"]["safeguards"]  # the checks reached the card


def test_what_a_worker_is_sent_holds_no_key_and_no_text(heldout, project, cli):
    """The line a worker is sent, as the pipe carries it: no vault key (in any encoding) and no
    held-out prompt; the worker reads the key where the command did."""
    config = heldout("run_id: hk\n", models=("m1", "m2"))
    assert cli("run", config, "-q")[0] == 0
    key, _ = load_key(project.root / ".holdout")
    where = StoreAt(store_location(project.root / ".holdout"), project.root / ".holdout")
    job = CheckJob(where, "hk", "m1", {"min_outputs": 1}, frozenset({"h1", "h2"}))
    sent = job.to_line().encode()
    assert CheckJob.from_line(job.to_line()) == job
    for form in (key, base64.urlsafe_b64encode(key), key.hex().encode()):
        assert form not in sent
    for q in QUESTIONS:
        assert q.encode() not in sent and json.dumps(q).encode() not in sent
    # and the job, run as a worker runs it, opens the outputs with the key it reads itself
    result = check_stored(CheckJob(where, "hk", "m1", None, frozenset()))
    assert result["short_outputs"]["of"] == len(QUESTIONS) * 2


@sqlite_only
def test_a_worker_bug_returns_its_type_and_place_but_not_its_message(project, cli, mock_server):
    """An output that is not UTF-8 in the store: SQLite's own error quotes the text; from a worker
    only the model, the exception type and the place come back, not the message."""
    project.suite()
    config = project.config(
        f"run_id: b\nsuite: mini\nproviders:\n  a:\n    type: openai-compatible\n"
        f"    base_url: {mock_server.url}/v1\nmodels:\n  - {{provider: a, model: m1}}\n"
    )
    assert cli("run", config, "-q")[0] == 0
    secret = "the answer 第七 that must not travel"
    with project.db() as db:
        db.execute(
            "UPDATE calls SET output=CAST(? AS TEXT) WHERE run_id='b'",
            (secret.encode() + b"\xff",),
        )
    with pytest.raises(CheckFailed) as raised:
        check_stored(
            CheckJob(StoreAt(project.root / ".holdout/store.sqlite"), "b", "m1", None, frozenset())
        )
    message = str(raised.value)
    assert "model m1" in message and "OperationalError at store.py:" in message, message
    assert "第七" not in message and "answer" not in message
    assert raised.value.__suppress_context__ and raised.value.__cause__ is None


def _two_model_run(project, cli, mock_server, run_id):
    """A public run of m1 and m2 on the mini suite, through the mock server."""
    project.suite()
    config = project.config(
        f"run_id: {run_id}\nsuite: mini\nproviders:\n  a:\n    type: openai-compatible\n"
        f"    base_url: {mock_server.url}/v1\nmodels:\n  - {{provider: a, model: m1}}\n"
        "  - {provider: a, model: m2}\n"
    )
    assert cli("run", config, "-q")[0] == 0


def test_one_worker_or_no_store_to_reopen_checks_in_this_process(project, cli, mock_server):
    """`--workers 1` and a caller without a StoreAt check in the calling process (nothing is
    spawned), with the same result as workers."""
    _two_model_run(project, cli, mock_server, "o")
    store = Store(store_location(project.root / ".holdout"), create=False)
    try:
        alone = check_run(store, "o")
        workers = check_run(store, "o", where=StoreAt(store.location), workers=2)
    finally:
        store.close()
    assert alone == workers and set(alone) == {"m1", "m2"}


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5"])
def test_workers_must_be_a_whole_number_of_processes(project, cli, bad):
    with pytest.raises(SystemExit):
        cli("check", "anything", "--workers", bad)


def test_a_worker_killed_mid_check_fails_the_command_clearly_and_writes_nothing(
    project, cli, mock_server
):
    """kill -9 of a worker of `holdout check` while it starts: the command exits 2 saying what
    happened and what to do, and writes no safeguards.json (never a file with some models)."""
    import signal
    import time

    _two_model_run(project, cli, mock_server, "k")
    proc = holdout_subprocess("check", "k", "--workers", "2", cwd=project.root)
    tasks = Path(f"/proc/{proc.pid}/task")  # workers are started by the command's threads
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            kids = [k for t in tasks.iterdir() for k in (t / "children").read_text().split()]
        except OSError:  # a thread ended while we looked
            kids = []
        if kids:  # a worker, still importing: far from done
            os.kill(int(kids[0]), signal.SIGKILL)
            break
        time.sleep(0.002)
    else:
        pytest.fail("holdout check started no worker")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert "stopped before it finished" in err and "--workers 1" in err
    assert "Traceback" not in err
    assert not (project.root / "results" / "k" / "safeguards.json").exists()
