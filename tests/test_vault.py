"""The vault: encrypted at rest, listed without decryption, every misuse a clear error with no
partial state."""

import json
import os

import pytest

from harness.database import store_location
from harness.errors import ConfigError
from harness.vault import Vault, VaultError, import_pool_file

ITEMS = [
    {
        "id": f"h{i}",
        "prompt": f"Held-out prompt {i} about the quokka protocol",
        "reference": "42",
        "metadata": {"category": "c" + str(i % 2), "language": "en"},
    }
    for i in range(5)
]


@pytest.fixture
def vault(tmp_path, monkeypatch):
    monkeypatch.delenv("HOLDOUT_VAULT_KEY", raising=False)
    v, _ = Vault.init(tmp_path / "ws")
    return v


def pool_file(tmp_path, items=ITEMS):
    path = tmp_path / "pool.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    return path


def test_import_encrypts_and_lists_without_text(tmp_path, vault):
    pool_id = import_pool_file(
        vault, "arena", pool_file(tmp_path), license_class="heldout", strata=["category"]
    )
    assert pool_id == "arena@v1"
    for f in vault.dir.rglob("*"):
        if f.is_file():
            assert b"quokka" not in f.read_bytes(), f
    m = vault.manifest(pool_id)
    assert (
        m["items"] == 5
        and m["status"] == "draft"
        and m["strata"] == {"category": {"c0": 3, "c1": 2}}
    )
    assert m["canary"].startswith("holdout-canary-")
    items = vault.load_items(pool_id)
    assert [i.id for i in items] == [f"h{i}" for i in range(5)]
    assert "quokka" not in repr(items[0]) and "quokka" not in str(items[0].prompt)


def test_activate_retires_previous(tmp_path, vault):
    a = import_pool_file(vault, "arena", pool_file(tmp_path), license_class="heldout")
    b = import_pool_file(vault, "arena", pool_file(tmp_path), license_class="heldout")
    assert vault.activate(a, thresholds={}) is None
    assert vault.activate(b, thresholds={}) == a
    assert vault.manifest(a)["status"] == "retired" and vault.manifest(a)["retired_at"]
    assert vault.active_pool("arena") == b
    with pytest.raises(VaultError, match="retired; a retired pool never comes back"):
        vault.activate(a, thresholds={})


def test_wrong_key_is_reported_and_nothing_opens(tmp_path, vault, monkeypatch):
    import_pool_file(vault, "arena", pool_file(tmp_path), license_class="heldout")
    monkeypatch.setenv("HOLDOUT_VAULT_KEY", "A" * 43 + "=")
    with pytest.raises(VaultError, match="does not open the vault .* \\(wrong key\\)"):
        Vault.open(tmp_path / "ws")


def test_tampered_items_are_detected(tmp_path, vault):
    pool_id = import_pool_file(vault, "arena", pool_file(tmp_path), license_class="heldout")
    blob = vault.dir / "pools" / "arena" / "v1" / "items.bin"
    data = bytearray(blob.read_bytes())
    data[40] ^= 1
    blob.write_bytes(bytes(data))
    with pytest.raises(
        VaultError, match="cannot decrypt: wrong vault key, or the data was modified"
    ):
        vault.load_items(pool_id)


def test_tampered_manifest_is_detected(tmp_path, vault):
    pool_id = import_pool_file(vault, "arena", pool_file(tmp_path), license_class="heldout")
    path = vault.dir / "pools" / "arena" / "v1" / "manifest.json"
    m = json.loads(path.read_text())
    m["license_class"] = "public"  # try to relabel a held-out pool as exportable
    path.write_text(json.dumps(m))
    with pytest.raises(VaultError, match="modified outside holdout"):
        vault.load_items(pool_id)


def test_blob_moved_under_another_label_fails(tmp_path, vault):
    import_pool_file(vault, "arena", pool_file(tmp_path), license_class="heldout")
    b = import_pool_file(vault, "arena", pool_file(tmp_path, ITEMS[:2]), license_class="heldout")
    src, dst = (vault.dir / "pools" / "arena" / v / "items.bin" for v in ("v1", "v2"))
    dst.write_bytes(src.read_bytes())
    with pytest.raises(VaultError, match="cannot decrypt"):
        vault.load_items(b)


