"""OpenAI chat completions, and any OpenAI-compatible endpoint (vLLM, Ollama, gateways)."""

from __future__ import annotations

import time

import httpx2
import openai

from ..sealed import reveal
from . import Completion, Kind, Provider, ProviderError, Request, model_id
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
            # handling
            # as chat.completions.create, minus its request-param transform and response model
            # building,
            # which together cost about 1 ms of CPU per call (bench/README.md). We read three
            # fields.
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


def request_body(request: Request, provider_type: str) -> dict:
    """The chat-completions body of a request (online, or as a line of a batch). The official
    API calls the output cap max_completion_tokens; compatible servers mostly know max_tokens."""
    cap_key = "max_completion_tokens" if provider_type == "openai" else "max_tokens"
    params = dict(request.params)
    extra = params.pop("extra_body", None) or {}
    for key in ("max_tokens", "max_completion_tokens"):
        if key in params:
            params[cap_key] = params.pop(key)
    messages = [{"role": r, "content": reveal(c)} for r, c in request.messages]
    return {**extra, "model": request.model, "messages": messages, **params}


def completion_of(body: dict, *, latency_s: float | None, limits=None, upstream=None) -> Completion:
    """A chat completion's answer, from its JSON body (online, or a batch's result line)."""
    if not body.get("choices"):
        raise ProviderError(Kind.EMPTY, "the response had no choices", retryable=True)
    choice = body["choices"][0]
    usage = body.get("usage") or {}
    message = choice.get("message") or {}
    text = message.get("content") or ""
    # a refusal comes as message.refusal with no content: a refusal, once, not an empty answer
    # to retry
    finish = "refusal" if message.get("refusal") and not text else choice.get("finish_reason")
    return Completion(
        text=text,
        finish_reason=finish,
        input_tokens=usage.get("prompt_tokens") or 0,
        output_tokens=usage.get("completion_tokens") or 0,
        latency_s=latency_s,
        limits=limits,
        served_model=model_id(body.get("model")),
        upstream=upstream,
    )
