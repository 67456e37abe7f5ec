"""The leak test: held-out canaries must never appear anywhere but the model request and the review
page.

A held-out pool of canary items of every kind (long and very short texts, numeric and one-word
references, Chinese and Japanese without spaces, Thai, Arabic, Hebrew, Hindi, Cyrillic, accented
Latin, multi-line text, system turns, multi-turn histories, free-text metadata) goes through the
whole pipeline: vault, a failed import, a run against models that echo their prompt in altered forms
(case, fullwidth, NFD, zero-width characters, no whitespace, reversed, base64, JSON and HTML
escapes), OpenAI-compatible and Anthropic judges (rubric and pairwise) that quote their request,
DEBUG logging on every logger with OPENAI_LOG and ANTHROPIC_LOG on, a forced crash whose message
quotes a prompt, resume, grading, reports, scorecards, review, exports, drawing and rotation.

Then every byte written outside the encrypted vault blobs (results/, the workspace, the run store
and ledger as raw files, logs, the temp dir) and everything printed is scanned for every canary by
an independent checker (its own normalization: NFKC, case, escapes, zero-width characters,
whitespace, reversed and base64 views), for whole texts and for every long enough window of them.
Zero hits is the only pass. The mock server's request log must contain them: the door meant to be
open is open.

Every new output path, script or text form gets a canary here in the same change that creates it.
"""

from __future__ import annotations

import base64
import codecs
import html
import json
import os
import random
import re
import secrets
import subprocess
import sys
import unicodedata
import warnings
from urllib.parse import quote

import pytest
from conftest import free_port, holdout_argv, wait_for_http

from harness.mockserver import MockBehaviour, MockServer

ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
LATIN = "bcdfghjklmnprstvz"
VOWELS = "aeiou"


def pseudo_word(rng: random.Random, syllables: int = 3) -> str:
    return "".join(rng.choice(LATIN) + rng.choice(VOWELS) for _ in range(syllables))


