"""The run path end to end: real openai/anthropic SDK clients against the mock server on
127.0.0.1."""

import json
import math
import time

import pytest
from conftest import holdout_subprocess

from harness.mockserver import MockBehaviour
from harness.providers import Advertised
from harness.providers._sdk import advertised_limits


def config(
    url, *, provider="openai-compatible", extra_provider="", extra="", models=("m1",), epochs=1
):
    base = url + ("/v1" if provider != "anthropic" else "")
    model_lines = "".join(f"  - {{provider: mock, model: {m}}}\n" for m in models)
    return (
        f"suite: mini\nepochs: {epochs}\nproviders:\n  mock:\n    type: {provider}\n    "
        f"base_url: {base}\n"
        f"    api_key_env: MOCK_KEY\n{extra_provider}models:\n{model_lines}{extra}"
    )


def test_openai_compatible_run_calls_each_item_once_per_model_and_epoch(project, cli, mock_server):
    project.suite(n=5)
    path = project.config(config(mock_server.url, models=("m1", "m2"), epochs=2))
    code, out, err = cli("run", path, "--quiet")
    assert code == 0, err
    assert mock_server.stats.requests == 5 * 2 * 2
    rows = project.rows("run")
    assert len(rows) == 20 and all(r[3] == 1 for r in rows)
    summary = project.summary("run")
    assert summary["complete"] and summary["models"]["m1"]["ok"] == 10
    # the mock echoes the prompt: output is stored, keyed by item id
    with project.db() as db:
        out_text = db.execute(
            "SELECT output FROM calls WHERE item_id='q3' AND model='m1' AND epoch=0"
        ).fetchone()[0]
    assert out_text == "Question number 3: what is 3 plus 3?"
    # re-running calls nothing
    code, _, err = cli("run", path, "--quiet")
    assert code == 0 and mock_server.stats.requests == 20
    assert "0 calls made this time" in err


def test_anthropic_provider_with_system_prompt(project, cli, mock_server):
    project.suite(n=3, system="Be brief.")
    seen = []
    mock_server.behaviour.responder = lambda api, body: (
        seen.append((api, body.get("system"), body["max_tokens"])) or "ok"
    )
    code, _, err = cli("run", project.config(config(mock_server.url, provider="anthropic")), "-q")
    assert code == 0, err
    assert seen == [("anthropic", "Be brief.", 4096)] * 3  # the default output cap, always sent


def test_retries_honour_retry_after_and_record_attempts(project, cli, mock_server):
    project.suite(n=1)
    mock_server.behaviour = MockBehaviour(fail_first=3, faults=("429",), retry_after_s=0.2)
    path = project.config(config(mock_server.url, extra_provider="    concurrency: 1\n"))
    start = time.monotonic()
    code, _, err = cli("run", path, "-q")
    assert code == 0, err
    assert [r[3] for r in project.rows("run")] == [1]
    assert project.rows("run")[0][5] == 4  # 3 rate-limited attempts + the success
    assert time.monotonic() - start >= 0.2 * 3 * 0.9  # waited as told (retry-after-ms), each time


def test_non_retryable_error_is_recorded_not_retried(project, cli, mock_server):
    project.suite(n=2)
    path = project.config(config(mock_server.url + "/nowhere"))  # 404: wrong base URL
    code, _, err = cli("run", path, "-q")
    assert code == 3  # it ran; calls failed
    rows = project.rows("run")
    assert [r[4] for r in rows] == ["not_found", "not_found"] and all(r[5] == 1 for r in rows)
    assert "2 calls are not done" in err


def test_dead_endpoint_fails_fast(project, cli):
    project.suite(n=40)
    path = project.config(
        config(
            "http://127.0.0.1:9",
            extra_provider="    max_attempts: 2\n    max_consecutive_failures: 5\n    "
            "concurrency: 2\n",
        )
    )
    code, _, err = cli("run", path, "-q")
    assert code == 3 and "Gave up on provider 'mock'" in err and "calls in a row failed" in err
    # fast by design, not by the clock: 5 failures in a row, plus what the workers (2 per place) had
    # in hand
    # the rest were not started (and will be on the next run)
    assert len(project.rows("run")) <= 5 + 2 * 2


