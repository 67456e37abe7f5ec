"""What every provider path shares: the official SDKs' aiohttp transport sized to our concurrency,
the advertised limits and Retry-After read off headers, and failures mapped to kinds without
bodies. Nothing here imports an SDK (the plain-HTTP path, _compatible.py, uses it too)."""

from __future__ import annotations

import datetime
import email.utils
import math
import re
import socket
import ssl
import time
import urllib.parse

import aiohttp

from ..callkinds import LONGEST_WAIT_S, NOT_RETRYABLE
from . import Advertised, Kind, ProviderError, model_id


def http_client(sdk, concurrency: int, timeout_s: float):
    """The SDK's aiohttp-based client: about a third of the CPU per request of its default httpx
    transport. It follows no redirect: the SDKs' clients do by default, and a 307 or 308 would
    carry the prompt to an address the config does not name. An answer that says it is larger
    than MAX_ANSWER_BYTES is not read, and one sent in chunks is read no further."""
    import httpx2

    class AtMost(httpx2.AsyncByteStream):
        """A body that ends in oversized() past MAX_ANSWER_BYTES."""

        def __init__(self, body):
            self.body = body

        async def __aiter__(self):
            async for chunk in at_most_answer(self.body):
                yield chunk

        async def aclose(self) -> None:
            await self.body.aclose()

    async def at_most(response) -> None:  # before the body is read
        length = response.headers.get("content-length", "")
        if not length.isdigit():
            response.stream = AtMost(response.stream)
        elif int(length) > MAX_ANSWER_BYTES:
            raise oversized()

    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return sdk.DefaultAioHttpClient(
        limits=limits,
        timeout=timeout_s,
        follow_redirects=False,
        event_hooks={"response": [at_most]},
    )


# An online answer larger than this is a server's fault, not a model's (128k tokens of text are
# about 0.5 MB): reading it would take the memory of many calls, and storing it the disk's.
MAX_ANSWER_BYTES = 32 * 2**20


def oversized() -> ProviderError:
    return ProviderError(
        Kind.BAD_RESPONSE, f"the answer is over {MAX_ANSWER_BYTES >> 20} MB", retryable=False
    )


async def at_most_answer(chunks):
    """A body's chunks as they come, ending in oversized() once past MAX_ANSWER_BYTES (a body
    sent with no stated length, on either road)."""
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise oversized()
        yield chunk


def batch_http_client(sdk, timeout_s: float):
    """The SDK's default client for the few, large requests of a batch (its file is every prompt
    of the batch), with redirects not followed, as http_client."""
    return sdk.DefaultAsyncHttpxClient(timeout=timeout_s, follow_redirects=False)


