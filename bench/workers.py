"""Several workers on one shared PostgreSQL store (#23): one run, leased between them.

    python bench/workers.py paced   [WORKERS=4] [N=800] [RATE=20]   # one rate-limited key
    python bench/workers.py killed  [WORKERS=4] [N=800] [RATE=20]   # ... 2 workers kill -9'd
    python bench/workers.py wide    [WORKERS=8] [N=40000] [C=100]   # 200 ms, no limit

A PostgreSQL server of its own (harness/localpg.py) on a free port, a mock server on another, and
WORKERS `holdout run` processes of one held-out config in one workspace, started together: their
calls are leased from the store, their exposure ledger is the store's. Prints the wall time from the
first worker's start to the last one's exit against the ideal (N/R when paced; N x 0.2 s / (WORKERS
x C) when wide), the 429s, whether every (model, item) was answered exactly once by the server's
count, the extra requests the server saw (killed: the calls those workers had in flight), and the
ledger's count per item against the server's. `wide` also prints PostgreSQL's share of the CPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import PY, ROOT, Server, make_project  # noqa: E402

from harness.localpg import LocalPostgres  # noqa: E402


def _server_cpu(pg: LocalPostgres) -> float:
    """CPU seconds the PostgreSQL server has used: its postmaster's own and its children's, ended
    ones included (a connection's backend ends with the connection), and the live children's."""
    postmaster = int((pg.directory / "data" / "postmaster.pid").read_text().split()[0])
    total = _process_cpu(postmaster, ended_children=True)
    children = subprocess.run(
        ["pgrep", "-P", str(postmaster)], capture_output=True, text=True
    ).stdout.split()
    for pid in children:
        try:
            total += _process_cpu(int(pid))
        except (OSError, IndexError):
            pass
    return total


def main(scenario: str = "paced", workers: int = 0, n: int = 0, third: float = 0) -> None:
    wide = scenario == "wide"
    workers = workers or (8 if wide else 4)
    n = n or (40_000 if wide else 800)
    rate = None if wide else (third or 20.0)
    concurrency = int(third or 100) if wide else 16
    where = Path(tempfile.mkdtemp(prefix="holdout-bench-workers-"))
    where.chmod(0o755)  # as root, the server runs as `postgres`, which must reach its directory
    pg = LocalPostgres(where / "pg").start()
    server = Server(**({"latency_ms": 200} if wide else {"rate_limit": rate, "latency_ms": 50}))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOLDOUT_STORE": pg.dsn}
    env["HOLDOUT_LANES_DIR"] = str(where / "lanes")
    try:
        project = where / "project"
        project.mkdir()
        subprocess.run(
            [PY, "-c", "import sys; sys.exit(0)"], check=True
        )  # warm the interpreter's file cache before timing
        config = make_project(
            project, n, server.port, concurrency, "shared", heldout=not os.environ.get("PUBLIC")
        )
        pg_cpu_before = _server_cpu(pg)
        children_before = _children_cpu()
        start = time.monotonic()
        procs = [
            subprocess.Popen(
                [PY, "-m", "harness.cli", "run", str(config), "-q"],
                cwd=project,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(workers)
        ]
        killed = []
        if scenario == "killed":
            ideal = n / rate
            for p in random.sample(procs, 2):
                time.sleep(random.uniform(0.1, 0.5) * ideal / 2)
                p.send_signal(signal.SIGKILL)
                killed.append(p)
        for p in procs:
            _, err = p.communicate()
            if p not in killed and p.returncode != 0:
                raise SystemExit(f"a worker failed ({p.returncode}):\n{err[-3000:]}")
        wall = time.monotonic() - start
        pg_cpu = _server_cpu(pg) - pg_cpu_before
        workers_cpu = _children_cpu() - children_before
        mock_cpu = _process_cpu(server.proc.pid)
        stats = server.stats()
    finally:
        server.stop()
    try:
        _report(
            scenario,
            stats=stats,
            pg=pg,
            n=n,
            workers=workers,
            wall=wall,
            ideal=n / rate if rate else n * 0.2 / (workers * concurrency),
            killed=len(killed),
            cpu={"postgres": pg_cpu, "workers": workers_cpu, "mock_server": mock_cpu},
        )
    finally:
        pg.stop()
        shutil.rmtree(where, ignore_errors=True)


def _children_cpu() -> float:
    """CPU seconds of this process's children that have ended (the workers, once waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process_cpu(pid: int, *, ended_children: bool = False) -> float:
    """A live process's CPU seconds (user + system), and its waited-for children's if asked."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11 : 15 if ended_children else 13]) / os.sysconf("SC_CLK_TCK")


def _report(scenario, *, stats, pg, n, workers, wall, ideal, killed, cpu) -> None:
    pg_cpu = cpu["postgres"]
    import psycopg

    prompts = {
        hashlib.sha256(f"m|Benchmark prompt {i}: say something short.".encode()).hexdigest()[:16]: i
        for i in range(n)
    }
    served = {prompts[d]: c for d, c in stats["by_prompt_sha"].items() if d in prompts}
    with psycopg.connect(pg.dsn) as db:
        done = db.execute("SELECT COUNT(*) FROM calls WHERE run_id='shared' AND ok=1").fetchone()[0]
        commits = db.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname=current_database()"
        ).fetchone()[0]
        call_bytes, exposure_bytes = db.execute(
            "SELECT pg_total_relation_size('calls'), COALESCE(pg_total_relation_size("
            "to_regclass('exposures')), 0)"
        ).fetchone()
        sent_at = [  # when each answered call was sent (wall clock), to see where a span goes
            f - lat
            for f, lat in db.execute(
                "SELECT finished, latency_s FROM calls WHERE run_id='shared' AND ok=1"
            )
        ]
        has_ledger = db.execute("SELECT to_regclass('exposures') IS NOT NULL").fetchone()[0]
        ledger = {  # a public pool (PUBLIC=1) has none
            int(item[1:]): count
            for item, count in (
                db.execute("SELECT item_id, COUNT(*) FROM exposures GROUP BY item_id")
                if has_ledger
                else ()
            )
        }
    answered = stats["ok"]
    r429 = stats["faults"].get("429", 0)
    print(
        json.dumps(
            {
                "scenario": scenario,
                "workers": workers,
                "n": n,
                "wall_s": round(wall, 2),
                "ideal_s": round(ideal, 2),
                "wall_over_ideal": round(wall / ideal, 3),
                "server_span_s": stats["span_s"],  # first request to last reply
                "requests": stats["requests"],
                "answered": answered,
                "429s": r429,
                "429_share": round(r429 / max(1, stats["requests"]), 4),
                "done_in_store": done,
                "items_served": len(served),
                # answers beyond one per job (killed: the calls those workers had in flight); with
                # n rows done in the store, 0 extra means every job was answered exactly once
                "extra_answers": answered - n,
                "killed_workers": killed,
                "ledger_equals_server_per_item": ledger == served if has_ledger else None,
                "ledger_rows": sum(ledger.values()),
                "postgres_cpu_s": round(pg_cpu, 2),
                "postgres_commits": commits,
                # the table with its indexes and TOAST, per row (held-out outputs are encrypted)
                "store_bytes_per_call": round(call_bytes / max(1, done)),
                "ledger_bytes_per_send": round(exposure_bytes / max(1, sum(ledger.values()))),
                "postgres_cpu_share_of_wall": round(pg_cpu / wall, 3),
                # where the machine's CPU went (2 cores give 2 x wall): the workers' start-up
                # included, the mock server's, the database's
                "cpu_s": " ".join(f"{k} {v:.2f}" for k, v in cpu.items()),
                "cpu_ms_per_call": " ".join(f"{k} {1000 * v / n:.3f}" for k, v in cpu.items()),
                # answered calls sent in each second from the first send: a pace kept to the end
                # is flat at the rate; a slow start or a ragged end shows at the ends
                "sends_per_second": " ".join(map(str, _per_second(sent_at))),
            },
            indent=1,
        )
    )


def _per_second(times: list[float]) -> list[int]:
    if not times:
        return []
    first = min(times)
    counts = [0] * (int(max(times) - first) + 1)
    for t in times:
        counts[int(t - first)] += 1
    return counts


if __name__ == "__main__":
    args = sys.argv[1:]
    main(
        args[0] if args else "paced",
        *(float(a) if i == 2 else int(a) for i, a in enumerate(args[1:])),
    )
