"""What a result was made with: Holdout's version and commit, the SDKs, the parameters as sent, and
the model ids the providers said answered. Written into every run summary and every (signed)
scorecard, so a card can say what it scored; a served id that differs from the one asked for is
flagged."""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path

SDKS = ("openai", "anthropic", "aiohttp")


@functools.lru_cache(maxsize=1)
def software() -> dict:
    """Holdout's version (and git commit when run from a checkout), Python's, and the SDKs'."""

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    root = Path(__file__).resolve().parent.parent
    commit = None
    if (root / ".git").exists():
        try:
            commit = (
                subprocess.run(
                    ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
                    capture_output=True,
                    text=True,
                    timeout=5,
                ).stdout.strip()
                or None
            )
        except (OSError, subprocess.SubprocessError):
            commit = None
    return {
        "holdout": version("holdout"),
        "commit": commit,
        "python": platform.python_version(),
        "sdks": {name: version(name) for name in SDKS},
    }


def models(config, served: dict[str, dict[str, int]], names=None) -> dict:
    """Per model: the id asked for, its parameters as sent, the ids the provider said served it, and
    whether any of those differs from the id asked for (a gateway's alias, a silent upgrade)."""
    out = {}
    for m in config.models if config is not None else ():
        if names is not None and m.name not in names:
            continue
        ids = served.get(m.name, {})
        out[m.name] = {
            "asked": m.model,
            "provider_type": m.provider.type,
            "params": m.request_params(),
            "served": ids,
            "served_differs": any(s != m.model and not s.startswith(m.model + "-") for s in ids),
        }
    return out


def of_run(store, run_id: str, config, names=None) -> dict:
    return {"software": software(), "models": models(config, store.served_models(run_id), names)}
