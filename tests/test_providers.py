"""Real providers as they are (#20): parameters that reach the server exactly, the provider's own
error codes, refusals called once, and keys checked before anything is sent. Through the real SDKs
to the mock server."""

import contextlib
import http.server
import json
import shutil
import ssl
import subprocess
import threading

import pytest
from conftest import free_port, holdout_subprocess, store_db

from harness.mockserver import MockBehaviour

ITEMS = [
    {
        "id": f"q{i}",
        "prompt": f"Question number {i}: what is {i} plus {i}?",
        "reference": str(2 * i),
    }
    for i in range(4)
]


def _config(project, mock_server, params: dict, kind="openai-compatible", extra=""):
    url = f"{mock_server.url}/v1" if kind != "anthropic" else mock_server.url
    key = "    api_key_env: MOCK_KEY\n" if kind == "anthropic" else ""
    return project.config(
        f"suite: mini\nproviders:\n  p:\n    type: {kind}\n    base_url: {url}\n{key}{extra}"
        f"models:\n  - provider: p\n    model: m\n    params: {json.dumps(params)}\n"
    )


def test_reasoning_json_mode_and_sampler_parameters_reach_an_openai_compatible_server_exactly(
    project, cli, mock_server
):
    project.suite(items=ITEMS)
    mock_server.behaviour = MockBehaviour(record_bodies=True)
    params = {
        "max_completion_tokens": 5000,
        "reasoning_effort": "high",
        "response_format": {"type": "json_object"},
        "extra_body": {"min_p": 0.05, "top_k": 40, "repetition_penalty": 1.1, "logprobs": True},
    }
    assert cli("run", _config(project, mock_server, params), "-q")[0] == 0
    sent = [json.loads(b) for b in mock_server.stats.bodies]
    assert len(sent) == 4
    for body in sent:
        # compatible servers' name
        assert body["max_tokens"] == 5000 and "max_completion_tokens" not in body
        assert body["reasoning_effort"] == "high" and body["response_format"] == {
            "type": "json_object"
        }
        assert (body["min_p"], body["top_k"], body["repetition_penalty"], body["logprobs"]) == (
            0.05,
            40,
            1.1,
            True,
        )
        assert "extra_body" not in body and body["model"] == "m"


def test_anthropic_thinking_reaches_the_server_and_the_answer_is_the_text_block(
    project, cli, mock_server
):
    project.suite(items=ITEMS)
    mock_server.behaviour = MockBehaviour(record_bodies=True)
    params = {
        "max_tokens": 8000,
        "thinking": {"type": "enabled", "budget_tokens": 4000},
        "extra_body": {"top_k": 5},
    }
    assert cli("run", _config(project, mock_server, params, kind="anthropic"), "-q")[0] == 0
    for body in map(json.loads, mock_server.stats.bodies):
        assert body["thinking"] == {"type": "enabled", "budget_tokens": 4000}
        assert body["max_tokens"] == 8000 and body["top_k"] == 5


