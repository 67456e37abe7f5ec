"""Per-provider pacing: a concurrency window, requests and tokens per minute, and backing off together
when the provider says 429.

One Pacer is shared by every call to a provider. Two adaptive controls keep a run at the rate the
provider allows, even when nobody told us that rate, without hammering it:
- a concurrency window with slow start (TCP-like: it begins small and grows by one per success, so
  it doubles every round trip up to the configured concurrency); after the first 429 it grows by
  about one per round trip instead, so an unknown limit is approached without a burst;
- a rate cap set on a 429 just below the rate at which requests were succeeding, raised by 2% per
  second of success.
A 429 also pauses every sender until its Retry-After has passed.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque


class Pacer:
    INITIAL_WINDOW = 8
    CUT = 0.93           # rate cap after a 429, as a fraction of the recent success rate
    GROWTH = 0.02        # per success: the cap grows by 2% of itself per second of successes

    def __init__(self, concurrency: int, rpm: float | None = None, tpm: float | None = None):
        self.max_window = concurrency
        self.window = float(min(concurrency, self.INITIAL_WINDOW))
        self.slow_start = self.window < concurrency
        self.in_flight = 0
        self.waiters: deque = deque()
        self.fixed_rate = rpm / 60 if rpm else None
        self.adaptive_rate: float | None = None
        self.tpm = tpm
        self.tokens = float(tpm) if tpm else 0.0
        self.tokens_at = time.monotonic()
        self.next_at = 0.0
        self.paused_until = 0.0
        self.cut_until = 0.0
        self.successes = deque(maxlen=512)   # times of recent successes: the rate the provider accepts

    def rate(self) -> float | None:
        rates = [r for r in (self.fixed_rate, self.adaptive_rate) if r]
        return min(rates) if rates else None

    async def acquire(self, tokens: int = 0) -> None:
        """Wait until one more request (of about `tokens` tokens) may be sent. Pair with `release`."""
        while self.in_flight >= int(self.window):
            fut = asyncio.get_running_loop().create_future()
            self.waiters.append(fut)
            await fut
        self.in_flight += 1
        try:
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
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self.release_slack()

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

    def success_rate(self) -> float | None:
        """Successes per second over the last two seconds."""
        now = time.monotonic()
        recent = [t for t in self.successes if now - t <= 2.0]
        if len(recent) < 4:
            return None
        return len(recent) / max(0.25, now - recent[0])

    def on_rate_limited(self, retry_after: float | None) -> None:
        """A 429: everyone waits out Retry-After; window and rate drop (once per pause: a burst is one signal)."""
        now = time.monotonic()
        if retry_after:
            self.paused_until = max(self.paused_until, now + retry_after)
        if now < self.cut_until:
            return
        self.cut_until = max(self.paused_until, now + 0.5)
        self.slow_start = False   # the window stops doubling; the rate cap below does the pacing
        accepted = self.success_rate()
        if accepted:
            self.adaptive_rate = accepted * self.CUT

    def on_success(self) -> None:
        self.successes.append(time.monotonic())
        if self.window < self.max_window:
            self.window = min(self.max_window, self.window + (1.0 if self.slow_start else 1.0 / self.window))
            self.release_slack()
        if self.adaptive_rate:
            self.adaptive_rate += self.GROWTH

    def release_slack(self) -> None:
        """Wake as many waiting senders as the window has free places."""
        free = int(self.window) - self.in_flight
        while free > 0 and self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                free -= 1