def test_budget_stops_new_calls_then_resumes(project, cli, mock_server):
    project.suite(n=10)
    price = "    price: {input_per_mtok: 1000, output_per_mtok: 1000}\n"
    text = config(mock_server.url, extra_provider="    concurrency: 1\n").replace(
        "model: m1}", "model: m1}"
    )
    text = text.replace(
        "  - {provider: mock, model: m1}\n",
        "  - provider: mock\n    model: m1\n    params: {max_tokens: 20}\n" + price,
    )
    path = project.config(text + "budget_usd: 0.2\n")
    code, _, err = cli("run", path, "-q")
    assert code == 3  # stopped by the budget: not everything is done
    done = len(project.rows("run"))
    assert 0 < done < 10
    assert "Budget reached" in err and "Raise budget_usd" in err
    spent = project.summary("run")["models"]["m1"]["cost_usd"]
    assert spent <= 0.2
    path.write_text(path.read_text().replace("budget_usd: 0.2", "budget_usd: 5"))
    code, _, err = cli("run", path, "-q")
    assert len(project.rows("run")) == 10 and mock_server.stats.requests == 10


def test_changed_model_settings_refuse_to_mix_results(project, cli, mock_server):
    project.suite(n=2)
    path = project.config(config(mock_server.url))
    assert cli("run", path, "-q")[0] == 0
    path.write_text(path.read_text().replace("model: m1}", "model: m1, params: {temperature: 1}}"))
    code, _, err = cli("run", path, "-q")
    assert code == 2 and "already exists" in err and "Set a new run_id" in err
    assert (
        "model 'm1': params was {'max_tokens': 4096}, now {'temperature': 1, 'max_tokens': 4096}"
        in err
    )


def test_replay_missing_answer_is_an_error_row(project, cli):
    project.suite(n=3)
    (project.root / "replay").mkdir()
    (project.root / "replay" / "rec.jsonl").write_text(
        json.dumps({"id": "q0", "output": "0"}) + "\n"
    )
    path = project.config(
        "suite: mini\nproviders:\n  r: {type: replay, path: ../replay}\nmodels:\n  - {provider: "
        "r, model: rec}\n"
    )
    code, _, err = cli("run", path, "-q")
    assert code == 3
    assert [(r[1], r[3], r[4]) for r in project.rows("run")] == [
        ("q0", 1, None),
        ("q1", 0, "not_found"),
        ("q2", 0, "not_found"),
    ]


def test_status_lists_runs(project, cli, mock_server):
    project.suite(n=2)
    cli("run", project.config(config(mock_server.url)), "-q")
    code, out, err = cli("status")
    assert code == 0 and "run" in out and "2/2" in out  # results on stdout, for scripts
    code, out, _ = cli("status", "--json")
    assert code == 0 and [(r["run_id"], r["done"], r["total"]) for r in json.loads(out)] == [
        ("run", 2, 2)
    ]


def test_api_key_never_written(project, cli, mock_server):
    project.suite(n=2)
    path = project.config(config(mock_server.url))
    code, _, err = cli(
        "--log-level", "debug", "--log-file", project.root / "debug.log", "run", path, "-q"
    )
    assert code == 0
    for f in project.root.rglob("*"):
        if f.is_file():
            assert b"sk-test-secret-value-123456" not in f.read_bytes(), f
    assert "sk-test-secret-value-123456" not in err


