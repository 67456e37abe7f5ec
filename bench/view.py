"""The maintainers' view at scale: every page's server-side time and the server's memory, on a run
of N items x 3 models with grades (issue 25's bar: p95 <= 200 ms, RSS < 300 MB at 100,000 x 3).

    python bench/view.py            # 100,000 items x 3 models (a few minutes to build the run)
    python bench/view.py 10000      # another size
    python bench/view.py 100000 heldout   # the same items as a held-out vault pool

The run is bench/scale.py's (replayed answers, a rules grader, `holdout check` for the safeguard
flags); the server is `holdout view serve` in its own process, signed in over HTTP on loopback.
The server loads items, strata and the run's figures before it listens (reported as "ready in");
a comparison is computed on its first request and kept until the store changes (reported apart).
Each page is then asked REPEAT times."""

from __future__ import annotations

import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import ROOT, make, measure  # noqa: E402

REPEAT = 20


def _rss(pid: int) -> tuple[float, float]:
    """(now, peak) resident memory of a process, MB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return tuple(int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM"))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pages(n: int) -> dict[str, list[str]]:
    """Page name -> the URLs asked for it (several, so a cache of one URL cannot flatter it)."""
    rng = random.Random(7)
    items = [f"i{rng.randrange(n)}" for _ in range(REPEAT)]
    deep = f"m1|i{n - 60}|0"  # keyset paging: a page near the end costs what the first does
    return {
        "runs": ["/"],
        "run (model x stratum)": ["/r/scale"],
        "items, first page": ["/r/scale/items"],
        "items, deep page": ["/r/scale/items?" + str(httpx.QueryParams({"after": deep}))],
        "items, one model": ["/r/scale/items?model=m2"],
        "items, stratum": [f"/r/scale/items?stratum=category%3Dc{k}" for k in range(20)],
        "items, score range": ["/r/scale/items?min=0.5&max=1&model=m0"],
        "items, by score": ["/r/scale/items?sort=highest", "/r/scale/items?sort=lowest"],
        "items, safeguard flag": ["/r/scale/items?safeguard=refusals"],
        "items, judge disagreement": ["/r/scale/items?show=disagree"],
        "items, failed calls": ["/r/scale/items?show=failed"],
        "items, grading errors": ["/r/scale/items?show=grade-error"],
        "item page": [f"/r/scale/i/{i}" for i in items],
        "compare (run with itself)": ["/compare?a=scale&b=scale"],
    }


def main(n: int, heldout: bool = False) -> None:
    dir = Path(tempfile.mkdtemp(prefix="holdout-view-"))
    config = make(dir, n, 3, refuse_every=37)
    started = time.perf_counter()
    steps = [["run", str(config), "-q"], ["grade", "scale", "-q"], ["check", "scale"]]
    if heldout:  # the items imported into the vault, encrypted; the run on that version
        items = str(dir / "suites" / "scale" / "items.jsonl")
        steps[:0] = [
            ["vault", "init"],
            ["pool", "import", items, "--suite", "scale", "--heldout", "--activate"],
        ]
        config.write_text(
            config.read_text().replace("suite: scale\n", "suite: scale\npool: heldout\n")
        )
    for args in steps:
        measure(dir, *args)
    built = time.perf_counter() - started
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holdout = [sys.executable, "-m", "harness.cli"]
    port = _free_port()
    link = subprocess.run(
        [*holdout, "view", "add-maintainer", "bench", "--port", str(port)],
        cwd=dir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    token = re.search(r"token=(\S+)", link).group(1)
    launched = time.perf_counter()
    server = subprocess.Popen(
        [*holdout, "view", "serve", "scale", "--port", str(port)],
        cwd=dir,
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        client = httpx.Client(base_url=url, timeout=120)
        for _ in range(200):
            try:
                client.get("/")
                break
            except httpx.TransportError:
                time.sleep(0.1)
        ready = time.perf_counter() - launched  # the server loads items and figures first
        assert client.post("/login", data={"token": token}).status_code == 303
        idle, _ = _rss(server.pid)

        def timed(path: str) -> float:
            t = time.perf_counter()
            r = client.get(path)
            took = time.perf_counter() - t
            if r.status_code != 200:
                raise SystemExit(f"{path}: HTTP {r.status_code}")
            return took * 1000

        cold = timed("/compare?a=scale&b=scale")  # computed on first use, then kept
        print(
            f"# {time.strftime('%Y-%m-%d')} {os.cpu_count()} cores; {n:,} items x 3 models"
            + (" (a held-out vault pool)" if heldout else "")
            + ", "
            f"graded and checked (built in {built:.0f} s); server ready in {ready:.1f} s (items, "
            f"strata and figures loaded), idle RSS {idle:.0f} MB; a comparison's first request "
            f"{cold:.0f} ms"
        )
        print("| page | requests | p50 ms | p95 ms | max ms |")
        print("| --- | ---: | ---: | ---: | ---: |")
        worst = 0.0
        for name, urls in pages(n).items():
            times = [timed(urls[k % len(urls)]) for k in range(REPEAT)]
            p95 = statistics.quantiles(times, n=20)[-1]
            worst = max(worst, p95)
            print(
                f"| {name} | {len(times)} | {statistics.median(times):.0f} | {p95:.0f} | "
                f"{max(times):.0f} |",
                flush=True,
            )
        now, peak = _rss(server.pid)
        print(
            f"\nworst p95 {worst:.0f} ms (bar 200 ms: {worst / 200:.2f}x of it); server RSS now "
            f"{now:.0f} MB, peak {peak:.0f} MB (bar 300 MB)"
        )
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 100_000,
        heldout=len(sys.argv) > 2 and sys.argv[2] == "heldout",
    )
