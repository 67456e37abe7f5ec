"""OpenAI's own chat completions, through the official SDK (OpenAI-compatible servers:
_compatible.py)."""

from __future__ import annotations

import time

import httpx2
import openai

from . import Completion, Provider, ProviderError, Request
from ._chat import completion_of, request_body
from ._sdk import advertised_limits, http_client, map_error, upstream


class OpenAIProvider(Provider):
    def __init__(self, config):
        super().__init__(config)
        self.client = openai.AsyncOpenAI(
            api_key=config.api_key() or "not-needed",
            base_url=config.base_url,
            max_retries=0,
            timeout=config.timeout_s,
            http_client=http_client(openai, config.concurrency, config.timeout_s),
        )
        self.provider_type = config.type

    async def complete(self, request: Request) -> Completion:
        start = time.perf_counter()
        try:
            # The SDK's public low-level call: the same client, transport, auth, errors and status
            # handling as chat.completions.create, minus its request-param transform and response
            # model building, which together cost about 1 ms of CPU per call (bench/README.md).
            raw = await self.client.post(
                "/chat/completions",
                cast_to=httpx2.Response,
                body=request_body(request, self.provider_type),
                options={"timeout": request.timeout_s},
            )
            body = raw.json()
            return completion_of(
                body,
                latency_s=time.perf_counter() - start,
                limits=advertised_limits(raw.headers),
                upstream=upstream(body, raw.headers),
            )
        except ProviderError:
            raise
        except Exception as e:  # every SDK failure becomes a ProviderError without bodies
            raise map_error(openai, e) from None

    async def aclose(self) -> None:
        await self.client.close()