def retry_after(headers) -> float | None:
    """Seconds to wait from Retry-After / retry-after-ms headers (seconds or an HTTP date), if
    any."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return _wait(float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return _wait(float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _wait(seconds: float) -> float | None:
    """A wait as a header states it: none if it is not a number, 0 if it is past (a long one,
    `inf` included, is kept: status_error gives the provider up for it)."""
    return None if math.isnan(seconds) else max(0.0, seconds)


# What providers advertise on every response: the per-minute limits, and the requests left until a
# reset.
# Anthropic
LIMIT_HEADERS = (
    ("x-ratelimit-limit-requests", "x-ratelimit-limit-tokens"),  # OpenAI
    ("anthropic-ratelimit-requests-limit", "anthropic-ratelimit-tokens-limit"),
)
QUOTA_HEADERS = (
    ("x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),
    ("anthropic-ratelimit-requests-remaining", "anthropic-ratelimit-requests-reset"),
)


def advertised_limits(headers) -> Advertised | None:
    """What the provider says this key may use, where it says so: limits per minute, requests left
    and when the count is full again. None when the headers say nothing usable."""
    if headers is None:
        return None
    for (requests_name, tokens_name), (remaining_name, reset_name) in zip(
        LIMIT_HEADERS, QUOTA_HEADERS
    ):
        rpm, tpm = _positive(headers.get(requests_name)), _positive(headers.get(tokens_name))
        remaining, reset_s = _count(headers.get(remaining_name)), reset_in(headers.get(reset_name))
        if remaining is None or reset_s is None:
            remaining = reset_s = None
        if rpm or tpm or remaining is not None:
            return Advertised(rpm=rpm, tpm=tpm, remaining=remaining, reset_s=reset_s)
    return None


_DURATION = re.compile(
    r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?"
)


def reset_in(value: str | None) -> float | None:
    """Seconds until a reset, from OpenAI's durations (`1s`, `6m0s`, `20ms`, `1h2m3.5s`),
    Anthropic's RFC 3339 instants (`2026-12-03T06:30:00.250Z`) or plain seconds; a reset already
    past is 0. None if unreadable or over a day away."""
    if not value or len(value) > 40:
        return None
    value = value.strip()
    seconds = None
    try:
        seconds = float(value)
    except ValueError:
        match = _DURATION.fullmatch(value)
        if match and any(match.groups()):
            h, m, s, ms = (float(g) if g else 0.0 for g in match.groups())
            seconds = h * 3600 + m * 60 + s + ms / 1000
        else:
            try:
                at = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return None
            if at.tzinfo is None:
                return None
            seconds = at.timestamp() - time.time()
    if not math.isfinite(seconds) or seconds > 86_400:
        return None
    return max(0.0, seconds)


def _count(value: str | None) -> int | None:
    try:
        number = int(value) if value else None
    except ValueError:
        return None
    return number if number is not None and 0 <= number < 10**12 else None


def _positive(value: str | None) -> float | None:
    try:
        number = float(value) if value else None
    except ValueError:
        return None
    return number if number and number > 0 and math.isfinite(number) else None


def upstream(body: dict, headers) -> str | None:
    """The upstream a gateway passed the request on to, where it says: OpenRouter's `provider` in
    the body ("OpenAI", "Together"), LiteLLM's `x-litellm-model-api-base` header (its host). An id,
    or nothing."""
    named = body.get("provider") if isinstance(body.get("provider"), str) else None
    if named is None and headers is not None and headers.get("x-litellm-model-api-base"):
        named = urllib.parse.urlsplit(headers["x-litellm-model-api-base"][:300]).hostname
    return model_id(named)


def map_error(sdk, e: Exception) -> ProviderError:
    """An SDK exception as a ProviderError. Bodies are dropped: they may echo the prompt."""
    # the aiohttp transport reports a refused connection as a connect *timeout*
    named = by_cause(e)
    if named is not None:
        return named
    if isinstance(e, sdk.APITimeoutError):
        return ProviderError(Kind.TIMEOUT, "no answer within the timeout", retryable=True)
    if isinstance(e, sdk.APIConnectionError):
        return ProviderError(Kind.CONNECTION, type(e.__cause__ or e).__name__, retryable=True)
    if isinstance(e, sdk.APIStatusError):
        return status_error(e.status_code, getattr(e, "body", None), e.response.headers)
    if isinstance(e, sdk.APIResponseValidationError):
        return ProviderError(
            Kind.BAD_RESPONSE, "the response did not match the API's schema", retryable=True
        )
    return unexplained(e)


def by_cause(e: BaseException) -> ProviderError | None:
    """The ProviderError a root cause names (cause_of), if one does."""
    cause = cause_of(e)
    if cause is None:
        return None
    kind, detail, retryable = cause
    return ProviderError(kind, detail, retryable=retryable)


def unexplained(e: BaseException) -> ProviderError:
    """A failure no transport class names: an answer we could not read (worth asking again), or
    anything else (by its type's name only)."""
    if isinstance(e, (ValueError, KeyError, IndexError, TypeError, AttributeError)):
        return ProviderError(
            Kind.BAD_RESPONSE, f"unreadable response ({type(e).__name__})", retryable=True
        )
    return ProviderError(Kind.ERROR, type(e).__name__, retryable=False)


def status_error(status: int, body, headers) -> ProviderError:
    """An HTTP error status as a ProviderError: its kind from the status and the provider's own
    error code (never its message), whether it is worth sending again, and what the headers say
    about waiting."""
    code = error_code(body)
    kind = {
        429: Kind.RATE_LIMITED,
        401: Kind.AUTH,
        403: Kind.FORBIDDEN,
        404: Kind.NOT_FOUND,
        400: Kind.BAD_REQUEST,
    }.get(status, Kind.SERVER_ERROR if status >= 500 else f"http_{status}")
    if 300 <= status < 400:
        kind = Kind.REDIRECT  # where it points is not kept: it may be anywhere
    kind = CODE_KINDS.get(code, kind) if code else kind
    retryable = (status in (408, 409, 429) or status >= 500) and kind not in NOT_RETRYABLE
    detail = f"HTTP {status}" + (f" ({code})" if code else "")
    wait = retry_after(headers)
    if retryable and wait is not None and wait > LONGEST_WAIT_S:
        kind, retryable = Kind.LONG_WAIT, False
        detail += f", asked to wait {_duration(wait)}"
    return ProviderError(
        kind,
        detail,
        retryable=retryable,
        status=status,
        retry_after=wait,
        limits=advertised_limits(headers),
    )


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "forever"
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds:.0f} s"