@pytest.mark.parametrize(
    "kind, params, where, says",
    [
        (
            "openai-compatible",
            {"thinking": {"type": "enabled", "budget_tokens": 2048}},
            "params.thinking",
            "an Anthropic parameter",
        ),
        (
            "anthropic",
            {"reasoning_effort": "low"},
            "params.reasoning_effort",
            "an OpenAI parameter",
        ),
        (
            "anthropic",
            {"max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 4000}},
            "params.thinking",
            "must be below the output cap",
        ),
        (
            "openai-compatible",
            {"extra_body": {"model": "other"}},
            "params.extra_body",
            "may not set model",
        ),
        (
            "openai-compatible",
            {"reasoning_effort": "extreme"},
            "params.reasoning_effort",
            "expected",
        ),
        (
            "openai-compatible",
            {"max_tokens": 10, "max_completion_tokens": 10},
            "params.max_completion_tokens",
            "once",
        ),
    ],
)
def test_parameters_a_provider_does_not_take_are_refused_with_file_and_line(
    project, cli, mock_server, kind, params, where, says
):
    project.suite(items=ITEMS)
    code, _, err = cli("run", _config(project, mock_server, params, kind=kind), "-q")
    assert code == 2 and where in err and says in err and "run.yaml:" in err, err
    assert mock_server.stats.requests == 0


@pytest.mark.parametrize(
    "fault, kind",
    [
        ("context_length", "context_length"),
        ("content_filter_400", "content_filter"),
        ("refusal", "content_filter"),
    ],
)
def test_errors_about_an_item_are_recorded_by_their_code_called_once_and_not_retried(
    project, cli, mock_server, fault, kind
):
    project.suite(items=ITEMS)
    mock_server.behaviour = MockBehaviour(error_rate=1.0, faults=(fault,))
    cfg = _config(project, mock_server, {})
    code, out, err = cli("run", cfg, "-q")
    # one call per item: a final answer, paid once
    assert code == 0 and mock_server.stats.requests == 4
    with store_db(project.root) as db:
        rows = db.execute("SELECT error_kind, error FROM calls").fetchall()
    assert {r[0] for r in rows} == {kind}
    assert all(
        "could not be served" not in (r[1] or "") and "Question number" not in (r[1] or "")
        for r in rows
    )
    if fault != "refusal":
        code_string = "context_length_exceeded" if kind == "context_length" else "content_filter"
        assert {r[1] for r in rows} == {f"{kind}: HTTP 400 ({code_string})"}
    # a second run sends nothing
    assert cli("run", cfg, "-q")[0] == 0 and mock_server.stats.requests == 4
    assert "could not be served" not in out + err


def test_a_model_the_provider_does_not_serve_is_named_and_given_up(project, cli, mock_server):
    project.suite(n=12)
    mock_server.behaviour = MockBehaviour(error_rate=1.0, faults=("model_not_found",))
    code, out, err = cli("run", _config(project, mock_server, {}, kind="anthropic"), "-q")
    assert code == 3 and "model_not_found" in out + err and "check the model name" in out + err
    with store_db(project.root) as db:
        assert {r[0] for r in db.execute("SELECT error_kind FROM calls")} == {"model_not_found"}
        assert db.execute("SELECT MAX(attempts) FROM calls").fetchone()[0] == 1  # not retried


def test_a_named_key_variable_that_is_not_set_stops_the_run_before_anything_is_sent(
    project, cli, mock_server, monkeypatch
):
    project.suite(items=ITEMS)
    monkeypatch.delenv("GATEWAY_KEY", raising=False)
    cfg = _config(project, mock_server, {}, extra="    api_key_env: GATEWAY_KEY\n")
    code, _, err = cli("run", cfg, "-q")
    assert (
        code == 2 and "GATEWAY_KEY" in err and "not set" in err and mock_server.stats.requests == 0
    )
    # a local server that takes none
    cfg = _config(project, mock_server, {}, extra="    api_key_env: null\n")
    assert cli("run", cfg, "-q")[0] == 0 and mock_server.stats.requests == 4


def test_summary_and_signed_scorecard_name_the_served_model_and_the_software(
    project, cli, mock_server
):
    project.suite(items=ITEMS, graders=[{"rules": {"type": "contains"}}])
    mock_server.behaviour = MockBehaviour(
        served_as={"cheap": "cheap-2026-01-01", "alias": "some-other-model"}
    )
    cfg = project.config(
        "suite: mini\nproviders:\n  p:\n    type: openai-compatible\n    base_url: "
        f"{mock_server.url}/v1\n"
        "models:\n  - {provider: p, model: cheap, params: {temperature: 0}}\n"
        "  - {provider: p, model: alias}\nlabs:\n  acme: [cheap, alias]\n"
    )
    assert cli("run", cfg, "-q")[0] == 0 and cli("grade", "run", "-q")[0] == 0
    summary = json.loads((project.root / "results" / "run" / "summary.json").read_text())[
        "provenance"
    ]
    assert summary["software"]["holdout"] and summary["software"]["sdks"]["openai"]
    assert (
        summary["models"]["cheap"]["served"] == {"cheap-2026-01-01": 4}
        and not summary["models"]["cheap"]["served_differs"]
    )
    assert summary["models"]["cheap"]["params"] == {"temperature": 0, "max_tokens": 4096}
    assert summary["models"]["alias"]["served_differs"]  # asked for one model, another answered
    cli("vault", "init")
    assert cli("scorecard", "run", "--lab", "acme")[0] == 0
    card_path = project.root / "results" / "run" / "scorecards" / "acme.json"
    card = json.loads(card_path.read_text())
    assert card["provenance"]["models"]["alias"]["served"] == {"some-other-model": 4}
    assert "served as some-other-model" in card_path.with_suffix(".html").read_text()
    assert (
        cli("verify", card_path)[0] == 0 and cli("verify", card_path.with_suffix(".html"))[0] == 0
    )
    # hiding the substitution breaks the seal
    card["provenance"]["models"]["alias"]["served"] = {"alias": 4}
    card_path.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    assert cli("verify", card_path)[0] == 2


def test_a_judge_whose_key_variable_is_not_set_is_refused_before_any_judge_call(
    project, cli, mock_server, monkeypatch
):
    monkeypatch.delenv("JUDGE_KEY", raising=False)
    project.suite(
        items=ITEMS,
        graders=[
            {
                "rubric": {
                    "judge": {"provider": "j", "model": "judge"},
                    "criteria": [{"name": "q", "scale": [1, 5]}],
                }
            }
        ],
    )
    cfg = project.config(
        "suite: mini\nproviders:\n  p:\n    type: openai-compatible\n    base_url: "
        f"{mock_server.url}/v1\n"
        f"  j:\n    type: openai-compatible\n    base_url: {mock_server.url}/v1\n"
        "    api_key_env: JUDGE_KEY\nmodels:\n  - {provider: p, model: m}\n"
    )
    assert cli("run", cfg, "-q")[0] == 0
    sent = mock_server.stats.requests
    code, _, err = cli("grade", "run", "-q")
    assert (
        code == 2 and "JUDGE_KEY" in err and "not set" in err and mock_server.stats.requests == sent
    )


# Two paths reach OpenAI-style servers: the official SDK for `type: openai`, and plain aiohttp for
# `type: openai-compatible` (no SDK import on the way to the first request). They must be one
# client to the server and to the store.
OPENAI_TYPES = ("openai", "openai-compatible")


def _both_paths(project, mock_server, monkeypatch, *, params=None, extra="", url=None):
    """A config per OpenAI path (run ids `openai` and `openai-compatible`), on one key."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-value-123456")
    out = {}
    for kind in OPENAI_TYPES:
        out[kind] = project.config(
            f"suite: mini\nproviders:\n  p:\n    type: {kind}\n    base_url: "
            f"{url or mock_server.url + '/v1'}\n    api_key_env: OPENAI_API_KEY\n{extra}"
            f"models:\n  - provider: p\n    model: m\n    params: {json.dumps(params or {})}\n",
            name=f"{kind}.yaml",
        )
    return out


def test_the_sdk_and_the_plain_http_path_send_one_request_and_store_one_answer(
    project, cli, mock_server, monkeypatch
):
    items = [
        *ITEMS,
        {"id": "zh", "prompt": '请用三句话解释光合作用。\n"引号" \\ 反斜杠'},
        {"id": "ar", "prompt": "ما هي عاصمة المغرب؟\nسطر ثانٍ"},
        {"id": "hi", "prompt": "भारत की सबसे लंबी नदी कौन सी है?"},
        {"id": "x", "prompt": "?"},
    ]
    project.suite(items=items)
    mock_server.behaviour = MockBehaviour(record_bodies=True)
    params = {"max_tokens": 50, "temperature": 0.5, "seed": 7, "extra_body": {"top_k": 3}}
    sent, stored = {}, {}
    for kind, cfg in _both_paths(project, mock_server, monkeypatch, params=params).items():
        mock_server.stats.bodies.clear()
        assert cli("run", cfg, "-q")[0] == 0
        sent[kind] = sorted(
            (json.loads(b) for b in mock_server.stats.bodies), key=lambda b: str(b["messages"])
        )
        with store_db(project.root) as db:
            stored[kind] = db.execute(
                "SELECT item_id, ok, output, input_tokens, output_tokens, finish_reason, served "
                "FROM calls WHERE run_id=? ORDER BY item_id",
                (kind,),
            ).fetchall()
    assert len(sent["openai"]) == len(items) and stored["openai"] == stored["openai-compatible"]
    assert all(row[1] == 1 for row in stored["openai"])
    for official, compatible in zip(sent["openai"], sent["openai-compatible"]):
        # the one difference: the official API's name for the output cap
        assert official.pop("max_completion_tokens") == compatible.pop("max_tokens") == 50
        assert official == compatible and compatible["top_k"] == 3
    assert any("反斜杠" in str(b["messages"]) for b in sent["openai-compatible"])


@pytest.mark.parametrize(
    "fault, kind",
    [
        ("500", "server_error"),
        ("garbled", "bad_response"),
        ("no_choices", "empty"),
        ("context_length", "context_length"),
        ("model_not_found", "model_not_found"),
        ("reset", "connection"),
        ("429_bare", "rate_limited"),
        ("hang", "timeout"),
    ],
)
def test_the_sdk_and_the_plain_http_path_name_each_fault_alike(
    project, cli, mock_server, monkeypatch, fault, kind
):
    project.suite(items=ITEMS[:2])
    mock_server.behaviour = MockBehaviour(error_rate=1.0, faults=(fault,), hang_s=3.0)
    extra = "    max_attempts: 1\n    rate_limit_retries: 0\n    timeout_s: 0.5\n"
    kinds = {}
    for path, cfg in _both_paths(project, mock_server, monkeypatch, extra=extra).items():
        cli("run", cfg, "-q")
        with store_db(project.root) as db:
            kinds[path] = {
                r[0] for r in db.execute("SELECT error_kind FROM calls WHERE run_id=?", (path,))
            }
    assert kinds == {"openai": {kind}, "openai-compatible": {kind}}
    assert mock_server.stats.requests == 4  # 2 items on 2 paths; max_attempts: 1 is one attempt


def test_a_refused_connection_is_a_connection_error_on_both_paths(
    project, cli, mock_server, monkeypatch
):
    project.suite(items=ITEMS[:2])
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens
    extra = "    max_attempts: 1\n"
    for path, cfg in _both_paths(project, mock_server, monkeypatch, extra=extra, url=dead).items():
        assert cli("run", cfg, "-q")[0] == 3
        with store_db(project.root) as db:
            kinds = {
                r[0] for r in db.execute("SELECT error_kind FROM calls WHERE run_id=?", (path,))
            }
        assert kinds == {"connection"}, path


@contextlib.contextmanager
def _answering(
    status: int,
    headers: dict,
    *,
    body: bytes = b"",
    tls: ssl.SSLContext | None = None,
    redirect_to: str | None = None,
    chunked: bool = False,
):
    """A real HTTP server on 127.0.0.1 (HTTPS with `tls`) that answers every POST with `status`,
    `headers` and `body` (and a Location of the same path at `redirect_to`; `chunked`: in chunks
    with no length stated), and keeps what each request said: (method, path, Authorization)."""
    seen = []

    class Answering(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1" if chunked else "HTTP/1.0"

        def do_POST(self):
            seen.append((self.command, self.path, self.headers.get("Authorization")))
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(status)
            location = {"Location": redirect_to + self.path} if redirect_to else {}
            size = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": len(body)}
            for name, value in {**headers, **location, **size}.items():
                self.send_header(name, str(value))
            self.end_headers()
            if not chunked:
                self.wfile.write(body)
                return
            with contextlib.suppress(OSError):  # the client may stop reading
                for i in range(0, len(body), 1 << 20):
                    piece = body[i : i + (1 << 20)]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\n\r\n")
            self.close_connection = True

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answering)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()


# Every road an item's prompt can take to a provider: the SDKs, the plain road, and a batch file
ROADS = {
    "openai": "    type: openai\n    base_url: {url}/v1\n    api_key_env: OPENAI_API_KEY\n",
    "openai-compatible": (
        "    type: openai-compatible\n    base_url: {url}/v1\n    api_key_env: OPENAI_API_KEY\n"
    ),
    "anthropic": "    type: anthropic\n    base_url: {url}\n    api_key_env: OPENAI_API_KEY\n",
    "batch": (
        "    type: openai-compatible\n    base_url: {url}/v1\n    api_key_env: OPENAI_API_KEY\n"
        "    mode: batch\n    batch: {{poll_s: 0.05, max_poll_s: 0.2}}\n"
    ),
}


def _on_road(project, road: str, url: str, *, extra: str = "", model_extra: str = ""):
    """A config of the mini suite whose one provider `p` is reached at `url` by `road`."""
    return project.config(
        "suite: mini\nproviders:\n  p:\n"
        + ROADS[road].format(url=url)
        + extra
        + "models:\n  - provider: p\n    model: m\n"
        + model_extra,
        name=f"{road}.yaml",
    )


@pytest.mark.parametrize("status", [307, 308, 301])
@pytest.mark.parametrize("road", ROADS)
def test_a_redirect_is_followed_on_no_road_and_gives_the_provider_up_with_advice(
    project, cli, mock_server, monkeypatch, road, status
):
    """A redirected POST (307 and 308 keep the body) would carry the prompt to an address the
    config does not name. The official SDKs follow redirects unless told not to. On every road the
    redirect is an error of its own kind, the provider is given up at the first (the endpoint is
    wrong for every item), and the address it named is kept nowhere."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-value-123456")
    with _answering(status, {}, redirect_to=mock_server.url) as (url, seen):
        project.suite(items=ITEMS)
        cfg = _on_road(project, road, url, extra="    concurrency: 1\n")
        code, out, err = cli("run", cfg)
    assert code != 0
    assert len(seen) == 1 and seen[0][2] == "Bearer sk-test-secret-value-123456"  # given up
    assert mock_server.stats.requests == 0  # the redirect was not followed ...
    assert not mock_server.batches.snapshot()["files"]  # ... by a batch upload either
    flat = " ".join((out + err).split())
    assert "redirect" in flat and "base_url" in flat and "Gave up on provider 'p'" in flat
    elsewhere = mock_server.url.removeprefix("http://")  # 127.0.0.1:<port>
    assert elsewhere not in out + err
    with store_db(project.root) as db:
        rows = db.execute("SELECT ok, error_kind, error FROM calls").fetchall()
        dump = "\n".join(db.iterdump())
    assert elsewhere not in dump
    if road != "batch":
        assert rows == [(0, "redirect", f"redirect: HTTP {status}")]


