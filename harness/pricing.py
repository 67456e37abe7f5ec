"""Dollar prices per million tokens. Override per model in the run config with `price:`."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


# List prices (USD / 1M tokens) as published by the providers, checked 2026-11; check before relying
# on a
# budget, and override with `price:` where yours differ. Names are exact: `o3-pro` is not `o3`. A
# dated
# snapshot (claude-sonnet-4-20250514, gpt-4o-2024-08-06) or a `-latest` alias has its family's
# price,
# as the providers price them. Reasoning tokens are billed (and counted here) as output tokens.
KNOWN: dict[str, Price] = {
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-5": Price(1.25, 10.00),
    "gpt-5-mini": Price(0.25, 2.00),
    "gpt-5-nano": Price(0.05, 0.40),
    "o1": Price(15.00, 60.00),
    "o3": Price(2.00, 8.00),
    "o3-pro": Price(20.00, 80.00),
    "o3-mini": Price(1.10, 4.40),
    "o4-mini": Price(1.10, 4.40),
    "claude-3-5-haiku": Price(0.80, 4.00),
    "claude-3-haiku": Price(0.25, 1.25),
    "claude-3-5-sonnet": Price(3.00, 15.00),
    "claude-3-7-sonnet": Price(3.00, 15.00),
    "claude-sonnet-4": Price(3.00, 15.00),
    "claude-sonnet-4-5": Price(3.00, 15.00),
    "claude-haiku-4-5": Price(1.00, 5.00),
    "claude-opus-4": Price(15.00, 75.00),
    "claude-opus-4-1": Price(15.00, 75.00),
    "claude-opus-4-5": Price(5.00, 25.00),
}

# What may follow a known name and keep its price: a snapshot date, or the provider's moving alias.
SNAPSHOT = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2}|latest)")


def price_for(provider_type: str, model: str) -> Price | None:
    """The known price of a model (its exact name, or a dated snapshot of it), or None."""
    if provider_type == "replay":
        return Price(0.0, 0.0)
    if model in KNOWN:
        return KNOWN[model]
    for name, price in KNOWN.items():
        if model.startswith(name) and SNAPSHOT.fullmatch(model[len(name) :]):
            return price
    return None
