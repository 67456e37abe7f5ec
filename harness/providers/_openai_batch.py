"""OpenAI's Batch API through the official SDK: a batch's input uploaded from memory (never a
local file), the batch created with our submission key as metadata (so a run killed before it
recorded the batch's id finds it again instead of sending it twice), polled, its results read,
and every provider-side file deleted. Errors become ProviderErrors without bodies.

The interface the batch driver (harness/batches.py) uses, shared with _anthropic_batch.py: line,
submit, find, retrieve, answers, parse, leftovers, delete, aclose."""

from __future__ import annotations

import json
from dataclasses import dataclass

import openai

from ..failpoints import hit
from . import Kind, ProviderError, Request
from ._chat import completion_of, request_body
from ._sdk import batch_http_client, map_error

KEY = "holdout_submission"


@dataclass
class RemoteBatch:
    id: str
    done: bool  # the provider will answer no more of it
    status: str  # the provider's word for its state
    input_file: str | None = None
    output_file: str | None = None
    error_file: str | None = None


@dataclass
class Answer:
    """One request's result: its HTTP-like status and the body in the API's own form."""

    custom_id: str
    status: int
    body: dict


def _remote(b) -> RemoteBatch:
    return RemoteBatch(
        id=b.id,
        done=b.status in ("completed", "failed", "expired", "cancelled"),
        status=b.status,
        input_file=b.input_file_id,
        output_file=b.output_file_id,
        error_file=b.error_file_id,
    )


def jsonl_records(text: str) -> list[dict]:
    """A batch result file's records, one JSON object per line."""
    out = []
    for line in text.splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError:
                raise ProviderError(
                    Kind.BAD_RESPONSE, "a batch result line is not JSON", retryable=True
                ) from None
    return out


async def sdk(call, module):
    """An SDK call, its failures as ProviderErrors without bodies (they can quote a request)."""
    try:
        return await call
    except ProviderError:
        raise
    except Exception as e:
        raise map_error(module, e) from None


class OpenAIBatchAPI:
    def __init__(self, config):
        self.provider_type = config.type
        self.client = openai.AsyncOpenAI(
            api_key=config.api_key() or "not-needed",
            base_url=config.base_url,
            max_retries=3,
            http_client=batch_http_client(openai, max(config.timeout_s, 300)),
        )

    def line(self, custom_id: str, request: Request) -> dict:
        body = request_body(request, self.provider_type)
        return {
            "custom_id": custom_id,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": body,
        }

    async def submit(self, rec, lines: list[dict], *, resumed: bool = False) -> RemoteBatch:
        """Upload the input (unless an earlier process did, for a `resumed` submission: found by
        its name) and create the batch, carrying the submission key."""
        name = f"{rec.submission}.jsonl"
        file = await self._file_named(name) if resumed else None
        if file is None:
            data = "".join(json.dumps(x) + "\n" for x in lines).encode()
            f = await sdk(
                self.client.files.create(file=(name, data, "application/jsonl"), purpose="batch"),
                openai,
            )
            file = f.id
            hit("batch.after_upload")
        b = await sdk(
            self.client.batches.create(
                input_file_id=file,
                endpoint="/v1/chat/completions",
                completion_window="24h",
                metadata={KEY: rec.submission},
            ),
            openai,
        )
        return _remote(b)

    async def _file_named(self, name: str) -> str | None:
        page = await sdk(self.client.files.list(purpose="batch"), openai)
        async for f in page:
            if f.filename == name:
                return f.id
        return None

    async def find(self, rec, known: set) -> RemoteBatch | None:
        """The batch the provider holds for this submission, if it was created."""
        page = await sdk(self.client.batches.list(limit=100), openai)
        async for b in page:
            if (b.metadata or {}).get(KEY) == rec.submission:
                return _remote(b)
        return None

    async def retrieve(self, batch_id: str) -> RemoteBatch:
        return _remote(await sdk(self.client.batches.retrieve(batch_id), openai))

    async def answers(self, remote: RemoteBatch) -> list[Answer]:
        out = []
        for file_id in (remote.output_file, remote.error_file):
            if not file_id:
                continue
            content = await sdk(self.client.files.content(file_id), openai)
            for record in jsonl_records(content.text):
                response = record.get("response") or {}
                out.append(
                    Answer(
                        record.get("custom_id"),
                        response.get("status_code") or 0,
                        response.get("body") or {"error": record.get("error")},
                    )
                )
        return out

    def parse(self, body: dict):
        return completion_of(body, latency_s=None)

    def leftovers(self, remote: RemoteBatch) -> list[str]:
        """What the provider still holds of a collected batch: its files."""
        return [f for f in (remote.input_file, remote.output_file, remote.error_file) if f]

    async def delete(self, file_id: str) -> None:
        try:
            await sdk(self.client.files.delete(file_id), openai)
        except ProviderError as e:
            if e.kind != Kind.NOT_FOUND:  # a file already gone is deleted
                raise

    async def aclose(self) -> None:
        await self.client.close()