def test_a_batch_api_that_refuses_the_key_gives_the_provider_up_with_advice(
    project, cli, monkeypatch
):
    """A Batch API's own request (the file upload) refused is the provider given up with the
    kind's advice and nothing lost, not a traceback (it was one); the next run asks again."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-value-123456")
    refusal = json.dumps({"error": {"message": "no", "code": "invalid_api_key"}}).encode()
    with _answering(401, {"Content-Type": "application/json"}, body=refusal) as (url, seen):
        project.suite(items=ITEMS)
        cfg = _on_road(project, "batch", url)
        code, out, err = cli("run", cfg)
        assert (code, len(seen)) == (3, 1) and seen[0][1] == "/v1/files"
        flat = " ".join((out + err).split())
        assert "Traceback" not in flat and "a bug in holdout" not in flat
        assert "a batch was refused with auth: the key was refused" in flat
        assert "Gave up on provider 'p': auth: HTTP 401 (invalid_api_key)" in flat
        assert "4 calls are not done" in flat
        # the next run first looks for the batch at the provider (a GET this server refuses)
        code, out, err = cli("run", cfg)
        assert code == 3 and "Gave up on provider 'p'" in " ".join((out + err).split())


def test_the_environment_cannot_move_where_a_provider_is_reached(project, mock_server, monkeypatch):
    """The SDKs take OPENAI_BASE_URL / ANTHROPIC_BASE_URL from the environment when no base URL
    is given, which would send held-out prompts to an address no config names. A provider without
    base_url is reached at its official address on every road; the clients are the real SDK
    clients a run makes (no request is sent)."""
    import asyncio

    from harness.batches import batch_api
    from harness.config import load_run_config
    from harness.providers.make import make_provider

    for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"):
        monkeypatch.setenv(name, f"{mock_server.url}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    project.suite(items=ITEMS[:1])
    cfg = project.config(
        "suite: mini\nproviders:\n  ob: {type: openai, mode: batch}\n"
        "  ab: {type: anthropic, mode: batch}\nmodels:\n"
        + "".join(f"  - {{provider: {p}, model: m, name: {p}}}\n" for p in ("openai", "anthropic"))
        + "".join(f"  - {{provider: {p}, model: m, name: {p}}}\n" for p in ("ob", "ab"))
    )
    official = {"openai": "https://api.openai.com/v1/", "anthropic": "https://api.anthropic.com"}
    clients = []
    for model in load_run_config(cfg).models:
        provider = model.provider
        online = make_provider(provider)
        road = batch_api(provider) if provider.mode == "batch" else online
        clients.append((provider.type, str(road.client.base_url)))
        asyncio.run(online.aclose())
    assert sorted(clients) == sorted([(t, official[t]) for t in ("openai", "anthropic")] * 2), (
        clients
    )


def _chat_answer(
    content='"hi"', finish='"stop"', usage='{"prompt_tokens": 5, "completion_tokens": 1}'
):
    """A chat completion's JSON as a server might send it, spelled out (JSON's \\u escapes can
    say what Python's json.dumps never writes)."""
    return (
        '{"id": "c1", "object": "chat.completion", "model": "m", "choices": [{"index": 0, '
        f'"finish_reason": {finish}, "message": {{"role": "assistant", "content": {content}}}}}], '
        f'"usage": {usage}}}'
    ).encode()


