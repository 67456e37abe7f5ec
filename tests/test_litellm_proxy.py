"""Behind LiteLLM's real proxy (deployments with `mock_response`): one model that always answers 429
and one whose deployment advertises 30 rpm do not pace the healthy model on the same gateway, and
the 30 rpm paces only its own model. LiteLLM lives in its own virtualenv (`make .venv-litellm`,
which .ci/run makes): its dependency tree is not ours). Measured: the healthy model's calls all
finish within the first second, while slow30's are paced 2 s apart; with `limits_per: provider` (one
lane) the healthy model waits ~15 s behind it."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LITELLM = Path(os.environ.get("HOLDOUT_LITELLM", ROOT / ".venv-litellm" / "bin" / "litellm"))
N = 6

DEPLOYMENTS = """\
model_list:
  - model_name: healthy
    litellm_params: {model: openai/healthy, mock_response: "fine", api_key: unused}
  - model_name: always429
    litellm_params:
      {model: openai/always429, mock_response: "litellm.RateLimitError", api_key: unused}
  - model_name: slow30
    litellm_params: {model: openai/slow30, mock_response: "slow", api_key: unused, rpm: 30}
general_settings: {master_key: os.environ/LITELLM_MASTER_KEY}
"""


@pytest.fixture(scope="module")
def litellm(tmp_path_factory):
    if not LITELLM.exists():
        pytest.skip(f"LiteLLM's proxy is not installed at {LITELLM} (make .venv-litellm)")
    d = tmp_path_factory.mktemp("litellm")
    (d / "config.yaml").write_text(DEPLOYMENTS)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    key = "sk-test-" + secrets.token_hex(16)
    # nothing from the network
    env = {
        **os.environ,
        "LITELLM_MASTER_KEY": key,
        "LITELLM_LOG": "ERROR",
        "NO_PROXY": "*",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_TELEMETRY": "False",
    }
    proc = subprocess.Popen(
        [
            str(LITELLM),
            "--config",
            str(d / "config.yaml"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=d,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(d / "log", "w"),
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            urllib.request.urlopen(url + "/health/liveliness", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"LiteLLM's proxy exited: {(d / 'log').read_text()[-2000:]}")
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("LiteLLM's proxy did not come up in 120 s")
    yield url, key
    proc.terminate()
    proc.wait(timeout=30)


def test_behind_litellm_each_model_is_paced_by_its_own_deployment(
    litellm, project, cli, monkeypatch
):
    url, key = litellm
    monkeypatch.setenv("LITELLM_MASTER_KEY", key)
    project.suite(n=N)
    path = project.config(
        f"suite: mini\nproviders:\n  gw:\n    type: openai-compatible\n    base_url: {url}/v1\n"
        "    api_key_env: LITELLM_MASTER_KEY\n    concurrency: 4\n    rate_limit_retries: 2\n    "
        "max_attempts: 2\n"
        "models:\n  - {provider: gw, model: healthy}\n  - {provider: gw, model: slow30}\n"
        "  - {provider: gw, model: always429}\n"
    )
    cli("run", path, "-q")
    with project.db() as db:
        rows = db.execute(
            "SELECT model, ok, error_kind, finished FROM calls WHERE run_id='run' ORDER BY finished"
        ).fetchall()
    done = {
        m: sorted(f for model, ok, _, f in rows if model == m and ok) for m in ("healthy", "slow30")
    }
    assert len(done["healthy"]) == N and len(done["slow30"]) == N
    assert {kind for model, ok, kind, _ in rows if model == "always429"} == {"rate_limited"}
    # The deployment's 30 rpm (advertised as x-ratelimit-limit-requests) paces slow30 from its first
    # answer,
    # counting what was already sent (the 4 the window let out before any answer): N sends at
    # 29.7/min span at
    # least (N - 1) x 2.02 s ...
    assert done["slow30"][-1] - done["slow30"][0] >= (N - 1) * 60 / 29.7 - 2, done["slow30"]
    # ... and only slow30: every healthy call is done before slow30's first paced one
    assert done["healthy"][-1] < done["slow30"][-2]
    pacing = project.summary("run")["pacing"]
    assert pacing["gw/slow30"]["paced_by"] == "the provider's advertised limit"
    assert pacing["gw/healthy"]["paced_by"] is None
