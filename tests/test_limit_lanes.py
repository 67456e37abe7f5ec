"""Limits behind a gateway (#20): each model id is its own lane. What one model's headers advertise,
its 429s and its failures pace or stop only that model; the provider's own concurrency still caps
all of them together. Through the real openai SDK to the mock server, which limits and fails models
apart, as LiteLLM does."""

from harness.mockserver import MockBehaviour


def _config(project, mock_server, provider_extra="", models=("good", "bad")):
    lines = "".join(
        m if m.startswith("  - ") else f"  - {{provider: gw, model: {m}}}\n" for m in models
    )
    return project.config(
        f"suite: mini\nproviders:\n  gw:\n    type: openai-compatible\n"
        f"    base_url: {mock_server.url}/v1\n    api_key_env: null\n{provider_extra}"
        f"models:\n{lines}"
    )


def _finished(project, model):
    with project.db() as db:
        return [
            r[0] for r in db.execute("SELECT finished FROM calls WHERE model=? AND ok=1", (model,))
        ]


def test_a_model_that_always_hears_429_neither_pauses_nor_holds_a_healthy_one(
    project, cli, mock_server
):
    """Before lanes, the bad model's dense 429s paused every sender and its retries sat in the
    shared workers."""
    project.suite(n=20)
    mock_server.behaviour = MockBehaviour(
        fault_models={"bad": "429"}, retry_after_s=3.0, latency_s=0.01
    )
    path = _config(project, mock_server, "    concurrency: 4\n    rate_limit_retries: 1\n")
    code, out, err = cli("run", path, "-q")
    assert code == 3, err
    pacing = project.summary("run")["pacing"]
    assert pacing["gw/good"] == {"rate_limited": 0, "paced_by": None, "requests_per_s": None}
    assert pacing["gw/bad"]["rate_limited"] > 0
    with project.db() as db:
        bad = db.execute(
            "SELECT error_kind, attempts, finished FROM calls WHERE model='bad' "
            "ORDER BY finished LIMIT 1"
        ).fetchone()
    assert bad[:2] == ("rate_limited", 2)  # rate_limit_retries: 1 -> one 429 retried, then recorded
    good = _finished(project, "good")
    # every healthy call done before the first bad call's 3 s wait
    assert len(good) == 20 and max(good) < bad[2]
    assert "429s answered" in err and "gw/bad" in err


def test_one_models_advertised_limit_paces_only_that_model(project, cli, mock_server):
    project.suite(n=12)
    mock_server.behaviour = MockBehaviour(model_rate_limits={"slow": 4}, latency_s=0.01)
    code, _, err = cli("run", _config(project, mock_server, models=("fast", "slow")), "-q")
    assert code == 0, err
    pacing = project.summary("run")["pacing"]
    assert pacing["gw/slow"]["paced_by"] == "the provider's advertised limit"
    # 99% of 4/s, 3% less after a 429 in its first window
    assert 3.5 < pacing["gw/slow"]["requests_per_s"] <= 3.96
    assert pacing["gw/fast"]["paced_by"] is None and pacing["gw/fast"]["rate_limited"] == 0
    # the slow lane's first window, before its limit was known
    assert mock_server.stats.faults.get("429", 0) <= 8
    assert max(_finished(project, "fast")) < max(_finished(project, "slow"))


def test_a_models_declared_limit_paces_it_from_the_first_request(project, cli, mock_server):
    project.suite(n=12)
    mock_server.behaviour = MockBehaviour(model_rate_limits={"slow": 4}, advertise_limits=False)
    models = ("fast", "  - {provider: gw, model: slow, limits: {rpm: 200, concurrency: 2}}\n")
    code, _, err = cli("run", _config(project, mock_server, models=models), "-q")
    assert code == 0, err
    assert mock_server.stats.faults.get("429", 0) == 0
    assert project.summary("run")["pacing"]["gw/slow"] == {
        "rate_limited": 0,
        "paced_by": "the config's rpm",
        "requests_per_s": 3.33,
    }


def test_the_providers_concurrency_caps_all_its_lanes_together(project, cli, mock_server):
    project.suite(n=24)
    mock_server.behaviour = MockBehaviour(latency_s=0.1)
    code, _, err = cli(
        "run", _config(project, mock_server, "    concurrency: 3\n", models=("a", "b", "c")), "-q"
    )
    assert code == 0, err
    assert mock_server.stats.peak_in_flight == 3 and mock_server.stats.ok == 72


def test_limits_per_provider_makes_one_lane_for_a_proxy_with_one_limit(project, cli, mock_server):
    project.suite(n=12)
    mock_server.behaviour = MockBehaviour(rate_limit_rps=5, latency_s=0.01)
    path = _config(project, mock_server, "    limits_per: provider\n", models=("a", "b"))
    code, _, err = cli("run", path, "-q")
    assert code == 0, err
    assert list(project.summary("run")["pacing"]) == ["gw"]
    assert project.summary("run")["pacing"]["gw"]["paced_by"] == "the provider's advertised limit"


def test_a_model_the_gateway_does_not_serve_stops_only_that_model(project, cli, mock_server):
    project.suite(n=40)
    mock_server.behaviour = MockBehaviour(fault_models={"gone": "model_not_found"})
    code, _, err = cli("run", _config(project, mock_server, models=("here", "gone")), "-q")
    assert (
        code == 3
        and "Gave up on model 'gone' of provider 'gw'" in err
        and "check the model name" in err
    )
    with project.db() as db:
        assert (
            db.execute("SELECT COUNT(*) FROM calls WHERE model='here' AND ok=1").fetchone()[0] == 40
        )
        # given up at its first answer: what was in flight by then (its window: 16) is all that was
        # sent
        assert db.execute("SELECT COUNT(*) FROM calls WHERE model='gone'").fetchone()[0] <= 16


def test_rate_limit_retries_and_model_limits_are_checked_with_file_and_line(
    project, cli, mock_server
):
    project.suite(n=2)
    for bad, where in (
        ("    rate_limit_retries: -1\n", "rate_limit_retries"),
        ("    limits_per: gateway\n", "limits_per"),
    ):
        code, _, err = cli("run", _config(project, mock_server, bad), "-q")
        assert code == 2 and where in err and "run.yaml:" in err
    models = ("  - {provider: gw, model: x, limits: {rpm: .nan}}\n",)
    code, _, err = cli("run", _config(project, mock_server, models=models), "-q")
    assert code == 2 and "limits" in err and "run.yaml:" in err


def test_two_names_for_one_model_id_share_its_lane_and_an_id_with_a_slash_is_named_whole(
    project, cli, mock_server
):
    """`t0` and `t1` are one upstream model at two temperatures: its advertised limit covers both
    together. Gateway model ids carry slashes (org/model): the lane and the message keep the id
    whole."""
    project.suite(n=8)
    mock_server.behaviour = MockBehaviour(
        model_rate_limits={"m": 4}, fault_models={"org/gone": "model_not_found"}
    )
    models = (
        "  - {provider: gw, model: m, name: t0, params: {temperature: 0}}\n",
        "  - {provider: gw, model: m, name: t1, params: {temperature: 1}}\n",
        "org/gone",
    )
    code, _, err = cli("run", _config(project, mock_server, models=models), "-q")
    assert code == 3, err
    assert set(project.summary("run")["pacing"]) == {"gw/m", "gw/org/gone"}
    assert "Gave up on model 'org/gone' of provider 'gw'" in err
    with project.db() as db:
        assert (
            db.execute(
                "SELECT COUNT(*) FROM calls WHERE model IN ('t0', 't1') AND ok=1"
            ).fetchone()[0]
            == 16
        )
