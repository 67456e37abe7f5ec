"""Shared fixtures: a real mock model server on 127.0.0.1, a scratch project directory, the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from harness import clock
from harness.cli import main
from harness.mockserver import MockBehaviour, MockServer

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, tries: int = 100) -> None:
    """Until a freshly started server answers (any status)."""
    import time

    import httpx

    for _ in range(tries):
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer")


def needs_shared(sub: str) -> Path:
    path = SHARED / sub
    if not path.exists():
        pytest.skip(
            f"{path} is not here: real-data tests need ../shared/data (present in CI, absent in "
            "a fresh clone)"
        )
    return path


@pytest.fixture(autouse=True)
def key_lanes(tmp_path_factory, monkeypatch):
    """Each test's key lanes (the pace a key's processes share) in a directory of its own, not the
    user's."""
    monkeypatch.setenv("HOLDOUT_LANES_DIR", str(tmp_path_factory.mktemp("lanes")))


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server of the tests' own on a free loopback port (the machine's binaries;
    .ci/run installs them), or a skip that says why. Its directory is outside pytest's (0700, root's
    when the tests run as root: the server runs as `postgres`)."""
    import shutil
    import tempfile

    from harness.localpg import LocalPostgres, NoPostgres

    where = Path(tempfile.mkdtemp(prefix="holdout-test-pg-"))
    try:
        server = LocalPostgres(where).start()
    except NoPostgres as e:
        shutil.rmtree(where, ignore_errors=True)
        pytest.skip(f"no PostgreSQL server for this test: {e}")
    yield server
    server.stop()
    shutil.rmtree(where, ignore_errors=True)


def store_db(root: Path, workspace: str = ".holdout", *, dsn: str | None = None):
    """A project's run store as the test reads it: the SQLite file, or the test's PostgreSQL
    schema (HOLDOUT_TEST_STORE=postgresql; `dsn`: another one, from `own_store`)."""
    if dsn or os.environ.get("HOLDOUT_STORE"):
        return pg_as_sqlite(dsn or os.environ["HOLDOUT_STORE"])
    return sqlite3.connect(Path(root) / workspace / "store.sqlite")


def ledger_db(root: Path):
    """A project's exposure ledger: the vault's SQLite file, or the shared PostgreSQL store."""
    if os.environ.get("HOLDOUT_STORE"):
        return pg_as_sqlite(os.environ["HOLDOUT_STORE"])
    return sqlite3.connect(
        Path(root) / ".holdout" / "vault" / "ledger.sqlite", isolation_level=None
    )


sqlite_only = pytest.mark.skipif(
    os.environ.get("HOLDOUT_TEST_STORE") == "postgresql",
    reason="about the workspace's own files (the SQLite store or ledger: an upgrade, a tampered "
    "or full file; the machine's key-lane file; several vaults, or an older vault index, which "
    "a shared store's one vault replaces from the server), which a shared PostgreSQL store "
    "replaces",
)


def pg_as_sqlite(dsn: str):
    """A connection to the PostgreSQL store that reads as the SQLite file would: a public run's
    output, kept as UTF-8 bytes in bytea where SQLite's BLOB column kept the text, is text."""
    from psycopg.types.string import ByteaBinaryLoader, ByteaLoader

    from harness.postgres import PgDatabase

    def text_if_utf8(loader):
        class Loader(loader):
            def load(self, data):
                raw = super().load(bytes(data))
                try:
                    return bytes(raw).decode()
                except UnicodeDecodeError:
                    return bytes(raw)

        return Loader

    class AsSqlite(PgDatabase):
        def commit(self):  # autocommit: each statement is committed
            pass

    db = AsSqlite(dsn)
    db.conn.adapters.register_loader("bytea", text_if_utf8(ByteaLoader))
    db.conn.adapters.register_loader("bytea", text_if_utf8(ByteaBinaryLoader))
    return db


