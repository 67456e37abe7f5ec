"""The retry policy of every call, model or judge: the first attempt is a plain call (the common
case costs no retry machinery); after a retryable failure tenacity takes over. A 429 is the provider
pacing us, not a fault of the item: a call may hear `rate_limit_retries` of them on top of
`max_attempts` tries for other failures. Waits honour Retry-After, else back off exponentially with
full jitter."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, retry_if_exception

from .providers import Kind, ProviderError

T = TypeVar("T")


@dataclass
class Tries:
    """How many attempts a call has made (read it also when the call failed for good)."""

    count: int = 0


async def with_retries(
    attempt: Callable[[], Awaitable[T]], *, max_attempts: int, rate_limit_retries: int, tries: Tries
) -> T:
    """The result of the first attempt that succeeds; raises the last ProviderError."""
    tries.count = 1
    try:
        return await attempt()
    except ProviderError as first:
        if not first.retryable:
            raise
        failures = {
            "other": int(first.kind != "rate_limited"),
            "rate_limited": int(first.kind == Kind.RATE_LIMITED),
        }
        if failures["other"] >= max_attempts or failures["rate_limited"] > rate_limit_retries:
            raise  # max_attempts: 1 is one attempt

        def stop(state) -> bool:
            exc = state.outcome.exception()
            kind = "rate_limited" if getattr(exc, "kind", "") == "rate_limited" else "other"
            failures[kind] += 1
            return (
                failures["other"] >= max_attempts or failures["rate_limited"] > rate_limit_retries
            )

        await asyncio.sleep(wait_for(first, 1))
        retrying = AsyncRetrying(
            stop=stop, wait=_wait, retry=retry_if_exception(_retryable), reraise=True
        )
        async for retry in retrying:
            with retry:
                tries.count += 1
                result = await attempt()
        return result


def wait_for(exc: BaseException | None, attempt_number: int) -> float:
    """Honour Retry-After when the provider gives one, else exponential backoff with full jitter."""
    if isinstance(exc, ProviderError) and exc.retry_after is not None:
        return exc.retry_after * (1 + 0.1 * random.random())
    return random.uniform(0, min(30.0, 0.5 * 2 ** (attempt_number - 1)))


def _wait(retry_state) -> float:
    return wait_for(retry_state.outcome.exception(), retry_state.attempt_number + 1)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ProviderError) and exc.retryable