UNSTORABLE = {
    "text a lone surrogate": _chat_answer(content='"half \\ud800 a pair"'),
    "text with NUL": _chat_answer(content='"a\\u0000b"'),
    "text a number": _chat_answer(content="42"),
    "finish reason an object": _chat_answer(finish='{"x": 1}'),
    "finish reason a lone surrogate": _chat_answer(finish='"st\\udfffop"'),
    "tokens a string": _chat_answer(usage='{"prompt_tokens": "5", "completion_tokens": 1}'),
    "tokens negative": _chat_answer(usage='{"prompt_tokens": -500, "completion_tokens": 1}'),
    "tokens huge": _chat_answer(usage='{"prompt_tokens": 5, "completion_tokens": 1e300}'),
    "tokens NaN": _chat_answer(usage='{"prompt_tokens": NaN, "completion_tokens": 1}'),
    "tokens a fraction": _chat_answer(usage='{"prompt_tokens": 2.5, "completion_tokens": 1}'),
}


@pytest.mark.parametrize("road", ["openai", "openai-compatible"])
@pytest.mark.parametrize("case", UNSTORABLE)
def test_an_answer_that_cannot_be_stored_or_counted_is_a_bad_response_asked_again(
    project, cli, monkeypatch, road, case
):
    """Valid JSON that is not a storable answer (text that is not valid Unicode, or holds NUL,
    which PostgreSQL's text refuses; token counts a price cannot multiply) is a bad_response,
    asked again, on both roads; before, a lone surrogate or a list failed the store write on
    every run ("re-run to resume", forever), an object finish reason was a traceback, and a
    negative count made a negative cost."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-value-123456")
    headers = {"Content-Type": "application/json"}
    with _answering(200, headers, body=UNSTORABLE[case]) as (url, seen):
        project.suite(items=ITEMS[:1])
        price = "    price: {input_per_mtok: 1.0, output_per_mtok: 1.0}\n"
        cfg = _on_road(project, road, url, extra="    max_attempts: 2\n", model_extra=price)
        code, out, err = cli("run", cfg)
    assert (code, len(seen)) == (3, 2), out + err  # failed, after asking again
    assert "Traceback" not in out + err and "a bug in holdout" not in out + err
    with store_db(project.root) as db:
        rows = db.execute("SELECT ok, error_kind, output, cost_usd FROM calls").fetchall()
    assert rows == [(0, "bad_response", None, 0.0)] or rows == [(0, "bad_response", None, None)]


@pytest.mark.parametrize("road", ["openai", "openai-compatible"])
def test_an_answer_in_content_parts_is_its_text(project, cli, monkeypatch, road):
    """Some OpenAI-style servers answer with a list of content parts: the answer is their text
    (a list failed the store write before)."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-value-123456")
    parts = json.dumps(
        [
            {"type": "text", "text": "光合作用"},
            {"type": "image_url"},
            {"type": "text", "text": "!"},
        ],
        ensure_ascii=False,
    )
    headers = {"Content-Type": "application/json"}
    with _answering(200, headers, body=_chat_answer(content=parts)) as (url, seen):
        project.suite(items=ITEMS[:1])
        cfg = _on_road(project, road, url)
        assert cli("run", cfg, "-q")[0] == 0
    with store_db(project.root) as db:
        assert db.execute("SELECT ok, output FROM calls").fetchall() == [(1, "光合作用!")]


