"""Batch mode (`mode: batch`): a run's calls to a provider sent through its Batch API, at the
batch price, resumable at every step.

For each provider in batch mode: the batches an earlier process left open are taken up first (a
batch being submitted is looked for at the provider by the submission key it carries, so it is
never sent twice; a batch submitted is polled; one collected has its provider-side files deleted).
Then the calls not done yet go out in new batches: each is admitted only if its worst case fits
the budget, every request is entered in the exposure ledger, the intent is committed, its input is
uploaded from memory (nothing is written locally), the batch is created. Polling backs off from
`poll_s` to `max_poll_s`. A finished batch's answers become ordinary call rows (cost at the batch
price) in one transaction with its new status, then its files are deleted at the provider and the
deletion recorded. Requests that failed or went unanswered (an expired batch) are sent again in a
new batch, up to `max_rounds` batches each, or online (`failed: online`, done by the caller).
`wait=False` returns once everything is submitted; a later `holdout run` collects."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from dataclasses import dataclass, field

from .callkinds import Kind
from .failpoints import hit
from .jobs import Job, input_bound
from .providers import ProviderError, Request
from .rows import CallRow
from .storebatches import BatchRecord


@dataclass
class BatchOutcome:
    submitted: int = 0  # batches submitted by this process
    collected: int = 0
    in_flight: int = 0  # batches still at the provider when it returned
    calls_made: int = 0  # call rows written from batch results
    ok: int = 0
    errors: int = 0
    cost_usd: float = 0.0
    error_kinds: dict = field(default_factory=dict)
    not_started: int = 0  # calls left out (the budget, or max_rounds reached)
    budget_stop: bool = False
    adopted: int = 0  # batches an earlier process created and this one found by their key
    dead_providers: dict = field(default_factory=dict)  # provider -> why its Batch API failed
    given_up: dict = field(default_factory=dict)  # error kind -> providers given up for it


# a batch's input at most (OpenAI takes 200 MB per file, Anthropic 256 MB per batch)
MAX_BATCH_BYTES = 190 * 2**20


def _line_bytes(job: Job) -> int:
    """A request line's size at most: its text as JSON escapes it (a character outside ASCII as
    one or two 6-byte escapes: at most three times its UTF-8 bytes, for Arabic, Hebrew or an
    emoji), and the line's own fields."""
    bound = job.input_bound if job.input_bound is not None else input_bound(job.messages)
    return 3 * bound + 1024


def batch_api(cfg):
    """The provider's Batch API client (the SDK it needs is imported only here)."""
    if cfg.type == "anthropic":
        from .providers._anthropic_batch import AnthropicBatchAPI

        return AnthropicBatchAPI(cfg)
    from .providers._openai_batch import OpenAIBatchAPI

    return OpenAIBatchAPI(cfg)


def custom_id(run_id: str, model: str, key: str, epoch: int) -> str:
    """A request's id in a batch: derived from run, model, item and epoch (no text)."""
    return hashlib.sha256(f"{run_id}|{model}|{key}|{epoch}".encode()).hexdigest()[:32]


def _kind_of(status: int | None, body: dict) -> str:
    """A failed batch request's error kind, as online (the provider's own code names it where it
    is one we know; its message, which may quote the prompt, is never kept)."""
    from .providers._sdk import CODE_KINDS, error_code

    code = error_code(body)
    if code in CODE_KINDS:
        return CODE_KINDS[code]
    if status == 429:
        return Kind.RATE_LIMITED
    if status is not None and status >= 500:
        return Kind.SERVER_ERROR
    return {400: Kind.BAD_REQUEST, 404: Kind.NOT_FOUND}.get(status, Kind.ERROR)


