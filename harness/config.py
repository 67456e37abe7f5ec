"""Run configs: YAML in, a validated RunConfig out, or an error naming file, line and key path."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ConfigError
from .pricing import Price, price_for
from .providerconfig import DEFAULT_KEY_ENV, BatchSettings, ProviderConfig
from .yamlfile import key_path, load_yaml, validate

# The output cap sent with every call whose params name none: without a cap the budget has no worst
# case.
DEFAULT_MAX_TOKENS = 4096
REASONING_MAX_TOKENS = 32768  # reasoning models spend output tokens thinking before they answer
REASONING_FAMILIES = ("o1", "o3", "o4", "gpt-5")
CAP_KEYS = ("max_tokens", "max_completion_tokens")
TOKENS_OVERHEAD = 64  # a request's tokens beyond its output cap, at the least (for the tpm check)


def default_max_tokens(model: str) -> int:
    family = model.split("-")[0] if not model.startswith("gpt-5") else "gpt-5"
    return REASONING_MAX_TOKENS if family in REASONING_FAMILIES else DEFAULT_MAX_TOKENS


@dataclass(frozen=True)
class ModelLimits:
    """A model's own limits behind a gateway (a LiteLLM deployment's rpm, say), apart from the
    provider's."""

    concurrency: int | None = None
    rpm: float | None = None
    tpm: float | None = None


@dataclass(frozen=True)
class ModelConfig:
    name: str
    provider: ProviderConfig
    model: str
    params: dict = field(default_factory=dict)
    price: Price | None = None
    limits: ModelLimits | None = None

    @property
    def max_tokens(self) -> int:
        """The output cap of every call: the params' max_tokens / max_completion_tokens, else the
        default."""
        for key in CAP_KEYS:
            if self.params.get(key) is not None:
                return int(self.params[key])
        return default_max_tokens(self.model)

    @cached_property
    def sent_params(self) -> dict:
        """The params as sent: always with an output cap, so the budget's worst case is a real
        bound."""
        if any(self.params.get(k) is not None for k in CAP_KEYS):
            return dict(self.params)
        return {**self.params, "max_tokens": self.max_tokens}

    def request_params(self) -> dict:
        return self.sent_params

    def identity(self) -> dict:
        """What must not change between attempts of one run for its results to stay comparable."""
        return {
            "provider_type": self.provider.type,
            "model": self.model,
            "params": self.request_params(),
        }


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
    headline: str | None = None
    providers: dict = field(default_factory=dict)
    leaderboard_public: bool = False
    allow_draft: bool = False
    min_segment_size: int | None = None
    trusted_destinations: tuple[str, ...] = ()
    marks: dict = field(repr=False, compare=False, default_factory=dict)

    def where(self, *path) -> str:
        """'file:line: key.path' for messages about a part of this config."""
        p = tuple(path)
        while p not in self.marks and p:
            p = p[:-1]
        line = self.marks.get(p)
        return (
            f"{self.file}:{line}: {key_path(tuple(path))}"
            if line
            else f"{self.file}: {key_path(tuple(path))}"
        )


def _relative_to(base: Path, value: str | None) -> Path | None:
    """A path from a config file: relative ones are relative to the file's directory."""
    return None if value is None else (base / Path(value).expanduser())


def nearest_suites_dir(start: Path) -> Path:
    """`suites/` in the config's directory or the nearest one above it; else `suites` in the working
    directory."""
    for d in (start, *start.parents):
        if (d / "suites").is_dir():
            return d / "suites"
    return Path("suites")