def test_kill_9_mid_run_resumes_without_paying_twice(project, mock_server):
    n, concurrency = 120, 4
    project.suite(n=n)
    mock_server.behaviour.latency_s = 0.03
    path = project.config(
        config(mock_server.url, extra_provider=f"    concurrency: {concurrency}\n")
    )
    proc = holdout_subprocess("run", path, "-q", cwd=project.root)
    deadline = time.monotonic() + 30
    while mock_server.stats.requests < n // 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    in_flight_at_kill = mock_server.stats.in_flight
    first = mock_server.stats.requests
    assert first < n, "the run finished before it could be killed"
    proc = holdout_subprocess("run", path, "-q", cwd=project.root)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    rows = project.rows("run")
    assert len(rows) == n and all(r[3] == 1 for r in rows)
    # no call paid twice except those in flight (or finished but not yet committed) at the kill
    assert mock_server.stats.requests <= n + max(concurrency, in_flight_at_kill)


def test_rate_limited_provider_converges_without_failing_items(project, cli, mock_server):
    """Under a 20 req/s limit the provider did not announce, every item still succeeds (429s are
    paced, not fatal).

    What the design guarantees, on any machine: no item fails (a call may hear 4 x max_attempts
    429s), and a 429 pauses every sender, so at most one window of requests (the concurrency) is
    refused per second the run needs at the limit. A quiet machine sees about 7; a client that
    ignored the pauses, hundreds."""
    n, rps, concurrency = 60, 20, 30
    project.suite(n=n)
    mock_server.behaviour.rate_limit_rps = rps
    mock_server.behaviour.advertise_limits = False
    mock_server.behaviour.latency_s = 0.05
    path = project.config(
        config(
            mock_server.url, extra_provider=f"    concurrency: {concurrency}\n    max_attempts: 3\n"
        )
    )
    code, _, err = cli("run", path, "-q")
    assert code == 0, err
    assert all(r[3] == 1 for r in project.rows("run")) and len(project.rows("run")) == n
    assert mock_server.stats.faults["429"] > 0  # the limit was really hit
    assert mock_server.stats.faults["429"] <= concurrency * math.ceil(n / rps)
    assert mock_server.stats.ok == n
    assert (
        project.summary("run")["pacing"]["mock"]["rate_limited"] == mock_server.stats.faults["429"]
    )


@pytest.mark.parametrize("api", ["openai-compatible", "anthropic"])
def test_an_advertised_rate_limit_is_kept_without_429s(project, cli, mock_server, api):
    """OpenAI and Anthropic say their limit on every response; the run paces to it instead of
    finding it by 429s.

    The design's bound, on any machine: before the first answer nothing is known, so at most one
    window (the concurrency) goes out; what exceeds the limit of that second can be refused, and
    once the limit is known (counting what was sent) nothing more, but for one at a second's edge. A
    quiet machine sees 0-1; on a loaded one the first answer comes late and the whole window is out
    by then."""
    n, rps, concurrency = 60, 20, 30
    project.suite(n=n)
    mock_server.behaviour.rate_limit_rps = rps
    mock_server.behaviour.latency_s = 0.02
    path = project.config(
        config(mock_server.url, provider=api, extra_provider=f"    concurrency: {concurrency}\n")
    )
    code, _, err = cli("run", path)
    assert code == 0, err
    assert len(project.rows("run")) == n and all(r[3] == 1 for r in project.rows("run"))
    assert mock_server.stats.faults.get("429", 0) <= concurrency - rps + 1
    pacing = project.summary("run")["pacing"]["mock"]
    assert (
        pacing["paced_by"] == "the provider's advertised limit" and pacing["requests_per_s"] == 19.8
    )
    # people read stderr
    assert "provider 'mock': paced to 19.8 req/s by the provider's advertised limit" in err


def test_the_window_opens_within_a_round_trip_even_for_a_slow_model(project, cli, mock_server):
    """With no limit known, the window ramps in time (200 ms), not per round trip: a model that
    takes 0.5 s still gets every allowed request in flight in its first round trip."""
    project.suite(n=30)
    mock_server.behaviour.latency_s = 0.5
    path = project.config(config(mock_server.url, extra_provider="    concurrency: 30\n"))
    code, _, err = cli("run", path, "-q")
    assert code == 0, err
    assert mock_server.stats.peak_in_flight == 30 and mock_server.stats.requests == 30