@pytest.mark.parametrize(
    "status, wait",
    [
        (429, "inf"),
        (429, "1e9"),
        (429, "Wed, 21 Oct 2099 07:28:00 GMT"),
        (429, "601"),
        (503, "3600"),
    ],
)
@pytest.mark.parametrize("road", ["openai", "openai-compatible", "anthropic"])
def test_a_provider_that_asks_for_a_long_wait_is_given_up_not_waited_for(
    project, cli, monkeypatch, road, status, wait
):
    """A Retry-After over ten minutes (or `inf`, or a date decades away) held every call that
    heard it for that long: a run that never ended. Now the provider is given up at the first,
    with advice, and what is done is kept."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-value-123456")
    headers = {"Retry-After": wait, "Content-Type": "application/json"}
    with _answering(status, headers, body=b'{"error": {"message": "later"}}') as (url, seen):
        project.suite(items=ITEMS)
        cfg = _on_road(project, road, url, extra="    concurrency: 1\n")
        code, out, err = cli("run", cfg)
    assert (code, len(seen)) == (3, 1)
    flat = " ".join((out + err).split())
    assert "failed with long_wait: the provider asked to wait more than 10 minutes" in flat
    assert f"long_wait: HTTP {status}" in flat and "Gave up on provider 'p'" in flat
    with store_db(project.root) as db:
        assert db.execute("SELECT ok, error_kind FROM calls").fetchall() == [(0, "long_wait")]


@pytest.mark.parametrize(
    "road, chunked",
    [
        (road, chunked)
        for road in ("openai", "anthropic", "openai-compatible")
        for chunked in (0, 1)
    ],
)
def test_an_answer_larger_than_any_model_writes_is_not_read(
    project, cli, monkeypatch, road, chunked
):
    """A server that answers 33 MB (a model's longest answer is under 1 MB) would take the memory
    of many calls and fill the store: the answer is refused, read no further than 32 MB, and not
    asked again. Where the length is stated, no road reads it at all; a body sent in chunks is
    counted as it comes."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-value-123456")
    body = _chat_answer(content=json.dumps("x" * (33 * 2**20)))
    headers = {"Content-Type": "application/json"}
    with _answering(200, headers, body=body, chunked=chunked) as (url, seen):
        project.suite(items=ITEMS[:1])
        code, out, err = cli("run", _on_road(project, road, url))
    assert (code, len(seen)) == (3, 1)
    with store_db(project.root) as db:
        rows = db.execute("SELECT ok, error_kind, error FROM calls").fetchall()
    assert rows == [(0, "bad_response", "bad_response: the answer is over 32 MB")]


