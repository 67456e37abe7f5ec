"""The pool a run iterates: its items (re-iterable, streamed; public JSONL or a vault version) and
what the store must know about them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from .identity import ItemDigest
from .suite import Item


@dataclass
class PoolHandle:
    """The items a run iterates (re-iterable, streamed) and what the store must know about them."""

    name: str
    count: int
    items: Callable[[], Iterable[Item]]
    heldout: bool = False
    draft: bool = False  # a draft vault version, sent because the config says allow_draft
    cipher: object = None
    on_sent: Callable | None = None
    max_retention: str | None = None
    digest: ItemDigest = field(default_factory=ItemDigest)
    closers: list = field(default_factory=list)

    def close(self) -> None:
        for close in self.closers:
            close()
