"""A provider's settings as a run config declares them: endpoint, key, limits, retries, what it
keeps and for how long, and whether its calls go online or through its Batch API."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
# Where a provider with no base_url is reached. Written out, because the SDKs would otherwise take
# OPENAI_BASE_URL / ANTHROPIC_BASE_URL from the environment: the config names where prompts go.
DEFAULT_BASE_URL = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}


@dataclass(frozen=True)
class BatchSettings:
    """A provider's Batch API use (`mode: batch`): how big a batch, how often it is polled, what
    it costs against the online price, how long the provider keeps batch files, and what is done
    with requests that failed in a batch."""

    max_requests: int = 50_000  # OpenAI's limit per batch (Anthropic's: 100,000)
    poll_s: float = 5.0  # the first wait between polls; it doubles up to max_poll_s
    max_poll_s: float = 60.0
    discount: float = 0.5  # the batch price as a share of the online price (OpenAI, Anthropic)
    retention: str = "unknown"  # how long the provider keeps batch input and results
    failed: str = "batch"  # retry failed requests in a new batch, or online
    max_rounds: int = 3  # batches per request at most (the first included)


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    type: str
    api_key_env: str | None = None
    base_url: str | None = None
    concurrency: int = 16
    rpm: float | None = None
    tpm: float | None = None
    timeout_s: float = 120.0
    max_attempts: int = 6
    max_consecutive_failures: int = 20
    # attempts in a row with no answer: a hung provider is given up
    max_consecutive_timeouts: int = 8
    # 429s one call may hear and still be retried (they are pacing, not faults)
    rate_limit_retries: int = 24
    limits_per: str = (
        "model"  # what advertised limits and 429s speak for: each model id, or the provider
    )
    retention: str = "unknown"
    output_terms: tuple[str, ...] = ("evaluation", "research")
    path: str | None = None
    latency_ms: float = 0.0
    mode: str = "online"  # or "batch": the provider's Batch API (harness/batches.py)
    batch: BatchSettings = field(default_factory=BatchSettings)

    def __post_init__(self):
        if self.base_url is None and self.type in DEFAULT_BASE_URL:
            object.__setattr__(self, "base_url", DEFAULT_BASE_URL[self.type])

    @property
    def kept_for(self) -> str:
        """How long the provider keeps what it is sent, the way this config sends it: a batch's
        files are their own retention class."""
        return self.batch.retention if self.mode == "batch" else self.retention

    def api_key(self) -> str | None:
        """Read the key from the environment at the moment it is needed; it is never stored."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None
