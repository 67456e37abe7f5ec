"""Every config mistake a person can make gets a message naming the file, the line, the key path,
what was expected and what was found."""

import pytest

from harness.config import load_run_config
from harness.errors import ConfigError

GOOD = """\
suite: mini
providers:
  local:
    type: openai-compatible
    base_url: http://127.0.0.1:9/v1
    api_key_env: MOCK_KEY
models:
  - provider: local
    model: m1
"""


def error_for(project, text):
    project.suite()
    path = project.config(text)
    with pytest.raises(ConfigError) as e:
        load_run_config(path)
    return str(e.value), str(path)


def test_good_config_loads(project):
    project.suite()
    cfg = load_run_config(project.config(GOOD))
    assert cfg.run_id == "run" and cfg.models[0].provider.concurrency == 16


def test_unknown_key_names_line_and_allowed_keys(project):
    msg, path = error_for(
        project, GOOD.replace("    model: m1", "    model: m1\n    temprature: 0.2")
    )
    assert f"{path}:10: models[0].temprature: unknown key 'temprature'" in msg
    assert "expected one of: limits, model, name, params, price, provider" in msg


def test_wrong_type_says_expected_and_found(project):
    msg, path = error_for(project, GOOD + "epochs: three\n")
    assert f"{path}:10: epochs: expected an integer, found the string 'three'" in msg


def test_missing_required_key(project):
    msg, path = error_for(project, GOOD.replace("    model: m1\n", ""))
    assert f"{path}:8: models[0]: missing required key 'model'" in msg


def test_bad_yaml_names_line_and_column(project):
    msg, path = error_for(project, GOOD.replace("models:", "models: [\n"))
    assert msg.startswith(f"{path}:") and "bad YAML" in msg


def test_unknown_provider(project):
    msg, path = error_for(project, GOOD.replace("provider: local", "provider: locl"))
    assert (
        f"{path}:8: models[0].provider: unknown provider 'locl'" in msg and "declared: local" in msg
    )


def test_bad_enum_value(project):
    msg, path = error_for(project, GOOD.replace("type: openai-compatible", "type: opnai"))
    assert (
        f"{path}:4: providers.local.type: expected one of: openai, anthropic, openai-compatible, "
        "replay" in msg
    )


def test_duplicate_key(project):
    msg, path = error_for(project, GOOD + "suite: other\n")
    assert f"{path}:10: suite: duplicate key" in msg


def test_api_key_pasted_instead_of_env_name_is_not_echoed(project):
    msg, _ = error_for(
        project, GOOD.replace("api_key_env: MOCK_KEY", "api_key_env: sk-live-abc123-secret")
    )
    assert "expected the NAME of an environment variable" in msg
    assert "sk-live-abc123-secret" not in msg


def test_out_of_range(project):
    msg, path = error_for(
        project, GOOD.replace("api_key_env: MOCK_KEY", "api_key_env: MOCK_KEY\n    concurrency: 0")
    )
    assert (
        f"{path}:7: providers.local.concurrency: expected a number >= 1, found the number 0" in msg
    )


def test_duplicate_model_name(project):
    msg, path = error_for(project, GOOD + "  - {provider: local, model: m1}\n")
    assert "model name 'm1' is used twice" in msg and path in msg


def test_budget_without_price(project):
    msg, path = error_for(project, GOOD + "budget_usd: 5\n")
    assert f"{path}:8: models[0]: no price is known for 'm1'" in msg


def test_missing_env_var_for_key(project, cli, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    project.suite()
    path = project.config("suite: mini\nmodels:\n  - {provider: openai, model: gpt-4o-mini}\n")
    code, _, err = cli("run", path)
    assert code == 2
    assert (
        f"{path}:3: models[0].provider: model 'gpt-4o-mini' needs an API key in the environment "
        "variable "
        "OPENAI_API_KEY, which is not set" in err
    )


def test_empty_file_and_not_a_mapping(project):
    msg, path = error_for(project, "")
    assert "empty" in msg
    msg, path = error_for(project, "- a\n- b\n")
    assert f"{path}:1: expected a mapping" in msg


def test_missing_suite(project, cli):
    path = project.config(GOOD.replace("suite: mini", "suite: nope"))
    project.suite()
    code, _, err = cli("run", path)
    assert (
        code == 2 and "suite 'nope'" in err and f"suites in {project.root / 'suites'}: mini" in err
    )


def test_bad_pool_lines_are_all_reported(project, cli):
    project.suite(
        lines=[
            '{"id": "a", "prompt": "fine"}',
            '{"id": "b"',
            '{"id": "c", "promt": "typo"}',
            '{"id": "a", "prompt": "again"}',
            '{"prompt": "no id"}',
        ]
    )
    code, _, err = cli("run", project.config(GOOD))
    assert code == 2
    assert "items.jsonl:2: not valid JSON" in err
    assert "items.jsonl:3: promt: unknown key 'promt'" in err and "(item 'c')" in err
    assert "items.jsonl:4: item id 'a' appears more than once" in err
    assert "items.jsonl:5: missing required key 'id'" in err
    assert "nothing was run" in err


def test_human_review_settings_are_checked_like_any_other_key(project):
    msg, path = error_for(
        project, GOOD + "graders:\n  - human:\n      route: {sampel: 0.1}\n      overlap: two\n"
    )
    assert f"{path}:12: graders[0].human.route.sampel: unknown key 'sampel'" in msg
    assert "expected one of: confidence, disagreement, gold, hooks, sample, when" in msg
    assert (
        f"{path}:13: graders[0].human.overlap: expected an integer, found the string 'two'" in msg
    )
    project.suite()
    ok = (
        GOOD
        + "graders:\n  - human:\n      route: {sample: 0.1, when: [judge_disagreement]}\n      "
        "overlap: 2\n"
    )
    load_run_config(project.config(ok))