# The provider's own error code, when it is one of these, names the kind (and what to do about it).
CODE_KINDS = {
    "model_not_found": Kind.MODEL_NOT_FOUND,
    "context_length_exceeded": Kind.CONTEXT_LENGTH,
    "string_above_max_length": Kind.CONTEXT_LENGTH,
    "content_filter": Kind.CONTENT_FILTER,
    "content_policy_violation": Kind.CONTENT_FILTER,
    "invalid_api_key": Kind.AUTH,
    "insufficient_quota": Kind.QUOTA,
    "authentication_error": Kind.AUTH,
    "permission_error": Kind.FORBIDDEN,
    "not_found_error": Kind.MODEL_NOT_FOUND,
    "overloaded_error": Kind.SERVER_ERROR,
    "rate_limit_error": Kind.RATE_LIMITED,
}
_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def error_code(body) -> str | None:
    """The provider's structured error code (OpenAI `error.code`, else `error.type`; Anthropic
    `error.type`), kept only if it looks like a code: never the message, which may quote the
    prompt."""
    if not isinstance(body, dict):
        return None
    err = body.get("error") if isinstance(body.get("error"), dict) else body
    for key in ("code", "type"):
        value = err.get(key)
        if (
            isinstance(value, str)
            and _CODE.fullmatch(value)
            and value not in ("error", "invalid_request_error")
        ):
            return value
    return None


def cause_of(e: BaseException) -> tuple[Kind, str, bool] | None:
    """(kind, detail, retryable) of a root cause that names the fault better than the SDK's class
    does: a refused or reset connection, a name that does not resolve, a certificate not trusted,
    a request that cannot be encoded. The SDKs' aiohttp transport calls a server that closed the
    connection mid-request a connect *timeout*; it is a closed connection."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, ProviderError):  # ours, raised inside the SDK (a response hook)
            return e.kind, e.detail, e.retryable
        if isinstance(e, (ConnectionRefusedError, ConnectionResetError, ConnectionAbortedError)):
            return Kind.CONNECTION, type(e).__name__, True
        if isinstance(e, aiohttp.ServerDisconnectedError):
            return Kind.CONNECTION, "the server closed the connection", True
        if isinstance(e, socket.gaierror):
            return Kind.DNS, "the host name does not resolve", True
        if isinstance(e, ssl.SSLCertVerificationError):
            return Kind.TLS, "the server's certificate is not trusted", False
        if isinstance(e, UnicodeEncodeError):
            return Kind.REQUEST_ENCODING, "the request holds text that is not valid Unicode", False
        e = e.__cause__ or e.__context__
    return None
