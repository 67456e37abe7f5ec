"""Per-provider pacing: a concurrency window, a request rate, a token budget, and backing off together
when the provider says 429.

One Pacer is shared by every call to a provider. Requests and tokens (prompt estimate +
max_tokens, as OpenAI counts them) are both paced evenly, with no burst, because per-minute limits
are enforced in short slices. The rate it keeps is the lowest it knows of:
- the `rpm`/`tpm` in the config;
- the limit the provider advertises on every response (`x-ratelimit-limit-requests` from OpenAI,
  `anthropic-ratelimit-requests-limit` from Anthropic), paced at 99% of it, and 3% lower after
  each 429 (a key shared with another run);
- after 429s that say a limit (10 of the last 50 answers; fewer are a gateway's sporadic hiccups,
  which only the refused request waits out), 95% of the rate at which requests were being
  accepted, not counting our own pauses, raised by 1% per second of success up to that rate and
  5% per second beyond it, so an unadvertised limit is approached without bursts.
When nothing is known yet, the window ramps up in time, not in round trips: it grows evenly from 8
to the configured concurrency over 200 ms, whatever the latency, and stops growing at the first
429 or as soon as a limit is advertised. Even, because requests sent in a burst come back in a
burst, and the burst then repeats every round trip (bench/README.md). A 429 that says a limit
also pauses every sender until its Retry-After has passed.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque


class Pacer:
    INITIAL_WINDOW = 8
    RAMP_S = 0.2         # while nothing is known, the window grows to full over this many seconds
    HEADROOM = 0.99      # fraction of an advertised limit that we use ...
    CUT_ADVERTISED = 0.97  # ... made smaller by this factor at each 429 all the same
    PAUSE_MARGIN_S = 0.01  # Retry-After is rounded: a request sent a millisecond early is a wasted 429
    CUT = 0.95           # rate cap after an unadvertised 429, as a fraction of the recent success rate
    GROWTH_NEAR = 0.01   # per second of successes, the cap grows by this fraction of itself up to the
    GROWTH_FAR = 0.05    # rate last accepted, and by this much beyond it (probing for more)
    RECENT = 50          # answers remembered to tell a limit from sporadic 429s ...
    DENSE = 10           # ... a limit: this many 429s among them (a few percent are a gateway's hiccups)

    def __init__(self, concurrency: int, rpm: float | None = None, tpm: float | None = None, *, ramp: bool = True):
        self.max_window = concurrency
        self.in_flight = 0
        self.waiters: deque = deque()
        self.configured_rate = rpm / 60 if rpm else None
        self.advertised = (None, None)      # (rpm, tpm) as last read from the provider's headers
        self.advertised_rate: float | None = None
        self.headroom = self.HEADROOM
        self.adaptive_rate: float | None = None
        self.last_accepted = 0.0
        self.configured_tpm = tpm
        self.tpm = tpm
        self.tokens_next_at = 0.0
        self.next_at = 0.0
        self.sent, self.first_sent = 0, None
        self.paused_until = 0.0
        self.rate_limited = 0   # 429s heard
        self.timeouts_in_a_row = 0   # attempts with no answer since the last answer (the runner gives up at a bound)
        self.pauses = 0         # 429 pauses so far: a sender that slept through one queues again
        self.cut_until = 0.0
        self.successes = deque(maxlen=512)   # times of recent successes: the rate the provider accepts
        self.recent_429s = deque(maxlen=self.RECENT)   # per recent answer: was it a 429?
        self.pause_log: deque = deque(maxlen=64)       # (start, end) of pauses: not time the provider refused us
        # Ramp only when the config says nothing about limits; a declared rpm/tpm paces from the start.
        self.ramping = ramp and not (rpm or tpm) and concurrency > self.INITIAL_WINDOW
        self.window = float(self.INITIAL_WINDOW if self.ramping else concurrency)
        self.ramp_started: float | None = None
        self.ramp_timer: asyncio.TimerHandle | None = None

    def rate(self) -> float | None:
        rates = [r for r in (self.configured_rate, self.advertised_rate, self.adaptive_rate) if r]
        return min(rates) if rates else None

    def report(self) -> dict:
        """How the run was paced, for the summary: the rate at the end, what set it, and the 429s heard."""
        sources = {"the config's rpm": self.configured_rate, "the provider's advertised limit": self.advertised_rate,
                   "429s (the limit was not advertised)": self.adaptive_rate}
        known = {name: rate for name, rate in sources.items() if rate}
        paced_by = min(known, key=known.get) if known else None
        return {"rate_limited": self.rate_limited, "paced_by": paced_by,
                "requests_per_s": round(known[paced_by], 2) if paced_by else None}

    async def acquire(self, tokens: int = 0) -> None:
        """Wait until one more request (of about `tokens` tokens) may be sent. Pair with `release`."""
        if self.ramping and self.ramp_started is None:
            self.ramp_started = time.monotonic()
        while self.in_flight >= int(self.window):
            fut = asyncio.get_running_loop().create_future()
            self.waiters.append(fut)
            self._schedule_ramp()
            await fut
        self.in_flight += 1
        try:
            while True:
                pauses = self.pauses
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
                    await self._take_tokens(tokens)
                if pauses == self.pauses:
                    break   # else a 429 came while we waited for our slot: queue again behind its pause
            self.sent += 1
            if self.first_sent is None:
                self.first_sent = time.monotonic()
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self.release_slack()

    # -- what the provider tells us -------------------------------------------------
    def on_success(self) -> None:
        self.successes.append(time.monotonic())
        self.recent_429s.append(False)
        if not self.ramping and self.window < self.max_window:   # additive increase after a 429
            self.window = min(self.max_window, self.window + 1.0 / self.window)
            self.release_slack()
        if self.adaptive_rate:
            growth = self.GROWTH_NEAR if self.adaptive_rate < self.last_accepted else self.GROWTH_FAR
            self.adaptive_rate *= 1 + growth / max(1.0, self.adaptive_rate)

    def limit_reached(self) -> bool:
        """Whether the 429 just heard says a limit: one is known (advertised, or found before), or DENSE of the
        last RECENT answers were 429s. Else it is a gateway's sporadic hiccup, which only its request waits out."""
        return (self.advertised_rate is not None or self.adaptive_rate is not None
                or sum(self.recent_429s) >= self.DENSE)

    def on_rate_limited(self, retry_after: float | None) -> None:
        """A 429. Sporadic ones: only that request waits (the runner honours its Retry-After). Once they say
        a limit, everyone waits out Retry-After; the ramp stops and the rate drops (once per pause: a burst
        of 429s is one signal)."""
        now = time.monotonic()
        self.rate_limited += 1
        self.recent_429s.append(True)
        if not self.limit_reached():
            return
        if retry_after:
            if now >= self.paused_until:
                self.pause_log.append((now, now + retry_after + self.PAUSE_MARGIN_S))
            else:
                self.pause_log[-1] = (self.pause_log[-1][0], max(self.paused_until, now + retry_after + self.PAUSE_MARGIN_S))
            self.paused_until = max(self.paused_until, now + retry_after + self.PAUSE_MARGIN_S)
            self.next_at = self.paused_until   # the paced schedules restart after the pause
            self.tokens_next_at = max(self.tokens_next_at, self.paused_until)
            self.pauses += 1
        if self.ramping:
            self._end_ramp(window=max(1, self.in_flight))
        if now < self.cut_until:
            return
        self.cut_until = max(self.paused_until, now + 0.5)
        if self.advertised_rate:   # over an advertised limit: someone else shares the key, or clocks differ
            self.headroom *= self.CUT_ADVERTISED
            self._pace_to_advertised()
            return
        accepted = self.success_rate()
        if accepted:
            self.last_accepted = accepted
            self.adaptive_rate = accepted * self.CUT

    def on_advertised(self, rpm: float | None, tpm: float | None) -> None:
        """The provider's own limits, read from response headers: pace to them, and open the window."""
        if (rpm, tpm) == self.advertised:   # every response says it again
            return
        first = self.advertised_rate is None
        self.advertised = (rpm, tpm)
        self._pace_to_advertised()
        if first and self.advertised_rate and self.first_sent is not None:
            # count what was sent before we knew: the provider's window has seen those already
            self.next_at = max(self.next_at, self.first_sent + self.sent / self.advertised_rate)
        if self.ramping:
            self._end_ramp(window=self.max_window)

    def _pace_to_advertised(self) -> None:
        """Request and token rates from the advertised limits, at the current headroom."""
        rpm, tpm = self.advertised
        self.advertised_rate = rpm / 60 * self.headroom if rpm else None
        if tpm and not self.configured_tpm:
            self.tpm = tpm * self.headroom

    def success_rate(self) -> float | None:
        """Successes per second over the last two seconds, not counting time everyone was paused (the pauses
        are ours: counting them would measure our own waiting as the provider's limit)."""
        now = time.monotonic()
        recent = [t for t in self.successes if now - t <= 2.0]
        if len(recent) < 4:
            return None
        start = recent[0]
        paused = sum(max(0.0, min(end, now) - max(begin, start)) for begin, end in self.pause_log)
        return len(recent) / max(0.25, now - start - paused)

    # -- internals ---------------------------------------------------------------------
    async def _take_tokens(self, tokens: int) -> None:
        """Tokens are paced like requests, with no burst: each request's turn comes `tokens` / (tpm/60)
        seconds after the previous one's, so a per-minute limit enforced in one-second slices holds,
        however large max_tokens is."""
        now = time.monotonic()
        slot = max(now, self.tokens_next_at)
        self.tokens_next_at = slot + tokens / (self.tpm / 60)
        if slot > now:
            await asyncio.sleep(slot - now)

    def _schedule_ramp(self) -> None:
        """While ramping, one timer widens the window when it next grows by a whole place."""
        if not self.ramping or self.ramp_timer is not None:
            return
        places = int(self.window) + 1
        at = self.ramp_started + self.RAMP_S * (places - self.INITIAL_WINDOW) / self._ramp_span
        self.ramp_timer = asyncio.get_running_loop().call_later(max(0.0, at - time.monotonic()), self._grow)

    @property
    def _ramp_span(self) -> int:
        return self.max_window - self.INITIAL_WINDOW

    def _grow(self) -> None:
        self.ramp_timer = None
        if not self.ramping:
            return
        elapsed = time.monotonic() - self.ramp_started
        self.window = min(self.max_window, self.INITIAL_WINDOW + self._ramp_span * elapsed / self.RAMP_S)
        if self.window >= self.max_window:
            self.ramping = False
        self.release_slack()
        if self.waiters:
            self._schedule_ramp()

    def _end_ramp(self, window: float) -> None:
        self.ramping = False
        self.window = float(min(self.max_window, window))
        if self.ramp_timer is not None:
            self.ramp_timer.cancel()
            self.ramp_timer = None
        self.release_slack()

    def release_slack(self) -> None:
        """Wake as many waiting senders as the window has free places."""
        free = int(self.window) - self.in_flight
        while free > 0 and self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                free -= 1
