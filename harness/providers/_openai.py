"""OpenAI chat completions, and any OpenAI-compatible endpoint (vLLM, Ollama, gateways)."""
from __future__ import annotations

import time

import openai

from ..sealed import reveal
from . import Completion, Provider, ProviderError, Request
from ._sdk import http_client, map_error


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
        # The official API calls it max_completion_tokens; compatible servers mostly know max_tokens.
        self.max_tokens_key = "max_completion_tokens" if config.type == "openai" else "max_tokens"

    async def complete(self, request: Request) -> Completion:
        params = dict(request.params)
        if "max_tokens" in params:
            params[self.max_tokens_key] = params.pop("max_tokens")
        messages = [{"role": r, "content": reveal(c)} for r, c in request.messages]
        start = time.perf_counter()
        try:
            resp = await self.client.chat.completions.create(
                model=request.model, messages=messages, timeout=request.timeout_s, **params)
            if isinstance(resp, str) or not resp.choices:
                raise ProviderError("bad_response", "no choices in the response", retryable=True)
            choice = resp.choices[0]
            text = choice.message.content or ""
            usage = resp.usage
            return Completion(text=text, finish_reason=choice.finish_reason,
                              input_tokens=usage.prompt_tokens if usage else 0,
                              output_tokens=usage.completion_tokens if usage else 0,
                              latency_s=time.perf_counter() - start)
        except ProviderError:
            raise
        except Exception as e:  # every SDK failure becomes a ProviderError without bodies
            raise map_error(openai, e) from None

    async def aclose(self) -> None:
        await self.client.close()
