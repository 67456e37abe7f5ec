"""The chat-completions wire format, shared by every OpenAI-style path (the SDK's, plain HTTP's,
a batch line's): the request body a `Request` becomes, and the `Completion` an answer's JSON is."""

from __future__ import annotations

from ..sealed import reveal
from . import Completion, Kind, ProviderError, Request, model_id


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
    if isinstance(text, list):  # content parts, as some servers answer
        text = "".join(
            p.get("text") or ""
            for p in text
            if isinstance(p, dict) and p.get("type") in ("text", "output_text")
        )
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
