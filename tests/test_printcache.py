"""The gate's fingerprints of a held-out version, kept in the vault (harness/vault/printcache.py):
made once, encrypted, and used by the next process, which catches exactly what a process that
registered the text itself would; a kept file that was changed is made again, never trusted."""

import subprocess

from conftest import QUESTIONS, holdout_argv


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
    text = made.decode("latin-1")
    assert "answer-3" not in text and not any(q.split("\n")[0] in text for q in QUESTIONS)
    assert served_in_a_new_process("pc2") == {"(withheld)"}  # from the kept fingerprints
    assert kept.read_bytes() == made  # used, not made again
    changed = made[:-1] + bytes([made[-1] ^ 1])
    kept.write_bytes(changed)  # outside holdout
    assert served_in_a_new_process("pc3") == {"(withheld)"}
    assert kept.read_bytes() not in (made, changed)  # made again
