"""OpenAI's Batch API through the official SDK: a batch's input uploaded from memory (never a
local file), the batch created with our submission key as metadata (so a run killed before it
recorded the batch's id finds it again instead of sending it twice), polled, its results read,
and every provider-side file deleted. Errors become ProviderErrors without bodies."""

from __future__ import annotations

import json
from dataclasses import dataclass

import openai

from . import Kind, ProviderError
from ._sdk import map_error

KEY = "holdout_submission"
TERMINAL = ("completed", "failed", "expired", "cancelled")


@dataclass
class RemoteBatch:
    id: str
    status: str
    input_file: str | None
    output_file: str | None
    error_file: str | None
    expires_at: float | None


def _remote(b) -> RemoteBatch:
    return RemoteBatch(
        id=b.id,
        status=b.status,
        input_file=b.input_file_id,
        output_file=b.output_file_id,
        error_file=b.error_file_id,
        expires_at=b.expires_at,
    )


class OpenAIBatchAPI:
    def __init__(self, config):
        self.client = openai.AsyncOpenAI(
            api_key=config.api_key() or "not-needed",
            base_url=config.base_url,
            max_retries=3,
            timeout=max(config.timeout_s, 300),
        )

    async def _sdk(self, call):
        try:
            return await call
        except ProviderError:
            raise
        except Exception as e:  # no bodies: the SDK's errors can quote a request
            raise map_error(openai, e) from None

    async def find(self, submission: str) -> RemoteBatch | None:
        """The batch the provider holds for this submission key, if it was created."""
        page = await self._sdk(self.client.batches.list(limit=100))
        async for b in page:
            if (b.metadata or {}).get(KEY) == submission:
                return _remote(b)
        return None

    async def find_file(self, name: str) -> str | None:
        """An uploaded input file of this name (a run killed between upload and create)."""
        page = await self._sdk(self.client.files.list(purpose="batch"))
        async for f in page:
            if f.filename == name:
                return f.id
        return None

    async def upload(self, name: str, lines: bytes) -> str:
        f = await self._sdk(
            self.client.files.create(file=(name, lines, "application/jsonl"), purpose="batch")
        )
        return f.id

    async def create(self, input_file: str, submission: str) -> RemoteBatch:
        b = await self._sdk(
            self.client.batches.create(
                input_file_id=input_file,
                endpoint="/v1/chat/completions",
                completion_window="24h",
                metadata={KEY: submission},
            )
        )
        return _remote(b)

    async def retrieve(self, batch_id: str) -> RemoteBatch:
        return _remote(await self._sdk(self.client.batches.retrieve(batch_id)))

    async def lines(self, file_id: str | None) -> list[dict]:
        """A result file's records (one JSON object per line)."""
        if not file_id:
            return []
        content = await self._sdk(self.client.files.content(file_id))
        out = []
        for line in content.text.splitlines():
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                raise ProviderError(
                    Kind.BAD_RESPONSE, "a batch result line is not JSON", retryable=True
                ) from None
        return out

    async def delete(self, file_id: str) -> None:
        try:
            await self._sdk(self.client.files.delete(file_id))
        except ProviderError as e:
            if e.kind != Kind.NOT_FOUND:  # a file already gone is deleted
                raise

    async def aclose(self) -> None:
        await self.client.close()
