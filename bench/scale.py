"""Memory and time at scale: peak RSS of every command that reads a whole run, at N items x 2
models.

    python bench/scale.py             # 100,000 items x 2 models (about 4 minutes on 2 cores)
    python bench/scale.py 10000       # another size
    python bench/scale.py 100000 10   # 100,000 items x 10 models (issue 26's size)

The run comes from the replay provider (recorded answers, no server), so the figures are the
harness's own: `run`, `grade` (a rules grader), `report`, `check`, `scorecard --all`, `leaderboard`,
and `pool draw` of a 2N-row source. Each command runs in its own process; peak RSS is that process's
VmHWM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def make(dir: Path, n: int, models: int = 2, *, refuse_every: int = 0) -> Path:
    """A suite of n items with a replay directory of `models` models (the first refuses every
    `refuse_every`-th item, if given), and its run config."""
    suite = dir / "suites" / "scale"
    (suite / "replay").mkdir(parents=True)
    (suite / "suite.yaml").write_text(
        "name: scale\npublic_pool: items.jsonl\nstrata: [category]\n"
        "graders:\n  - rules: {type: contains}\n"
        "source: {metadata: {category: category}}\n"
    )
    with open(suite / "items.jsonl", "w") as f, open(suite / "source.jsonl", "w") as src:
        for i in range(n):
            f.write(
                json.dumps(
                    {
                        "id": f"i{i}",
                        "prompt": f"Question {i}: what is {i} plus {i}?",
                        "reference": str(2 * i),
                        "metadata": {"category": f"c{i % 20}"},
                    }
                )
                + "\n"
            )
        for i in range(2 * n):
            src.write(
                json.dumps(
                    {
                        "prompt": f"Source prompt {i} about topic {i % 997} and detail "
                        f"{i * 7919 % 100003}",
                        "category": f"c{i % 20}",
                    }
                )
                + "\n"
            )
    names = [f"m{j}" for j in range(models)] if models != 2 else ["alpha", "beta"]
    for j, model in enumerate(names):
        right = 2 + j % 5  # models right on 1/2 .. 4/5 of the items
        with open(suite / "replay" / f"{model}.jsonl", "w") as f:
            for i in range(n):
                f.write(
                    json.dumps(
                        {
                            "id": f"i{i}",
                            "output": "I'm sorry, I can't help with that."
                            if refuse_every and j == 0 and i % refuse_every == 0
                            else f"It is {2 * i}."
                            if i % right
                            else f"Perhaps {i}, though I am not sure about question {i}.",
                        }
                    )
                    + "\n"
                )
    config = dir / "scale.yaml"
    config.write_text(
        "run_id: scale\nsuite: scale\nproviders:\n  r: {type: replay, path: suites/scale/replay, "
        "concurrency: 64}\nmodels:\n"
        + "".join(f"  - {{provider: r, model: {m}}}\n" for m in names)
        + f"labs:\n  acme: [{', '.join(names[::2])}]\n  globex: [{', '.join(names[1::2])}]\n"
    )
    return config


def measure(dir: Path, *args: str) -> dict:
    usage = dir / "usage.json"
    start = time.perf_counter()
    proc = subprocess.run(
        [PY, str(ROOT / "bench" / "_measure.py"), str(usage), *args],
        cwd=dir,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 3):
        raise SystemExit(f"holdout {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return {"wall": wall, **json.loads(usage.read_text())}


def main(n: int, models: int) -> None:
    dir = Path(tempfile.mkdtemp(prefix="holdout-scale-"))
    config = make(dir, n, models)
    print(f"# {time.strftime('%Y-%m-%d')} {os.cpu_count()} cores; {n:,} items x {models} models")
    print("| command | wall s | CPU s | peak RSS MB | largest worker MB |")
    print("| --- | ---: | ---: | ---: | ---: |")
    steps = [
        ("run", ["run", str(config), "-q"]),
        ("grade", ["grade", "scale", "-q"]),
        ("report", ["report", "scale"]),
        ("check", ["check", "scale"]),
        ("vault init", ["vault", "init"]),
        ("scorecard --all", ["scorecard", "scale", "--all"]),
        ("leaderboard", ["leaderboard", "scale"]),
        (
            "pool draw",
            [
                "pool",
                "draw",
                "--suite",
                "scale",
                "--source",
                str(dir / "suites" / "scale" / "source.jsonl"),
                "--size",
                str(n // 10),
                "--seed",
                "1",
            ],
        ),
    ]
    for name, args in steps:
        r = measure(dir, *args)
        if name != "vault init":
            worker = f"{r['worker_rss_mb']:.0f}" if r["worker_rss_mb"] else "-"
            print(
                f"| {name} | {r['wall']:.1f} | {r['cpu']:.1f} | {r['rss_mb']:.0f} | {worker} |",
                flush=True,
            )


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 100_000,
        int(sys.argv[2]) if len(sys.argv) > 2 else 2,
    )
