"""What decides a run's answers, so a re-run under the same run_id can tell whether it is the same
run.

Two layers. The run's identity (suite, the resolved pool version, system prompt and template, models
with their settings, epochs) must match exactly, or the re-run is refused with what changed. Each
item's content (its turns and reference) is digested into every call made from it, so an edited item
is found by id. `limit` is not part of the identity: a trial on the first N items is the start of
the full run, and its calls are reused.

Digests of held-out items are keyed (HMAC under a vault subkey): a copied store cannot be used to
confirm a guessed prompt."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Callable, Iterable

from .sealed import reveal
from .suite import Item


def _sha(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()[:16]


def run_identity(config, suite, pool_name: str) -> dict:
    """The identity document of a run: everything except the items that decides what the models are
    sent."""
    return {
        "suite": suite.name,
        "pool": pool_name,
        "epochs": config.epochs,
        "system_sha": _sha(suite.system),
        "template_sha": _sha(suite.template),
        "models": {m.name: m.identity() for m in config.models},
    }


def identity_hash(doc: dict) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def describe_change(was: dict | None, now: dict | None) -> str:
    """What differs between two identity documents, in words (names and settings, never item
    text)."""
    if was is None or now is None:
        return (
            "it was made by an earlier version of holdout, which did not record what it was "
            "made from"
        )
    changes = []
    for key, label in (("suite", "suite"), ("pool", "pool"), ("epochs", "epochs")):
        if was.get(key) != now.get(key):
            changes.append(f"{label} was {was.get(key)!r}, now {now.get(key)!r}")
    for key, label in (("system_sha", "system prompt"), ("template_sha", "template")):
        if was.get(key) != now.get(key):
            changes.append(f"the suite's {label} changed")
    old, new = was.get("models", {}), now.get("models", {})
    if set(new) - set(old):
        changes.append(f"models added: {', '.join(sorted(set(new) - set(old)))}")
    if set(old) - set(new):
        changes.append(f"models removed: {', '.join(sorted(set(old) - set(new)))}")
    for name in sorted(set(old) & set(new)):
        for key in sorted(set(old[name]) | set(new[name])):
            if old[name].get(key) != new[name].get(key):
                changes.append(
                    f"model '{name}': {key} was {old[name].get(key)!r}, now {new[name].get(key)!r}"
                )
    return "; ".join(changes) or "the identity changed"


class ItemDigest:
    """Digest of an item's content (turns and reference). Keyed for held-out pools."""

    def __init__(self, key: bytes | None = None):
        self.key = key

    def __call__(self, item: Item) -> str:
        data = json.dumps(
            [
                [[r, reveal(c)] for r, c in item.messages],
                None if item.reference is None else reveal(item.reference),
            ],
            ensure_ascii=False,
        ).encode()
        if self.key is None:
            return hashlib.sha256(data).hexdigest()[:32]
        return hmac.new(self.key, data, hashlib.sha256).hexdigest()[:32]


@dataclass
class ItemChanges:
    """Items whose stored calls no longer match the pool."""

    # content differs from what the stored calls were made from
    changed: list[str] = field(default_factory=list)
    # stored calls for an item the pool no longer has
    removed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.changed or self.removed)

    def ids(self) -> list[str]:
        return self.changed + self.removed

    def describe(self, shown: int = 10) -> str:
        parts = []
        for label, ids in (
            ("edited since they were called", self.changed),
            ("no longer in the pool", self.removed),
        ):
            if ids:
                more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
                parts.append(f"{len(ids)} item(s) {label}: {', '.join(ids[:shown])}{more}")
        return "; ".join(parts)


def find_item_changes(
    stored: dict[str, set], items: Iterable[Item], digest: Callable[[Item], str]
) -> ItemChanges:
    """Compare the digests a run's calls were made from (item_id -> digests) with the pool's items
    now."""
    out = ItemChanges()
    seen = set()
    for item in items:
        seen.add(item.id)
        if item.id in stored and stored[item.id] != {digest(item)}:
            out.changed.append(item.id)
    out.removed = sorted(set(stored) - seen)
    return out
