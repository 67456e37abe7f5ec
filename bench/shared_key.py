"""Several `holdout run` processes on one key: the wall time and the 429s when they share one limit.

    python bench/shared_key.py [PROCESSES=4] [CALLS_EACH=100] [RATE=20]

One mock server enforces RATE req/s per second and advertises it (limit, remaining, reset, as
OpenAI's headers do); PROCESSES independent runs (separate workspaces, one key) start together.
Prints the server's span from first to last request against the ideal N/R, and the 429s as a share
of requests. The bar (#20): 4 processes on a 20 req/s key, span <= 1.10 x N/R and 429s <= 5%.

With APART=1 each process has a key-lane directory of its own, as processes on separate machines
do: they pace by the provider's counts of requests left (limits.py, the key's share) alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import PY, ROOT, Server, make_project  # noqa: E402


def main(processes: int = 4, each: int = 100, rate: float = 20) -> None:
    server = Server(rate_limit=rate)
    try:
        procs = []
        for k in range(processes):
            d = Path(tempfile.mkdtemp(prefix=f"holdout-shared-{k}-"))
            config = make_project(d, each, server.port, 16, f"shared-{k}")
            procs.append(
                subprocess.Popen(
                    [PY, "-m", "harness.cli", "run", str(config), "-q"],
                    cwd=d,
                    env={
                        **os.environ,
                        "PYTHONPATH": str(ROOT),
                        **(
                            {"HOLDOUT_LANES_DIR": str(d / "lanes")}
                            if os.environ.get("APART")
                            else {}
                        ),
                    },
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        for p in procs:
            _, err = p.communicate()
            if p.returncode != 0:
                raise SystemExit(f"a run failed:\n{err[-2000:]}")
        s = server.stats()
    finally:
        server.stop()
    n, ideal = processes * each, processes * each / rate
    r429 = s["faults"].get("429", 0)
    print(
        f"{processes} processes x {each} calls on one {rate:g} req/s key: span {s['span_s']:.2f} s "
        f"(ideal {ideal:.1f} s, {s['span_s'] / ideal:.3f}x); {r429} 429s = "
        f"{100 * r429 / s['requests']:.1f}% of "
        f"{s['requests']} requests; {s['ok']} ok of {n}"
    )


if __name__ == "__main__":
    main(*(float(a) if i == 2 else int(a) for i, a in enumerate(sys.argv[1:])))
