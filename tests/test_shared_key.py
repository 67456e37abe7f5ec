"""A key shared with other processes: the counts of requests left say how much the others spend, and
the pacer keeps to its share. Driven with the counts a provider would send (the cross-process
figures are in bench/shared_key.py: timing on a loaded machine is not a test's business)."""

from __future__ import annotations

import asyncio
import time

import pytest

from harness.limits import Pacer
from harness.providers import Advertised


def count(remaining: int, reset_s: float) -> Advertised:
    return Advertised(rpm=1200, remaining=remaining, reset_s=reset_s)


async def send_and_count(pacer: Pacer, remaining: int, *, window_ends: float) -> int:
    """One request, answered with a count of one window (its reset is the same instant, seen from
    later)."""
    request = await pacer.acquire()
    pacer.release()
    pacer.on_advertised(count(remaining, window_ends - time.monotonic()), request=request)
    pacer.on_success()
    await asyncio.sleep(0.002)
    return request


async def counted(n: int, *, others_each: int, first: int = 1000) -> tuple[Pacer, float]:
    """A pacer after n requests of one window (ending in 5 s), each answered with a count lower by
    one of ours plus `others_each` of other processes'; and when that window ends."""
    pacer, ends = Pacer(16, ramp=False), time.monotonic() + 5
    for k in range(n):
        await send_and_count(pacer, first - (1 + others_each) * k, window_ends=ends)
    return pacer, ends


def test_others_spending_between_our_counts_sets_our_share():
    """Each of our requests is answered with a count 4 lower: three others per one of ours, a
    quarter share."""

    async def go():
        pacer, _ = await counted(8, others_each=3)
        share, others = pacer.key_share(time.monotonic())
        assert share == pytest.approx(0.25)
        assert others > 0
        assert pacer.rate() == pytest.approx(1200 / 60 * 0.99 * 0.25)
        assert pacer.report()["paced_by"] == "our share of a key others use too"

    asyncio.run(go())


def test_alone_on_the_key_the_limit_paces_as_before():
    async def go():
        pacer, _ = await counted(8, others_each=0)
        assert pacer.key_share(time.monotonic()) == (1.0, 0.0)
        assert pacer.rate() == pytest.approx(1200 / 60 * 0.99)
        assert pacer.report()["paced_by"] == "the provider's advertised limit"

    asyncio.run(go())


def test_counts_that_differ_by_noise_alone_leave_us_the_whole_key():
    """Workers on one key lane count every request on the key, so the provider's counts match
    theirs but for whole requests read a latency after they were sent: an extra request or two
    spent beside our twenty is noise, not a process to give way to (each such share, taken as
    news, spaced the whole lane wider). Four beside them (17%) are a process."""

    async def go(extra: int) -> float:
        # no advertised rate: the twenty go at once, well inside the share's one-second horizon
        pacer, ends = Pacer(16, ramp=False), time.monotonic() + 5
        remaining = 1000
        for k in range(21):
            remaining -= 1 + (k > 20 - extra)  # someone else's requests, between our last ones
            request = await pacer.acquire()
            pacer.release()
            left = Advertised(remaining=remaining, reset_s=ends - time.monotonic())
            pacer.on_advertised(left, request=request)
        return pacer.key_share(time.monotonic())[0]

    assert asyncio.run(go(0)) == 1.0
    assert asyncio.run(go(1)) == 1.0 and asyncio.run(go(2)) == 1.0
    assert asyncio.run(go(4)) == pytest.approx(20 / 24)


def test_a_count_that_arrives_late_is_not_news():
    """Answers come back out of order: a count for an earlier request (higher remaining) changes
    nothing."""

    async def go():
        pacer, ends = await counted(6, others_each=3)
        before = list(pacer.counted), pacer.quota
        pacer.on_advertised(count(999, ends - time.monotonic()), request=2)
        assert (list(pacer.counted), pacer.quota) == before

    asyncio.run(go())


def test_a_spent_count_on_a_shared_key_waits_for_its_reset():
    """Others have taken the window: the next request goes after the reset, not into a 429."""

    async def go():
        pacer, _ = await counted(6, others_each=3, first=40)
        # a new window, already spent
        pacer.on_advertised(count(0, reset_s=0.3), request=pacer.sent)
        start = time.monotonic()
        await pacer.acquire()
        pacer.release()
        assert time.monotonic() - start >= 0.3

    asyncio.run(go())


def test_the_share_is_forgotten_once_the_others_stop():
    async def go():
        pacer, _ = await counted(6, others_each=3)
        assert pacer.key_share(time.monotonic())[0] < 1
        assert pacer.key_share(time.monotonic() + pacer.SHARE_HORIZON_S + 0.1) == (1.0, 0.0)

    asyncio.run(go())
