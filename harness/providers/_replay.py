"""Recorded answers, keyed by item id: offline demos, tests and re-scoring published outputs.

`path` is a directory holding `<model>.jsonl`. A line is either `{"id": ..., "output": ...}` or
an Arena-Hard answer record (`question_id`, `choices[0].turns[0].content`).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from ..errors import ConfigError
from ..sealed import reveal
from . import Completion, Kind, Provider, ProviderError, Request


def _answer(obj: dict) -> tuple[str, str]:
    if "question_id" in obj:
        return obj["question_id"], obj["choices"][0]["turns"][0]["content"]
    return obj["id"], obj["output"]


class ReplayProvider(Provider):
    def __init__(self, config):
        super().__init__(config)
        self.dir = Path(config.path)
        self.answers: dict[str, dict[str, str]] = {}

    def _load(self, model: str) -> dict[str, str]:
        if model not in self.answers:
            file = self.dir / f"{model}.jsonl"
            answers = {}
            try:
                with open(file, encoding="utf-8") as f:
                    for n, line in enumerate(f, 1):
                        if line.strip():
                            try:
                                key, text = _answer(json.loads(line))
                            except (ValueError, KeyError, IndexError, TypeError):
                                raise ConfigError(
                                    f'{file}:{n}: expected {{"id": ..., "output": ...}} '
                                    "or an Arena-Hard answer record"
                                ) from None
                            answers[key] = text
            except FileNotFoundError:
                raise ConfigError(
                    f"replay provider '{self.config.name}': no recorded answers for model "
                    f"'{model}' ({file} not found)"
                ) from None
            self.answers[model] = answers
        return self.answers[model]

    async def complete(self, request: Request) -> Completion:
        start = time.perf_counter()
        answers = self._load(request.model)
        if self.config.latency_ms:
            await asyncio.sleep(self.config.latency_ms / 1000)
        if request.item_id not in answers:
            raise ProviderError(
                Kind.NOT_FOUND, f"no recorded answer for item {request.item_id}", retryable=False
            )
        text = answers[request.item_id]
        prompt_chars = sum(len(reveal(c)) for _, c in request.messages)
        return Completion(
            text=text,
            finish_reason="stop",
            input_tokens=max(1, prompt_chars // 4),
            output_tokens=max(1, len(text) // 4),
            latency_s=time.perf_counter() - start,
        )
