"""Per-provider pacing: a concurrency window, a request rate, a token budget, and backing off
together when the provider says 429.

One Pacer is shared by every call to a provider. Requests and tokens (prompt estimate +
max_tokens, as OpenAI counts them) are both paced evenly, with no burst, because per-minute limits
are enforced in short slices. The rate it keeps is the lowest it knows of:
- the `rpm`/`tpm` in the config;
- the limit the provider advertises on every response (`x-ratelimit-limit-requests` from OpenAI,
  `anthropic-ratelimit-requests-limit` from Anthropic), paced at 99% of it, and 3% lower after
  each 429 when the provider gives no count of what is left;
- on a key this machine's other processes use too, one schedule: every request's send time is
  reserved on the key lane (keylane.py), so they keep the rate together and a process that joins
  is paced at once;
- on a key processes elsewhere use too, our share of that limit: two counts of requests left in one
  window (`x-ratelimit-remaining-requests` + `-reset-requests`, Anthropic's `-remaining`/`-reset`)
  say how much the whole key spent between them, and the part we did not send is others'. Measured
  over the last second, our share is what we spend of all; each process pacing to its share puts
  the key's total at the limit within a step, and once a count (less what was since sent) runs
  out, we wait for its reset;
- after 429s that say a limit (10 of the last 50 answers; fewer are a gateway's sporadic hiccups,
  which only the refused request waits out), 95% of the rate at which requests were being
  accepted, not counting our own pauses, raised by 1% per second of success up to that rate and
  5% per second beyond it, so an unadvertised limit is approached without bursts.
When nothing is known yet, the window ramps up in time, not in round trips: it grows evenly from 4
to the configured concurrency over 200 ms, whatever the latency, and stops growing at the first
429 or as soon as a limit is advertised. Even, because requests sent in a burst come back in a
burst, and the burst then repeats every round trip (bench/README.md). A 429 that says a limit
also pauses every sender until its Retry-After has passed.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

from .keylane import KeyLane
from .providers import Advertised


@dataclass(frozen=True, slots=True)
class Quota:
    """The provider's count of requests this key has left, as one response stated it."""

    remaining: int
    ends_at: float  # when the count is full again (monotonic)
    seen_at: float
    # the number of our request it answered (on the key lane, if any): it counts ours up to it
    sent_then: int


