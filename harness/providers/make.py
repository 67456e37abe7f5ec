"""A provider for a config: the SDK modules are imported only for the types a run uses (importing
an SDK costs 0.3-1.5 s); an OpenAI-compatible server is reached without one (_compatible.py)."""

from __future__ import annotations

from ..config import ProviderConfig
from . import Provider


def make_provider(config: ProviderConfig) -> Provider:
    if config.type == "openai-compatible":
        from ._compatible import CompatibleProvider

        return CompatibleProvider(config)
    if config.type == "openai":
        from ._openai import OpenAIProvider

        return OpenAIProvider(config)
    if config.type == "anthropic":
        from ._anthropic import AnthropicProvider

        return AnthropicProvider(config)
    if config.type == "replay":
        from ._replay import ReplayProvider

        return ReplayProvider(config)
    raise ValueError(f"unknown provider type {config.type!r}")