class BatchDriver:
    def __init__(
        self,
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
    ):
        self.run_id, self.jobs, self.models = run_id, jobs, list(models)
        self.role = role  # who is called, for the exposure ledger
        self.store, self.budget, self.progress = store, budget, progress
        self.on_sent = on_sent  # the exposure ledger (None: a public pool)
        self.wait = wait
        self.outcome = BatchOutcome()
        self.stopping = asyncio.Event()

    async def run(self) -> BatchOutcome:
        by_provider: dict = {}
        for m in self.models:
            by_provider.setdefault(m.provider.name, []).append(m)
        for models in by_provider.values():
            await self._provider(models[0].provider, models)
        return self.outcome

    async def _provider(self, cfg, models) -> None:
        # one provider at a time: its config and API client, for the steps below
        self.cfg = cfg
        self.api = api = batch_api(cfg)
        try:
            records = [r for r in self.store.batches(self.run_id) if r.provider == cfg.name]
            for rec in records:  # an earlier process's batches, not yet paid for
                if rec.status != "collected":
                    self.budget.hold(rec.worst_usd)
            pending = self._pending(models, records)
            await self._resume(records, pending)
            while True:
                sent = {c for r in records for c in r.jobs}
                made = await self._submit([j for c, j in pending.items() if c not in sent])
                records += made
                if not self.wait or self.stopping.is_set():
                    self.outcome.in_flight += sum(r.status == "submitted" for r in records)
                    return
                await self._finish(records, pending)
                if cfg.batch.failed == "online":
                    return  # what failed goes online (calling.py)
                # what failed or went unanswered, until each has been through max_rounds batches
                records, pending = [], self._pending(models, [])
                if not pending or not made or self.outcome.budget_stop:
                    return
        except ProviderError as e:
            # the Batch API refused, or failed past the SDK's own retries: nothing more goes to
            # this provider this time; a batch it holds stays in the store for the next run
            o = self.outcome
            o.dead_providers[cfg.name] = f"{e} from provider '{cfg.name}'"
            o.given_up[e.kind] = o.given_up.get(e.kind, 0) + 1
            held = self.store.batches(self.run_id)
            o.in_flight += sum(r.status == "submitted" and r.provider == cfg.name for r in held)
        finally:
            await api.aclose()

    def _pending(self, models, records) -> dict[str, Job]:
        """custom_id -> job, for the calls of these models with no final answer, that have not
        been through `max_rounds` batches; calls inside `records` are included (their jobs are
        needed to submit them again)."""
        done = self.store.done_keys(self.run_id)
        rounds = self.store.batch_rounds(self.run_id)
        names = {m.name for m in models}
        in_records = {tuple(v) for r in records for v in r.jobs.values()}
        out = {}
        for job in self.jobs():
            key = (job.model.name, job.key, job.epoch)
            if job.model.name not in names or key in done:
                continue
            if rounds.get(key, 0) >= self.cfg.batch.max_rounds and key not in in_records:
                continue
            out[custom_id(self.run_id, *key)] = job
        return out

    # -- submitting -------------------------------------------------------------------------
    def _line(self, cid: str, job: Job) -> dict:
        request = Request(
            job.item_id,
            job.model.model,
            job.messages,
            job.model.request_params(),
            self.cfg.timeout_s,
        )
        return self.api.line(cid, request)

    def _worst(self, job: Job) -> float:
        price = job.model.price
        if price is None:
            return 0.0
        bound = job.input_bound if job.input_bound is not None else input_bound(job.messages)
        return price.cost(bound, job.model.max_tokens) * self.cfg.batch.discount

    async def _submit(self, jobs: list[Job]) -> list[BatchRecord]:
        """New batches of these jobs, as many as the budget admits."""
        cfg, made = self.cfg, []
        while jobs and not self.stopping.is_set():
            chunk, worst, size = [], 0.0, 0
            for job in jobs[: cfg.batch.max_requests]:
                size += _line_bytes(job)
                if chunk and size > MAX_BATCH_BYTES:
                    break
                w = self._worst(job)
                if not self.budget.reserve(w):
                    self.outcome.budget_stop = True
                    break
                chunk.append(job)
                worst += w
            jobs = jobs[len(chunk) :]
            if not chunk:
                break
            rec = BatchRecord(
                submission=f"holdout-{uuid.uuid4().hex}",
                run_id=self.run_id,
                provider=cfg.name,
                status="submitting",
                jobs={
                    custom_id(self.run_id, j.model.name, j.key, j.epoch): [
                        j.model.name,
                        j.key,
                        j.epoch,
                    ]
                    for j in chunk
                },
                worst_usd=worst,
                created=time.time(),
            )
            for job in chunk if self.on_sent else ():  # the ledger, before anything leaves
                await self.on_sent(job.item_id, cfg.name, job.model.model, role=self.role)
            self.store.batch_intent(rec)
            hit("batch.after_intent")
            by_id = dict(zip(rec.jobs, chunk))
            await self._send(rec, by_id)
            made.append(rec)
            if self.outcome.budget_stop:
                break
        if self.outcome.budget_stop:
            self.outcome.not_started += len(jobs)  # what the budget left out
        return made

    async def _send(self, rec: BatchRecord, jobs: dict[str, Job], *, resumed: bool = False) -> None:
        """Submit the batch (its lines built here, in memory), then record its ids."""
        lines = [self._line(c, j) for c, j in jobs.items()]
        remote = await self.api.submit(rec, lines, resumed=resumed)
        hit("batch.after_create")
        self._submitted(rec, remote)
        self.outcome.submitted += 1

    def _submitted(self, rec: BatchRecord, remote) -> None:
        self.store.batch_submitted(rec.submission, batch_id=remote.id, input_file=remote.input_file)
        rec.status, rec.batch_id, rec.input_file = "submitted", remote.id, remote.input_file
        rec.files = [remote.input_file] if remote.input_file else []

    async def _resume(self, records: list[BatchRecord], pending: dict) -> None:
        """What an earlier process left: a batch it was submitting is found, or sent now."""
        known = {r.batch_id for r in self.store.batches(open_only=False) if r.batch_id}
        for rec in records:
            if rec.status != "submitting":
                continue
            remote = await self.api.find(rec, known)
            if remote is not None:
                self._submitted(rec, remote)
                known.add(remote.id)
                self.outcome.adopted += 1
                continue
            await self._send(rec, {c: pending[c] for c in rec.jobs if c in pending}, resumed=True)

    # -- polling and collecting ---------------------------------------------------------------
    async def _finish(self, records: list[BatchRecord], pending: dict) -> None:
        """Poll every submitted batch until it ends, collect it, delete its files."""
        api, cfg = self.api, self.cfg
        wait = cfg.batch.poll_s
        open_ = [r for r in records if r.status in ("submitted", "collected")]
        while open_ and not self.stopping.is_set():
            for rec in list(open_):
                if rec.status == "submitted":
                    remote = await api.retrieve(rec.batch_id)
                    if not remote.done:
                        continue
                    hit("batch.before_collect")
                    await self._collect(rec, remote, pending)
                    hit("batch.after_collect")
                for f in list(rec.files):
                    await api.delete(f)
                    self.store.batch_file_deleted(rec, f)
                open_.remove(rec)
            if open_:
                await asyncio.sleep(wait)
                wait = min(wait * 2, cfg.batch.max_poll_s)

    async def _collect(self, rec: BatchRecord, remote, pending: dict) -> None:
        rows = []
        for answer in await self.api.answers(remote):
            key = rec.jobs.get(answer.custom_id)
            if key is not None:  # only our requests (ids derived from run, model, item, epoch)
                rows.append(self._row(key, pending.get(answer.custom_id), answer))
        files = self.api.leftovers(remote)
        self.store.batch_collected(rec, rows, outcome=remote.status, files=files)
        rec.status, rec.files = "collected", files
        actual = sum(r.cost_usd for r in rows)
        self.budget.settle(rec.worst_usd, actual)
        o = self.outcome
        o.collected += 1
        for row in rows:
            o.calls_made += 1
            o.ok += row.ok
            o.errors += not row.ok
            o.cost_usd += row.cost_usd
            if not row.ok:
                o.error_kinds[row.error_kind] = o.error_kinds.get(row.error_kind, 0) + 1
            self.progress.advance(row.ok, row.cost_usd)

    def _row(self, key, job: Job | None, answer) -> CallRow:
        """A request's result as the call's row (cost at the batch price)."""
        cfg = self.cfg
        model_name, item_key, epoch = key
        model = (
            job.model if job is not None else next(m for m in self.models if m.name == model_name)
        )
        status = answer.status
        base = dict(
            run_id=self.run_id,
            model=model_name,
            item_id=item_key,
            epoch=epoch,
            attempts=1,
            finished=time.time(),
            item_sha=job.item_sha if job is not None else None,
            latency_s=None,
            served=None,
        )
        if status == 200:
            try:
                c = self.api.parse(answer.body)
            except ProviderError as e:
                return _failed(base, e.kind, str(e))
            price = model.price
            cost = (
                price.cost(c.input_tokens, c.output_tokens) * cfg.batch.discount if price else 0.0
            )
            refused = c.finish_reason in ("content_filter", "refusal") and not c.text
            return CallRow(
                ok=not refused,
                output=None if refused else c.text,
                finish_reason=c.finish_reason,
                input_tokens=c.input_tokens,
                output_tokens=c.output_tokens,
                cost_usd=cost,
                error_kind=Kind.CONTENT_FILTER if refused else None,
                error="the provider's content filter refused" if refused else None,
                **base,
            )
        why = f"batch request failed (HTTP {status})" if status else "batch request failed"
        return _failed(base, _kind_of(status, answer.body), why)


def _failed(base: dict, kind: str, error: str) -> CallRow:
    """A request that got no answer to keep: nothing billed, its kind and a message of our own."""
    return CallRow(
        ok=False,
        output=None,
        finish_reason=None,
        input_tokens=0,
        output_tokens=0,
        cost_usd=0.0,
        error_kind=kind,
        error=error,
        **base,
    )
