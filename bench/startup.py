"""Start-up and shut-down: how long a user waits around the calls themselves.

Interleaves K samples of these, each in a fresh process, and prints the medians:
  - `python -c 'import openai'`: the SDK's own import, which a run through the SDK pays (since
    2026-12-04 an openai-compatible run goes over plain aiohttp and does not);
  - `python -c 'import aiohttp'`: the plain road's transport;
  - a one-item `holdout run` against a fresh mock server: its wall, launch to the server's first
    request, and the server's last reply to the process's exit;
and the differences the bar in issue 26 names (one-item wall - import; first request - import).

    python bench/startup.py [K]      # K samples (default 9)
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import PY, ROOT, Server, make_project  # noqa: E402


def _wall(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def one_item_run() -> dict:
    server = Server()
    try:
        dir = Path(tempfile.mkdtemp(prefix="holdout-bench-startup-"))
        config = make_project(dir, 1, server.port, 4, "one")
        launched = time.monotonic()
        wall = _wall([PY, "-m", "harness.cli", "run", str(config), "-q"], dir)
        exited = launched + wall
        stats = server.stats()
        return {
            "wall": wall,
            "to_first_request": stats["first_at"] - launched,
            "last_reply_to_exit": exited - (stats["first_at"] + stats["span_s"]),
        }
    finally:
        server.stop()


def main(k: int) -> None:
    imports, transports, runs = [], [], []
    for _ in range(k):
        imports.append(_wall([PY, "-c", "import openai"], ROOT))
        transports.append(_wall([PY, "-c", "import aiohttp"], ROOT))
        runs.append(one_item_run())
    med = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
    floor = statistics.median(imports)
    print(f"medians of {k} interleaved samples (Python {sys.version.split()[0]})")
    print(f"  python -c 'import openai'              {floor:.3f} s")
    print(f"  python -c 'import aiohttp'             {statistics.median(transports):.3f} s")
    print(
        f"  one-item holdout run, wall             {med['wall']:.3f} s  "
        f"({med['wall'] - floor:+.3f})"
    )
    print(
        f"  launch to first request                {med['to_first_request']:.3f} s  "
        f"({med['to_first_request'] - floor:+.3f})"
    )
    print(f"  last reply to exit                     {med['last_reply_to_exit']:.3f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 9)