def load_run_config(file: str | Path) -> RunConfig:  # noqa: C901 (one check per key, in file order)
    """Every problem of the file at once (schema first, then the cross-checks), each with file, line
    and key."""
    file = Path(file)
    data, marks = load_yaml(file)
    if not isinstance(data, dict):
        raise ConfigError(
            f"{file}:1: expected a mapping of keys (suite, models, ...), found "
            f"{type(data).__name__}"
        )
    validate(data, "run", file, marks=marks)
    base = file.parent
    problems: list[str] = []

    def where(*path) -> str:
        p = tuple(path)
        while p not in marks and p:
            p = p[:-1]
        return f"{file}:{marks.get(p, 1)}: {key_path(tuple(path))}"

    providers = {}
    for name, spec in (data.get("providers") or {}).items():
        kind = spec["type"]
        if kind == "replay" and "path" not in spec:
            problems.append(
                f"{where('providers', name)}: a replay provider needs 'path' "
                "(a directory of <model>.jsonl recorded answers)"
            )
            continue
        if kind == "openai-compatible" and "base_url" not in spec:
            problems.append(
                f"{where('providers', name)}: an openai-compatible provider needs 'base_url'"
            )
            continue
        if "@" in urlsplit(spec.get("base_url") or "").netloc:
            problems.append(
                f"{where('providers', name, 'base_url')}: a base URL must not carry a user name or "
                "password (the SDKs cannot send them, and URLs end up in logs); put the "
                "credential in "
                "the environment variable named by api_key_env. The URL is not shown."
            )
            continue
        spec = dict(spec)
        spec.setdefault("api_key_env", DEFAULT_KEY_ENV.get(kind))
        if "output_terms" in spec:
            spec["output_terms"] = tuple(spec["output_terms"])
        if "path" in spec:
            spec["path"] = str(_relative_to(base, spec["path"]))
        if spec.get("mode") == "batch" and kind == "replay":
            problems.append(
                f"{where('providers', name, 'mode')}: mode: batch needs a provider with a Batch "
                "API (openai, anthropic, or an openai-compatible server that has OpenAI's)"
            )
            continue
        spec["batch"] = BatchSettings(**(spec.get("batch") or {}))
        providers[name] = ProviderConfig(name=name, **spec)

    models, names = [], {}
    for i, spec in enumerate(data["models"]):
        pname = spec["provider"]
        if pname in providers:
            provider = providers[pname]
        elif pname in ("openai", "anthropic"):
            provider = providers.setdefault(
                pname, ProviderConfig(name=pname, type=pname, api_key_env=DEFAULT_KEY_ENV[pname])
            )
        else:
            # a declared but broken provider is reported above
            if pname not in (data.get("providers") or {}):
                declared = ", ".join(sorted(providers)) or "none"
                problems.append(
                    f"{where('models', i, 'provider')}: unknown provider '{pname}'; expected a "
                    "name under "
                    f"providers: (declared: {declared}) or one of: openai, anthropic"
                )
            continue
        name = spec.get("name", spec["model"])
        if name in names:
            problems.append(
                f"{where('models', i, 'name')}: model name '{name}' is used twice "
                f"(also models[{names[name]}]); give one of them a distinct 'name'"
            )
            continue
        names[name] = i
        price = (
            Price(**spec["price"]) if "price" in spec else price_for(provider.type, spec["model"])
        )
        limits = ModelLimits(**spec["limits"]) if spec.get("limits") else None
        models.append(
            ModelConfig(
                name=name,
                provider=provider,
                model=spec["model"],
                params=dict(spec.get("params") or {}),
                price=price,
                limits=limits,
            )
        )

    for m in models:
        problems += [
            f"{where('models', names[m.name], 'params', key)}: {why}"
            for key, why in param_problems(m)
        ]
        for tpm, at in (
            (m.provider.tpm, ("providers", m.provider.name, "tpm")),
            (m.limits and m.limits.tpm, ("models", names[m.name], "limits", "tpm")),
        ):
            if tpm and tpm < m.max_tokens + TOKENS_OVERHEAD:
                problems.append(
                    f"{where(*at)}: {tpm:g} tokens per minute is less than one request of model "
                    f"'{m.name}' (its output cap {m.max_tokens} + the prompt): every call would "
                    "wait "
                    "longer than a minute. Raise tpm, or lower params.max_tokens"
                )
    budget = data.get("budget_usd")
    if budget is not None:
        for m in models:
            if m.price is None:
                problems.append(
                    f"{where('models', names[m.name])}: no price is known for '{m.model}', so "
                    "budget_usd "
                    "cannot be enforced; add price: {input_per_mtok: ..., output_per_mtok: ...}"
                )

    labs = data.get("labs") or {}
    for lab, owned in labs.items():
        for j, mname in enumerate(owned):
            if mname not in names:
                problems.append(
                    f"{where('labs', lab, j)}: lab '{lab}' owns '{mname}', which is not a model "
                    "of this "
                    f"run (models: {', '.join(names)})"
                )
    from .graderspecs import check_patterns

    problems += check_patterns(data.get("graders"), file, marks)
    headline = data.get("headline")
    if headline is not None and "graders" in data:
        from .graderspecs import grader_names

        known = grader_names(data["graders"])
        if headline not in known:
            problems.append(
                f"{where('headline')}: '{headline}' is not a grader of this config "
                f"(graders: {', '.join(known)})"
            )
    if problems:
        raise ConfigError("\n".join(problems))

    suite = data["suite"]
    if "/" in suite or suite.endswith((".yaml", ".yml")):
        suite = str(_relative_to(base, suite))
    return RunConfig(
        file=file,
        run_id=data.get("run_id") or file.stem,
        suite=suite,
        pool=data.get("pool", "public"),
        allow_draft=bool(data.get("allow_draft", False)),
        suites_dir=_relative_to(base, data.get("suites_dir")) or nearest_suites_dir(base),
        workspace=_relative_to(base, data.get("workspace")) or Path(".holdout"),
        results_dir=_relative_to(base, data.get("results_dir")) or Path("results"),
        epochs=data.get("epochs", 1),
        limit=data.get("limit"),
        budget_usd=budget,
        models=tuple(models),
        graders=tuple(data["graders"]) if "graders" in data else None,
        labs=labs,
        headline=headline,
        providers=providers,
        leaderboard_public=data.get("leaderboard_public", False),
        min_segment_size=data.get("min_segment_size"),
        trusted_destinations=tuple(data.get("trusted_destinations", ())),
        marks=marks,
    )


