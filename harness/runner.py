"""The concurrency engine: every (item, model, epoch) not yet in the store, called once, within
limits.

Per provider: a producer streams pending jobs into a small queue and `concurrency` workers take
them, pace themselves through the provider's Pacer, retry with tenacity, and hand finished rows
to the store (one commit per event-loop turn). Memory stays flat: items are streamed, outputs go
straight to disk. Ctrl-C stops new calls, lets calls in flight finish for a grace period, saves.
"""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from .budget import Budget
from .config import ModelConfig
from .egress import GATE
from .failpoints import hit
from .jobs import Job, input_bound
from .lanes import Lane, NotSent, plan_lanes
from .providers import (
    FATAL_KINDS,
    ITEM_KINDS,
    LANE_FATAL_KINDS,
    Completion,
    Kind,
    ProviderError,
    Request,
)
from .providers.make import make_provider
from .retries import Tries, with_retries
from .rows import CallRow
from .sealed import reveal
from .store import Store
from .workers import pending


@dataclass
class Outcome:
    calls_made: int = 0  # finished calls this attempt (ok or error)
    ok: int = 0
    errors: int = 0
    not_started: int = 0
    cost_usd: float = 0.0
    interrupted: bool = False
    budget_stop: bool = False
    complete: bool = False  # every call of the run is done (set by `holdout run`)
    # lane name (provider, or provider/model) -> reason
    dead_providers: dict = field(default_factory=dict)
    pacing: dict = field(default_factory=dict)  # lane name -> Pacer.report()
    # error kind -> calls that ended with it this attempt
    error_kinds: dict = field(default_factory=dict)
    given_up: dict = field(default_factory=dict)  # error kind -> providers given up for it
    batches: object = None  # batches.BatchOutcome, when some provider is in batch mode


async def _nothing_to_record(item_id: str, provider: str, model: str, role: str = "model") -> None:
    """A public pool's calls: no exposure ledger."""


