"""Records that cannot be quietly rewritten (#17): each attack of someone with the command line but
not the vault key, tried for real against the CLI, now fails for the attacker."""

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import QUESTIONS, ledger_db, sqlite_only
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harness.mockserver import MockBehaviour, MockServer
from harness.scorecard.sign import canonical, fingerprint
from harness.vault import Vault

DAY = 86400


def _vault(project) -> Vault:
    return Vault.open(project.root / ".holdout")


# -- one clock, no test hooks in production
# --------------------------------------------------------------------


def test_the_environment_can_neither_move_the_clock_nor_arm_a_failpoint(heldout, project):
    env = {
        **os.environ,
        "HOLDOUT_NOW": "1",
        "HOLDOUT_FAILPOINTS": "vault.add_pool.before_index=kill",
    }

    def holdout(*args):
        return subprocess.run(
            [sys.executable, "-m", "harness.cli", *map(str, args)],
            cwd=project.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    proc = holdout("pool", "import", project.root / "pool.jsonl", "--suite", "s", "--heldout")
    assert proc.returncode == 0, proc.stderr  # not killed
    before = time.time()
    proc = holdout("pool", "retire", "s@v1")
    assert proc.returncode == 0, proc.stderr
    retired = _vault(project).manifest("s@v1")["retired_at"]
    assert before - 1 <= retired <= time.time() + 1  # the system's time, not 1970
    harness = __import__("pathlib").Path(__file__).resolve().parent.parent / "harness"
    assert not [
        p
        for p in harness.rglob("*.py")
        if "HOLDOUT_NOW" in p.read_text() or "HOLDOUT_FAILPOINTS" in p.read_text()
    ]


def test_a_write_under_an_injected_clock_is_named_by_vault_verify(heldout, project, cli, set_clock):
    assert cli("vault", "verify")[0] == 0
    set_clock(time.time() - 400 * DAY)
    assert cli("pool", "retire", "s@v1")[0] == 0
    code, out, err = cli("vault", "verify")
    assert code == 3 and "injected test clock" in err


# -- embargo as policy
# ------------------------------------------------------------------------------------------


def _with_a_year_embargo(project, set_clock) -> float:
    """The suite's licence says 365 days; the clock starts now. Returns now."""
    (project.root / "suites" / "s" / "suite.yaml").write_text(
        json.dumps(
            {
                "name": "s",
                "public_pool": "items.jsonl",
                "strata": ["category"],
                "license": {"embargo_days": 365},
            }
        )
    )
    t0 = time.time()
    set_clock(t0)
    return t0


def test_an_embargo_override_may_lengthen_but_not_shorten_without_a_recorded_reason(
    heldout, project, cli, set_clock
):
    t0 = _with_a_year_embargo(project, set_clock)
    cli("pool", "retire", "s@v1")
    out = project.root / "out"
    set_clock(t0 + 100 * DAY)
    for days in ("0", "-1", "nan", "99"):
        code, _, err = cli(
            "export",
            "items",
            "--suite",
            "s",
            "--purpose",
            "research",
            "--out",
            out,
            "--embargo-days",
            days,
        )
        assert code == 2 and not out.exists(), (days, err)
        assert (
            ("shorter than the suite's embargo of 365 days" in err)
            if days in ("0", "99")
            else ("0 or more" in err)
        )
    code, _, _ = cli(
        "export",
        "items",
        "--suite",
        "s",
        "--purpose",
        "research",
        "--out",
        out,
        "--embargo-days",
        "400",
    )
    assert code == 3 and not out.exists()  # lengthening: still refused, as it should be
    code, stdout, err = cli(
        "export",
        "items",
        "--suite",
        "s",
        "--purpose",
        "research",
        "--out",
        out,
        "--embargo-days",
        "30",
        "--justification",
        "court order 2026-117: release to the auditor",
    )
    assert code == 0, err
    manifest_path = out / "s_v1.manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["embargo_days"] == 30 and manifest["policy_embargo_days"] == 365
    assert manifest["embargo_shortened_because"] == "court order 2026-117: release to the auditor"
    assert cli("verify", manifest_path)[0] == 0  # signed with the vault key
    manifest["embargo_shortened_because"] = "routine"
    manifest_path.write_text(json.dumps(manifest))
    code, _, err = cli("verify", manifest_path)
    assert code == 2 and "NOT signed by this vault" in err


def test_exporting_outputs_applies_the_suites_embargo(heldout, project, cli, set_clock):
    t0 = _with_a_year_embargo(project, set_clock)
    assert cli("run", heldout(), "-q")[0] == 0
    cli("pool", "retire", "s@v1")
    out = project.root / "out"
    set_clock(t0 + 61 * DAY)
    code, _, err = cli("export", "outputs", "run", "--purpose", "research", "--out", out)
    assert code == 3 and "365-day embargo" in err + _ and not out.exists()
    set_clock(t0 + 366 * DAY)
    code, stdout, err = cli("export", "outputs", "run", "--purpose", "research", "--out", out)
    assert code == 0, err
    assert json.loads((out / "run.outputs.manifest.json").read_text())["embargo_days"] == 365


# -- a tamper-evident ledger and index
# ----------------------------------------------------------------------------


def _ledger(project):
    return ledger_db(project.root)


@pytest.mark.parametrize(
    "attack", ["delete a middle row", "delete the last rows", "edit a count", "empty it"]
)
def test_a_ledger_changed_outside_holdout_is_refused_by_rotate_and_named_by_verify(
    heldout, project, cli, attack
):
    assert cli("run", heldout(), "-q")[0] == 0
    assert cli("pool", "exposure", "s")[0] == 0 and cli("vault", "verify")[0] == 0
    db = _ledger(project)
    n = db.execute("SELECT COUNT(*) FROM exposures").fetchone()[0]
    assert n == len(QUESTIONS) * 2
    if attack == "delete a middle row":
        db.execute("DELETE FROM exposures WHERE seq=3")
    elif attack == "delete the last rows":
        db.execute("DELETE FROM exposures WHERE seq>?", (n - 4,))
    elif attack == "edit a count":
        db.execute("UPDATE exposures SET item_id='h1' WHERE seq=5")
    else:
        db.execute("DELETE FROM exposures")
        db.execute("DELETE FROM witness")
    db.close()
    code, _, err = cli("pool", "rotate", "s", "--max-exposure", "1")
    assert code == 2 and "outside holdout" in err and "no rotation" not in err
    code, _, err = cli("vault", "verify")
    assert code == 3 and ("exposure ledger" in err or "exposure rows" in err)


@sqlite_only
def test_a_failed_ledger_write_sends_nothing_unrecorded(heldout, project, cli, tmp_path):
    """A real full disk: the vault on a 16 MiB tmpfs, filled while a run is going."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], capture_output=True
    ).returncode:
        pytest.skip(
            "mounting a small tmpfs needs root with CAP_SYS_ADMIN (to fill a disk for real)"
        )
    try:
        vault_dir = project.root / ".holdout" / "vault"
        shutil.copytree(vault_dir, mnt / "vault")
        shutil.rmtree(vault_dir)
        vault_dir.symlink_to(mnt / "vault")
        server = MockServer(MockBehaviour(latency_s=0.05))
        server.start()
        try:
            cfg = project.config(
                "suite: s\npool: heldout\nepochs: 100\nproviders:\n  a:\n    type: "
                "openai-compatible\n"
                f"    base_url: {server.url}/v1\n    concurrency: 4\nmodels:\n  - {{provider: a, "
                f"model: m1}}\n"
            )
            proc = subprocess.Popen(
                [sys.executable, "-m", "harness.cli", "run", str(cfg), "-q"],
                cwd=project.root,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            while server.stats.requests < 50 and proc.poll() is None:
                time.sleep(0.05)
            assert proc.poll() is None, proc.communicate()
            try:  # the disk fills up
                with open(mnt / "filler", "wb") as f:
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
            except OSError:
                pass
            _, err = proc.communicate(timeout=120)
            assert (
                proc.returncode == 2
                and "exposure ledger could not be written" in err
                and "Traceback" not in err
            ), err
            (mnt / "filler").unlink()
            recorded = _ledger(project).execute("SELECT COUNT(*) FROM exposures").fetchone()[0]
            # never under-counted
            assert server.stats.requests <= recorded < len(QUESTIONS) * 2 * 100
            assert cli("vault", "verify")[0] == 0
        finally:
            server.stop()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@sqlite_only
def test_an_older_index_restored_over_a_newer_one_is_refused(heldout, project, cli, tmp_path):
    vault_dir = project.root / ".holdout" / "vault"
    saved = (vault_dir / "index.json").read_bytes()
    pool = project.root / "pool2.jsonl"
    pool.write_text(json.dumps({"id": "n1", "prompt": "new question"}) + "\n")
    # retires s@v1
    assert cli("pool", "import", pool, "--suite", "s", "--heldout", "--activate")[0] == 0
    (vault_dir / "index.json").write_bytes(saved)  # the attacker's restore: s@v1 active again
    code, _, err = cli("run", heldout(), "-q")
    assert code == 2 and "older than the vault's last write" in err
    code, _, err = cli("vault", "verify")
    assert code == 3 and "older than the vault's last write" in err


@sqlite_only
def test_a_ledger_from_before_the_chain_is_adopted_once(tmp_path, monkeypatch):
    monkeypatch.delenv("HOLDOUT_VAULT_KEY", raising=False)
    ws = tmp_path / "ws"
    Vault.init(ws)
    db = sqlite3.connect(ws / "vault" / "ledger.sqlite", isolation_level=None)
    db.executescript(
        # as a version from before the chain (and before schema versions) wrote it
        "PRAGMA user_version = 0; DROP TABLE exposures; DROP TABLE witness; "
        "CREATE TABLE exposures (pool_id TEXT NOT NULL, "
        "item_id TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL, run_id TEXT, role "
        "TEXT NOT NULL "
        "DEFAULT 'model', at REAL NOT NULL);"
    )
    db.executemany(
        "INSERT INTO exposures VALUES (?,?,?,?,?,?,?)",
        [("s@v1", f"i{k}", "a", "m", "r", "model", 1.5 + k) for k in range(5)],
    )
    db.close()
    vault = Vault.open(ws)
    assert vault.ledger.rows() == 5 and vault.ledger.verify() == []
    assert [r[2] for r in vault.ledger.counts("s@v1")] == [1] * 5


# -- drafts
# --------------------------------------------------------------------------------------------------


def test_a_draft_pool_is_not_sent_unless_the_config_says_so(heldout, project, cli, mock_server):
    pool = project.root / "future.jsonl"
    pool.write_text(
        json.dumps({"id": "f1", "prompt": "未来のテスト問題"}, ensure_ascii=False) + "\n"
    )
    assert cli("pool", "import", pool, "--suite", "s", "--heldout")[0] == 0  # s@v2, a draft
    cfg = project.config(
        "suite: s\npool: s@v2\nproviders:\n  a:\n    type: openai-compatible\n"
        f"    base_url: {mock_server.url}/v1\nmodels:\n  - {{provider: a, model: m1}}\n",
        name="draft.yaml",
    )
    code, _, err = cli("run", cfg, "-q")
    assert (
        code == 2
        and "is a draft" in err
        and "allow_draft: true" in err
        and mock_server.stats.requests == 0
    )
    cfg.write_text("allow_draft: true\n" + cfg.read_text())
    assert cli("run", cfg, "-q")[0] == 0 and mock_server.stats.requests == 1
    summary = json.loads(
        (project.root / "configs" / "results" / "draft" / "summary.json").read_text()
        if (project.root / "configs" / "results").exists()
        else (project.root / "results" / "draft" / "summary.json").read_text()
    )
    assert summary["pool_sent_as_draft"] == "s@v2"


# -- scorecards
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def cards(heldout, project, cli):
    cfg = heldout("labs:\n  acme: [m1]\n  globex: [m2]\n", models=("m1", "m2"))
    (project.root / "suites" / "s" / "suite.yaml").write_text(
        json.dumps(
            {
                "name": "s",
                "public_pool": "items.jsonl",
                "graders": [{"rules": {"type": "contains"}}],
            }
        )
    )
    assert cli("run", cfg, "-q")[0] == 0
    assert cli("grade", "run", "-q")[0] == 0
    code, _, err = cli("scorecard", "run", "--all")
    assert code == 0, err
    folder = next(project.root.rglob("scorecards"))
    return folder


def _resign(card: dict) -> dict:
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    card = {k: v for k, v in card.items() if k != "signature"}
    return {
        **card,
        "signature": {
            "algorithm": "ed25519",
            "public_key": base64.b64encode(public).decode(),
            "fingerprint": fingerprint(public),
            "value": base64.b64encode(key.sign(canonical(card))).decode(),
        },
    }


def test_scorecards_that_were_changed_or_signed_by_someone_else_fail(cards, cli):
    from harness.egress import strict_json

    card_file = cards / "acme.json"
    assert cli("verify", card_file)[0] == 0 and cli("verify", cards / "acme.html")[0] == 0
    text = card_file.read_text()
    card = json.loads(text)
    # a fake `models` placed first: json.loads would keep the last, a reader the first
    fake = text.replace('{\n  "schema"', '{\n  "models": {"m1": {"rank": 1}},\n  "schema"', 1)
    assert fake != text
    card_file.write_text(fake)
    code, _, err = cli("verify", card_file)
    assert code == 2 and "duplicate key 'models'" in err
    # re-signed by another key: refused where the vault is, UNPINNED elsewhere
    card_file.write_text(strict_json(_resign(card)) + "\n")
    code, _, err = cli("verify", card_file)
    assert code == 2 and "not by this vault's scorecard key" in err
    code, out, _ = cli("verify", card_file, "--workspace", cards / "nowhere")
    assert code == 3 and "UNPINNED" in out
    # trailing data and a reformatted file
    card_file.write_text(strict_json(card) + "\n{}")
    assert cli("verify", card_file)[0] == 2
    card_file.write_text(json.dumps(card))
    code, _, err = cli("verify", card_file)
    assert code == 2 and "file around it was changed" in err


def test_an_edited_html_card_fails(cards, cli):
    page = cards / "acme.html"
    text = page.read_text()
    assert "Scorecard for acme" in text
    page.write_text(text.replace("Scorecard for acme", "Scorecard for acme (best in class)"))
    code, _, err = cli("verify", page)
    assert code == 2 and "file around it was changed" in err


def test_a_two_model_field_does_not_reveal_the_other_labs_score(cards):
    card = json.loads((cards / "acme.json").read_text())
    field = card["field"]["rules"]
    assert (
        field["suppressed"]
        and "median" not in field
        and "best" not in field
        and card["min_field_size"] == 3
    )
    assert "globex" not in json.dumps(card) and "m2" not in json.dumps(card["models"])
    assert "not shown: fewer than 3 other models" in (cards / "acme.html").read_text()


@sqlite_only
def test_a_card_reissued_after_the_store_was_edited_is_visible_in_the_audit_trail(
    cards, project, cli
):
    db = sqlite3.connect(project.root / ".holdout" / "store.sqlite", isolation_level=None)
    db.execute("UPDATE grades SET score=1.0 WHERE model='m1'")
    db.close()
    code, _, err = cli("scorecard", "run", "--lab", "acme")
    assert code == 0 and "issued before from different store rows" in err
    audit = [json.loads(line) for line in (cards / "audit.jsonl").read_text().splitlines()]
    acme = [a for a in audit if a["lab"] == "acme"]
    assert len(acme) == 2 and acme[0]["store_rows_sha256"] != acme[1]["store_rows_sha256"]


def test_vault_verify_names_a_removed_pool_blob_and_a_swapped_manifest(heldout, project, cli):
    vault_dir = project.root / ".holdout" / "vault"
    pool = project.root / "pool2.jsonl"
    pool.write_text(json.dumps({"id": "n1", "prompt": "另一个问题"}, ensure_ascii=False) + "\n")
    assert cli("pool", "import", pool, "--suite", "s", "--heldout")[0] == 0
    (vault_dir / "pools" / "s" / "v2" / "items.bin").unlink()
    shutil.copy(
        vault_dir / "pools" / "s" / "v1" / "manifest.json",
        vault_dir / "pools" / "s" / "v2" / "manifest.json",
    )
    code, _, err = cli("vault", "verify")
    assert code == 3 and "s@v2" in err and "Traceback" not in err
    code, out, _ = cli("vault", "verify", "--json")
    assert code == 3 and not json.loads(out)["intact"] and json.loads(out)["problems"]


def test_two_processes_sending_one_pool_at_once_keep_one_unbroken_ledger(
    heldout, project, cli, mock_server
):
    """Two runs (different run ids, so no run lock between them) of the same held-out pool, in two
    processes at once: each extends the same MAC chain under SQLite's write lock. Every send is in
    it, once."""
    from conftest import holdout_subprocess

    mock_server.behaviour = MockBehaviour(latency_s=0.01)
    configs = [heldout(f"run_id: twin-{k}\nepochs: 20\n", name=f"twin-{k}.yaml") for k in (1, 2)]
    procs = [holdout_subprocess("run", c, "-q", cwd=project.root) for c in configs]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    rows = _ledger(project).execute("SELECT COUNT(*) FROM exposures").fetchone()[0]
    assert rows == mock_server.stats.requests == 2 * 20 * len(QUESTIONS) * 2
    code, out, err = cli("vault", "verify")
    assert code == 0, err
    assert cli("pool", "exposure", "s")[0] == 0


# -- the upstream behind a gateway
# -----------------------------------------------------------------------------


# LiteLLM
@pytest.mark.parametrize(
    "how, named, recorded",
    [
        ("body", "OpenAI", "OpenAI"),  # OpenRouter's "provider"
        ("header", "api.anthropic.com", "api.anthropic.com"),
    ],
)
def test_the_ledger_records_the_upstream_a_gateway_names(
    heldout, project, cli, mock_server, how, named, recorded
):
    """The gateway saw each prompt, and so did the upstream it says it passed it to: both are
    exposures."""
    mock_server.behaviour.upstreams = {"m1": named}
    mock_server.behaviour.upstream_header = how == "header"
    assert cli("run", heldout(), "-q")[0] == 0
    rows = (
        _ledger(project)
        .execute("SELECT provider, role, COUNT(*) FROM exposures GROUP BY 1, 2 ORDER BY 1")
        .fetchall()
    )
    assert sorted(rows) == sorted(
        [("a", "model", len(QUESTIONS) * 2), (recorded, "upstream", len(QUESTIONS) * 2)]
    )
    code, out, _ = cli("pool", "exposure", "s")
    assert code == 0 and recorded in out
    assert cli("vault", "verify")[0] == 0


@pytest.mark.parametrize(
    "named", ["Open AI", "x\ny", "", "a" * 300, "../../etc", "提供者", "مزود", "प्रदाता"]
)
def test_an_upstream_that_is_not_an_id_is_not_recorded(heldout, project, cli, mock_server, named):
    """A gateway's text is not trusted into the ledger: only an id-shaped name (never a sentence) is
    kept."""
    mock_server.behaviour.upstreams = {"m1": named}
    assert cli("run", heldout(), "-q")[0] == 0
    providers = {p for (p,) in _ledger(project).execute("SELECT DISTINCT provider FROM exposures")}
    assert providers == {"a"}


def test_the_ledger_tells_a_judges_exposure_from_a_models(heldout, project, cli, mock_server):
    """A judge sees the held-out prompt too; the ledger says which role saw it."""
    (project.root / "suites" / "s" / "suite.yaml").write_text(
        json.dumps(
            {
                "name": "s",
                "public_pool": "items.jsonl",
                "graders": [
                    {
                        "rubric": {
                            "judges": [{"provider": "a", "model": "j1"}],
                            "criteria": [{"name": "quality", "scale": [1, 5]}],
                        }
                    }
                ],
            }
        )
    )
    mock_server.behaviour.responder = lambda api, body: (
        json.dumps({"scores": {"quality": 4}, "rationale": "ok"}) if body["model"] == "j1" else None
    )
    assert cli("run", heldout(), "-q")[0] == 0
    code, _, err = cli("grade", "run", "-q")
    assert code == 0, err
    rows = (
        _ledger(project)
        .execute("SELECT model, role, COUNT(*) FROM exposures GROUP BY 1, 2 ORDER BY 1")
        .fetchall()
    )
    assert rows == [("j1", "judge", len(QUESTIONS) * 2), ("m1", "model", len(QUESTIONS) * 2)]
