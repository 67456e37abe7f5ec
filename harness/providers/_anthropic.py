"""Anthropic messages API."""

from __future__ import annotations

import time

import anthropic
import httpx2

from ..sealed import reveal
from . import Completion, Provider, ProviderError, Request, model_id
from ._sdk import advertised_limits, http_client, map_error


class AnthropicProvider(Provider):
    def __init__(self, config):
        super().__init__(config)
        self.client = anthropic.AsyncAnthropic(
            api_key=config.api_key() or "not-needed",
            base_url=config.base_url,
            max_retries=0,
            timeout=config.timeout_s,
            http_client=http_client(anthropic, config.concurrency, config.timeout_s),
        )

    async def complete(self, request: Request) -> Completion:
        start = time.perf_counter()
        try:
            # as in _openai.py: the SDK's public post() and the raw response (CPU per call)
            raw = await self.client.post(
                "/v1/messages",
                cast_to=httpx2.Response,
                body=request_body(request),
                options={"timeout": request.timeout_s},
            )
            return completion_of(
                raw.json(),
                latency_s=time.perf_counter() - start,
                limits=advertised_limits(raw.headers),
            )
        except ProviderError:
            raise
        except Exception as e:
            raise map_error(anthropic, e) from None

    async def aclose(self) -> None:
        await self.client.close()


def request_body(request: Request) -> dict:
    """The messages-API body of a request (online, or as a request of a Message Batch)."""
    params = dict(request.params)
    extra = params.pop("extra_body", None) or {}
    if "max_completion_tokens" in params:
        params["max_tokens"] = params.pop("max_completion_tokens")
    params.setdefault("max_tokens", 1024)  # required by this API
    if "stop" in params:
        params["stop_sequences"] = params.pop("stop")
    params.pop("seed", None)  # not supported here
    system = "\n\n".join(reveal(c) for r, c in request.messages if r == "system")
    messages = [{"role": r, "content": reveal(c)} for r, c in request.messages if r != "system"]
    if system:
        params["system"] = system
    return {**extra, "model": request.model, "messages": messages, **params}


def completion_of(body: dict, *, latency_s: float | None, limits=None) -> Completion:
    """A message's answer, from its JSON body (online, or a batch's result)."""
    text = "".join(b.get("text", "") for b in body.get("content") or [] if b.get("type") == "text")
    usage = body.get("usage") or {}
    return Completion(
        text=text,
        finish_reason=body.get("stop_reason"),
        input_tokens=usage.get("input_tokens") or 0,
        output_tokens=usage.get("output_tokens") or 0,
        latency_s=latency_s,
        limits=limits,
        served_model=model_id(body.get("model")),
    )
