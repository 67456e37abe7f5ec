"""Holdout beside its peers on exactly the same load: the same prompts, the same mock server on
127.0.0.1, the same concurrency, each tool in a fresh process and with a fresh server.

    python bench/peers.py [N] [C] [LATENCY_MS]      # default 2000 100 200 (ideal N*L/C = 4 s)

Rows: Holdout (`holdout run`), the official openai SDK alone and plain aiohttp alone
(bench/_sdk_floor.py), Inspect (`inspect eval`, its `openai-api` provider: chat completions) and
promptfoo (`promptfoo eval`, its `openai:chat` provider). A peer runs when its command is found:
`$HOLDOUT_BENCH_INSPECT` / `$HOLDOUT_BENCH_PROMPTFOO` (a path), else `inspect` / `promptfoo` on
PATH; otherwise its row says how to install it (bench/README.md has the commands). Each prints
wall (launch to exit), its ratio to the ideal, and what the server saw: first to last request and
requests in flight on average.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import PY, ROOT, Server, make_project  # noqa: E402

PROMPT = "Benchmark prompt {i}: say something short."  # bench/run.py's and _sdk_floor.py's
INSPECT_TASK = """
import os
from inspect_ai import Task, task
from inspect_ai.dataset import Sample
from inspect_ai.solver import generate


@task
def bench():
    n = int(os.environ["BENCH_N"])
    samples = [Sample(input=f"Benchmark prompt {i}: say something short.", id=f"i{i}")
               for i in range(n)]
    return Task(dataset=samples, solver=generate())
"""


def _tool(env: str, name: str) -> str | None:
    return os.environ.get(env) or shutil.which(name)


def _timed(argv: list[str], *, cwd: Path, env: dict | None = None) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed:\n{proc.stderr.decode()[-2000:]}")
    return wall


def holdout(n: int, c: int, server: Server, dir: Path) -> float:
    config = make_project(dir, n, server.port, c, "peers")
    return _timed(
        [PY, "-m", "harness.cli", "run", str(config), "-q"],
        cwd=dir,
        env={"PYTHONPATH": str(ROOT)},
    )


def floor(raw: bool):
    def run(n: int, c: int, server: Server, dir: Path) -> float:
        argv = [PY, str(ROOT / "bench" / "_sdk_floor.py"), str(server.port), str(n), str(c)]
        return _timed(argv + (["raw"] if raw else []), cwd=dir)

    return run


def inspect(n: int, c: int, server: Server, dir: Path) -> float:
    (dir / "task.py").write_text(INSPECT_TASK)
    argv = [_tool("HOLDOUT_BENCH_INSPECT", "inspect"), "eval", "task.py", "--model"]
    argv += ["openai-api/mock/m", "--max-connections", str(c), "--max-samples", str(c)]
    argv += ["--max-tokens", "16"]
    argv += ["--display", "none", "--log-dir", "logs"]
    env = {"BENCH_N": str(n), "MOCK_BASE_URL": f"{server_url(server)}/v1", "MOCK_API_KEY": "x"}
    return _timed(argv, cwd=dir, env=env)


def promptfoo(n: int, c: int, server: Server, dir: Path) -> float:
    provider = {"apiBaseUrl": f"{server_url(server)}/v1", "apiKey": "x", "max_tokens": 16}
    config = {
        "prompts": ["{{q}}"],
        "providers": [{"id": "openai:chat:m", "config": provider}],
        "tests": [{"vars": {"q": PROMPT.format(i=i)}} for i in range(n)],
    }
    (dir / "promptfooconfig.json").write_text(json.dumps(config))
    argv = [_tool("HOLDOUT_BENCH_PROMPTFOO", "promptfoo"), "eval", "-c", "promptfooconfig.json"]
    argv += ["-j", str(c), "--no-cache", "--no-write", "--no-table"]
    env = {
        "PROMPTFOO_DISABLE_TELEMETRY": "1",
        "PROMPTFOO_DISABLE_UPDATE": "1",
        "PROMPTFOO_CACHE_ENABLED": "false",
        "PROMPTFOO_DISABLE_SHARING": "1",
        "PROMPTFOO_CONFIG_DIR": str(dir / ".promptfoo"),
    }
    return _timed(argv, cwd=dir, env=env)


def server_url(server: Server) -> str:
    return f"http://127.0.0.1:{server.port}"


TOOLS = [
    ("Holdout", holdout, None),
    ("openai SDK alone (no harness)", floor(raw=False), None),
    ("aiohttp alone (no SDK)", floor(raw=True), None),
    ("Inspect", inspect, ("HOLDOUT_BENCH_INSPECT", "inspect", "pip install inspect-ai openai")),
    ("promptfoo", promptfoo, ("HOLDOUT_BENCH_PROMPTFOO", "promptfoo", "npm install promptfoo")),
]


def main(n: int, c: int, latency_ms: float) -> None:
    ideal = n * latency_ms / 1000 / c
    print(f"# {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(f"# N={n:,}, C={c}, latency {latency_ms:g} ms: ideal {ideal:.1f} s\n")
    print("| tool | wall s | ratio | first to last request s (ratio) | mean in flight | ok |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, run, needs in TOOLS:
        if needs and not _tool(needs[0], needs[1]):
            print(f"| {name} | - | - | - | - | not found (`{needs[2]}`; or set ${needs[0]}) |")
            continue
        server = Server(latency_ms=latency_ms)
        try:
            dir = Path(tempfile.mkdtemp(prefix="holdout-peers-"))
            wall = run(n, c, server, dir)
            s = server.stats()
        finally:
            server.stop()
        print(
            f"| {name} | {wall:.1f} | {wall / ideal:.2f} | {s['span_s']:.1f} "
            f"({s['span_s'] / ideal:.2f}) | {s['mean_in_flight']} | {s['ok']:,} |",
            flush=True,
        )


if __name__ == "__main__":
    args = [float(a) for a in sys.argv[1:]]
    main(
        int(args[0]) if args else 2000,
        int(args[1]) if len(args) > 1 else 100,
        args[2] if len(args) > 2 else 200.0,
    )
