"""What a run asks for: one job per (item, model, epoch) not yet in the store, with its messages and
the worst case of its input in tokens (for the budget)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from .config import ModelConfig
from .sealed import reveal
from .suite import Item, Suite

TOKENS_PER_MESSAGE = 16  # an upper bound on the chat format's tokens around each message


@dataclass(slots=True)
class Job:
    """One call: `key` (a string unique within the store run) and `epoch` identify it in the
    store."""

    item_id: str  # the item whose text is sent (for the exposure ledger)
    key: str  # the store's item_id column: the item id for model calls, a composite for judge calls
    model: ModelConfig
    epoch: int
    messages: list  # (role, str | Sealed)
    item_sha: str | None = None  # digest of the item's content (model calls), stored with the call
    # the budget's worst-case input tokens (computed once per item; else per call)
    input_bound: int | None = None


def input_bound(messages: list) -> int:
    """The budget's worst case of a request's input: a byte-level tokenizer makes at most one token
    per UTF-8 byte, plus a few per message for the chat format (the output's worst case is the cap
    always sent)."""
    return sum(len(reveal(c).encode()) + TOKENS_PER_MESSAGE for _, c in messages)


def item_jobs(
    suite: Suite,
    items: Callable[[], Iterable[Item]],
    models: list[ModelConfig],
    *,
    epochs: int,
    digest: Callable[[Item], str],
):
    """The jobs of a run: every item x model x epoch, rendered lazily (memory stays flat)."""

    def jobs():
        for item in items():
            messages = suite.render(item)
            sha, bound = digest(item), input_bound(messages)
            for model in models:
                for epoch in range(epochs):
                    yield Job(item.id, item.id, model, epoch, messages, sha, bound)

    return jobs
