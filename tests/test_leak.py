"""The leak test: held-out canaries must never appear anywhere but the model request and the review page.

A held-out pool of canary items goes through the whole pipeline (vault, run with a model that
echoes the prompt, DEBUG logging on every logger including the SDKs', a forced crash whose message
quotes a prompt, resume, status, pool list, ...). Then every byte written outside the encrypted
vault blobs (results/, the workspace and store, logs, captured stdout/stderr, the temp dir) is
scanned for every canary and every prompt, case-folded and with whitespace removed. Zero hits is
the only pass. The mock server's request log must contain them: the door meant to be open is open.

Every new output path is added to PIPELINE in the same change that creates it.
"""
import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import free_port, wait_for_http
from harness.mockserver import MockBehaviour, MockServer

N = 12



def canary_items():
    items = []
    for i in range(N):
        canary = f"zq{secrets.token_hex(8)}"
        items.append({
            "id": f"c{i:02d}",
            "prompt": f"Summarise this internal note in two sentences: the project {canary} moved its launch "
                      f"to week {i + 3} because the {canary} vendor missed the deadline.",
            "reference": f"The {canary} launch slipped to week {i + 3}.",
            "metadata": {"category": ["coding", "writing", "math"][i % 3], "language": "en"},
        })
    return items


def needles(items):
    """Every canary token and every prompt/reference, in the forms a leak could take."""
    out = set()
    for it in items:
        out.add(re.search(r"zq[0-9a-f]{16}", it["prompt"]).group())
        out.add(it["prompt"])
        out.add(it["reference"])
    return out


def normal_forms(text: str) -> tuple[str, str]:
    folded = text.casefold()
    return folded, re.sub(r"\s+", "", folded)


def find_leaks(blobs: dict[str, bytes], items) -> list[str]:
    hits = []
    forms = {n: normal_forms(n) for n in needles(items)}
    for where, data in blobs.items():
        text = data.decode("utf-8", errors="ignore")
        folded, squeezed = normal_forms(text)
        for needle, (nf, ns) in forms.items():
            if nf in folded or ns in squeezed:
                hits.append(f"{where}: {needle[:40]}...")
    return hits