def fresh_schema(server) -> str:
    """A DSN whose tables live in a schema no other test uses (one server for the whole session)."""
    import uuid

    import psycopg

    name = f"t{uuid.uuid4().hex[:16]}"
    with psycopg.connect(server.dsn, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {name}")
    return f"{server.dsn}?options=-csearch_path%3D{name}"


@pytest.fixture
def own_store(request):
    """For a test that makes several independent workspaces: a function giving each its own store
    ({"HOLDOUT_STORE": a fresh schema} for its commands' environment; {} on SQLite, where each
    workspace has its file)."""
    if os.environ.get("HOLDOUT_TEST_STORE") != "postgresql":
        return lambda: {}
    server = request.getfixturevalue("postgres_server")
    return lambda: {"HOLDOUT_STORE": fresh_schema(server)}


@pytest.fixture(autouse=True)
def store_backend(request, monkeypatch):
    """HOLDOUT_TEST_STORE=postgresql runs a test against PostgreSQL: every store and ledger the
    test's commands open live in a schema of its own on the tests' server."""
    if os.environ.get("HOLDOUT_TEST_STORE") != "postgresql":
        monkeypatch.delenv("HOLDOUT_STORE", raising=False)
        return None
    dsn = fresh_schema(request.getfixturevalue("postgres_server"))
    monkeypatch.setenv("HOLDOUT_STORE", dsn)
    return dsn


@pytest.fixture
def mock_server():
    server = MockServer(MockBehaviour())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A scratch project: cwd is tmp_path, with a small public suite 'mini' of N items."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MOCK_KEY", "sk-test-secret-value-123456")
    return Project(tmp_path)


class Project:
    def __init__(self, root: Path):
        self.root = root

    def suite(self, name="mini", n=6, items=None, **extra) -> Path:
        d = self.root / "suites" / name
        d.mkdir(parents=True, exist_ok=True)
        lines = extra.pop("lines", None)
        spec = {"name": name, "public_pool": "items.jsonl", "strata": ["category"], **extra}
        (d / "suite.yaml").write_text(json.dumps(spec))
        if lines is None:
            items = items or [
                {
                    "id": f"q{i}",
                    "prompt": f"Question number {i}: what is {i} plus {i}?",
                    "reference": str(2 * i),
                    "metadata": {"category": "math" if i % 2 else "trivia"},
                }
                for i in range(n)
            ]
            lines = [json.dumps(it) for it in items]
        (d / "items.jsonl").write_text("\n".join(lines) + "\n")
        return d

    def config(self, text: str, name="run.yaml") -> Path:
        path = self.root / "configs" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def db(self):
        """The run store's tables: the SQLite file, or the test's PostgreSQL schema."""
        return store_db(self.root)

    def rows(self, run_id: str) -> list[tuple]:
        with self.db() as db:
            return db.execute(
                "SELECT model, item_id, epoch, ok, error_kind, attempts FROM calls WHERE run_id=? "
                "ORDER BY model, item_id, epoch",
                (run_id,),
            ).fetchall()

    def summary(self, run_id: str) -> dict:
        return json.loads((self.root / "results" / run_id / "summary.json").read_text())


# prompts in many scripts, multi-line and quoted, and very short: held-out text of every form
QUESTIONS = [
    "请用三句话解释光合作用。",
    "東京で一番古い寺はどこですか？",
    "ما هي عاصمة المغرب؟",
    "מה הבירה של פינלנד?",
    "भारत की सबसे लंबी नदी कौन सी है?",
    "ประเทศไทยมีกี่จังหวัด",
    'Line one\nline two\n"quoted"',
    "Hi",
]


@pytest.fixture
def heldout(project, cli, monkeypatch, mock_server):
    """A vault with an active held-out pool `s@v1` (QUESTIONS twice), and a function that writes a
    run config for it."""
    monkeypatch.delenv("HOLDOUT_VAULT_KEY", raising=False)
    project.suite("s")
    pool = project.root / "pool.jsonl"
    pool.write_text(
        "".join(
            json.dumps(
                {"id": f"h{i}", "prompt": f"{q} ({i})", "reference": f"answer-{i}-of-the-pool"},
                ensure_ascii=False,
            )
            + "\n"
            for i, q in enumerate(QUESTIONS * 2)
        )
    )
    assert cli("vault", "init")[0] == 0
    assert cli("pool", "import", pool, "--suite", "s", "--heldout", "--activate")[0] == 0

    def config(extra="", models=("m1",), name="run.yaml"):
        lines = "".join(f"  - {{provider: a, model: {m}}}\n" for m in models)
        return project.config(
            f"suite: s\npool: heldout\n{extra}providers:\n  a:\n    type: openai-compatible\n"
            f"    base_url: {mock_server.url}/v1\nmodels:\n{lines}",
            name=name,
        )

    return config


