"""A mock OpenAI- and Anthropic-compatible HTTP server on 127.0.0.1, for tests, the benchmark and
demos.

It speaks `POST /v1/chat/completions` and `POST /v1/messages` well enough for the official SDKs,
and can be told to be slow, rate-limited, capped in concurrency, or faulty (429 with and without
Retry-After, 500, 503, connection reset, hang, a non-JSON body, a truncated body, an empty
completion, a content-filter refusal). A rate limit is advertised the way the real APIs do it, as
a per-minute limit in `x-ratelimit-*` / `anthropic-ratelimit-*` headers on every response, and
enforced per second (OpenAI documents that 60,000 RPM may be enforced as 1,000 per second); turn
the headers off to stand in for a gateway that says nothing until it answers 429. It counts what
it sees: requests, requests in flight (peak and time-average), 429s, and per (model, prompt) how
many times each prompt was sent."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from aiohttp import web

from . import mockreplies as replies

OPENAI_PREFIXES = ("/v1", "/openai/v1", "/v1beta/openai", "/api/v1")


@dataclass
class MockBehaviour:
    latency_s: float = 0.0
    jitter_s: float = 0.0
    reply: str = "echo"  # "echo": answer with the prompt; anything else: that text
    # (api, body) -> reply text, or None for `reply`
    responder: Callable[[str, dict], str | None] | None = None
    rate_limit_rps: float | None = None  # above this many requests in the current second: 429
    advertise_limits: bool = True  # say the limit on every response, as OpenAI and Anthropic do
    max_concurrency: int | None = None  # above this many in flight: 429
    error_rate: float = 0.0  # fraction of requests that get one of `faults`
    faults: tuple[str, ...] = ("500",)
    fail_first: int = 0  # the first N requests get `faults[0]`
    retry_after_s: float = 1.0
    hang_s: float = 30.0
    record_bodies: bool = False  # keep every request body (the leak test's "door is open" check)
    # report this many output tokens (a long answer), not len(text)/4
    output_tokens: int | None = None
    honour_max_tokens: bool = True  # ... cut to the request's max_tokens, as real servers do
    seed: int = 0
    # model name -> the fault every request for it gets
    fault_models: dict = field(default_factory=dict)
    # model name -> the model id the response says (a gateway alias)
    served_as: dict = field(default_factory=dict)
    # model name -> the upstream a gateway names (in the body, or LiteLLM's header: upstream_header)
    upstreams: dict = field(default_factory=dict)
    upstream_header: bool = False
    # model name -> its own req/s (a gateway's deployment), apart from the server's
    model_rate_limits: dict = field(default_factory=dict)
    # the Batch API (harness/mockbatch.py): seconds until a batch is answered, every Nth request
    # of a batch failing, batches expiring with half their requests answered
    batch_delay_s: float = 0.0
    batch_fail_every: int = 0
    batch_expire: bool = False


@dataclass
class MockStats:
    requests: int = 0
    ok: int = 0
    faults: Counter = field(default_factory=Counter)
    in_flight: int = 0
    peak_in_flight: int = 0
    by_model: Counter = field(default_factory=Counter)
    by_prompt: Counter = field(default_factory=Counter)  # (model, last user text) -> count
    bodies: list = field(default_factory=list)
    paths: Counter = field(default_factory=Counter)  # request path -> count
    first_at: float | None = None
    last_at: float | None = None
    last_fault_at: float | None = None  # when the last fault was answered (monotonic)
    _area: float = 0.0  # integral of in_flight over time, for the time-average
    _area_at: float = 0.0
    batch_requests: int = 0  # requests answered inside batches (also counted in `requests`)
    batch_created_at: dict = field(default_factory=dict)  # batch id -> when (monotonic)

    def snapshot(self) -> dict:
        span = (self.last_at or 0) - (self.first_at or 0)
        return {
            "requests": self.requests,
            "ok": self.ok,
            "faults": dict(self.faults),
            "peak_in_flight": self.peak_in_flight,
            "mean_in_flight": round(self._area / span, 2) if span > 0 else 0.0,
            "by_model": dict(self.by_model),
            # per prompt, by digest: how often each was asked (the benchmarks' exactly-once check)
            "by_prompt_sha": {
                hashlib.sha256(f"{m}|{t}".encode()).hexdigest()[:16]: n
                for (m, t), n in self.by_prompt.items()
            },
            "span_s": round(span, 3),
            "first_at": self.first_at,
            "last_fault_at": self.last_fault_at,
            "batch_requests": self.batch_requests,
        }


class MockServer:
    def __init__(self, behaviour: MockBehaviour | None = None):
        self.behaviour = behaviour or MockBehaviour()
        self.stats = MockStats()
        self.rng = random.Random(self.behaviour.seed)
        # limit key (a model with its own limit, else "") -> (second, count)
        self._windows: dict = {}
        self._fault_turn = -1
        from .mockbatch import MockBatches, MockMessageBatches

        self.batches = MockBatches(self)
        self.message_batches = MockMessageBatches(self)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.runner: web.AppRunner | None = None
        self.port: int | None = None

    # -- app --------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        # at the real endpoints' paths: /v1, Azure's /openai/v1, Gemini's /v1beta/openai,
        # OpenRouter's /api/v1 (any other path is a wrong base URL: 404)
        for prefix in OPENAI_PREFIXES:
            app.router.add_post(f"{prefix}/chat/completions", self._openai)
        app.router.add_post("/v1/messages", self._anthropic)
        self.batches.routes(app)
        self.message_batches.routes(app)
        app.router.add_get("/_stats", self._stats)
        return app

    async def _openai(self, request):
        return await self._handle(request, "openai")

    async def _anthropic(self, request):
        return await self._handle(request, "anthropic")

    async def _stats(self, request):
        return web.json_response(
            {
                **self.stats.snapshot(),
                "batch": self.batches.snapshot(),
                "message_batches": self.message_batches.snapshot(),
            }
        )

    def _track(self, delta: int) -> None:
        now = time.monotonic()
        s = self.stats
        if s.first_at is None:
            s.first_at = s._area_at = now
        s._area += s.in_flight * (now - s._area_at)
        s._area_at = s.last_at = now
        s.in_flight += delta
        s.peak_in_flight = max(s.peak_in_flight, s.in_flight)

    def _limit_of(self, model: str) -> tuple[str, float | None]:
        """(window key, req/s) that governs a model: its own limit, else the server's."""
        b = self.behaviour
        if model in b.model_rate_limits:
            return model, b.model_rate_limits[model]
        return "", b.rate_limit_rps

    def _limit_headers(self, api: str, model: str) -> dict:
        key, rps = self._limit_of(model)
        if rps is None or not self.behaviour.advertise_limits:
            return {}
        now = time.monotonic()
        second, count = self._windows.get(key, (0, 0))
        used = count if second == int(now) else 0
        limit, remaining, reset_s = int(rps * 60), max(0, int(rps - used)), 1.0 - now % 1.0
        if api == "openai":
            return {
                "x-ratelimit-limit-requests": str(limit),
                "x-ratelimit-remaining-requests": str(remaining),
                "x-ratelimit-reset-requests": f"{reset_s:.3f}s",
            }
        at = time.time() + reset_s
        reset_at = (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"
        )
        return {
            "anthropic-ratelimit-requests-limit": str(limit),
            "anthropic-ratelimit-requests-remaining": str(remaining),
            "anthropic-ratelimit-requests-reset": reset_at,
        }

    def _choose_fault(self, model: str) -> str | None:
        b = self.behaviour
        if self.stats.requests <= b.fail_first:
            return b.faults[0]
        if b.max_concurrency is not None and self.stats.in_flight > b.max_concurrency:
            return "429"
        key, rps = self._limit_of(model)
        if rps is not None:
            sec = int(time.monotonic())
            second, count = self._windows.get(key, (0, 0))
            count = count + 1 if second == sec else 1
            self._windows[key] = (sec, count)
            if count > rps:
                return "429"
        if b.error_rate and self.rng.random() < b.error_rate:
            self._fault_turn += 1  # round-robin, so every kind of fault shows up
            return b.faults[self._fault_turn % len(b.faults)]
        return None

    async def _handle(self, request: web.Request, api: str) -> web.StreamResponse:
        b, s = self.behaviour, self.stats
        try:
            body = await request.json()
        except Exception:
            return web.json_response(
                {"error": {"message": "bad json", "type": "invalid_request_error"}}, status=400
            )
        s.requests += 1
        s.paths[request.path] += 1
        model = body.get("model", "?")
        s.by_model[model] += 1
        prompt = replies.last_user_text(body)
        s.by_prompt[(model, prompt)] += 1
        if b.record_bodies:
            s.bodies.append(json.dumps(body))
        self._track(+1)
        try:
            fault = b.fault_models.get(model) or self._choose_fault(model)
            if fault:
                s.faults[fault] += 1
                s.last_fault_at = time.monotonic()
                failed = await self._fault(request, api, fault=fault, model=model, prompt=prompt)
                if failed is not None:
                    return failed
            delay = b.latency_s + (self.rng.uniform(-b.jitter_s, b.jitter_s) if b.jitter_s else 0.0)
            if delay > 0:
                await asyncio.sleep(delay)
            text = None if fault in ("empty", "content_filter") else self._reply(api, body, prompt)
            s.ok += 1
            answer = replies.completion(
                api,
                model=b.served_as.get(model, model),
                body=body,
                text=text or "",
                finish="content_filter" if fault == "content_filter" else "stop",
                output_tokens=b.output_tokens,
                honour_max_tokens=b.honour_max_tokens,
            )
            headers = self._limit_headers(api, model)
            if model in b.upstreams and b.upstream_header:
                headers["x-litellm-model-api-base"] = f"https://{b.upstreams[model]}/v1"
            elif model in b.upstreams:
                answer["provider"] = b.upstreams[model]
            return web.json_response(answer, headers=headers)
        finally:
            self._track(-1)

    async def _fault(
        self, request: web.Request, api: str, *, fault: str, model: str, prompt: str
    ) -> web.StreamResponse | None:
        """The response a fault sends instead of an answer; None for the faults that still answer
        (after a hang, or with an empty or filtered completion)."""
        b = self.behaviour
        if fault in ("429", "429_bare"):
            wait = None
            if fault == "429":
                windowed = self._limit_of(model)[1] is not None and model not in b.fault_models
                # a per-second window: retry when the next second starts
                wait = max(0.05, 1.0 - (time.monotonic() % 1.0)) if windowed else b.retry_after_s
            return replies.rate_limited(wait_s=wait, headers=self._limit_headers(api, model))
        if fault in replies.CODED:
            return replies.coded_error(fault, api=api, prompt=prompt)
        if fault == "refusal" and api == "openai":
            self.stats.ok += 1
            return replies.refusal(model)
        if fault.isdigit():
            return replies.server_error(int(fault))
        if fault == "reset":
            request.transport.abort()
            return web.Response(status=500)
        if fault == "hang":
            await asyncio.sleep(b.hang_s)
        if fault == "no_choices":
            return replies.no_choices()
        if fault == "garbled":
            return replies.garbled()
        if fault == "truncated":
            return await replies.truncated(request)
        return None

    def _reply(self, api: str, body: dict, prompt: str) -> str:
        b = self.behaviour
        if b.responder is not None:
            text = b.responder(api, body)
            if text is not None:
                return text
        return prompt if b.reply == "echo" else b.reply

    # -- lifecycle ----------------------------------------------------------------
    def start(self, port: int = 0) -> str:
        """Serve in a background thread; return the base URL (http://127.0.0.1:PORT)."""
        ready = threading.Event()

        def serve():
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            self.runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
            self.loop.run_until_complete(self.runner.setup())
            site = web.TCPSite(self.runner, "127.0.0.1", port, backlog=1024)
            self.loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()
            self.loop.run_until_complete(self.runner.cleanup())
            self.loop.close()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        ready.wait(10)
        return self.url

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.loop:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def serve_forever(port: int, behaviour: MockBehaviour) -> None:
    """Run in the foreground (for `holdout mock-server` and the benchmark's server process)."""
    server = MockServer(behaviour)
    print(
        f"mock server on http://127.0.0.1:{port} (OpenAI: /v1, Anthropic: /); stats at /_stats",
        flush=True,
    )
    web.run_app(
        server.app(), host="127.0.0.1", port=port, access_log=None, print=None, backlog=4096
    )
