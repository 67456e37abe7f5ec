"""Any OpenAI-compatible endpoint (vLLM, SGLang, Ollama, llama.cpp, LiteLLM, OpenRouter) over plain
aiohttp: the chat-completions request the SDK would send, without importing the SDK.

Importing `openai` takes 0.55-0.9 s on a 2-core machine (aiohttp 0.2-0.3 s), which is most of
what stands between a short run and its first request (bench/startup.py). A compatible server
needs no more than one POST, so this path makes it itself: the same body (_chat.py), the same
reading of statuses, error codes, Retry-After and advertised limits (_sdk.py), no SDK retries (the
runner retries), and no redirects followed: a POST that is redirected would carry the prompt to an
address the config does not name. The official API (`type: openai`) keeps the SDK (_openai.py)."""

from __future__ import annotations

import json
import time
import urllib.parse

import aiohttp

from .. import __version__
from . import Completion, Kind, Provider, ProviderError, Request
from ._chat import completion_of, request_body
from ._sdk import (
    MAX_ANSWER_BYTES,
    advertised_limits,
    at_most_answer,
    by_cause,
    oversized,
    status_error,
    unexplained,
    upstream,
)


def endpoint(base_url: str) -> str:
    """The chat-completions address under a base URL (`http://host:8000/v1`), its query kept."""
    parts = urllib.parse.urlsplit(base_url)
    return urllib.parse.urlunsplit(
        parts._replace(path=parts.path.rstrip("/") + "/chat/completions")
    )


class CompatibleProvider(Provider):
    def __init__(self, config):
        super().__init__(config)
        self.url = endpoint(config.base_url)
        self.headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"holdout/{__version__}",
        }
        key = config.api_key()
        if key:
            self.headers["Authorization"] = f"Bearer {key}"
        self._session: aiohttp.ClientSession | None = None  # made in the loop that uses it
        # HTTP(S)_PROXY and NO_PROXY, as the SDK's transport honours them: looked up once here, not
        # per request (aiohttp's trust_env would look each time, in a thread, and read ~/.netrc)
        self.proxy, self.proxy_auth = proxy_for(self.url)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.config.concurrency, ttl_dns_cache=300)
            # no cookies: nothing a server sets is carried into the next request
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._session

    async def complete(self, request: Request) -> Completion:
        start = time.perf_counter()
        try:
            data = encoded(request_body(request, self.config.type))
            async with self._client().post(
                self.url,
                data=data,
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=request.timeout_s),
                allow_redirects=False,
                proxy=self.proxy,
                proxy_auth=self.proxy_auth,
            ) as response:
                raw = await _read_answer(response)
                status, headers = response.status, response.headers
            if status >= 300:
                raise status_error(status, _json_or_none(raw), headers)
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("not an object")
            return completion_of(
                body,
                latency_s=time.perf_counter() - start,
                limits=advertised_limits(headers),
                upstream=upstream(body, headers),
            )
        except ProviderError:
            raise
        except Exception as e:  # every failure becomes a ProviderError without bodies
            raise failure(e) from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


async def _read_answer(response: aiohttp.ClientResponse) -> bytes:
    """The body, unless it is larger than MAX_ANSWER_BYTES (an oversized() error, read no
    further)."""
    length = response.content_length
    if length is None:
        chunks = at_most_answer(response.content.iter_chunked(1 << 16))
        return b"".join([chunk async for chunk in chunks])
    if length > MAX_ANSWER_BYTES:
        raise oversized()
    return await response.read()  # the common case: a stated length, read at once


def proxy_for(url: str):
    """The proxy (and its credentials) the environment names for this address, or (None, None)."""
    from aiohttp.helpers import get_env_proxy_for_url
    from yarl import URL

    try:
        return get_env_proxy_for_url(URL(url))
    except LookupError:  # no proxy for it
        return None, None


def failure(e: Exception) -> ProviderError:
    """A failed POST as a ProviderError, named by its root cause where one says more."""
    named = by_cause(e)
    if named is not None:
        return named
    if isinstance(e, TimeoutError):  # aiohttp's total and read timeouts are both TimeoutErrors
        return ProviderError(Kind.TIMEOUT, "no answer within the timeout", retryable=True)
    if isinstance(e, (aiohttp.ClientError, OSError)):
        return ProviderError(Kind.CONNECTION, type(e).__name__, retryable=True)
    return unexplained(e)


def encoded(body: dict) -> bytes:
    """The request as strict JSON in UTF-8. Text that is not valid Unicode (a lone surrogate) or a
    number JSON has no word for (NaN: the config's checks refuse it first) is the request's fault:
    named, not sent, not retried."""
    try:
        return json.dumps(body, ensure_ascii=False, allow_nan=False).encode()
    except UnicodeEncodeError as e:
        raise by_cause(e) from None  # request_encoding
    except ValueError:
        raise ProviderError(
            Kind.BAD_REQUEST, "the request holds a number JSON cannot carry", retryable=False
        ) from None


def _json_or_none(raw: bytes):
    try:
        return json.loads(raw)
    except ValueError:
        return None