def test_world_readable_key_file_is_refused(tmp_path, vault):
    key = tmp_path / "ws" / "vault.key"
    os.chmod(key, 0o644)
    with pytest.raises(
        VaultError, match=r"can be read by others \(mode 644\); refusing.*chmod 600"
    ):
        Vault.open(tmp_path / "ws")


def test_missing_vault_and_missing_key(tmp_path, monkeypatch):
    monkeypatch.delenv("HOLDOUT_VAULT_KEY", raising=False)
    with pytest.raises(VaultError, match="no vault at .*holdout vault init"):
        Vault.open(tmp_path / "nothing")
    Vault.init(tmp_path / "ws")
    (tmp_path / "ws" / "vault.key").unlink()
    with pytest.raises(VaultError, match="no vault key: set HOLDOUT_VAULT_KEY"):
        Vault.open(tmp_path / "ws")


def test_bad_pool_file_leaves_no_partial_version(tmp_path, vault):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n')
    with pytest.raises(ConfigError, match="appears more than once"):
        import_pool_file(vault, "arena", path, license_class="heldout")
    assert vault.pools() == [] and not (vault.dir / "pools" / "arena" / "v1").exists()


def test_crash_during_import_leaves_no_partial_version(tmp_path, vault):
    import subprocess
    import sys

    code = (
        "import sys; from pathlib import Path; from harness import failpoints; "
        "from harness.vault import Vault, import_pool_file; "
        "failpoints.arm('vault.add_pool.before_rename=kill'); "
        "v = Vault.open(Path(sys.argv[1])); import_pool_file(v, 'arena', Path(sys.argv[2]), "
        "license_class='heldout')"
    )
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "ws"), str(pool_file(tmp_path))], env=env
    )
    assert proc.returncode == -9
    assert vault.pools() == [] and not (vault.dir / "pools" / "arena" / "v1").exists()
    assert (
        import_pool_file(vault, "arena", pool_file(tmp_path), license_class="heldout") == "arena@v1"
    )


def test_cli_pool_commands(project, cli, monkeypatch, tmp_path):
    project.suite(name="arena")
    monkeypatch.delenv("HOLDOUT_VAULT_KEY", raising=False)
    code, stdout, err = cli("vault", "init")
    assert code == 0 and "vault.key" in stdout + err and "Keep a copy of the key" in stdout + err
    code, stdout, err = cli("pool", "import", pool_file(tmp_path), "--suite", "arena", "--heldout")
    assert (
        code == 0
        and "arena@v1" in stdout + err
        and "holdout pool activate arena@v1" in stdout + err
    )
    code, stdout, err = cli("pool", "activate", "arena@v1")
    assert code == 0
    code, stdout, err = cli("pool", "list")
    assert (
        code == 0
        and "arena@v1" in stdout + err
        and "active" in stdout + err
        and "quokka" not in stdout + err
    )
    code, stdout, err = cli("pool", "activate", "arena@v9")
    assert code == 2 and "no pool arena@v9" in stdout + err


def test_heldout_run_refuses_provider_with_longer_retention(
    project, cli, monkeypatch, tmp_path, mock_server
):
    project.suite(name="arena")
    monkeypatch.delenv("HOLDOUT_VAULT_KEY", raising=False)
    cli("vault", "init")
    cli(
        "pool",
        "import",
        pool_file(tmp_path),
        "--suite",
        "arena",
        "--heldout",
        "--max-retention",
        "zero",
        "--activate",
    )
    path = project.config(
        f"suite: arena\npool: heldout\nproviders:\n  p:\n    type: openai-compatible\n"
        f"    base_url: {mock_server.url}/v1\n    retention: 30d\nmodels:\n  - {{provider: p, "
        f"model: m}}\n"
    )
    code, stdout, err = cli("run", path, "-q")
    assert code == 2
    assert (
        "pool arena@v1 may only be sent to providers that keep prompts at most zero" in stdout + err
    )
    assert (
        "provider 'p' declares retention '30d'" in stdout + err
        and "Nothing was sent" in stdout + err
    )
    assert mock_server.stats.requests == 0
    path.write_text(path.read_text().replace("30d", "zero"))
    code, stdout, err = cli("run", path, "-q")
    assert code == 0 and mock_server.stats.requests == 5
    # the store holds outputs encrypted; reading them back gives sealed text
    from harness.store import Store

    vault = Vault.open(project.root / ".holdout")
    store = Store(store_location(project.root / ".holdout"), cipher=vault.output_cipher())
    outputs = [r.output for r in store.calls("run")]
    assert all("quokka" not in str(o) for o in outputs)
    from harness.sealed import reveal

    assert all("quokka" in reveal(o) for o in outputs)