class Pacer:
    INITIAL_WINDOW = 4
    RAMP_S = 0.2  # while nothing is known, the window grows to full over this many seconds
    HEADROOM = 0.99  # fraction of an advertised limit that we use ...
    CUT_ADVERTISED = 0.97  # ... made smaller by this factor at each 429 all the same
    # Retry-After is rounded: a request sent a millisecond early is a wasted 429
    PAUSE_MARGIN_S = 0.01
    CUT = 0.95  # rate cap after an unadvertised 429, as a fraction of the recent success rate
    # per second of successes, the cap grows by this fraction of itself up to the rate last
    # accepted (NEAR), and by this much beyond it (FAR: probing for more)
    GROWTH_NEAR = 0.01
    GROWTH_FAR = 0.05
    RECENT = 50  # answers remembered to tell a limit from sporadic 429s ...
    DENSE = 10  # ... a limit: this many 429s among them (a few percent are a gateway's hiccups)
    # two counts whose resets are this close are of one window (latency moves them)
    SAME_WINDOW_S = 0.05
    # our share of the key is measured over this long: long enough to average out a window's
    # counts, short enough to notice within a second that another process is done
    SHARE_HORIZON_S = 1.0
    # others' requests over that horizon below this many, or this fraction of the key's, are noise
    SHARE_NOISE = 2
    SHARE_NOISE_FRACTION = 0.1

    def __init__(
        self,
        concurrency: int,
        rpm: float | None = None,
        tpm: float | None = None,
        *,
        ramp: bool = True,
        key_lane: KeyLane | None = None,
    ):
        self.max_window = concurrency
        # the key's schedule shared with this machine's other processes, if any
        self.key_lane = key_lane
        self.in_flight = 0
        self.waiters: deque = deque()
        self.configured_rate = rpm / 60 if rpm else None
        self.advertised = (None, None)  # (rpm, tpm) as last read from the provider's headers
        self.advertised_rate: float | None = None
        self.headroom = self.HEADROOM
        self.adaptive_rate: float | None = None
        self.last_accepted = 0.0
        self.configured_tpm = tpm
        self.tpm = tpm
        self.tokens_next_at = 0.0
        self.next_at = 0.0
        self.sent, self.first_sent = 0, None
        # the last request's number on the key lane (this machine's processes), else ours
        self.key_sent = 0
        self.paused_until = 0.0
        self.rate_limited = 0  # 429s heard
        # attempts with no answer since the last answer (the runner gives up at a bound)
        self.timeouts_in_a_row = 0
        self.pauses = 0  # 429 pauses so far: a sender that slept through one queues again
        self.cut_until = 0.0
        # times of recent successes: the rate the provider accepts
        self.successes = deque(maxlen=512)
        self.recent_429s = deque(maxlen=self.RECENT)  # per recent answer: was it a 429?
        # (start, end) of pauses: not time the provider refused us
        self.pause_log: deque = deque(maxlen=64)
        # Ramp only when the config says nothing about limits; a declared rpm/tpm paces from the
        # start.
        self.ramping = ramp and not (rpm or tpm) and concurrency > self.INITIAL_WINDOW
        self.window = float(self.INITIAL_WINDOW if self.ramping else concurrency)
        self.ramp_started: float | None = None
        self.ramp_timer: asyncio.TimerHandle | None = None
        self.quota: Quota | None = None
        # (at, seconds, spent by all, spent by us) between two counts; bounded, as it is summed at
        # every send
        self.counted: deque = deque(maxlen=64)

    def rate(self, share: float | None = None) -> float | None:
        """The lowest rate we know of; `share` is ours of a key others use too (key_share, if not
        given)."""
        if share is None:
            share = self.key_share(time.monotonic())[0]
        rates = [
            r
            for r in (
                self.configured_rate,
                self.advertised_rate,
                self.adaptive_rate,
                self._quota_rate(share),
            )
            if r
        ]
        return min(rates) if rates else None

    def report(self) -> dict:
        """How the run was paced, for the summary: the rate at the end, what set it, and the 429s
        heard."""
        sources = {
            "the config's rpm": self.configured_rate,
            "the provider's advertised limit": self.advertised_rate,
            "429s (the limit was not advertised)": self.adaptive_rate,
            "our share of a key others use too": self._quota_rate(
                self.key_share(time.monotonic())[0]
            ),
        }
        known = {name: rate for name, rate in sources.items() if rate}
        paced_by = min(known, key=known.get) if known else None
        return {
            "rate_limited": self.rate_limited,
            "paced_by": paced_by,
            "requests_per_s": round(known[paced_by], 2) if paced_by else None,
        }

    async def acquire(self, tokens: int = 0) -> int:
        """Wait until one more request (of about `tokens` tokens) may be sent; its number among our
        requests, or on the key lane where this machine's processes share one (pass it back with
        what its response says). Pair with `release`."""
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
                share, others = self.key_share(now)  # once per turn: it sums the recent counts
                wait_until = max(self.paused_until, self._quota_spent_until(now, share, others))
                if wait_until > now:
                    await asyncio.sleep(wait_until - now)
                    now = time.monotonic()
                rate = self.rate(share)
                if self.key_lane is not None:
                    reserved = self.key_lane.reserve(1.0 / rate if rate else None)
                    slot, number = reserved.at, reserved.number
                    self.key_sent = max(self.key_sent, number)
                elif rate:
                    slot = max(now, self.next_at)
                    self.next_at = slot + 1.0 / rate
                else:
                    slot = now
                if slot > (now := time.monotonic()):  # (a free slot is not a reason to yield)
                    await asyncio.sleep(slot - now)
                if self.tpm and tokens:
                    await self._take_tokens(tokens)
                if pauses == self.pauses and not self._quota_spent_until(
                    time.monotonic(), share, others
                ):
                    # else a 429 came, or the key's count ran out, while we waited: queue again
                    break
            self.sent += 1
            if self.key_lane is None:
                self.key_sent = number = self.sent
            if self.first_sent is None:
                self.first_sent = time.monotonic()
        except BaseException:
            self.release()
            raise
        return number

    def release(self) -> None:
        self.in_flight -= 1
        self.release_slack()

    # -- what the provider tells us -------------------------------------------------
    def on_success(self) -> None:
        self.successes.append(time.monotonic())
        self.recent_429s.append(False)
        if not self.ramping and self.window < self.max_window:  # additive increase after a 429
            self.window = min(self.max_window, self.window + 1.0 / self.window)
            self.release_slack()
        if self.adaptive_rate:
            growth = (
                self.GROWTH_NEAR if self.adaptive_rate < self.last_accepted else self.GROWTH_FAR
            )
            self.adaptive_rate *= 1 + growth / max(1.0, self.adaptive_rate)

    def limit_reached(self) -> bool:
        """Whether the 429 just heard says a limit: one is known (advertised, or found before), or
        DENSE of the last RECENT answers were 429s. Else it is a gateway's sporadic hiccup, which
        only its request waits out."""
        return (
            self.advertised_rate is not None
            or self.adaptive_rate is not None
            or sum(self.recent_429s) >= self.DENSE
        )

    def on_rate_limited(self, retry_after: float | None) -> None:
        """A 429. Sporadic ones: only that request waits (the runner honours its Retry-After). Once
        they say a limit, everyone waits out Retry-After; the ramp stops and the rate drops (once
        per pause: a burst of 429s is one signal)."""
        now = time.monotonic()
        self.rate_limited += 1
        self.recent_429s.append(True)
        if not self.limit_reached():
            return
        if retry_after:
            if now >= self.paused_until:
                self.pause_log.append((now, now + retry_after + self.PAUSE_MARGIN_S))
            else:
                self.pause_log[-1] = (
                    self.pause_log[-1][0],
                    max(self.paused_until, now + retry_after + self.PAUSE_MARGIN_S),
                )
            self.paused_until = max(self.paused_until, now + retry_after + self.PAUSE_MARGIN_S)
            self.next_at = self.paused_until  # the paced schedules restart after the pause
            if self.key_lane is not None:
                self.key_lane.hold_until(self.paused_until)
            self.tokens_next_at = max(self.tokens_next_at, self.paused_until)
            self.pauses += 1
        if self.ramping:
            self._end_ramp(window=max(1, self.in_flight))
        if now < self.cut_until:
            return
        self.cut_until = max(self.paused_until, now + 0.5)
        # over an advertised limit: someone else shares the key, or clocks differ
        if self.advertised_rate:
            if self.quota is None:  # (the key's count, where given, says how much the others take)
                self.headroom *= self.CUT_ADVERTISED
            self._pace_to_advertised()
            return
        accepted = self.success_rate()
        if accepted:
            self.last_accepted = accepted
            self.adaptive_rate = accepted * self.CUT

    def on_advertised(self, advertised: Advertised | None, *, request: int) -> None:
        """What the response to our `request`-th request said in its headers: the limits, and the
        count of requests left (which counts ours up to that one, and none sent after it)."""
        if advertised is None:
            return
        if advertised.rpm or advertised.tpm:
            self._on_limits(advertised.rpm, advertised.tpm)
        if advertised.remaining is not None:
            self._on_quota(advertised.remaining, advertised.reset_s, request)

    def _on_limits(self, rpm: float | None, tpm: float | None) -> None:
        """The provider's own limits: pace to them, and open the window."""
        if (rpm, tpm) == self.advertised:  # every response says it again
            return
        first = self.advertised_rate is None
        self.advertised = (rpm, tpm)
        self._pace_to_advertised()
        if first and self.advertised_rate and self.first_sent is not None:
            # count what was sent before we knew: the provider's window has seen those already
            self.next_at = max(self.next_at, self.first_sent + self.sent / self.advertised_rate)
            if self.key_lane is not None:
                self.key_lane.hold_until(self.next_at)
        if self.ramping:
            self._end_ramp(window=self.max_window)

    # -- a key shared with other processes ----------------------------------------------
    def _on_quota(self, remaining: int, reset_s: float, request: int) -> None:
        """A count of requests left until a reset. Two counts of one window tell how much the whole
        key spent between them; what we did not send was spent by others (other processes on the
        key)."""
        now = time.monotonic()
        ends_at, last = now + reset_s, self.quota
        if last is not None and abs(ends_at - last.ends_at) <= self.SAME_WINDOW_S:
            if request < last.sent_then or remaining > last.remaining:
                return  # an older count that arrived late
            if now > last.seen_at and remaining > 0:  # a spent count stays at 0 whatever is sent
                self.counted.append(
                    (now, now - last.seen_at, last.remaining - remaining, request - last.sent_then)
                )
        self.quota = Quota(remaining=remaining, ends_at=ends_at, seen_at=now, sent_then=request)

    def key_share(self, now: float) -> tuple[float, float]:
        """(our share of what the key spends, others' requests per second), over the last
        SHARE_HORIZON_S. Alone, or not yet known: (1, 0)."""
        recent = [c for c in self.counted if now - c[0] <= self.SHARE_HORIZON_S]
        seconds, spent, ours = (sum(c[i] for c in recent) for i in (1, 2, 3))
        if len(recent) < 3 or spent <= 0 or seconds <= 0:
            return 1.0, 0.0
        if spent - ours <= max(self.SHARE_NOISE, self.SHARE_NOISE_FRACTION * spent):
            # within what counts of whole requests, each read a latency after its send, differ by
            # alone: several workers on one key lane (whose numbers count them all) saw shares of
            # 0.71-0.97 from this noise, and each such share spaced the whole lane wider
            return 1.0, 0.0
        return min(1.0, max(0.05, ours / spent)), max(0.0, (spent - ours) / seconds)

    def _quota_spent_until(self, now: float, share: float, others: float) -> float:
        """When the key's count is full again, if it has nothing left now: the last count, less what
        we sent since and what the others (at `others` per second) did; else 0. Alone, the limit
        paces us."""
        q = self.quota
        if share >= 1 or q is None or now >= q.ends_at:
            return 0.0
        left = q.remaining - (self.key_sent - q.sent_then) - others * (now - q.seen_at)
        return q.ends_at + self.PAUSE_MARGIN_S if left < 1 else 0.0

    def _quota_rate(self, share: float) -> float | None:
        """Our share of the advertised limit, when others spend from the same key."""
        return self.advertised_rate * share if self.advertised_rate and share < 1 else None

    def _pace_to_advertised(self) -> None:
        """Request and token rates from the advertised limits, at the current headroom."""
        rpm, tpm = self.advertised
        self.advertised_rate = rpm / 60 * self.headroom if rpm else None
        if tpm and not self.configured_tpm:
            self.tpm = tpm * self.headroom

    def success_rate(self) -> float | None:
        """Successes per second over the last two seconds, not counting time everyone was paused
        (the pauses are ours: counting them would measure our own waiting as the provider's
        limit)."""
        now = time.monotonic()
        recent = [t for t in self.successes if now - t <= 2.0]
        if len(recent) < 4:
            return None
        start = recent[0]
        paused = sum(max(0.0, min(end, now) - max(begin, start)) for begin, end in self.pause_log)
        return len(recent) / max(0.25, now - start - paused)

    # -- internals ---------------------------------------------------------------------
    async def _take_tokens(self, tokens: int) -> None:
        """Tokens are paced like requests, with no burst: each request's turn comes `tokens` /
        (tpm/60) seconds after the previous one's, so a per-minute limit enforced in one-second
        slices holds, however large max_tokens is."""
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
        self.ramp_timer = asyncio.get_running_loop().call_later(
            max(0.0, at - time.monotonic()), self._grow
        )

    @property
    def _ramp_span(self) -> int:
        return self.max_window - self.INITIAL_WINDOW

    def _grow(self) -> None:
        self.ramp_timer = None
        if not self.ramping:
            return
        elapsed = time.monotonic() - self.ramp_started
        self.window = min(
            self.max_window, self.INITIAL_WINDOW + self._ramp_span * elapsed / self.RAMP_S
        )
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
