"""The provider recipes in README.md, each run as written against the mock server (same path under
the base URL, the real SDKs), and what reached the server checked against what the recipe asks
for."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

README = Path(__file__).resolve().parent.parent / "README.md"
RECIPES = dict(
    re.findall(r"<!-- recipe: (\w+) -->\n```yaml\n(.*?)```", README.read_text(), flags=re.S)
)
MAX_TOKENS_KEY = {
    "openai": "max_completion_tokens",
    "openai-compatible": "max_tokens",
    "anthropic": "max_tokens",
}


def test_the_readme_has_every_recipe_the_issue_names():
    assert set(RECIPES) == {"openai", "anthropic", "azure", "gemini", "vllm", "ollama", "gateways"}


def pointed_at(providers: dict, mock_url: str) -> dict:
    """The recipe's providers with the mock's scheme and host, the recipe's own path kept."""
    out = {}
    for name, spec in providers.items():
        spec = dict(spec)
        if spec.get("base_url"):
            spec["base_url"] = mock_url + urlsplit(spec["base_url"]).path
        else:
            spec["base_url"] = mock_url + ("/v1" if spec["type"] == "openai" else "")
        out[name] = spec
    return out


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_a_recipe_runs_as_written(project, cli, mock_server, monkeypatch, name):
    recipe = yaml.safe_load(RECIPES[name])
    for spec in recipe["providers"].values():
        if spec.get("api_key_env"):
            monkeypatch.setenv(spec["api_key_env"], "sk-test-not-a-real-key")
    mock_server.behaviour.record_bodies = True
    project.suite(n=3)
    config = {
        "suite": "mini",
        "providers": pointed_at(recipe["providers"], mock_server.url),
        "models": recipe["models"],
    }
    code, _, err = cli("run", project.config(yaml.safe_dump(config, allow_unicode=True)), "-q")
    assert code == 0, err
    bodies = [json.loads(b) for b in mock_server.stats.bodies]
    for model in recipe["models"]:
        spec = recipe["providers"][model["provider"]]
        sent = [b for b in bodies if b["model"] == model["model"]]
        assert len(sent) == 3, (model["model"], [b["model"] for b in bodies])
        params = dict(model.get("params") or {})
        extra = params.pop("extra_body", {})
        # the default cap
        cap = params.pop("max_tokens", None) or params.pop("max_completion_tokens", None) or 4096
        for body in sent:
            assert body[MAX_TOKENS_KEY[spec["type"]]] == cap
            assert all(body[k] == v for k, v in {**params, **extra}.items()), (params, extra, body)
    for spec in recipe["providers"].values():
        path = urlsplit(spec.get("base_url") or "").path.rstrip("/")
        expected = (
            "/v1/messages" if spec["type"] == "anthropic" else (path or "/v1") + "/chat/completions"
        )
        assert mock_server.stats.paths[expected] > 0, dict(mock_server.stats.paths)
