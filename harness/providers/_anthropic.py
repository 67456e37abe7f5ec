"""Anthropic messages API."""
from __future__ import annotations

import time

import anthropic

from ..sealed import reveal
from . import Completion, Provider, ProviderError, Request
from ._sdk import http_client, map_error


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
        params = dict(request.params)
        params.setdefault("max_tokens", 1024)  # required by this API
        if "stop" in params:
            params["stop_sequences"] = params.pop("stop")
        params.pop("seed", None)  # not supported here
        system = "\n\n".join(reveal(c) for r, c in request.messages if r == "system")
        messages = [{"role": r, "content": reveal(c)} for r, c in request.messages if r != "system"]
        if system:
            params["system"] = system
        start = time.perf_counter()
        try:
            resp = await self.client.messages.create(
                model=request.model, messages=messages, timeout=request.timeout_s, **params)
            if isinstance(resp, str):
                raise ProviderError("bad_response", "the response was not a message", retryable=True)
            text = "".join(getattr(b, "text", "") for b in resp.content or [])
            return Completion(text=text, finish_reason=resp.stop_reason,
                              input_tokens=resp.usage.input_tokens, output_tokens=resp.usage.output_tokens,
                              latency_s=time.perf_counter() - start)
        except ProviderError:
            raise
        except Exception as e:
            raise map_error(anthropic, e) from None

    async def aclose(self) -> None:
        await self.client.close()
