"""The gate's fingerprints of a held-out version, kept in the vault (harness/vault/printcache.py):
made once, encrypted, and used by the next process, which catches exactly what a process that
registered the text itself would; a kept file that was changed is made again, never trusted."""

import subprocess

from conftest import QUESTIONS, holdout_argv, sqlite_only, store_db


def test_kept_fingerprints_catch_what_fresh_ones_do_and_a_changed_file_is_made_again(
    heldout, project, mock_server
):
    """A provider names a held-out reference (id-shaped) as the model that served: the gate must
    see that it is held-out text and store "(withheld)" instead, in the process that registers
    the text, in the next one (from the kept fingerprints), and after the kept file was changed."""
    mock_server.behaviour.served_as = {"m1": "answer-3-of-the-pool"}

    def served_in_a_new_process(run_id: str) -> set:
        config = heldout(f"run_id: {run_id}\n", name=f"{run_id}.yaml")
        proc = subprocess.run(
            holdout_argv("run", config, "-q"), cwd=project.root, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
        with project.db() as db:
            return {s for (s,) in db.execute("SELECT served FROM calls WHERE run_id=?", (run_id,))}

    assert served_in_a_new_process("pc1") == {"(withheld)"}  # registered afresh, then kept
    kept = next((project.root / ".holdout" / "vault" / "pools").rglob("fingerprints.bin"))
    made = kept.read_bytes()
    # encrypted: no held-out text in it (texts of 8 bytes or more: a 2-byte "Hi" turns up by
    # chance in 6 MB of ciphertext)
    assert not any(
        t.encode() in made for t in ["answer-3-of-the-pool", *QUESTIONS] if len(t.encode()) >= 8
    )
    assert served_in_a_new_process("pc2") == {"(withheld)"}  # from the kept fingerprints
    assert kept.read_bytes() == made  # used, not made again
    changed = made[:-1] + bytes([made[-1] ^ 1])
    kept.write_bytes(changed)  # outside holdout
    assert served_in_a_new_process("pc3") == {"(withheld)"}
    assert kept.read_bytes() not in (made, changed)  # made again


@sqlite_only
def test_a_process_that_opened_another_vault_keeps_nothing_under_its_salt(
    heldout, project, cli, mock_server, tmp_path, monkeypatch
):
    """One process (this one: `cli` runs in it) opens a vault at .holdout/vault in one directory,
    then another vault at the same relative path in another: the second vault's text is
    registered under the first one's salt, so nothing may be kept for it from this process (a
    kept file must be salted by its own vault's key, or the next process would catch nothing)."""
    mock_server.behaviour.served_as = {"m1": "answer-3-of-the-pool"}
    assert cli("run", heldout("run_id: here\n", name="here.yaml"), "-q")[0] == 0  # this vault
    kept_here = next((project.root / ".holdout" / "vault" / "pools").rglob("fingerprints.bin"))
    before = kept_here.read_bytes()
    other = tmp_path / "other"
    (other / "suites" / "s").mkdir(parents=True)
    (other / "suites" / "s" / "suite.yaml").write_text(
        (project.root / "suites" / "s" / "suite.yaml").read_text()
    )
    (other / "pool.jsonl").write_text((project.root / "pool.jsonl").read_text())
    monkeypatch.chdir(other)
    assert cli("vault", "init")[0] == 0
    assert (
        cli("pool", "import", other / "pool.jsonl", "--suite", "s", "--heldout", "--activate")[0]
        == 0
    )
    config = (
        (project.root / "configs" / "here.yaml")
        .read_text()
        .replace("run_id: here", "run_id: there")
    )
    (other / "there.yaml").write_text(config)
    assert cli("run", other / "there.yaml", "-q")[0] == 0  # in this process, after the first vault
    monkeypatch.chdir(project.root)
    assert kept_here.read_bytes() == before
    (other / "next.yaml").write_text(config.replace("run_id: there", "run_id: next"))
    proc = subprocess.run(  # a new process, with what was kept for the second vault
        holdout_argv("run", other / "next.yaml", "-q"), cwd=other, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    db = store_db(other)
    served = {s for (s,) in db.execute("SELECT served FROM calls WHERE run_id='next'")}
    assert served == {"(withheld)"}
