"""`pool draw` leaves no plaintext copy of the source behind, however it ends: local files are read
with no cache at all, and a dataset loaded through `datasets` is cached only inside the vault,
removed on SIGTERM and swept by the next draw after a `kill -9`."""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SUITE = (
    "name: arena\nstrata: [category]\nsource:\n  prompt: prompt\n  id: id\n  metadata: "
    "{category: category}\n"
    "draw: {size: 50, stratify: [category]}\n"
)


def setup_project(tmp_path: Path, rows: int) -> tuple[Path, Path, dict, list[str]]:
    root = tmp_path / "proj"
    (root / "suites" / "arena").mkdir(parents=True)
    (root / "suites" / "arena" / "suite.yaml").write_text(SUITE)
    src = tmp_path / "src"
    src.mkdir()
    canaries = [f"zq{secrets.token_hex(8)}" for _ in range(rows)]
    (src / "part.jsonl").write_text(
        "".join(
            json.dumps({"id": f"s{i}", "prompt": f"Plan {c} for week {i}", "category": "ab"[i % 2]})
            + "\n"
            for i, c in enumerate(canaries)
        )
    )
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp / "hf")}
    env.pop("HOLDOUT_VAULT_KEY", None)
    subprocess.run(
        [sys.executable, "-m", "harness.cli", "vault", "init"],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
    )
    return root, src, env, canaries


def plaintext_files(dirs: list[Path], canaries: list[str]) -> list[str]:
    sample = canaries[::97] + canaries[-3:]
    found = []
    for d in dirs:
        for f in d.rglob("*"):
            if f.is_file() and f.name != "items.bin":
                data = f.read_bytes()
                if any(c.encode() in data for c in sample):
                    found.append(str(f))
    return found


@pytest.mark.parametrize("source_kind", ["file", "dataset-dir"])
def test_a_killed_draw_leaves_no_plaintext(tmp_path, source_kind):
    root, src, env, canaries = setup_project(tmp_path, rows=20000)
    source = str(src / "part.jsonl") if source_kind == "file" else str(src)
    rng = random.Random(7)
    for trial, sig in enumerate([signal.SIGTERM, signal.SIGKILL, signal.SIGTERM, signal.SIGKILL]):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "harness.cli",
                "pool",
                "draw",
                "--suite",
                "arena",
                "--source",
                source,
                "--seed",
                str(trial),
            ],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        time.sleep(rng.uniform(0.8, 2.5))
        proc.send_signal(sig)
        proc.communicate(timeout=60)
        leftovers = plaintext_files([root, Path(env["TMPDIR"])], canaries)
        # only the vault's own 0700 cache may survive a kill -9, until the next draw
        if sig == signal.SIGKILL:
            assert all("/.holdout/vault/tmp/draw-" in f for f in leftovers), leftovers
        else:
            assert leftovers == [], (sig, leftovers)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "pool",
            "draw",
            "--suite",
            "arena",
            "--source",
            source,
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert plaintext_files([root, Path(env["TMPDIR"])], canaries) == []
    cache = root / ".holdout" / "vault" / "tmp"
    assert not cache.exists() or not any(cache.iterdir())
    if cache.exists():
        assert cache.stat().st_mode & 0o077 == 0
