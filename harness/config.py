"""Run configs: YAML in, a validated RunConfig out, or an error naming file, line and key path."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ConfigError
from .pricing import Price, price_for
from .yamlfile import key_path, load_yaml, validate

PROVIDER_TYPES = ("openai", "anthropic", "openai-compatible", "replay")
DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


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
    retention: str = "unknown"
    output_terms: tuple[str, ...] = ("evaluation", "research")
    path: str | None = None
    latency_ms: float = 0.0

    def api_key(self) -> str | None:
        """Read the key from the environment at the moment it is needed; it is never stored."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None


@dataclass(frozen=True)
class ModelConfig:
    name: str
    provider: ProviderConfig
    model: str
    params: dict = field(default_factory=dict)
    price: Price | None = None

    @property
    def max_tokens(self) -> int:
        return int(self.params.get("max_tokens", 1024))

    def identity(self) -> dict:
        """What must not change between attempts of one run for its results to stay comparable."""
        return {"provider_type": self.provider.type, "model": self.model, "params": self.params}


@dataclass(frozen=True)
class RunConfig:
    file: Path
    run_id: str
    suite: str
    pool: str
    suites_dir: Path
    workspace: Path
    results_dir: Path
    epochs: int
    limit: int | None
    budget_usd: float | None
    models: tuple[ModelConfig, ...]
    graders: tuple[dict, ...] | None
    labs: dict
    providers: dict = field(default_factory=dict)
    leaderboard_public: bool = False
    min_segment_size: int | None = None
    trusted_destinations: tuple[str, ...] = ()
    marks: dict = field(repr=False, compare=False, default_factory=dict)

    def where(self, *path) -> str:
        """'file:line: key.path' for messages about a part of this config."""
        p = tuple(path)
        while p not in self.marks and p:
            p = p[:-1]
        line = self.marks.get(p)
        return f"{self.file}:{line}: {key_path(tuple(path))}" if line else f"{self.file}: {key_path(tuple(path))}"

    def identity_hash(self) -> str:
        ident = {"suite": self.suite, "pool": self.pool, "epochs": self.epochs, "limit": self.limit,
                 "models": {m.name: m.identity() for m in self.models}}
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def load_run_config(file: str | Path) -> RunConfig:
    file = Path(file)
    data, marks = load_yaml(file)
    if not isinstance(data, dict):
        raise ConfigError(f"{file}:1: expected a mapping of keys (suite, models, ...), found {type(data).__name__}")
    validate(data, "run", file, marks)

    def where(*path) -> str:
        p = tuple(path)
        while p not in marks and p:
            p = p[:-1]
        return f"{file}:{marks.get(p, 1)}: {key_path(tuple(path))}"

    providers = {}
    for name, spec in (data.get("providers") or {}).items():
        kind = spec["type"]
        if kind == "replay" and "path" not in spec:
            raise ConfigError(f"{where('providers', name)}: a replay provider needs 'path' "
                              "(a directory of <model>.jsonl recorded answers)")
        if kind == "openai-compatible" and "base_url" not in spec:
            raise ConfigError(f"{where('providers', name)}: an openai-compatible provider needs 'base_url'")
        if "@" in urlsplit(spec.get("base_url") or "").netloc:
            raise ConfigError(f"{where('providers', name, 'base_url')}: a base URL must not carry a user name or "
                              "password (the SDKs cannot send them, and URLs end up in logs); put the credential in "
                              "the environment variable named by api_key_env. The URL is not shown.")
        spec = dict(spec)
        spec.setdefault("api_key_env", DEFAULT_KEY_ENV.get(kind))
        if "output_terms" in spec:
            spec["output_terms"] = tuple(spec["output_terms"])
        providers[name] = ProviderConfig(name=name, **spec)

    models, names = [], {}
    for i, spec in enumerate(data["models"]):
        pname = spec["provider"]
        if pname in providers:
            provider = providers[pname]
        elif pname in ("openai", "anthropic"):
            provider = providers.setdefault(pname, ProviderConfig(name=pname, type=pname, api_key_env=DEFAULT_KEY_ENV[pname]))
        else:
            declared = ", ".join(sorted(providers)) or "none"
            raise ConfigError(f"{where('models', i, 'provider')}: unknown provider '{pname}'; expected a name under "
                              f"providers: (declared: {declared}) or one of: openai, anthropic")
        name = spec.get("name", spec["model"])
        if name in names:
            raise ConfigError(f"{where('models', i, 'name')}: model name '{name}' is used twice "
                              f"(also models[{names[name]}]); give one of them a distinct 'name'")
        names[name] = i
        price = Price(**spec["price"]) if "price" in spec else price_for(provider.type, spec["model"])
        models.append(ModelConfig(name=name, provider=provider, model=spec["model"],
                                  params=dict(spec.get("params") or {}), price=price))

    budget = data.get("budget_usd")
    if budget is not None:
        for i, m in enumerate(models):
            if m.price is None:
                raise ConfigError(f"{where('models', i)}: no price is known for '{m.model}', so budget_usd cannot be "
                                  "enforced; add price: {input_per_mtok: ..., output_per_mtok: ...}")

    labs = data.get("labs") or {}
    for lab, owned in labs.items():
        for j, mname in enumerate(owned):
            if mname not in names:
                raise ConfigError(f"{where('labs', lab, j)}: lab '{lab}' owns '{mname}', which is not a model of this run "
                                  f"(models: {', '.join(names)})")

    return RunConfig(
        file=file,
        run_id=data.get("run_id") or file.stem,
        suite=data["suite"],
        pool=data.get("pool", "public"),
        suites_dir=Path(data.get("suites_dir", "suites")),
        workspace=Path(data.get("workspace", ".holdout")),
        results_dir=Path(data.get("results_dir", "results")),
        epochs=data.get("epochs", 1),
        limit=data.get("limit"),
        budget_usd=budget,
        models=tuple(models),
        graders=tuple(data["graders"]) if "graders" in data else None,
        labs=labs,
        providers=providers,
        leaderboard_public=data.get("leaderboard_public", False),
        min_segment_size=data.get("min_segment_size"),
        trusted_destinations=tuple(data.get("trusted_destinations", ())),
        marks=marks,
    )


def check_api_keys(config: RunConfig) -> None:
    """Fail before any call if a key's environment variable is missing. Names the variable, never a value."""
    for i, m in enumerate(config.models):
        p = m.provider
        if p.type in ("openai", "anthropic") and not p.api_key():
            raise ConfigError(f"{config.where('models', i, 'provider')}: model '{m.name}' needs an API key in the "
                              f"environment variable {p.api_key_env}, which is not set "
                              f"(export {p.api_key_env}=... or set api_key_env on provider '{p.name}')")