@pytest.fixture
def leak_env(tmp_path):
    def judge_quoting_the_prompt(api, body):
        """Judges quote what they judge: the rationale repeats the request; verdicts come after."""
        if not body["model"].startswith("judge"):
            return None
        quoted = body["messages"][-1]["content"]
        if body["model"] == "judge-rubric":
            return json.dumps({"scores": {"quality": 4}, "confidence": 0.9, "rationale": "It says: " + quoted})
        return "Both responses restate: " + quoted + "\nVerdict: [[A=B]]"

    server = MockServer(MockBehaviour(reply="echo", record_bodies=True, responder=judge_quoting_the_prompt))
    server.start()
    root = tmp_path / "proj"
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    (root / "suites" / "arena").mkdir(parents=True)
    (root / "suites" / "arena" / "suite.yaml").write_text(
        "name: arena\nstrata: [category, language]\nsystem: Answer briefly.\n"
        "source:\n  prompt: prompt\n  id: id\n  metadata: {category: metadata.category}\n"
        "draw: {size: 8, stratify: [category]}\ngraders:\n"
        "  - rules: {type: contains}\n"
        "  - rubric:\n      judge: {provider: oa, model: judge-rubric}\n"
        "      criteria: [{name: quality, scale: [1, 5]}]\n"
        "  - pairwise:\n      judge: {provider: oa, model: judge-pair}\n      baseline: echo-an\n"
        "  - human:\n      route: {sample: 1.0}\n      overlap: 1\n")
    (root / "configs").mkdir()
    (root / "configs" / "arena.yaml").write_text(f"""\
run_id: arena-nov
suite: arena
pool: heldout
providers:
  oa:
    type: openai-compatible
    base_url: {server.url}/v1
    api_key_env: MOCK_KEY
    retention: zero
  an:
    type: anthropic
    base_url: {server.url}
    api_key_env: MOCK_KEY
    retention: zero
models:
  - {{provider: oa, model: echo-oa}}
  - {{provider: an, model: echo-an}}
labs:
  acme: [echo-oa]
  globex: [echo-an]
""")
    inputs = tmp_path / "inputs"          # what the maintainer imports, then deletes: not scanned
    inputs.mkdir()
    items = canary_items()
    (inputs / "pool.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    rng = secrets.SystemRandom()
    vocab = ["harbor", "ledger", "orchid", "tundra", "violin", "copper", "meadow", "quartz", "saddle", "ember", "falcon",
             "gravel", "island", "juniper", "kettle", "lagoon", "marble", "nectar", "oyster", "pepper", "quiver", "ribbon"]
    source = []                                                # the arena stream to draw from: distinct prompts
    for n in range(N):
        canary = f"zq{secrets.token_hex(8)}"
        words = " ".join(rng.choice(vocab) + str(rng.randint(10, 99)) for _ in range(14))
        source.append({"id": f"s{n}", "prompt": f"Plan {canary}: {words}?", "reference": f"ref {canary}",
                       "metadata": {"category": ["coding", "writing"][n % 2]}})
    (inputs / "source.jsonl").write_text("".join(json.dumps(i) + "\n" for i in source))
    items = items + source
    env = {**os.environ, "TMPDIR": str(tmpdir), "OPENAI_LOG": "debug", "ANTHROPIC_LOG": "debug",
           "MOCK_KEY": "sk-leak-test", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("HOLDOUT_VAULT_KEY", None)
    yield server, root, tmpdir, inputs, items, env
    server.stop()


# (argv, extra env, expected exit code). Debug logs everywhere, to a file and to stderr.
LOG = ["--log-level", "debug", "--log-file", "logs/debug.log"]
PIPELINE = [
    (["vault", "init"], {}, 0),
    (["pool", "import", "{inputs}/pool.jsonl", "--suite", "arena", "--heldout", "--max-retention", "30d"], {}, 0),
    (["pool", "activate", "arena@v1"], {}, 0),
    (["pool", "list"], {}, 0),
    ([*LOG, "run", "configs/arena.yaml"], {"HOLDOUT_FAILPOINTS": "runner.after_call=crash@5"}, 1),  # crash + traceback
    ([*LOG, "run", "configs/arena.yaml"], {}, 0),                                                 # resume to the end
    ([*LOG, "status"], {}, 0),
    ([*LOG, "grade", "arena-nov"], {}, 0),
    ([*LOG, "grade", "arena-nov"], {}, 0),                                                        # nothing to do
    ([*LOG, "report", "arena-nov"], {}, 0),
    ([*LOG, "check", "arena-nov"], {}, 0),
    ([*LOG, "review", "add-reviewer", "alice", "--languages", "en", "--port", "{port}"], {}, 0),
    ([*LOG, "review", "route", "arena-nov"], {}, 0),
    ([*LOG, "scorecard", "arena-nov", "--all"], {}, 0),
    ([*LOG, "verify", "results/arena-nov/scorecards/acme.json"], {}, 0),
    ([*LOG, "leaderboard", "arena-nov"], {}, 0),
    ([*LOG, "pool", "draw", "--suite", "arena", "--source", "{inputs}/source.jsonl", "--seed", "3"], {}, 0),
    ([*LOG, "pool", "show", "arena@v2"], {}, 0),
    ([*LOG, "pool", "exposure", "arena", "--items"], {}, 0),
    ([*LOG, "pool", "rotate", "arena", "--force"], {}, 0),
    ([*LOG, "pool", "list"], {}, 0),
    ([*LOG, "export", "items", "--suite", "arena", "--purpose", "research", "--out", "exported"], {}, 3),   # all refused
    ([*LOG, "export", "outputs", "arena-nov", "--purpose", "evaluation", "--out", "exported"], {}, 3),
    ([*LOG, "policy", "explain", "arena@v1"], {}, 0),
    ("REVIEW-APP", {}, 0),                      # the reviewers' app, served and used (see review_app_session)
    ([*LOG, "review", "status", "arena-nov"], {}, 0),
]


def review_app_session(root, env, port, link, captured):
    """Serve the app, log in, review two items, and provoke every kind of error page. Pages shown to the
    logged-in reviewer may hold held-out text (the second door); everything else goes into `captured`."""
    import httpx
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", *LOG, "review", "serve", "arena-nov", "--port", str(port)],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    wait_for_http(url + "/next")
    reviewer = httpx.Client(base_url=url, follow_redirects=False)
    r = reviewer.get(link.replace(url, ""))
    captured["login redirect"] = json.dumps(dict(r.headers)).encode()
    shown = 0
    for _ in range(2):
        where = reviewer.get("/next").headers["location"]
        captured[f"url {where}"] = where.encode()
        page = reviewer.get(where)                        # the assigned reviewer's page: allowed to show the text
        assert page.status_code == 200 and "Summarise this internal note" in page.text
        shown += 1
        csrf = re.search(r"name=csrf value=(\w+)", page.text).group(1)
        forged = reviewer.post(where, data={"quality": "4"})  # a form without the page's token
        captured[f"forged post {where}"] = forged.content
        assert forged.status_code == 403
        bad = reviewer.post(where, data={"quality": "99", "csrf": csrf})   # a validation error page (shown to that reviewer)
        assert bad.status_code == 400
        reviewer.post(where, data={"quality": "4", "csrf": csrf})
    anon = httpx.Client(base_url=url)
    for name, resp in (("anonymous", anon.get("/next")), ("unknown id", reviewer.get("/a/not-a-real-id")),
                       ("bad login", anon.get("/login", params={"token": "nope"})),
                       ("anonymous post", anon.post(where, data={"quality": "1"}))):
        captured[f"error page {name}"] = resp.content
        assert resp.status_code in (401, 404)
    proc.terminate()
    out, err = proc.communicate(timeout=10)
    captured["review server stdout"], captured["review server stderr"] = out, err
    return shown


def test_no_heldout_text_leaves_the_boundary(leak_env):
    server, root, tmpdir, inputs, items, env = leak_env
    (root / "logs").mkdir()
    captured = {}
    port = free_port()
    link = None
    for n, (argv, extra, expected) in enumerate(PIPELINE):
        if argv == "REVIEW-APP":
            assert review_app_session(root, env, port, link, captured) == 2
            continue
        argv = [a.format(inputs=inputs, port=port) for a in argv]
        proc = subprocess.run([sys.executable, "-m", "harness.cli", *argv], cwd=root, env={**env, **extra},
                              capture_output=True, timeout=120)
        captured[f"step {n} {argv} stdout"] = proc.stdout
        captured[f"step {n} {argv} stderr"] = proc.stderr
        assert proc.returncode == expected, (argv, proc.stderr.decode()[-2000:])
        if "add-reviewer" in argv:
            link = proc.stdout.decode().strip()

    # the pipeline really ran: the crash printed a traceback, the run completed, debug logs were written
    crash_err = captured[next(k for k in captured if "step 4" in k and "stderr" in k)].decode()
    assert "Traceback" in crash_err and "FailpointCrash" in crash_err and "[held-out text redacted]" in crash_err
    assert json.loads((root / "results" / "arena-nov" / "summary.json").read_text())["complete"]
    assert "Request options" in (root / "logs" / "debug.log").read_text()
    report = json.loads((root / "results" / "arena-nov" / "report.json").read_text())
    assert report["graders"]["rubric"]["models"]["echo-oa"]["graded"] == N     # judges answered, and were parsed
    assert report["graders"]["pairwise"]["models"]["echo-oa"]["n"] == N

    # every byte written outside the encrypted blobs, plus everything printed
    blobs = dict(captured)
    for base in (root, tmpdir):
        for f in base.rglob("*"):
            if f.is_file() and f.name != "items.bin":
                blobs[str(f)] = f.read_bytes()
    assert any("store.sqlite" in k for k in blobs) and any("ledger.sqlite" in k for k in blobs)
    assert find_leaks(blobs, items) == []

    # the door that is meant to be open is open: the model saw every canary
    requests = "\n".join(server.stats.bodies)
    for it in items[:N]:                       # the pool that was run (the drawn source items never were)
        assert json.dumps(it["prompt"])[1:-1] in requests


def test_the_scanner_can_fail(leak_env):
    """A check that cannot fail is a defect: plant a canary and make sure it is found."""
    _, _, _, _, items, _ = leak_env
    planted = {"file": f"some output ... {items[3]['prompt'].upper()} ...".encode(),
               "spaced": " ".join(re.search(r"zq[0-9a-f]{16}", items[5]["prompt"]).group()).encode()}
    planted["spaced"] = re.search(r"zq[0-9a-f]{16}", items[5]["prompt"]).group().replace("zq", "ZQ \n").encode()
    assert len(find_leaks(planted, items)) >= 2
