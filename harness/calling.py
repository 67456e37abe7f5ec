"""The calls of a run or of a grading's judges: online ones through the engine (runner.py),
those of a provider in batch mode through its Batch API (batches.py), at once, as one outcome."""

from __future__ import annotations

import asyncio

from .batches import BatchDriver
from .runlock import batch_lock
from .runner import Outcome, Runner
from .workers import Claims


async def calls(
    run_id: str,
    jobs,
    models,
    *,
    store,
    budget,
    progress,
    on_sent,
    wait: bool = True,
    role: str = "model",
) -> Outcome:
    """Every call of these models (a run's, or a grader's judges'): online ones through the
    engine, batch-mode ones through their Batch API, at once; then, for a provider whose batches'
    failures are retried online, those calls online."""
    batched = [m for m in models if m.provider.mode == "batch"]
    online = [m for m in models if m.provider.mode != "batch"]
    # several workers on a shared store: each leases the jobs it calls
    claims = Claims.join(store, run_id) if store.shared and online else None

    def runner(chosen):
        return Runner(
            run_id,
            jobs,
            chosen,
            store=store,
            budget=budget,
            progress=progress,
            on_sent=on_sent,
            role=role,
            claims=claims,
        )

    first = runner(online)
    if not batched:
        return await first.run()
    driver = BatchDriver(
        run_id,
        jobs,
        batched,
        store=store,
        budget=budget,
        progress=progress,
        on_sent=on_sent,
        wait=wait,
        role=role,
    )
    driver.stopping = first.stopping  # Ctrl-C stops both
    with batch_lock(store, run_id):
        outcome, b = await asyncio.gather(first.run(), driver.run())
    retry_online = [m for m in batched if m.provider.batch.failed == "online"]
    if retry_online and not b.in_flight and not outcome.interrupted:
        later = await runner(retry_online).run()
        outcome = _merged(outcome, later)
    outcome.batches = b
    return _counted(outcome, b)


def _counted(a: Outcome, b) -> Outcome:
    """`a` with the calls of `b` (another engine pass, or the batches) counted in."""
    for k in ("calls_made", "ok", "errors", "not_started", "cost_usd"):
        setattr(a, k, getattr(a, k) + getattr(b, k))
    for counts, more in ((a.error_kinds, b.error_kinds), (a.given_up, b.given_up)):
        for k, n in more.items():
            counts[k] = counts.get(k, 0) + n
    a.dead_providers.update(b.dead_providers)
    a.budget_stop |= b.budget_stop
    return a


def _merged(a: Outcome, b: Outcome) -> Outcome:
    """Two engine passes of one run as one."""
    a.pacing.update(b.pacing)
    a.interrupted |= b.interrupted
    return _counted(a, b)