OPENAI_ONLY = ("reasoning_effort", "response_format")  # parameters one API family understands
ANTHROPIC_ONLY = ("thinking",)
# extra_body may not replace what Holdout sends
RESERVED_BODY = (
    "model",
    "messages",
    "system",
    "stream",
)


def param_problems(m: ModelConfig) -> list[tuple[str, str]]:
    """(param, why) for parameters the model's provider type does not take, or that contradict each
    other."""
    kind, params, out = m.provider.type, m.params, []
    if kind == "anthropic":
        out += [
            (
                key,
                f"an OpenAI parameter; provider '{m.provider.name}' is anthropic (it takes: "
                "thinking)",
            )
            for key in OPENAI_ONLY
            if key in params
        ]
    if kind in ("openai", "openai-compatible"):
        out += [
            (
                key,
                f"an Anthropic parameter; provider '{m.provider.name}' is {kind} (reasoning "
                "models take "
                "reasoning_effort)",
            )
            for key in ANTHROPIC_ONLY
            if key in params
        ]
    if "max_tokens" in params and "max_completion_tokens" in params:
        out.append(
            (
                "max_completion_tokens",
                "give the output cap once: max_tokens or max_completion_tokens",
            )
        )
    budget = (params.get("thinking") or {}).get("budget_tokens")
    if budget is not None and budget >= m.max_tokens:
        out.append(
            (
                "thinking",
                f"budget_tokens {budget} must be below the output cap ({m.max_tokens}): thinking "
                "counts against max_tokens",
            )
        )
    taken = [k for k in (params.get("extra_body") or {}) if k in RESERVED_BODY]
    if taken:
        out.append(("extra_body", f"may not set {', '.join(taken)} (Holdout sends them)"))
    return out


def check_api_keys(config: RunConfig) -> None:
    """Fail before any call if a key's environment variable is missing. Names the variable, never a
    value. OpenAI and Anthropic always need one; another provider needs one when its config names
    one (`api_key_env: null` is a server that takes none)."""
    for i, m in enumerate(config.models):
        p = m.provider
        if (
            (p.type in ("openai", "anthropic") or p.api_key_env)
            and p.type != "replay"
            and not p.api_key()
        ):
            if not p.api_key_env:
                raise ConfigError(
                    f"{config.where('models', i, 'provider')}: model '{m.name}' needs an API "
                    "key, and "
                    f"provider '{p.name}' names no environment variable (set api_key_env)"
                )
            raise ConfigError(
                f"{config.where('models', i, 'provider')}: model '{m.name}' needs an API key in "
                "the "
                f"environment variable {p.api_key_env}, which is not set "
                f"(export {p.api_key_env}=..., or set api_key_env on provider '{p.name}'; "
                "api_key_env: null for a server that takes no key). Nothing was sent."
            )