def test_review_push_of_heldout_text_needs_a_trusted_destination(
    project, cli, monkeypatch, tmp_path, mock_server
):
    monkeypatch.delenv("HOLDOUT_VAULT_KEY", raising=False)
    (tmp_path / "mytool.py").write_text(
        "SENT = []\ndef send(destination, rows):\n    SENT.append((destination, rows))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    project.suite(
        name="arena",
        graders=[
            {
                "rubric": {
                    "judge": {"provider": "p", "model": "j"},
                    "criteria": [{"name": "q", "scale": [1, 5]}],
                }
            },
            {
                "human": {
                    "route": {"sample": 1.0},
                    "overlap": 1,
                    "push": {"hook": "mytool:send", "destination": "acme-labelling"},
                }
            },
        ],
    )
    cli("vault", "init")
    cli("pool", "import", pool_file(tmp_path), "--suite", "arena", "--heldout", "--activate")
    mock_server.behaviour.responder = lambda api, body: (
        '{"scores": {"q": 3}}' if body["model"] == "j" else None
    )
    path = project.config(
        f"suite: arena\npool: heldout\nproviders:\n  p:\n    type: openai-compatible\n"
        f"    base_url: {mock_server.url}/v1\nmodels:\n  - {{provider: p, model: m}}\n"
    )
    cli("run", path, "-q")
    cli("grade", "run", "-q")
    cli("review", "add-reviewer", "ann")
    code, stdout, err = cli("review", "route", "run")
    import mytool

    assert (
        code == 2
        and "destination 'acme-labelling' is not in the run config's trusted_destinations"
        in stdout + err
    )
    assert mytool.SENT == []
    path.write_text(path.read_text() + "trusted_destinations: [acme-labelling]\n")
    code, stdout, err = cli("review", "route", "run")
    assert code == 0 and "5 open assignments pushed to acme-labelling" in stdout + err
    assert len(mytool.SENT[0][1]) == 5 and "quokka" in mytool.SENT[0][1][0]["prompt"]


@pytest.mark.parametrize(
    "pool,expected",
    [
        ("arena", "'arena' is not a pool: expected public, heldout or a vault version"),
        ("arena@3", "'arena@3' is not a pool"),
        ("arena@v0", "'arena@v0' is not a pool"),
        ("评测@v1", "pool 评测@v1 belongs to suite '评测', not 'arena'"),
    ],
)
def test_a_pool_id_in_a_config_is_checked_where_it_is_written(
    project, cli, tmp_path, monkeypatch, pool, expected
):
    """A mistyped pool id names the config file and its key, before anything is opened or sent."""
    project.suite(name="arena")
    monkeypatch.delenv("HOLDOUT_VAULT_KEY", raising=False)
    cli("vault", "init")
    cli("pool", "import", pool_file(tmp_path), "--suite", "arena", "--heldout", "--activate")
    path = project.config(
        f"suite: arena\npool: '{pool}'\nproviders:\n  p:\n    type: openai-compatible\n"
        "    base_url: http://127.0.0.1:9/v1\nmodels:\n  - {provider: p, model: m}\n"
    )
    code, stdout, err = cli("run", path, "-q")
    assert code == 2
    assert expected in err and str(path.name) in err and "pool" in err
    assert "Traceback" not in err