def test_a_judge_given_up_is_named_in_the_grading_with_its_advice(
    project, cli, mock_server, monkeypatch
):
    """`holdout grade` said only "stopped early (interrupt, budget or a dead provider)": it now
    names the judge's provider, why it was given up, and what to do, as `holdout run` does."""
    monkeypatch.setenv("JUDGE_KEY", "sk-judge-key-that-is-refused")
    rubric = {
        "judge": {"provider": "j", "model": "judge"},
        "criteria": [{"name": "q", "scale": [1, 5]}],
    }
    project.suite(items=ITEMS, graders=[{"rubric": rubric}])
    refusal = json.dumps({"error": {"message": "no", "code": "invalid_api_key"}}).encode()
    with _answering(401, {"Content-Type": "application/json"}, body=refusal) as (url, seen):
        cfg = project.config(
            "suite: mini\nproviders:\n  p:\n    type: openai-compatible\n    base_url: "
            f"{mock_server.url}/v1\n"
            f"  j:\n    type: openai-compatible\n    base_url: {url}/v1\n"
            "    api_key_env: JUDGE_KEY\n    concurrency: 1\nmodels:\n  - {provider: p, model: m}\n"
        )
        assert cli("run", cfg, "-q")[0] == 0
        code, out, err = cli("grade", "run", "-q")
    flat = " ".join(err.split())
    assert code == 3 and len(seen) == 1
    assert "gave up on provider 'j': auth: HTTP 401 (invalid_api_key)" in flat
    assert "failed with auth: the key was refused; check the environment variable" in flat
    assert "stopped early" in flat and "sk-judge-key" not in out + err


