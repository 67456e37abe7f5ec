"""Lanes: the calls that share one set of limits (by default one model id of one provider), each
with its pacer, and the provider's own pacer over all its lanes."""

from __future__ import annotations

from dataclasses import dataclass

from .config import ModelConfig
from .database import shared_dsn
from .keylane import KeyLane
from .limits import Pacer
from .providers import Provider


class NotSent(Exception):
    """A call that waited for its turn while its lane was given up or the run stopped: it is not
    sent."""


@dataclass
class Lane:
    """The calls that share one set of limits. By default one model id of one provider: OpenAI,
    Anthropic and gateways (LiteLLM, OpenRouter) limit each model apart, so its advertised limits
    and its 429s speak for it alone, and a model that keeps failing holds only its own workers.
    `limits_per: provider` makes the whole provider one lane. Over all lanes of a provider, `shared`
    keeps the provider's own concurrency, rpm and tpm."""

    name: str  # in the summary and messages: the provider's name, or provider/model of several
    provider: Provider
    models: list[ModelConfig]
    pacer: Pacer
    shared: Pacer | None = None
    consecutive_failures: int = 0
    dead: str | None = None

    async def acquire(self, tokens: int) -> int:
        """A place in the lane's window, then in the provider's (never the other way round: a lane
        waiting for its own rate must not hold a place other lanes could use); the request's number
        in the lane. Pair with `release`."""
        request = await self.pacer.acquire(tokens)
        if self.shared is not None:
            try:
                await self.shared.acquire(tokens)
            except BaseException:
                self.pacer.release()
                raise
        return request

    def release(self) -> None:
        if self.shared is not None:
            self.shared.release()
        self.pacer.release()


def _key_lane(cfg, model_id: str):
    """The schedule this key's requests share: in the shared store when there is one (workers on
    other machines use the key too), else in a file that this machine's processes share."""
    where = dict(
        provider_type=cfg.type, base_url=cfg.base_url, api_key=cfg.api_key(), lane=model_id
    )
    dsn = shared_dsn()
    if dsn:
        from .pgpace import PgKeyLane

        return PgKeyLane.for_key(dsn, **where)
    return KeyLane.for_key(**where)


def plan_lanes(provider: Provider, models: list[ModelConfig]) -> list[Lane]:
    """One lane per model id (models that differ only in name or params share their upstream's
    limits), or one for the provider. A lane's limits are its models' `limits`, else the provider's
    (one lane, or none declared)."""
    cfg = provider.config
    groups: dict[str, list[ModelConfig]] = {}
    for m in models:
        groups.setdefault(m.model if cfg.limits_per == "model" else "", []).append(m)
    several = len(groups) > 1
    shared = Pacer(cfg.concurrency, cfg.rpm, cfg.tpm, ramp=False) if several else None
    lanes = []
    for model_id, ms in groups.items():
        own = [m.limits for m in ms if m.limits]
        concurrency = min([x.concurrency for x in own if x.concurrency] or [cfg.concurrency])
        rpm = min([x.rpm for x in own if x.rpm], default=None if several else cfg.rpm)
        tpm = min([x.tpm for x in own if x.tpm], default=None if several else cfg.tpm)
        key_lane = _key_lane(cfg, model_id) if cfg.type != "replay" else None
        lanes.append(
            Lane(
                f"{cfg.name}/{model_id}" if several else cfg.name,
                provider,
                ms,
                Pacer(min(concurrency, cfg.concurrency), rpm, tpm, key_lane=key_lane),
                shared,
            )
        )
    return lanes


def lane_label(name: str) -> str:
    """A lane's name (a provider, or provider/model id for a provider with several) as words."""
    provider, _, model = name.partition("/")
    return f"model '{model}' of provider '{provider}'" if model else f"provider '{provider}'"