@pytest.fixture
def set_clock():
    """Move holdout's clock in this process (harness/clock.py); back to the system clock
    afterwards."""

    def set_(t: float) -> None:
        clock.inject(lambda: t)

    yield set_
    clock.inject(None)


@pytest.fixture
def cli(capsys):
    """Run `holdout ...` in-process; returns (exit code, stdout, stderr)."""

    def run(*args):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


INSTRUMENTED = Path(__file__).resolve().parent / "instrumented.py"


def holdout_argv(*args, failpoints: str | None = None) -> list[str]:
    """The console entry point; with `failpoints`, through tests/instrumented.py (production cannot
    arm them)."""
    if failpoints:
        return [
            sys.executable,
            str(INSTRUMENTED),
            "--failpoints",
            failpoints,
            "--",
            *map(str, args),
        ]
    return [sys.executable, "-m", "harness.cli", *map(str, args)]


def holdout_subprocess(
    *args, cwd, env=None, failpoints: str | None = None, **kw
) -> subprocess.Popen:
    """The real console entry point in its own process (for kill -9 and Ctrl-C tests)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.Popen(
        holdout_argv(*args, failpoints=failpoints),
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


# -- human review: a routed run, and its app served in its own process (tests/test_review*.py)
# --------------


@pytest.fixture
def reviewed(project, cli, mock_server):
    """6 items (4 en, 2 ja), one model, two judges that disagree on odd items; human review with
    overlap 2 and gold."""
    items = [
        {
            "id": f"q{i}",
            "prompt": f"Review question {i} in {'ja' if i >= 4 else 'en'}",
            "metadata": {"language": "ja" if i >= 4 else "en"},
        }
        for i in range(6)
    ]
    d = project.suite(
        items=items,
        graders=[
            {
                "rubric": {
                    "judges": [
                        {"provider": "p", "model": "judge-1"},
                        {"provider": "p", "model": "judge-2"},
                    ],
                    "criteria": [{"name": "quality", "scale": [1, 5], "guide": "overall"}],
                }
            },
            {
                "human": {
                    "route": {"when": ["judge_disagreement"], "gold": "gold.jsonl"},
                    "overlap": 2,
                }
            },
        ],
    )
    (d / "gold.jsonl").write_text(
        json.dumps({"item_id": "q0", "model": "m", "scores": {"quality": 5}}) + "\n"
    )

    def respond(api, body):
        if body["model"].startswith("judge"):
            n = int(re.search(r"question (\d)", body["messages"][-1]["content"]).group(1))
            q = 5 if body["model"] == "judge-1" or n % 2 == 0 else 1
            return json.dumps({"scores": {"quality": q}, "confidence": 0.9})
        return "the model's answer to " + body["messages"][-1]["content"]

    mock_server.behaviour.responder = respond
    path = project.config(
        "suite: mini\nproviders:\n  p:\n    type: openai-compatible\n    base_url: "
        f"{mock_server.url}/v1\n"
        f"models:\n  - {{provider: p, model: m}}\n"
    )
    assert cli("run", path, "-q")[0] == 0 and cli("grade", "run", "-q")[0] == 0
    tokens = {}
    for name, langs in (("alice", "en,ja"), ("bob", "en"), ("carol", "en,ja")):
        code, out, _ = cli("review", "add-reviewer", name, "--languages", langs)
        tokens[name] = out.strip().split("token=")[1]
    code, stdout, err = cli("review", "route", "run")
    assert code == 0, err
    return project, tokens


@pytest.fixture
def server(reviewed):
    project, tokens = reviewed
    port = free_port()
    proc = holdout_subprocess("review", "serve", "run", "--port", port, cwd=project.root)
    url = f"http://127.0.0.1:{port}"
    wait_for_http(url + "/next")
    yield project, tokens, url, proc
    proc.terminate()
    proc.wait(10)


def login(url, token) -> httpx.Client:
    """As a reviewer does: open the link (a landing page that spends nothing), then press Sign in (a
    POST)."""
    client = httpx.Client(base_url=url, follow_redirects=False)
    landing = client.get("/login", params={"token": token})
    assert landing.status_code == 200 and "Sign in" in landing.text
    r = client.post("/login", data={"token": token})
    assert r.status_code == 303 and r.headers["location"] == "/next"
    return client


# -- a real browser: headless Chromium over the DevTools protocol
# --------------------------------------------


def need_chromium() -> str:
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("chromium is not installed (Debian package 'chromium'; .ci/run installs it)")
    return chromium


class DevTools:
    """One page of a headless Chromium: commands, the page's text, key presses."""

    def __init__(self, ws):
        self.ws = ws
        self.ids = iter(range(1, 1_000_000))

    async def call(self, method: str, **params) -> dict:
        mid = next(self.ids)
        await self.ws.send_json({"id": mid, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json()
            if msg.get("id") == mid:
                return msg.get("result", {})

    async def text(self, *, href: bool = False, settle_s: float = 0.6) -> str:
        """The page's location (path, or the whole URL) and its visible text, once it has
        settled."""
        import asyncio

        await asyncio.sleep(settle_s)
        where = "document.location.href" if href else "document.location.pathname"
        r = await self.call(
            "Runtime.evaluate", expression=f"{where} + '\\n' + document.body.innerText"
        )
        return r["result"]["value"]

    async def key(self, key: str, code: str, vk: int) -> None:
        """Press a key: Enter submits or presses the focused button, Space selects the focused
        radio."""
        for kind in ("keyDown", "keyUp"):
            await self.call(
                "Input.dispatchKeyEvent",
                type=kind,
                key=key,
                code=code,
                windowsVirtualKeyCode=vk,
                **({"text": "\r" if key == "Enter" else " "} if kind == "keyDown" else {}),
            )


@contextlib.asynccontextmanager
async def chromium_page(tmp_path: Path, *flags: str):
    """A fresh headless Chromium (its own profile) and its first page, closed afterwards."""
    import asyncio

    import aiohttp

    devtools = free_port()
    browser = subprocess.Popen(
        [
            need_chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            *flags,
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--remote-debugging-port={devtools}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession() as http:
            pages = []
            for _ in range(100):
                try:
                    async with http.get(f"http://127.0.0.1:{devtools}/json/list") as r:
                        pages = [t for t in await r.json() if t["type"] == "page"]
                    if pages:
                        break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            async with http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                page = DevTools(ws)
                await page.call("Page.enable")
                yield page
    finally:
        browser.terminate()
        browser.wait(10)


def graded_replay_run(project, cli, run_id, pool_id, right: dict, *, answer, extra=""):
    """A run on vault version `pool_id` of suite `s` (the heldout fixture's), graded by
    `contains`: each model in `right` answers its first `right[model]` items h0, h1, ... with
    `answer(i)` (replayed, no server), the rest with "Not sure."."""
    d = project.root / f"replay-{run_id}"
    d.mkdir()
    for model, n in right.items():
        lines = [
            {"id": f"h{i}", "output": answer(i) if i < n else "Not sure."}
            for i in range(2 * len(QUESTIONS))
        ]
        (d / f"{model}.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    models = "".join(f"  - {{provider: r, model: {m}}}\n" for m in right)
    config = project.config(
        f"run_id: {run_id}\nsuite: s\npool: {pool_id}\n{extra}"
        f"graders: [{{rules: {{type: contains}}}}]\nproviders:\n"
        f"  r: {{type: replay, path: ../replay-{run_id}}}\nmodels:\n{models}",
        name=f"{run_id}.yaml",
    )
    code, _, err = cli("run", config, "-q")
    assert code == 0, err
    code, _, err = cli("grade", run_id, "-q")
    assert code == 0, err