class Runner:
    def __init__(
        self,
        run_id: str,
        jobs: Callable[[], Iterable[Job]],
        models: Iterable[ModelConfig],
        *,
        store: Store,
        budget: Budget,
        progress,
        on_sent=None,
        grace_s: float = 10.0,
        role: str = "model",
        claims=None,
    ):
        # role: who is called, for the exposure ledger
        self.run_id, self.jobs, self.role = run_id, jobs, role
        self.models = list(models)
        self.store, self.budget, self.progress = store, budget, progress
        self.on_sent = on_sent or _nothing_to_record
        self.grace_s = grace_s
        self.outcome = Outcome()
        self.stopping = asyncio.Event()
        # the budget admits nothing more: no new call starts, but the calls it admitted are sent
        self.budget_full = asyncio.Event()
        self.done: set = set()
        self._flush_scheduled = False
        self.write_error: Exception | None = None
        self._served_ids: dict[str, str] = {}
        self.claims = claims  # workers.Claims on a shared store: only the jobs leased are called

    # -- public ---------------------------------------------------------------
    async def run(self) -> Outcome:
        self.done = self.store.done_keys(self.run_id)
        by_provider: dict[str, list[ModelConfig]] = {}
        for m in self.models:
            by_provider.setdefault(m.provider.name, []).append(m)
        loop = asyncio.get_running_loop()
        self._install_interrupt(loop)
        providers = {name: make_provider(ms[0].provider) for name, ms in by_provider.items()}
        lanes = [
            lane for name, ms in by_provider.items() for lane in plan_lanes(providers[name], ms)
        ]
        renewing = self.claims and self.claims.keep_alive(store=self.store, progress=self.progress)
        try:
            await asyncio.gather(*(self._drive(lane) for lane in lanes))
        finally:
            self.store.flush()
            if renewing:
                self.claims.leave(renewing)
            await asyncio.gather(*(p.aclose() for p in providers.values()), return_exceptions=True)
            self._remove_interrupt(loop)
        if self.write_error:
            raise self.write_error
        return self.outcome

    # -- per lane -------------------------------------------------------------
    async def _drive(self, lane: Lane) -> None:
        # Twice as many workers as places in flight (the pacer holds in-flight to its window): a
        # call waiting out a Retry-After sleeps in its worker, and must not leave a place in the
        # window empty meanwhile.
        n_workers = 2 * lane.pacer.max_window
        queue: asyncio.Queue = asyncio.Queue(maxsize=n_workers * 2)
        workers = [asyncio.create_task(self._worker(lane, queue)) for _ in range(n_workers)]
        producer = asyncio.create_task(self._produce(queue, lane, len(workers)))
        try:
            await self._supervise({producer, *workers})
        finally:
            self.outcome.pacing[lane.name] = lane.pacer.report()
            if lane.pacer.key_lane is not None:
                lane.pacer.key_lane.close()

    def _given_up(self, lane: Lane) -> bool:
        """Its model failed for good, or its provider's key was refused (recorded under the
        provider's name)."""
        return bool(lane.dead) or lane.provider.config.name in self.outcome.dead_providers

    async def _produce(self, queue: asyncio.Queue, lane: Lane, n_workers: int) -> None:
        async for job in pending(
            self.jobs,
            models=[m.name for m in lane.models],
            done=self.done,
            claims=self.claims,
            store=self.store,
            chunk=max(8, min(64, lane.pacer.max_window)),
            stopped=lambda: self.stopping.is_set() or self.budget_full.is_set(),
        ):
            if self.stopping.is_set() or self.budget_full.is_set() or self._given_up(lane):
                self.outcome.not_started += 1
            else:
                await queue.put(job)
        for _ in range(n_workers):
            await queue.put(None)

    async def _supervise(self, tasks: set) -> None:
        """Wait for producer and workers. A crash in any of them stops the rest and propagates; once
        stopping (Ctrl-C, a provider billing past the cap), calls in flight get `grace_s` seconds
        before they are cancelled. A full budget is not a stop: what it admitted is sent."""
        loop = asyncio.get_running_loop()
        stop_seen = None
        while tasks:
            done, tasks = await asyncio.wait(
                tasks, timeout=0.2, return_when=asyncio.FIRST_EXCEPTION
            )
            failed = [t for t in done if not t.cancelled() and t.exception() is not None]
            if self.stopping.is_set() and stop_seen is None:
                stop_seen = loop.time()
            grace_over = stop_seen is not None and loop.time() - stop_seen >= self.grace_s
            if failed or (tasks and grace_over):
                self.stopping.set()
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                if failed:
                    raise failed[0].exception()
                return

    async def _worker(self, lane: Lane, queue: asyncio.Queue) -> None:
        cfg = lane.provider.config
        while (job := await queue.get()) is not None:
            if self.stopping.is_set() or self.budget_full.is_set() or self._given_up(lane):
                self.outcome.not_started += 1
                continue
            model = job.model
            # a typical count, for pacing
            prompt_tokens = sum(len(reveal(c)) for _, c in job.messages) // 4 + 1
            if job.input_bound is None:
                job.input_bound = input_bound(job.messages)
            worst = model.price.cost(job.input_bound, model.max_tokens) if model.price else 0.0
            if not self.budget.reserve(worst):
                self.outcome.not_started += 1
                self.outcome.budget_stop = True
                self.budget_full.set()
                continue
            request = Request(
                job.item_id, model.model, job.messages, model.request_params(), cfg.timeout_s
            )
            try:
                row = await self._call(lane, request, job, prompt_tokens + model.max_tokens)
            except NotSent:
                self.budget.settle(worst, 0.0)
                self.outcome.not_started += 1
                continue
            # tests: a crash quoting the prompt
            hit("runner.after_call", lambda: reveal(job.messages[-1][1]))
            self.budget.settle(worst, row.cost_usd)
            self._record(row)
            # a provider billed past the cap it was sent: start nothing more
            if self.budget.exhausted_by_spend():
                self.outcome.budget_stop = True
                self.stopping.set()
            self._judge_lane(lane, row)

    def _judge_lane(self, lane: Lane, row: CallRow) -> None:
        """After a call: a key refused stops the provider; a model that keeps failing stops its lane
        only."""
        name = lane.provider.config.name
        if row.ok or row.error_kind in ITEM_KINDS:  # the provider answered; this item is the matter
            lane.consecutive_failures = 0
            return
        lane.consecutive_failures += 1
        if self._given_up(lane):
            return
        if row.error_kind in FATAL_KINDS:
            self.outcome.dead_providers[name] = f"{row.error} from provider '{name}'"
            given_up = self.outcome.given_up
            given_up[row.error_kind] = given_up.get(row.error_kind, 0) + 1
        elif (
            row.error_kind in LANE_FATAL_KINDS
            or lane.consecutive_failures >= lane.provider.config.max_consecutive_failures
        ):
            lane.dead = (
                row.error
                if row.error_kind in LANE_FATAL_KINDS
                else f"{lane.consecutive_failures} calls in a row failed (last: {row.error})"
            )
            self.outcome.dead_providers[lane.name] = lane.dead

    async def _attempt(self, lane: Lane, request: Request, job: Job, tokens: int) -> Completion:
        """One try: wait for the lane's pacer (then the provider's, if it has several lanes), send,
        classify. Raises ProviderError. What the provider says about limits is about this lane."""
        cfg, pacer = lane.provider.config, lane.pacer
        request_number = await lane.acquire(tokens)
        try:
            if self.stopping.is_set() or self._given_up(lane):
                raise NotSent
            # the ledger, before sending
            await self.on_sent(job.item_id, cfg.name, job.model.model, role=self.role)
            try:
                try:
                    # a safety net over the SDK's own timeout
                    async with asyncio.timeout(cfg.timeout_s + 5):
                        c: Completion = await lane.provider.complete(request)
                except TimeoutError:
                    raise ProviderError(
                        Kind.TIMEOUT, "no answer within the timeout", retryable=True
                    ) from None
            except ProviderError as e:
                if e.kind == Kind.TIMEOUT:
                    pacer.timeouts_in_a_row += 1
                    if pacer.timeouts_in_a_row >= cfg.max_consecutive_timeouts:
                        raise ProviderError(
                            Kind.HUNG,
                            f"{pacer.timeouts_in_a_row} attempts in a row got no answer within "
                            f"{cfg.timeout_s:g} s",
                            retryable=False,
                        ) from None
                else:
                    pacer.timeouts_in_a_row = 0
                # first: a 429 before the limit was known is not over it
                if e.kind == Kind.RATE_LIMITED:
                    pacer.on_rate_limited(e.retry_after)
                pacer.on_advertised(e.limits, request=request_number)
                raise
        finally:
            lane.release()
        pacer.timeouts_in_a_row = 0
        pacer.on_advertised(c.limits, request=request_number)
        upstream = self._served(c.upstream)
        # the gateway passed it on: they saw it too
        if upstream and upstream != "(withheld)" and upstream != cfg.name:
            await self.on_sent(
                job.item_id,
                upstream,
                self._served(c.served_model) or job.model.model,
                role="upstream",
            )
        if not c.text and c.finish_reason not in ("content_filter", "refusal"):
            raise ProviderError(Kind.EMPTY, "the completion was empty", retryable=True)
        pacer.on_success()
        return c

    async def _call(self, lane: Lane, request: Request, job: Job, tokens: int) -> CallRow:
        """The call, retried by the one policy (harness/retries.py), as its row."""
        started = time.perf_counter()
        cfg = lane.provider.config
        tries = Tries()
        try:
            c = await with_retries(
                lambda: self._attempt(lane, request, job, tokens),
                max_attempts=cfg.max_attempts,
                rate_limit_retries=cfg.rate_limit_retries,
                tries=tries,
            )
        except ProviderError as e:
            latency = time.perf_counter() - started
            return self._row(
                job,
                ok=False,
                attempts=tries.count,
                latency_s=latency,
                error_kind=e.kind,
                error=str(e),
            )
        attempts = tries.count
        price = job.model.price
        cost = price.cost(c.input_tokens, c.output_tokens) if price else 0.0
        answered = {
            "finish_reason": c.finish_reason,
            "input_tokens": c.input_tokens,
            "output_tokens": c.output_tokens,
            "latency_s": c.latency_s,
            "cost_usd": cost,
        }
        if c.finish_reason in ("content_filter", "refusal") and not c.text:
            return self._row(
                job,
                ok=False,
                attempts=attempts,
                error_kind=Kind.CONTENT_FILTER,
                error="the provider's content filter refused",
                **answered,
            )
        return self._row(
            job,
            ok=True,
            attempts=attempts,
            output=c.text,
            served=self._served(c.served_model),
            **answered,
        )

    def _row(self, job: Job, *, ok: bool, attempts: int, **fields) -> CallRow:
        """The call's row, with what is known of it by name (the rest: nothing was answered)."""
        return CallRow(
            **{
                "output": None,
                "finish_reason": None,
                "input_tokens": 0,
                "output_tokens": 0,
                "latency_s": None,
                "cost_usd": 0.0,
                "error_kind": None,
                "error": None,
                **fields,
            },
            run_id=self.run_id,
            model=job.model.name,
            item_id=job.key,
            epoch=job.epoch,
            ok=ok,
            attempts=attempts,
            finished=time.time(),
            item_sha=job.item_sha,
        )

    def _served(self, model_id: str | None) -> str | None:
        """The served model id, kept in plaintext only if it is not held-out text (a provider could
        echo a prompt there): structurally an id already, and the egress gate must find nothing in
        it. Held-out prompts are registered before a run sends anything, so each id is judged once,
        at first sight."""
        if model_id is None:
            return None
        if model_id not in self._served_ids:
            self._served_ids[model_id] = (
                model_id if GATE.scan(model_id) == model_id else "(withheld)"
            )
        return self._served_ids[model_id]

    # -- results --------------------------------------------------------------
    def _record(self, row: CallRow) -> None:
        self.store.add(row)
        o = self.outcome
        o.calls_made += 1
        o.ok += row.ok
        o.errors += not row.ok
        if not row.ok:
            o.error_kinds[row.error_kind] = o.error_kinds.get(row.error_kind, 0) + 1
        o.cost_usd += row.cost_usd
        self.progress.advance(row.ok, row.cost_usd)
        # group commit: everything finished in this loop turn, one transaction
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        try:
            self.store.flush()
        # disk full, read-only: stop calling (nothing more could be saved), report at the end
        except Exception as e:
            self.write_error = e
            self.stopping.set()

    # -- Ctrl-C ---------------------------------------------------------------
    def _install_interrupt(self, loop) -> None:
        def on_sigint():
            if self.stopping.is_set():  # second Ctrl-C: stop waiting for calls in flight
                self.grace_s = 0.01
            self.outcome.interrupted = True
            self.stopping.set()
            self.progress.note(
                "Stopping: no new calls; waiting for calls in flight (Ctrl-C again to stop now)"
            )

        try:
            loop.add_signal_handler(signal.SIGINT, on_sigint)
            loop.add_signal_handler(signal.SIGTERM, on_sigint)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests)
            pass

    def _remove_interrupt(self, loop) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError):
                pass