def rand_chars(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


HAN = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明"  # noqa: E501
KANA = "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをんアイウエオカキクケコサシスセソ"  # noqa: E501
THAI = "กขคงจฉชซญดตถทธนบปผพฟภมยรลวศสหอฮะาิีึืุูเแโใไ"
ARABIC = "ابتثجحخدذرزسشصضطظعغفقكلمنهوي"
HEBREW = "אבגדהוזחטיכלמנסעפצקרשת"
DEVANAGARI = "कखगघचछजझटठडढणतथदधनपफबभमयरलवशसह"
CYRILLIC = "абвгдежзийклмнопрстуфхцчшщыэюя"
HANGUL = "가나다라마바사아자차카타파하강남동린몽별송윤정찬탁편휘"


def short_number(rng: random.Random) -> str:
    """A five-digit answer. Pids are written where they belong (a run's lock file, a worker's
    lease), and one equal to the canary is no leak: where pids stay under 100,000 (pid_max 32768
    by default), the canary is above them; elsewhere a collision is left to chance."""
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            pid_max = int(f.read())
    except (OSError, ValueError):
        pid_max = 99_999
    return str(rng.randint(max(10_000, pid_max + 1) if pid_max < 99_999 else 10_000, 99_999))


def canary_items() -> list[dict]:
    """Items of every kind; each carries text found nowhere else (random words and characters)."""
    rng = random.Random(secrets.randbits(64))
    w = lambda n=3: pseudo_word(rng, n)  # noqa: E731
    token = lambda: f"zq{secrets.token_hex(8)}"  # noqa: E731
    items = [
        {
            "id": "long-en",
            "prompt": f"Summarise this internal note in two sentences: the project {token()} "
            "moved its "
            f"launch to week 7 because the {w()} vendor missed the deadline.",
            "reference": f"The {w()} launch slipped to week 7.",
        },
        {
            "id": "short-3w",
            "prompt": f"Define {w(4)} precisely.",
            "reference": short_number(rng),
        },
        {"id": "short-1w", "prompt": f"{w(4)}?", "reference": w(3).capitalize()},
        {
            "id": "zh",
            "prompt": "请用三句话总结：" + rand_chars(rng, HAN, 16) + "。",
            "reference": rand_chars(rng, HAN, 4),
        },
        {
            "id": "ja",
            "prompt": rand_chars(rng, KANA, 8)
            + "について"
            + rand_chars(rng, HAN, 6)
            + "を教えてください。",
            "reference": rand_chars(rng, KANA, 5),
        },
        {
            "id": "th",
            "prompt": "ช่วยสรุป" + rand_chars(rng, THAI, 18),
            "reference": rand_chars(rng, THAI, 6),
        },
        {
            "id": "ko",
            "prompt": " ".join(rand_chars(rng, HANGUL, 3) for _ in range(5)) + " 요약해 주세요.",
            "reference": rand_chars(rng, HANGUL, 3),
        },
        {"id": "ar", "prompt": " ".join(rand_chars(rng, ARABIC, 5) for _ in range(6)) + "؟"},
        {"id": "he", "prompt": " ".join(rand_chars(rng, HEBREW, 5) for _ in range(6)) + "?"},
        {
            "id": "hi",
            "prompt": " ".join(
                rand_chars(rng, DEVANAGARI, 3) + "ि" + rand_chars(rng, DEVANAGARI, 2)
                for _ in range(5)
            )
            + "।",
        },
        {
            "id": "ru",
            "prompt": "Кратко: " + " ".join(rand_chars(rng, CYRILLIC, 6) for _ in range(5)) + ".",
        },
        {
            "id": "accented",
            "prompt": f"Résumé de l'élève {w()}é, né à {w()}ès, très {w()}ï.",
            "reference": f"Ça {w()}è",
        },
        {
            "id": "multiline",
            "prompt": f'Line one {w()} {w()}\nline two {w()}\n\tindented {w()} {w()}\n"quoted" '
            f"{w()}",
        },
        {
            "id": "system-turn",
            "messages": [
                {"role": "system", "content": f"You are {w()} the {w()} assistant of {w()} corp."},
                {"role": "user", "content": f"Tell me about {w()} {w()}."},
            ],
        },
        {
            "id": "history",
            "messages": [
                {"role": "user", "content": f"Remember the word {w(4)} for later."},
                {"role": "assistant", "content": f"I will remember {w(4)}, promised."},
                {"role": "user", "content": f"Now use it in a {w()} sentence."},
            ],
        },
        {
            "id": "meta-note",
            "prompt": f"Plan a {w()} trip to {w()}.",
            "metadata": {"note": f"internal note {w()} {w()} {w()} from curator"},
        },
    ]
    for n, it in enumerate(items):
        it.setdefault("metadata", {})
        it["metadata"].update(category=["coding", "writing", "math"][n % 3], language="xx")
    return items


def texts_of(item: dict) -> list[str]:
    """Every held-out text of an item, as a needle."""
    out = [m["content"] for m in item.get("messages", [])] or [item["prompt"]]
    if "reference" in item:
        out.append(item["reference"])
    out += [v for k, v in item["metadata"].items() if k not in ("category", "language")]
    return out


# -- echo forms: what models and judges do to text they repeat
# -----------------------------------------

FULLWIDTH = {i: i + 0xFEE0 for i in range(0x21, 0x7F)}
ECHO_FORMS = {
    "same": lambda t: t,
    "upper": str.upper,
    "fullwidth": lambda t: t.translate(FULLWIDTH),
    "nfd": lambda t: unicodedata.normalize("NFD", t),
    "zero-width": lambda t: "\u200b".join(t),
    "no-space": lambda t: re.sub(r"\s+", "", t),
    "reversed": lambda t: t[::-1],
    "base64": lambda t: base64.b64encode(t.encode()).decode(),
    "json": lambda t: json.dumps(t),
    "repr": repr,
    "html": lambda t: t.encode("ascii", "xmlcharrefreplace").decode(),
}


def echo(text: str, n: int) -> str:
    name = list(ECHO_FORMS)[n % len(ECHO_FORMS)]
    return f"Here it is ({name}): {ECHO_FORMS[name](text)} -- done."


# -- the independent checker
# ------------------------------------------------------------------------


def squeeze(text: str) -> str:
    """NFKC, case folded, only letters, marks and digits."""
    text = unicodedata.normalize("NFKC", text.translate(ZERO_WIDTH)).casefold()
    return "".join(c for c in text if c.isalnum() or unicodedata.category(c)[0] == "M")


def views(text: str) -> list[str]:
    """The blob as a reader could decode it: as is, unescaped, HTML-unescaped, reversed, base64 runs
    decoded."""
    out = [text, html.unescape(text), text[::-1], re.sub(r"\s+", "", text)]
    with warnings.catch_warnings():
        # "invalid escape sequence" in arbitrary bytes
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            out.append(codecs.decode(text.encode("latin-1", "backslashreplace"), "unicode_escape"))
        except (UnicodeDecodeError, ValueError):
            pass
    # six characters: a four-digit number is six in base64, then "=="
    for run in re.findall(r"[A-Za-z0-9+/]{6,}={0,2}", text):
        try:
            out.append(base64.b64decode(run + "=" * (-len(run) % 4)).decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            pass
    return out


def windows(needle: str) -> set[str]:
    """The whole needle, and every window long enough to be unmistakably it."""
    s = squeeze(needle)
    size = 12 if any(ord(c) > 0x2E80 or 0x0E00 <= ord(c) <= 0x0E7F for c in s) else 26
    if len(s) <= size:
        return {s}
    return {s[i : i + size] for i in range(0, len(s) - size + 1, 3)} | {s[-size:]}


def find_leaks(blobs: dict[str, bytes], needles: list[str]) -> list[str]:
    """Needles found in any view of any blob. A number is looked for as a whole number: digits
    glued to other digits (a timestamp) are not it, nor digits inside a hex token (a digest, an
    id), which are random: a five-digit canary once matched the tail of an SDK's idempotency key
    (`...-b5e14fa97323`), and 64-hex digests fill the store and its write-ahead log."""
    numbers = {
        n: re.compile(rf"(?<![0-9a-fA-F]){n}(?![0-9a-fA-F])") for n in needles if n.isdigit()
    }
    probes = {n: windows(n) for n in needles if len(squeeze(n)) >= 4 and n not in numbers}
    hits = []
    for where, data in blobs.items():
        raw = [
            unicodedata.normalize("NFKC", v.translate(ZERO_WIDTH))
            for v in views(data.decode("utf-8", "ignore"))
        ]
        seen = [squeeze(v) for v in raw]
        for needle, parts in probes.items():
            if any(p in v for v in seen for p in parts):
                hits.append(f"{where}: {needle[:30]!r}")
        for needle, pattern in numbers.items():
            if any(pattern.search(v) for v in raw):
                hits.append(f"{where}: {needle!r}")
    return hits


# -- the pipeline
# -----------------------------------------------------------------------------------


@pytest.fixture
def leak_env(tmp_path):
    items = canary_items()
    position = {}

    def responder(api, body):
        """Models echo their prompt in an altered form; judges quote their whole request, then
        answer."""
        model = body["model"]
        turns = [
            m["content"]
            if isinstance(m["content"], str)
            else " ".join(b.get("text", "") for b in m["content"])
            for m in body["messages"]
        ]
        last = turns[-1]
        if model.startswith("judge-rubric"):
            return json.dumps(
                {"scores": {"quality": 4}, "confidence": 0.9, "rationale": "It says: " + last}
            )
        if model.startswith("judge-pair"):
            return "Both responses restate: " + last + "\nVerdict: [[A=B]]"
        key = position.setdefault(last, len(position))
        return echo("\n".join([body.get("system") or "", *turns]).strip(), key)

    # models whose every call is refused with the provider's own error, whose message quotes the
    # prompt
    refused = {
        "too-long-oa": "context_length",
        "filtered-oa": "content_filter_400",
        "refuses-oa": "refusal",
    }
    # a provider that names a held-out one-word answer as the model that served (an id-shaped echo),
    # and a
    # gateway that names it as the upstream it passed the request to (it would go into the exposure
    # ledger)
    short_answer = next(it["reference"] for it in items if it["id"] == "short-1w")
    server = MockServer(
        MockBehaviour(
            reply="echo",
            record_bodies=True,
            responder=responder,
            fault_models=refused,
            served_as={"echo-an": short_answer},
            upstreams={"echo-oa": short_answer},
        )
    )
    server.start()
    root = tmp_path / "proj"
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    (root / "suites" / "arena").mkdir(parents=True)
    (root / "suites" / "arena" / "suite.yaml").write_text(
        "name: arena\nstrata: [category, language]\nsystem: Answer briefly.\n"
        "source:\n  prompt: prompt\n  id: id\n  timestamp: ts\n  metadata: {category: "
        "metadata.category, topic: metadata.topic}\n"
        "draw: {size: 8, stratify: [category, topic], max_marginal_tv: 1}\ngraders:\n"
        "  - rules: {type: contains}\n"
        "  - rubric:\n      judges: [{provider: oa, model: judge-rubric}, {provider: an, model: "
        "judge-rubric-an}]\n"
        "      criteria: [{name: quality, scale: [1, 5]}]\n"
        "  - pairwise:\n      judge: {provider: an, model: judge-pair}\n      baseline: echo-an\n"
        "  - human:\n      route: {sample: 1.0}\n      overlap: 1\n"
    )
    (root / "configs").mkdir()
    password = f"pw{secrets.token_hex(6)}"
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
  of:  # OpenAI's own API, through its SDK (oa is a compatible server, over plain HTTP)
    type: openai
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
  - {{provider: oa, model: too-long-oa}}
  - {{provider: oa, model: filtered-oa}}
  - {{provider: oa, model: refuses-oa}}
  - {{provider: of, model: echo-of}}
labs:
  acme: [echo-oa]
  globex: [echo-an]
""")
    creds = (
        (root / "configs" / "arena.yaml")
        .read_text()
        .replace(f"{server.url}/v1", f"http://holdout:{password}@127.0.0.1:{server.port}/v1")
    )
    inputs = tmp_path / "inputs"  # what the maintainer imports, then deletes: not scanned
    inputs.mkdir()
    (inputs / "creds.yaml").write_text(creds.replace("run_id: arena-nov", "run_id: creds"))
    arena = (root / "configs" / "arena.yaml").read_text()  # next month's run, on the new version
    (root / "configs" / "arena-dec.yaml").write_text(
        arena.replace("run_id: arena-nov", "run_id: arena-dec")
    )
    # the same pool by OpenAI's Batch API and Anthropic's Message Batches: requests built in
    # memory, the provider's copies deleted after collection
    (root / "configs" / "arena-batch.yaml").write_text(
        arena.replace("run_id: arena-nov", "run_id: arena-batch").replace(
            "    retention: zero\n",
            "    retention: zero\n    mode: batch\n    batch: {poll_s: 0.05, retention: zero}\n",
        )
    )
    (inputs / "pool.jsonl").write_text(
        "".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items)
    )
    bad = dict(items[0], id="bad one", reference=12)  # two schema errors on a line of held-out text
    (inputs / "bad.jsonl").write_text(
        json.dumps(items[1], ensure_ascii=False)
        + "\n"
        + json.dumps(bad)
        + "\n"
        + '{"id": "x", "prompt": "'
        + items[2]["prompt"]
        + "\n"
    )
    rng = random.Random(secrets.randbits(64))
    source = []  # the arena stream to draw from: distinct prompts
    topics = [f"cluster about {pseudo_word(rng)} {pseudo_word(rng)}" for _ in range(3)]
    for n in range(24):
        words = " ".join(pseudo_word(rng) for _ in range(14))
        source.append(
            {
                "id": f"s{n}",
                "prompt": f"Plan {words}?",
                "reference": f"ref {pseudo_word(rng, 4)}",
                "metadata": {"category": ["coding", "writing"][n % 2], "topic": topics[n % 3]},
                "ts": f"2026-11-{1 + n:02d}T12:00:00Z",  # a live stream: the window and drift
            }
        )
    (inputs / "source.jsonl").write_text("".join(json.dumps(i) + "\n" for i in source))
    needles = (
        [t for it in items for t in texts_of(it)]
        + [s["prompt"] for s in source]
        + topics
        + [password]
    )
    env = {
        **os.environ,
        "TMPDIR": str(tmpdir),
        "OPENAI_LOG": "debug",
        "ANTHROPIC_LOG": "debug",
        "MOCK_KEY": "sk-leak-test",
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOLDOUT_LANES_DIR": str(tmpdir / "lanes"),
    }
    env.pop("HOLDOUT_VAULT_KEY", None)
    yield server, root, tmpdir, inputs, items, needles, env
    server.stop()


# (argv, extra env, expected exit code). Debug logs everywhere, to a file and to stderr.
LOG = ["--log-level", "debug", "--log-file", "logs/debug.log"]
PIPELINE = [
    (["vault", "init"], {}, 0),
    # a failed import
    (
        [*LOG, "pool", "import", "{inputs}/bad.jsonl", "--suite", "arena", "--heldout"],
        {},
        2,
    ),
    (
        [
            "pool",
            "import",
            "{inputs}/pool.jsonl",
            "--suite",
            "arena",
            "--heldout",
            "--max-retention",
            "30d",
        ],
        {},
        0,
    ),
    (["pool", "activate", "arena@v1"], {}, 0),
    (["pool", "list"], {}, 0),
    # a password in a base URL: refused, and never shown
    (
        [*LOG, "run", "{inputs}/creds.yaml"],
        {},
        2,
    ),
    # crash + traceback
    (
        [*LOG, "run", "configs/arena.yaml"],
        {"failpoints": "runner.after_call=crash@5"},
        1,
    ),
    ([*LOG, "run", "configs/arena.yaml"], {}, 0),  # resume to the end
    # by batch: killed once the batch exists but before its id is recorded, then taken up
    ([*LOG, "run", "configs/arena-batch.yaml"], {"failpoints": "batch.after_create=kill"}, -9),
    ([*LOG, "run", "configs/arena-batch.yaml"], {}, 0),  # found at the provider, collected
    ([*LOG, "status"], {}, 0),
    ([*LOG, "grade", "arena-nov"], {}, 0),
    ([*LOG, "grade", "arena-nov"], {}, 0),  # nothing to do
    ([*LOG, "report", "arena-nov"], {}, 0),
    ([*LOG, "report", "--across", "arena", "--grader", "rubric"], {}, 0),  # ids and numbers
    (
        [*LOG, "runs", "diff", "arena-nov", "arena-nov", "--grader", "rubric"],
        {},
        0,
    ),  # item ids and numbers only
    ([*LOG, "check", "arena-nov", "--workers", "2"], {}, 0),  # worker processes, on any machine
    ([*LOG, "review", "add-reviewer", "alice", "--languages", "xx", "--port", "{port}"], {}, 0),
    ([*LOG, "review", "route", "arena-nov"], {}, 0),
    ([*LOG, "scorecard", "arena-nov", "--all"], {}, 0),
    ([*LOG, "verify", "results/arena-nov/scorecards/acme.json"], {}, 0),
    ([*LOG, "leaderboard", "arena-nov"], {}, 0),
    (
        [
            *LOG,
            "pool",
            "draw",
            "--suite",
            "arena",
            "--source",
            "{inputs}/source.jsonl",
            "--seed",
            "3",
        ],
        {},
        0,
    ),
    ([*LOG, "pool", "show", "arena@v2"], {}, 0),
    ([*LOG, "pool", "show", "arena@v2", "--drift", "--window", "30d"], {}, 0),
    (
        [*LOG, "pool", "draw", "--suite", "arena", "--source", "{inputs}/source.jsonl", "--window"]
        + ["30d", "--size", "4", "--seed", "5"],  # the whole stream: rotate still finds items
        {},
        0,
    ),
    ([*LOG, "pool", "exposure", "arena", "--items"], {}, 0),
    ([*LOG, "pool", "qualify", "arena@v1", "--pilot", "arena-nov"], {}, 0),  # ids and numbers
    (
        [*LOG, "pool", "qualify", "arena@v1", "--pilot", "arena-nov", "--reference", "arena-nov"],
        {},
        0,
    ),
    ([*LOG, "pool", "qualify", "arena@v1", "--pilot", "arena-nov", "--json"], {}, 0),
    ([*LOG, "pool", "rotate", "arena", "--force"], {}, 0),
    ([*LOG, "pool", "list"], {}, 0),
    # all refused
    (
        [*LOG, "export", "items", "--suite", "arena", "--purpose", "research", "--out", "exported"],
        {},
        3,
    ),
    (
        [*LOG, "export", "outputs", "arena-nov", "--purpose", "evaluation", "--out", "exported"],
        {},
        3,
    ),
    (
        [*LOG, "export", "results", "arena-nov", "--purpose", "evaluation", "--out", "exported"],
        {},
        3,
    ),
    (
        [*LOG, "export", "results", "arena-nov", "--purpose", "research", "--out", "exported"]
        + ["--format", "csv"],
        {},
        3,
    ),
    ([*LOG, "policy", "explain", "arena@v1"], {}, 0),
    ("REVIEW-APP", {}, 0),  # the reviewers' app, served and used (see review_app_session)
    ("VIEW-APP", {}, 0),  # the maintainers' view, served and used (see view_app_session)
    ([*LOG, "view", "log"], {}, 0),  # who saw which item: ids and times
    ([*LOG, "runs", "items", "arena-nov", "--stratum", "language=zh"], {}, 0),  # the view's list
    ([*LOG, "runs", "items", "arena-nov", "--sort", "highest", "--json"], {}, 0),
    ([*LOG, "runs", "list", "--json"], {}, 0),
    ([*LOG, "view", "log", "--json"], {}, 0),
    ([*LOG, "review", "status", "arena-nov"], {}, 0),
    ([*LOG, "review", "revoke", "alice"], {}, 0),
    ([*LOG, "vault", "verify"], {}, 0),
    ([*LOG, "verify", "results/arena-nov/scorecards/acme.html"], {}, 0),
    ([*LOG, "scorecard", "arena-nov", "--lab", "acme"], {}, 0),  # a re-issue: the audit trail
    # results for scripts: every --json form
    ([*LOG, "vault", "verify", "--json"], {}, 0),
    ([*LOG, "status", "--json"], {}, 0),
    ([*LOG, "report", "arena-nov", "--json"], {}, 0),
    ([*LOG, "report", "--across", "arena", "--grader", "pairwise", "--json"], {}, 0),
    ([*LOG, "check", "arena-nov", "--json"], {}, 0),
    ([*LOG, "runs", "diff", "arena-nov", "arena-nov", "--grader", "pairwise", "--json"], {}, 0),
    ([*LOG, "review", "status", "arena-nov", "--json"], {}, 0),
    ([*LOG, "pool", "list", "--json"], {}, 0),
    ([*LOG, "pool", "show", "arena@v2", "--json"], {}, 0),
    ([*LOG, "pool", "show", "arena@v2", "--drift", "--json"], {}, 0),
    ([*LOG, "pool", "exposure", "arena", "--pool", "arena@v1", "--items", "--json"], {}, 0),
    ([*LOG, "verify", "results/arena-nov/scorecards/acme.json", "--json"], {}, 0),
    ([*LOG, "run", "configs/arena.yaml"], {}, 2),  # the pool rotated: refused, naming what changed
    ([*LOG, "run", "configs/arena-dec.yaml"], {}, 0),  # the new version
    ([*LOG, "grade", "arena-dec"], {}, 0),
    ([*LOG, "report", "--across", "arena", "--grader", "rubric"], {}, 0),  # two versions, linked
    ([*LOG, "scorecard", "arena-dec", "--all"], {}, 0),  # cards with the models' history
    ([*LOG, "leaderboard", "arena-dec"], {}, 0),
    ([*LOG, "grade", "arena-nov", "--regrade", "rubric"], {}, 0),  # judged again
    ([*LOG, "runs", "delete", "arena-nov"], {}, 0),
]


def review_app_session(root, env, port, link, captured, items):
    """Serve the app, log in, review two items (one with a comment quoting the item), and provoke
    every kind of error page. Pages shown to the logged-in reviewer may hold held-out text (the
    second door); everything else goes into `captured`."""
    import httpx

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.cli",
            *LOG,
            "review",
            "serve",
            "arena-nov",
            "--port",
            str(port),
        ],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_http(url + "/next")
    reviewer = httpx.Client(base_url=url, follow_redirects=False)
    landing = reviewer.get(link.replace(url, ""))  # what a link previewer sees: spends nothing
    captured["login landing"] = landing.content
    r = reviewer.post("/login", data={"token": link.split("token=")[1]})
    assert r.status_code == 303
    captured["login redirect"] = json.dumps(dict(r.headers)).encode()
    shown = 0
    for n in range(2):
        where = reviewer.get("/next").headers["location"]
        captured[f"url {where}"] = where.encode()
        page = reviewer.get(where)  # the assigned reviewer's page: allowed to show the text
        assert page.status_code == 200 and "<pre" in page.text
        shown += 1
        csrf = re.search(r"name=csrf value=(\w+)", page.text).group(1)
        forged = reviewer.post(where, data={"quality": "4"})  # a form without the page's token
        captured[f"forged post {where}"] = forged.content
        assert forged.status_code == 403
        # a validation error page (shown to that reviewer)
        bad = reviewer.post(where, data={"quality": "99", "csrf": csrf})
        assert bad.status_code == 400
        comment = f"the item says {texts_of(items[n])[0]}"  # reviewers quote what they read
        reviewer.post(where, data={"quality": "4", "csrf": csrf, "comment": comment})
    anon = httpx.Client(base_url=url)
    quoted = texts_of(items[0])[0]
    for name, resp in (
        ("anonymous", anon.get("/next")),
        ("unknown id", reviewer.get("/a/not-a-real-id")),
        ("bad login", anon.post("/login", data={"token": "nope"})),
        ("anonymous post", anon.post(where, data={"quality": "1"})),
        # aiohttp's own parser refusals: a request line and a cookie over its limits, quoting the
        # item
        ("oversized request line", anon.get("/a/" + quote(quoted) + "x" * 9000)),
        ("oversized cookie", anon.get("/next", headers={"Cookie": "c=" + quote(quoted) * 200})),
    ):
        captured[f"error page {name}"] = resp.content + json.dumps(dict(resp.headers)).encode()
        assert resp.status_code in (400, 401, 404, 431), (name, resp.status_code)
        assert (
            resp.headers.get("cache-control") == "no-store"
            and resp.headers.get("server") == "holdout"
        ), name
    csrf = re.search(
        r"name=csrf value=(\w+)", reviewer.get("/next", follow_redirects=True).text
    ).group(1)
    bye = reviewer.post("/logout", data={"csrf": csrf})
    captured["logout"] = bye.content
    assert bye.status_code == 200 and reviewer.get("/next").status_code == 401
    proc.terminate()
    out, err = proc.communicate(timeout=10)
    captured["review server stdout"], captured["review server stderr"] = out, err
    return shown


def view_app_session(root, env, port, captured, items):
    """Serve the maintainers' view, sign in, open every item page (the third door: not captured),
    and capture everything else: the run page and listings (ids and numbers), what a stranger and
    a reviewer's cookie get, error pages, the server's output."""
    import httpx

    def holdout(*argv):
        return subprocess.run(
            holdout_argv(*LOG, *argv), cwd=root, env=env, capture_output=True, timeout=60
        )

    added = holdout("view", "add-maintainer", "mia", "--port", str(port))
    captured["view add-maintainer stderr"] = added.stderr
    token = re.search(rb"token=(\S+)", added.stdout).group(1).decode()
    proc = subprocess.Popen(
        holdout_argv(*LOG, "view", "serve", "arena-nov", "--port", str(port)),
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_http(url + "/")
    m = httpx.Client(base_url=url, follow_redirects=False)
    assert m.post("/login", data={"token": token}).status_code == 303
    for it in items:  # the door: a signed-in maintainer sees the text
        assert m.get(f"/r/arena-nov/i/{it['id']}").status_code == 200
    for path in (
        "/",
        "/r/arena-nov",  # with the model x stratum tables (category, language)
        "/r/arena-nov/items",
        "/r/arena-nov/items?show=disagree",
        "/r/arena-nov/items?show=human&sort=highest",
        "/r/arena-nov/items?stratum=language%3Dzh&min=0.5",
        "/r/arena-nov/items?safeguard=refusals",
        "/r/arena-nov/items?error=timeout&show=failed",
        "/r/arena-nov/items?show=grade-error",
        "/compare",
        "/compare?a=arena-nov&b=arena-nov",  # one run against itself: every difference 0
    ):
        page = m.get(path)
        assert page.status_code == 200
        captured[f"view page {path}"] = page.content
    anon = httpx.Client(base_url=url)
    quoted = texts_of(items[0])[0]
    for name, resp in (
        ("anonymous item", anon.get(f"/r/arena-nov/i/{items[0]['id']}")),
        ("unknown item", m.get("/r/arena-nov/i/" + quote(quoted[:40]))),
        ("bad login", anon.post("/login", data={"token": quote(quoted)})),
        ("oversized request line", anon.get("/r/" + quote(quoted) + "x" * 9000)),
    ):
        captured[f"view error page {name}"] = resp.content + json.dumps(dict(resp.headers)).encode()
        assert resp.status_code in (400, 401, 404), (name, resp.status_code)
    proc.terminate()
    out, err = proc.communicate(timeout=10)
    captured["view server stdout"], captured["view server stderr"] = out, err
    return len(items)


def test_no_heldout_text_leaves_the_boundary(leak_env, request):
    server, root, tmpdir, inputs, items, needles, env = leak_env
    (root / "logs").mkdir()
    captured = {}
    port = free_port()
    link = None
    for n, (argv, extra, expected) in enumerate(PIPELINE):
        if argv == "REVIEW-APP":
            assert review_app_session(root, env, port, link, captured, items) == 2
            continue
        if argv == "VIEW-APP":
            assert view_app_session(root, env, port, captured, items) == len(items)
            continue
        argv = [a.format(inputs=inputs, port=port) for a in argv]
        proc = subprocess.run(
            holdout_argv(*argv, failpoints=extra.get("failpoints")),
            cwd=root,
            env=env,
            capture_output=True,
            timeout=180,
        )
        captured[f"step {n} {argv} stdout"] = proc.stdout
        captured[f"step {n} {argv} stderr"] = proc.stderr
        assert proc.returncode == expected, (argv, proc.stderr.decode()[-2000:])
        if "add-reviewer" in argv:
            link = proc.stdout.decode().strip()

    # the pipeline really ran: the import failed naming lines, the crash printed a traceback, the
    # run
    # completed, the SDKs' debug logs were written, judges of both providers answered
    import_err = captured[next(k for k in captured if "step 1 " in k and "stderr" in k)].decode()
    assert "bad.jsonl:2" in import_err and "bad.jsonl:3" in import_err
    crash_err = captured[next(k for k in captured if "step 6 " in k and "stderr" in k)].decode()
    assert (
        "Traceback" in crash_err
        and "FailpointCrash" in crash_err
        and "message withheld" in crash_err
    )
    assert json.loads((root / "results" / "arena-nov" / "summary.json").read_text())["complete"]
    log = (root / "logs" / "debug.log").read_text()
    assert "Request options" in log and "HTTP Request" in log or "Sending HTTP Request" in log
    report = json.loads((root / "results" / "arena-nov" / "report.json").read_text())
    assert report["graders"]["rubric"]["models"]["echo-oa"]["graded"] == len(items)
    assert report["graders"]["pairwise"]["models"]["echo-oa"]["n"] == len(items)

    # every byte written outside the encrypted blobs, plus everything printed
    blobs = dict(captured)
    for base in (root, tmpdir):
        for f in base.rglob("*"):
            if f.is_file() and f.name != "items.bin":
                blobs[str(f)] = f.read_bytes()
    shared = os.environ.get("HOLDOUT_STORE")
    if shared:  # the shared store: every file of the PostgreSQL server, its log included
        pg = request.getfixturevalue("postgres_server")
        checkpoint = subprocess.run(
            ["psql", shared.split("?")[0], "-qc", "CHECKPOINT"], capture_output=True
        )
        assert checkpoint.returncode == 0, checkpoint.stderr
        for f in pg.directory.rglob("*"):
            if f.is_file():
                blobs[f"postgres:{f}"] = f.read_bytes()
        assert any("server.log" in k for k in blobs) and any("/base/" in k for k in blobs)
    else:
        assert any(k.endswith("store.sqlite") for k in blobs) and any(
            k.endswith("ledger.sqlite") for k in blobs
        )
    assert find_leaks(blobs, needles) == []
    # the key lanes (a pace shared with other processes, outside the workspace): times and a count
    # each; on a shared store they are rows of the server's, read above
    lanes = [f for f in (tmpdir / "lanes").iterdir()] if (tmpdir / "lanes").exists() else []
    assert (shared or len(lanes) >= 5) and all(
        f.stat().st_size == 32 and b"sk-leak-test" not in f.read_bytes() for f in lanes
    )

    # files are the owner's alone
    for base in (".holdout", "logs", "results", "exported"):
        for f in (root / base).rglob("*"):
            assert f.stat().st_mode & 0o077 == 0, f"{f} is readable by others"

    # the door that is meant to be open is open: the models saw every text, and echoed it back
    requests = "\n".join(server.stats.bodies)
    for it in items:
        for text in texts_of(it)[:1]:
            assert (
                json.dumps(text)[1:-1] in requests
                or json.dumps(text, ensure_ascii=False)[1:-1] in requests
            )


def test_the_checker_finds_every_echo_form(leak_env):
    """A check that cannot fail is a defect: each altered form of each kind of canary is found."""
    _, _, _, _, items, needles, _ = leak_env
    for it in items:
        text = texts_of(it)[0]
        for n, name in enumerate(ECHO_FORMS):
            planted = {f"{it['id']} {name}": f"some output ... {echo(text, n)} ...".encode()}
            assert find_leaks(planted, needles), (it["id"], name)
    for number in (n for n in needles if n.isdigit()):  # a short answer, in every form too
        for n, name in enumerate(ECHO_FORMS):
            planted = {f"{number} {name}": f"some output ... {echo(number, n)} ...".encode()}
            assert find_leaks(planted, [number]), (number, name)
    assert not find_leaks(
        {"innocent": b"run arena-nov: 15 items x 2 models; 0.42 mean; zq0123"}, needles
    )
    number = next(n for n in needles if n.isdigit())
    key = f"'idempotency_key': 'stainless-python-retry-7119a1f3-c1b9-4812-b35a-b5e14fa{number}'"
    digest = f"e838b7cc4af7b00f{number}cdef"
    assert not find_leaks({"random ids": f"{key} {digest}".encode()}, [number])
    assert find_leaks({"beside them": f"{key}, {digest}: answer {number}.".encode()}, [number])
