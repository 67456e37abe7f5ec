"""One pace per key across this machine's processes: every send time is reserved from one file under
a lock. What the schedule guarantees is checked on the times it hands out (computed, not measured);
the wall time and the 429s of four processes on a 20 req/s key are in bench/shared_key.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, holdout_subprocess, sqlite_only

from harness.keylane import IDLE_LOOK_S, RECORD, KeyLane
from harness.mockserver import MockBehaviour

RESERVE = """
import json, sys
from pathlib import Path
from harness.keylane import KeyLane
lane = KeyLane(Path(sys.argv[1]))
sys.stdin.readline()                       # start together
print(json.dumps([[s.at, s.number] for s in (lane.reserve(0.02) for _ in range(25))]))
"""


def test_two_processes_take_their_send_times_from_one_schedule(tmp_path):
    path = tmp_path / "k.lane"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RESERVE, str(path)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        for _ in range(2)
    ]
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    slots = sorted((number, at) for p in procs for at, number in json.loads(p.communicate()[0]))
    # each number once: no two processes read one record
    assert [n for n, _ in slots] == list(range(1, 51))
    gaps = [b - a for (_, a), (_, b) in zip(slots, slots[1:])]
    assert min(gaps) >= 0.02 - 1e-9  # in number order, one spacing apart at least


def test_a_process_that_knows_no_rate_yet_is_paced_by_the_live_schedule(tmp_path):
    pacing, joining = KeyLane(tmp_path / "k.lane"), KeyLane(tmp_path / "k.lane")
    first = pacing.reserve(5.0)
    second, third = joining.reserve(None), joining.reserve(None)
    assert second.at >= first.at + 5.0 and third.at >= second.at + 5.0


def test_a_process_that_knows_no_rate_on_an_idle_lane_looks_again_later_and_counts_every_send(
    tmp_path,
):
    """No lock and no write per request on a lane no one paces; a schedule that goes live is
    followed at the next look, and the sends made meanwhile are in the file's count."""
    path = tmp_path / "k.lane"
    idle, pacing = KeyLane(path), KeyLane(path)
    first = idle.reserve(None)
    written = path.stat().st_mtime_ns, path.read_bytes()
    slots = [idle.reserve(None) for _ in range(99)]
    assert (path.stat().st_mtime_ns, path.read_bytes()) == written  # the file was not touched
    assert [s.number for s in slots] == list(range(2, 101))
    assert all(s.at <= time.monotonic() for s in [first, *slots])  # nothing to wait for
    paced = pacing.reserve(5.0)
    time.sleep(IDLE_LOOK_S)
    joined = idle.reserve(None)
    assert joined.at >= paced.at + 5.0 and joined.number == 102  # 100 + the pacer's + this one
    idle.close()
    assert RECORD.unpack(path.read_bytes())[2] == 102


def test_a_429_holds_every_process_on_the_key(tmp_path):
    lane, other = KeyLane(tmp_path / "k.lane"), KeyLane(tmp_path / "k.lane")
    until = time.monotonic() + 30
    lane.hold_until(until)
    assert other.reserve(0.01).at >= until
    lane.hold_until(until - 10)  # an earlier hold does not shorten it
    assert other.reserve(0.01).at >= until


def test_a_schedule_from_before_a_reboot_is_not_obeyed(tmp_path):
    path = tmp_path / "k.lane"
    far = time.monotonic() + 1e6
    path.write_bytes(RECORD.pack(far, 0.5, 7, time.time() - time.monotonic() - 3600))
    slot = KeyLane(path).reserve(0.01)
    assert slot.at <= time.monotonic() and slot.number == 8


def test_a_lane_is_named_by_key_server_and_model_and_holds_neither(tmp_path, monkeypatch):
    monkeypatch.setenv("HOLDOUT_LANES_DIR", str(tmp_path / "lanes"))
    key = "sk-proj-" + "x" * 40

    def lane(**kw):
        spec = {"provider_type": "openai", "base_url": None, "api_key": key, "lane": "gpt-4o", **kw}
        return KeyLane.for_key(**spec).path.name

    names = {
        lane(),
        lane(api_key=key + "y"),
        lane(base_url="http://127.0.0.1:9/v1"),
        lane(lane="gpt-4o-mini"),
        lane(provider_type="anthropic"),
    }
    assert len(names) == 5 and lane() == lane()
    lane_file = tmp_path / "lanes" / lane()
    KeyLane(lane_file).reserve(0.1)
    assert key.encode() not in lane_file.read_bytes() and "x" * 8 not in lane_file.name
    assert (
        tmp_path / "lanes"
    ).stat().st_mode & 0o077 == 0 and lane_file.stat().st_mode & 0o077 == 0


def test_an_unwritable_lanes_directory_leaves_each_process_pacing_alone(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("")
    monkeypatch.setenv("HOLDOUT_LANES_DIR", str(blocked / "lanes"))  # under a file: cannot be made
    assert KeyLane.for_key(provider_type="openai", base_url=None, api_key="k", lane="m") is None


@sqlite_only
@pytest.mark.parametrize("limit", [50, None])
def test_two_runs_on_one_key_share_its_lane(project, mock_server, tmp_path, limit):
    """Two `holdout run` in two workspaces on one key and model: one lane file, whose count covers
    every request the server heard from both (a request is sent only in a slot reserved on it).
    With no limit, each process looks at the idle lane only every IDLE_LOOK_S, and what it sent
    in between must still reach the count (at its next look, or when it closes the lane)."""
    project.suite(n=30)
    mock_server.behaviour = MockBehaviour(rate_limit_rps=limit, latency_s=0.01)
    project.config(
        "suite: mini\nproviders:\n  p:\n    type: openai-compatible\n    base_url: "
        f"{mock_server.url}/v1\n"
        f"    api_key_env: MOCK_KEY\nmodels:\n  - {{provider: p, model: m}}\n"
    )
    other = tmp_path.parent / (tmp_path.name + "-other")
    shutil.copytree(project.root, other)
    procs = [
        holdout_subprocess("run", "configs/run.yaml", "-q", cwd=d) for d in (project.root, other)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert mock_server.stats.ok == 60
    lanes = list(Path(os.environ["HOLDOUT_LANES_DIR"]).iterdir())
    assert len(lanes) == 1, lanes
    _, _, reserved, _ = RECORD.unpack(lanes[0].read_bytes())
    assert reserved >= mock_server.stats.requests


@pytest.mark.parametrize("kind", ["openai-compatible", "anthropic"])
def test_a_run_alone_on_its_key_is_paced_by_the_advertised_limit(project, cli, mock_server, kind):
    """The lane counts this process's requests as the key's own: alone, no share of the key is taken
    off."""
    project.suite(n=12)
    mock_server.behaviour = MockBehaviour(rate_limit_rps=5, latency_s=0.01)
    url = f"{mock_server.url}/v1" if kind == "openai-compatible" else mock_server.url
    path = project.config(
        f"suite: mini\nproviders:\n  p:\n    type: {kind}\n    base_url: {url}\n"
        f"    api_key_env: MOCK_KEY\nmodels:\n  - {{provider: p, model: m}}\n"
    )
    code, _, err = cli("run", path, "-q")
    assert code == 0, err
    assert project.summary("run")["pacing"]["p"]["paced_by"] == "the provider's advertised limit"
