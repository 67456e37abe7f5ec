"""Model providers behind one small interface: `await provider.complete(request) -> Completion`.

Each provider module turns a `Request` into one API call and maps every failure to a
`ProviderError` (kind, retryable, retry_after). Retries, limits and budgets live in the runner,
so one policy governs every provider; the SDKs' own retries are off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..callkinds import FATAL_KINDS, ITEM_KINDS, LANE_FATAL_KINDS, Kind
from ..config import ProviderConfig
from ..sealed import Sealed


@dataclass(slots=True)
class Request:
    item_id: str
    model: str
    messages: list  # of (role, str | Sealed)
    params: dict
    timeout_s: float


@dataclass(frozen=True, slots=True)
class Advertised:
    """What a response's headers say about the key: its per-minute limits, and how many requests it
    has left until its count is full again (OpenAI's `x-ratelimit-remaining/reset-requests`,
    Anthropic's equivalents). The remaining count is what lets several processes on one key pace
    themselves."""

    rpm: float | None = None
    tpm: float | None = None
    remaining: int | None = None  # requests left ...
    # ... until the window or bucket is full again, in seconds from now
    reset_s: float | None = None


@dataclass(slots=True)
class Completion:
    """An answer as every road hands it on. Made only from what can be stored and counted: an
    answer whose text is not a string of valid Unicode without NUL (JSON's \\u escapes can spell
    both), or whose token counts are not whole numbers in range, is a `bad_response`, worth
    asking again, never a store write that fails or a cost that is negative."""

    text: str
    finish_reason: str | None
    input_tokens: int
    output_tokens: int
    latency_s: float
    limits: Advertised | None = None  # what the provider advertised about its limits, if anything
    # the response's own model id (checked to look like one: it is stored as is)
    served_model: str | None = None
    # who a gateway passed the request on to, where it says (same check)
    upstream: str | None = None

    def __post_init__(self):
        _storable(self.text, "text")
        if self.finish_reason is not None:
            _storable(self.finish_reason, "finish reason")
        self.input_tokens = _token_count(self.input_tokens, "input token count")
        self.output_tokens = _token_count(self.output_tokens, "output token count")


MAX_TOKENS_PER_CALL = 10**9  # no provider means a larger count for one call


def _storable(value, what: str) -> None:
    if not isinstance(value, str):
        raise _unreadable(f"the answer's {what} is not a string")
    if "\0" in value:
        raise _unreadable(f"the answer's {what} holds a NUL character")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _unreadable(
                f"the answer's {what} is not valid Unicode (a lone surrogate)"
            ) from None


def _token_count(value, what: str) -> int:
    whole = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and 0 <= value <= MAX_TOKENS_PER_CALL  # False for NaN
        and value == int(value)
    )
    if not whole:
        raise _unreadable(f"the answer's {what} is not a whole number from 0 to 10^9")
    return int(value)


def _unreadable(detail: str) -> ProviderError:
    return ProviderError(Kind.BAD_RESPONSE, detail, retryable=True)


_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}")


def model_id(value) -> str | None:
    """A served model id as the response states it, if it looks like an id (a provider cannot plant
    text here)."""
    return value if isinstance(value, str) and _MODEL_ID.fullmatch(value) else None


class ProviderError(Exception):
    """A failed call. `detail` never contains request or response bodies (they can echo held-out
    text)."""

    def __init__(
        self,
        kind: Kind | str,
        detail: str = "",
        *,
        retryable: bool,
        retry_after: float | None = None,
        status: int | None = None,
        limits: Advertised | None = None,
    ):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind, self.detail, self.retryable = kind, detail, retryable
        self.retry_after, self.status, self.limits = retry_after, status, limits


class Provider:
    """The interface: one async call. Subclasses set up their client in __init__ and close it in
    aclose."""

    def __init__(self, config: ProviderConfig):
        self.config = config

    async def complete(self, request: Request) -> Completion:  # pragma: no cover - interface
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


__all__ = [
    "Request",
    "Completion",
    "Provider",
    "ProviderError",
    "Sealed",
    "Kind",
    "FATAL_KINDS",
    "LANE_FATAL_KINDS",
    "ITEM_KINDS",
]