def test_advertised_limits_are_read_from_either_providers_headers():
    assert advertised_limits(
        {"x-ratelimit-limit-requests": "500", "x-ratelimit-limit-tokens": "200000"}
    ) == Advertised(rpm=500, tpm=200000)
    assert advertised_limits(
        {"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-tokens-limit": "40000"}
    ) == Advertised(rpm=50, tpm=40000)
    assert advertised_limits({"x-ratelimit-limit-tokens": "30000"}) == Advertised(tpm=30000)
    for nothing_usable in (
        {},
        None,
        {"x-ratelimit-limit-requests": "many"},
        {"x-ratelimit-limit-requests": "0"},
        {"x-ratelimit-limit-requests": "nan"},
        {"x-ratelimit-limit-requests": "inf"},
    ):
        assert advertised_limits(nothing_usable) is None


@pytest.mark.parametrize(
    "reset, seconds",
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("0.352s", 0.352),
        ("1m30s", 90.0),
        ("2.5", 2.5),
    ],
)
def test_the_count_left_and_its_reset_are_read_in_openais_durations(reset, seconds):
    got = advertised_limits(
        {
            "x-ratelimit-limit-requests": "1200",
            "x-ratelimit-remaining-requests": "17",
            "x-ratelimit-reset-requests": reset,
        }
    )
    assert got.remaining == 17 and got.reset_s == pytest.approx(seconds)


def test_the_count_left_and_its_reset_are_read_in_anthropics_instants():
    import datetime

    at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=30)
    got = advertised_limits(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "0",
            "anthropic-ratelimit-requests-reset": at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        }
    )
    assert got.remaining == 0 and 28 < got.reset_s <= 30
    past = advertised_limits(
        {
            "anthropic-ratelimit-requests-remaining": "3",
            "anthropic-ratelimit-requests-reset": "2020-01-01T00:00:00Z",
        }
    )
    assert past == Advertised(remaining=3, reset_s=0.0)
    # the same instant, in UTC+1
    offset = (at + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S+01:00")
    got = advertised_limits(
        {
            "anthropic-ratelimit-requests-remaining": "3",
            "anthropic-ratelimit-requests-reset": offset,
        }
    )
    assert 27 < got.reset_s <= 30


@pytest.mark.parametrize(
    "reset", ["junk", "", "ms", "nan", "inf", "2026-12-03T06:30:00", "99999999s", "1" * 50]
)
def test_an_unreadable_reset_drops_the_count_but_keeps_the_limit(reset):
    got = advertised_limits(
        {
            "x-ratelimit-limit-requests": "1200",
            "x-ratelimit-remaining-requests": "17",
            "x-ratelimit-reset-requests": reset,
        }
    )
    assert got == Advertised(rpm=1200)


@pytest.mark.parametrize("limit", ["rpm: 540", "tpm: 58000"])
def test_declared_limits_pace_from_the_first_request(project, cli, mock_server, limit):
    """rpm/tpm in the config pace the run from its first request: a server that allows 10 req/s (and
    says nothing about it) never has to answer 429. 58,000 tpm is 8.9 req/s of 109 tokens (prompt +
    max_tokens)."""
    project.suite(n=30)
    mock_server.behaviour.rate_limit_rps = 10
    mock_server.behaviour.advertise_limits = False
    path = project.config(
        config(mock_server.url, extra_provider=f"    concurrency: 30\n    {limit}\n").replace(
            "model: m1}", "model: m1, params: {max_tokens: 100}}"
        )
    )
    code, _, err = cli("run", path, "-q")
    assert code == 0, err
    assert mock_server.stats.ok == 30 and mock_server.stats.faults.get("429", 0) == 0
    if limit.startswith("rpm"):
        assert project.summary("run")["pacing"]["mock"] == {
            "rate_limited": 0,
            "paced_by": "the config's rpm",
            "requests_per_s": 9.0,
        }