def test_a_compatible_server_is_reached_through_the_proxy_the_environment_names(
    project, cli, mock_server, monkeypatch
):
    """HTTP_PROXY is honoured as the SDK's transport honours it (looked up once per run)."""
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    with _answering(502, {}) as (proxy, seen):
        monkeypatch.setenv("HTTP_PROXY", proxy)
        project.suite(items=ITEMS[:1])
        cfg = _both_paths(project, mock_server, monkeypatch, extra="    max_attempts: 1\n")
        assert cli("run", cfg["openai-compatible"], "-q")[0] == 3
    # the absolute address, as a client asks a proxy; the server itself heard nothing
    assert [s[:2] for s in seen] == [("POST", f"{mock_server.url}/v1/chat/completions")]
    assert mock_server.stats.requests == 0
    with store_db(project.root) as db:
        assert db.execute("SELECT error_kind FROM calls").fetchall() == [("server_error",)]


ANSWER = json.dumps(
    {
        "id": "c1",
        "object": "chat.completion",
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 1},
    }
).encode()


def test_over_tls_a_server_is_reached_only_with_a_certificate_this_machine_trusts(
    project, cli, mock_server, monkeypatch, tmp_path
):
    """An untrusted certificate is its own kind on both roads, not retried, and gives the provider
    up at once (no call can pass it) with advice; nothing gets through the handshake. A private
    CA named by SSL_CERT_FILE is trusted by the plain road."""
    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command (Debian package openssl)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
        + ["-keyout", key, "-out", cert],
        check=True,
        capture_output=True,
    )
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    json_type = {"Content-Type": "application/json"}
    with _answering(200, json_type, body=ANSWER, tls=tls) as (url, seen):
        project.suite(items=ITEMS[:2])
        cfgs = _both_paths(
            project, mock_server, monkeypatch, extra="    max_attempts: 3\n", url=f"{url}/v1"
        )
        for road, cfg in cfgs.items():
            code, out, err = cli("run", cfg, "-q")
            said = out + err
            assert code == 3 and "SSL_CERT_FILE" in said and "Gave up on provider 'p'" in said, road
            with store_db(project.root) as db:
                rows = db.execute(
                    "SELECT error_kind, attempts FROM calls WHERE run_id=?", (road,)
                ).fetchall()
            assert rows and set(rows) == {("tls", 1)}, road  # named, and not sent again
        assert seen == []
        trusted = holdout_subprocess(
            "run", cfgs["openai-compatible"], "-q", cwd=project.root, env={"SSL_CERT_FILE": cert}
        )
        _, err = trusted.communicate(timeout=120)
        assert trusted.returncode == 0, err
    assert len(seen) == 2
    with store_db(project.root) as db:
        outputs = db.execute(
            "SELECT ok, output FROM calls WHERE run_id='openai-compatible'"
        ).fetchall()
    assert sorted(outputs) == [(1, "hello"), (1, "hello")]
