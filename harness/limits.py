"""Per-provider pacing: requests and tokens per minute, and backing off together when the provider says 429.

One Pacer is shared by every call to a provider. Besides the configured limits it keeps an
adaptive rate (AIMD): a 429 pauses all senders until Retry-After and cuts the rate to a fraction
of what was being sent; each success raises it a little. So a run converges to the rate the
provider allows instead of hammering it, even when nobody told us that rate.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque


class Pacer:
    DECREASE = 0.85      # multiplicative decrease on a 429
    RECOVERY_S = 8.0     # seconds of success to grow the rate back by its own size

    def __init__(self, rpm: float | None = None, tpm: float | None = None):
        self.fixed_rate = rpm / 60 if rpm else None        # requests/s, from the config
        self.adaptive_rate: float | None = None             # requests/s, learnt from 429s
        self.tpm = tpm
        self.tokens = float(tpm) if tpm else 0.0
        self.tokens_at = time.monotonic()
        self.next_at = 0.0
        self.paused_until = 0.0
        self.sent = deque(maxlen=256)                        # send times, to measure the current rate
        self.rate_limited = 0

    def rate(self) -> float | None:
        rates = [r for r in (self.fixed_rate, self.adaptive_rate) if r]
        return min(rates) if rates else None

    async def acquire(self, tokens: int = 0) -> None:
        """Wait until one more request (of about `tokens` tokens) may be sent."""
        now = time.monotonic()
        if self.paused_until > now:
            await asyncio.sleep(self.paused_until - now)
            now = time.monotonic()
        rate = self.rate()
        if rate:
            slot = max(now, self.next_at)
            self.next_at = slot + 1.0 / rate
            if slot > now:
                await asyncio.sleep(slot - now)
        if self.tpm and tokens:
            await self._take_tokens(min(tokens, self.tpm))
        self.sent.append(time.monotonic())

    async def _take_tokens(self, tokens: int) -> None:
        per_s = self.tpm / 60
        while True:
            now = time.monotonic()
            self.tokens = min(self.tpm, self.tokens + (now - self.tokens_at) * per_s)
            self.tokens_at = now
            if self.tokens >= tokens:
                self.tokens -= tokens
                return
            await asyncio.sleep((tokens - self.tokens) / per_s)

    def observed_rate(self) -> float | None:
        if len(self.sent) < 8:
            return None
        span = self.sent[-1] - self.sent[0]
        return (len(self.sent) - 1) / span if span > 0 else None

    def on_rate_limited(self, retry_after: float | None) -> None:
        """A 429: everyone waits out Retry-After, and the rate drops below what was being sent."""
        self.rate_limited += 1
        now = time.monotonic()
        if retry_after:
            self.paused_until = max(self.paused_until, now + retry_after)
        # Cut at most once per pause window: a burst of 429s from one overshoot is one signal.
        if now >= getattr(self, "_cut_until", 0.0):
            current = self.adaptive_rate or self.observed_rate()
            if current:
                self.adaptive_rate = current * self.DECREASE
            self._cut_until = now + max(retry_after or 0.0, 0.5)

    def on_success(self) -> None:
        if self.adaptive_rate:
            # additive increase: the rate grows by its own size every RECOVERY_S seconds of success
            self.adaptive_rate += 1.0 / self.RECOVERY_S
