"""What the mock server answers, shaped as the providers shape it: completions in OpenAI's and
Anthropic's forms, their structured errors, and the faults a test can ask for."""

from __future__ import annotations

import json
import time

from aiohttp import web

FAULTS = (
    "429",
    "429_bare",
    "500",
    "503",
    "reset",
    "hang",
    "garbled",
    "truncated",
    "empty",
    "content_filter",
    "context_length",
    "model_not_found",
    "content_filter_400",
    "refusal",
)
# structured errors as the providers send them: (status, OpenAI error.code, Anthropic error.type);
# the message quotes the prompt, as real ones sometimes do, so tests can check that it never gets
# out
CODED = {
    "context_length": (400, "context_length_exceeded", "invalid_request_error"),
    "model_not_found": (404, "model_not_found", "not_found_error"),
    "content_filter_400": (400, "content_filter", "invalid_request_error"),
}


def rate_limited(*, wait_s: float | None, headers: dict) -> web.Response:
    """A 429; with `wait_s`, Retry-After in whole seconds and OpenAI's retry-after-ms for the exact
    remainder."""
    if wait_s is not None:
        headers = {
            "retry-after": str(max(1, round(wait_s))),
            "retry-after-ms": str(int(wait_s * 1000)),
            **headers,
        }
    return web.json_response(
        {"error": {"message": "rate limited", "type": "rate_limit_error"}},
        status=429,
        headers=headers,
    )


def coded_error(fault: str, *, api: str, prompt: str) -> web.Response:
    status, code, anthropic_type = CODED[fault]
    message = f"{code}: the request could not be served: {prompt[:200]}"
    if api == "openai":
        error = {"message": message, "type": "invalid_request_error", "param": "messages"}
        return web.json_response({"error": {**error, "code": code}}, status=status)
    error = {"type": "error", "error": {"type": anthropic_type, "message": message}}
    return web.json_response(error, status=status)


def refusal(model: str) -> web.Response:
    """OpenAI's refusal: a 200 whose message has no content and says why."""
    message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
    return web.json_response(
        {
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 6},
        }
    )


def no_choices() -> web.Response:
    return web.json_response(
        {
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "choices": [],
            "usage": {"prompt_tokens": 1, "completion_tokens": 0},
        }
    )


def server_error(status: int) -> web.Response:
    return web.json_response(
        {"error": {"message": "server error", "type": "server_error"}}, status=status
    )


def garbled() -> web.Response:
    return web.Response(
        body=b"<html>upstream error: not json", status=200, content_type="application/json"
    )


async def truncated(request: web.Request) -> web.StreamResponse:
    """A body promised at 4000 bytes, cut after 30 by a closed connection."""
    resp = web.StreamResponse(
        status=200, headers={"Content-Type": "application/json", "Content-Length": "4000"}
    )
    await resp.prepare(request)
    await resp.write(b'{"id": "x", "choices": [{"mess')
    request.transport.abort()
    return resp


def completion(
    api: str,
    *,
    model: str,
    body: dict,
    text: str,
    finish: str,
    output_tokens: int | None,
    honour_max_tokens: bool,
) -> dict:
    """A completion of `text`, its usage counted at about four characters a token (or
    `output_tokens`, cut to the request's max_tokens when `honour_max_tokens`)."""
    prompt_chars = sum(
        len(m.get("content") if isinstance(m.get("content"), str) else "")
        for m in body.get("messages") or []
    ) + len(body.get("system") or "")
    tin, tout = prompt_chars // 4 + 1, len(text) // 4 + 1 if text else 0
    if output_tokens is not None and text:
        cap = body.get("max_tokens") or body.get("max_completion_tokens")
        tout = min(output_tokens, cap) if (cap and honour_max_tokens) else output_tokens
        finish = "length" if cap and tout >= cap else finish
    if api == "openai":
        return {
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": finish,
                    "message": {"role": "assistant", "content": text},
                }
            ],
            "usage": {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout},
        }
    return {
        "id": "msg_mock",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}] if text else [],
        "stop_reason": "refusal" if finish == "content_filter" else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": tin, "output_tokens": tout},
    }


def last_user_text(body: dict) -> str:
    """The prompt a request asks about: its last user message (a list of parts, as JSON)."""
    for m in reversed(body.get("messages") or []):
        if m.get("role") == "user":
            c = m.get("content")
            return c if isinstance(c, str) else json.dumps(c)
    return ""
