"""Anthropic's Message Batches API through the official SDK, behind the same interface as
_openai_batch.py. Requests go inline (nothing is uploaded as a file, nothing written locally);
results are read from the batch's results; the batch itself is deleted once collected (Anthropic
keeps results 29 days otherwise).

A batch carries no metadata, so one created by a process killed before it recorded the id is
found by its creation time (after the intent was recorded), its request count, and not being any
batch the store knows; its answers are then matched by custom id, which are derived from run,
model, item and epoch, so another run's batch could not be taken for ours."""

from __future__ import annotations

import datetime

import anthropic
import httpx2

from . import Kind, ProviderError, Request
from ._anthropic import completion_of, request_body
from ._openai_batch import Answer, RemoteBatch, jsonl_records, sdk
from ._sdk import batch_http_client

# an errored request's error type -> the status the online API gives it
STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}
CLOCK_SKEW_S = 120.0  # the provider's clock against ours, when matching a batch by its time


def _remote(b) -> RemoteBatch:
    return RemoteBatch(id=b.id, done=b.processing_status == "ended", status=b.processing_status)


def _time(value) -> float:
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


class AnthropicBatchAPI:
    def __init__(self, config):
        self.client = anthropic.AsyncAnthropic(
            api_key=config.api_key() or "not-needed",
            base_url=config.base_url,
            max_retries=3,
            http_client=batch_http_client(anthropic, max(config.timeout_s, 300)),
        )

    def line(self, custom_id: str, request: Request) -> dict:
        return {"custom_id": custom_id, "params": request_body(request)}

    async def submit(self, rec, lines: list[dict], *, resumed: bool = False) -> RemoteBatch:
        return _remote(await sdk(self.client.messages.batches.create(requests=lines), anthropic))

    async def find(self, rec, known: set) -> RemoteBatch | None:
        page = await sdk(self.client.messages.batches.list(limit=100), anthropic)
        found = []
        async for b in page:
            counts = b.request_counts
            total = sum(
                getattr(counts, k)
                for k in ("processing", "succeeded", "errored", "canceled", "expired")
            )
            if (
                b.id not in known
                and _time(b.created_at) >= rec.created - CLOCK_SKEW_S
                and total == len(rec.jobs)
            ):
                found.append(b)
        found.sort(key=lambda b: _time(b.created_at))
        return _remote(found[0]) if found else None

    async def retrieve(self, batch_id: str) -> RemoteBatch:
        return _remote(await sdk(self.client.messages.batches.retrieve(batch_id), anthropic))

    async def answers(self, remote: RemoteBatch) -> list[Answer]:
        raw = await sdk(
            self.client.get(f"/v1/messages/batches/{remote.id}/results", cast_to=httpx2.Response),
            anthropic,
        )
        out = []
        for record in jsonl_records(raw.text):
            result = record.get("result") or {}
            if result.get("type") == "succeeded":
                out.append(Answer(record.get("custom_id"), 200, result.get("message") or {}))
            elif result.get("type") == "errored":
                error = result.get("error") or {}
                kind = (error.get("error") or {}).get("type")
                out.append(Answer(record.get("custom_id"), STATUS.get(kind, 500), error))
            # expired or canceled: not answered; sent again in another batch
        return out

    def parse(self, body: dict):
        return completion_of(body, latency_s=None)

    def leftovers(self, remote: RemoteBatch) -> list[str]:
        """What the provider still holds of a collected batch: the batch and its results."""
        return [remote.id]

    async def delete(self, batch_id: str) -> None:
        try:
            await sdk(self.client.messages.batches.delete(batch_id), anthropic)
        except ProviderError as e:
            if e.kind != Kind.NOT_FOUND:
                raise

    async def aclose(self) -> None:
        await self.client.close()
