"""Drawing pools from the arena distribution, the exposure ledger, and rotation."""

import json
import time
from collections import Counter

import pytest
from conftest import ledger_db, needs_shared

from harness.vault import Vault
from harness.vault.draw import allocate, draw
from harness.vault.source import Candidate

DAY = 86400


@pytest.fixture
def maint(project, cli, monkeypatch):
    """A project with a vault, and a helper to write a suite with a source section."""
    monkeypatch.delenv("HOLDOUT_VAULT_KEY", raising=False)
    assert cli("vault", "init")[0] == 0

    def suite(name, source_data, prompt="prompt", metadata=None, extra=""):
        d = project.root / "suites" / name
        d.mkdir(parents=True, exist_ok=True)
        meta = json.dumps(metadata or {})
        (d / "suite.yaml").write_text(
            f"name: {name}\nsource:\n  data: '{source_data}'\n  prompt: {prompt}\n"
            f"  metadata: {meta}\n{extra}"
        )
        return d

    return suite


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def pool_texts(project, pool_id):
    vault = Vault.open(project.root / ".holdout")
    return [json.loads(line)["prompt"] for line in vault.read_jsonl(pool_id).decode().splitlines()]


def test_allocation_is_proportional_with_floors():
    assert allocate({"a": 70, "b": 20, "c": 10}, 10) == {"a": 7, "b": 2, "c": 1}
    assert allocate({"a": 97, "b": 2, "c": 1}, 10, floor=1) == {"a": 8, "b": 1, "c": 1}
    assert sum(allocate({"a": 5, "b": 5, "c": 5}, 10).values()) == 10


def test_stratified_draw_on_real_arena_data_matches_the_source(maint, project, cli):
    data = needs_shared("m-arena-hard")
    maint(
        "marena", f"{data}/*.jsonl", "turns[0].content", {"language": "$file", "cluster": "cluster"}
    )
    code, stdout, err = cli(
        "pool",
        "draw",
        "--suite",
        "marena",
        "--size",
        "320",
        "--stratify",
        "language",
        "--seed",
        "7",
    )
    assert code == 0, err
    report = Vault.open(project.root / ".holdout").manifest("marena@v1")["draw_report"]
    assert report["size"] == 320 and report["source_rows"] == 8000
    assert report["total_variation"] <= 0.02  # stated tolerance
    assert all(r["pool"] == 20 for r in report["strata"])  # 16 languages x 20: exactly proportional
    # deterministic for a seed; another seed draws other items
    cli(
        "pool",
        "draw",
        "--suite",
        "marena",
        "--size",
        "320",
        "--stratify",
        "language",
        "--seed",
        "7",
    )
    code, stdout, err = cli("pool", "show", "marena@v2")
    assert code == 0 and "total variation" in stdout + err
    # v1 never comes back
    assert not set(pool_texts(project, "marena@v1")) & set(pool_texts(project, "marena@v2"))


def test_same_seed_same_pool(tmp_path):
    import random

    rng = random.Random(0)
    words = [
        "alpha",
        "river",
        "quantum",
        "bread",
        "violin",
        "orbit",
        "maple",
        "cipher",
        "glacier",
        "lantern",
        "pepper",
    ]
    cands = [
        Candidate(
            str(i),
            " ".join(rng.choice(words) + str(rng.randint(0, 999)) for _ in range(10)),
            {"c": str(i % 3)},
        )
        for i in range(90)
    ]
    a, _ = draw(cands, 30, ["c"], seed=5, floor=0, earlier_texts=[], reference_texts=[], suite="s")
    b, _ = draw(cands, 30, ["c"], seed=5, floor=0, earlier_texts=[], reference_texts=[], suite="s")
    c, _ = draw(cands, 30, ["c"], seed=6, floor=0, earlier_texts=[], reference_texts=[], suite="s")
    assert (
        a == b and a != c and Counter(i["metadata"]["c"] for i in a) == {"0": 10, "1": 10, "2": 10}
    )


QUESTIONS = [
    "How do I reverse a linked list in place using Python, and what is the time complexity?",
    "Write a short poem about the sea at night in the style of a sailor's song.",
    "Explain the difference between TCP and UDP for a video streaming application.",
    "What are good strategies to prepare for a marathon in twelve weeks as a beginner?",
    "Summarise the causes of the French Revolution in five bullet points.",
    "Give me a SQL query that finds the second highest salary in an employees table.",
]
REWORDED = [  # copies with small edits: must be caught
    "How can I reverse a linked list in place using Python, and what is its time complexity?",
    "Write a short poem about the sea at night, in the style of a sailors song!",
    "explain the difference between TCP and UDP for a video-streaming application",
]
NEAR_MISSES = [  # same template, different question: must not be caught
    "How do I reverse a binary tree in place using Rust, and what is the space complexity?",
    "Give me a SQL query that counts the orders per customer in an orders table.",
]


def test_near_duplicates_are_caught_and_near_misses_kept(maint, project, cli, tmp_path):
    rows = [{"prompt": q} for q in QUESTIONS + REWORDED + NEAR_MISSES]
    maint("s", write_jsonl(tmp_path / "src.jsonl", rows))
    code, stdout, err = cli("pool", "draw", "--suite", "s", "--size", "100", "--stratify", "")
    assert code == 0, err
    report = Vault.open(project.root / ".holdout").manifest("s@v1")["draw_report"]
    assert report["size"] == len(QUESTIONS) + len(NEAR_MISSES)
    assert sum(report["dropped"].values()) == len(REWORDED)
    assert (
        "dropped before entering the pool: near duplicate in draw: 3" in stdout + err
        or "duplicate in draw" in stdout + err
    )


def test_retired_items_never_return_and_reference_sets_are_excluded(maint, project, cli, tmp_path):
    rows = [
        {"prompt": f"Distinct question number {i}: " + " ".join(f"w{i}x{j}" for j in range(12))}
        for i in range(30)
    ]
    write_jsonl(tmp_path / "public.jsonl", [{"id": "p1", "prompt": rows[0]["prompt"]}])
    maint(
        "s",
        write_jsonl(tmp_path / "src.jsonl", rows),
        extra=f"  reference_sets: ['{tmp_path}/public.jsonl']\n",
    )
    cli("pool", "draw", "--suite", "s", "--size", "10", "--stratify", "")
    cli("pool", "activate", "s@v1")
    cli("pool", "draw", "--suite", "s", "--size", "30", "--stratify", "")
    first, second = set(pool_texts(project, "s@v1")), set(pool_texts(project, "s@v2"))
    assert len(first) == 10 and len(second) == 19 and not first & second
    assert rows[0]["prompt"] not in first | second
    dropped = Vault.open(project.root / ".holdout").manifest("s@v2")["draw_report"]["dropped"]
    assert dropped == {"in_an_earlier_version": 10, "in_a_reference_set": 1}


def test_exposure_counts_equal_the_servers_own_count(maint, project, cli, tmp_path, mock_server):
    from harness.mockserver import MockBehaviour

    rows = [
        {"prompt": f"Held-out question {i}: " + " ".join(f"t{i}y{j}" for j in range(10))}
        for i in range(12)
    ]
    maint("s", write_jsonl(tmp_path / "src.jsonl", rows))
    cli("pool", "draw", "--suite", "s", "--size", "12", "--stratify", "")
    cli("pool", "activate", "s@v1")
    # retries are exposures too
    mock_server.behaviour = MockBehaviour(error_rate=0.3, faults=("500",), seed=1)
    path = project.config(
        f"suite: s\npool: heldout\nepochs: 2\nproviders:\n  a:\n    type: openai-compatible\n"
        f"    base_url: {mock_server.url}/v1\n  b:\n    type: anthropic\n    base_url: "
        f"{mock_server.url}\n"
        f"    api_key_env: MOCK_KEY\nmodels:\n  - {{provider: a, model: ma}}\n  - {{provider: b, "
        f"model: mb}}\n"
    )
    assert cli("run", path, "-q")[0] == 0
    vault = Vault.open(project.root / ".holdout")
    items = {
        json.loads(x)["id"]: json.loads(x)["prompt"]
        for x in vault.read_jsonl("s@v1").decode().splitlines()
    }
    ledger = (
        ledger_db(project.root)
        .execute("SELECT item_id, provider, COUNT(*) FROM exposures GROUP BY 1, 2")
        .fetchall()
    )
    server = mock_server.stats.by_prompt
    assert sum(n for *_, n in ledger) == mock_server.stats.requests > 48
    for item_id, provider, n in ledger:
        assert n == server[("ma" if provider == "a" else "mb", items[item_id])]
    code, stdout, err = cli("pool", "exposure", "s", "--items")
    assert (
        code == 0
        and "max sends of one item" in stdout + err
        and "Held-out question" not in stdout + err
    )


def test_rotation_triggers_exactly_when_the_policy_says(
    maint, project, cli, tmp_path, monkeypatch, mock_server, set_clock
):
    rows = [
        {"prompt": f"Rotating question {i}: " + " ".join(f"r{i}z{j}" for j in range(10))}
        for i in range(40)
    ]
    maint("s", write_jsonl(tmp_path / "src.jsonl", rows), extra="draw: {size: 5, stratify: []}\n")
    t0 = time.time()
    set_clock(t0)
    cli("pool", "draw", "--suite", "s")
    cli("pool", "activate", "s@v1")
    set_clock(t0 + 30 * DAY - 60)
    code, stdout, err = cli("pool", "rotate", "s", "--max-age", "30d")
    assert code == 0 and "no rotation needed" in stdout + err
    set_clock(t0 + 30 * DAY)
    code, stdout, err = cli("pool", "rotate", "s", "--max-age", "30d")
    assert (
        code == 0
        and "has been active 30.0 days" in stdout + err
        and "s@v2 is now active" in stdout + err
    )
    vault = Vault.open(project.root / ".holdout")
    assert (
        vault.manifest("s@v1")["status"] == "retired"
        and vault.manifest("s@v1")["retired_at"] == t0 + 30 * DAY
    )
    # exposure: spent after exactly max_exposure sends to one provider
    path = project.config(
        f"suite: s\npool: heldout\nproviders:\n  a:\n    type: openai-compatible\n"
        f"    base_url: {mock_server.url}/v1\nmodels:\n  - {{provider: a, model: m}}\n"
    )
    cli("run", path, "-q")
    assert "no rotation needed" in cli("pool", "rotate", "s", "--max-exposure", "2")[1]
    path.write_text(path.read_text().replace("suite: s", "run_id: second\nsuite: s"))
    cli("run", path, "-q")
    code, stdout, err = cli("pool", "rotate", "s", "--max-exposure", "2")
    assert (
        "5 item(s) of s@v2 were sent to provider 'a' at least 2 times" in stdout + err
        and "s@v3 is now active" in stdout + err
    )


def test_a_rotation_under_qualify_thresholds_leaves_the_new_version_a_draft(
    maint, project, cli, tmp_path
):
    """With `qualify:` thresholds, `pool rotate` draws the next version but cannot qualify it (no
    pilot has run on it): it stays a draft, the active version stays live, and the output says
    what to do."""
    rows = [
        {"prompt": f"Gated question {i}: " + " ".join(f"g{i}w{j}" for j in range(10))}
        for i in range(40)
    ]
    extra = "draw: {size: 5, stratify: []}\nqualify: {min_separability: 0.5}\n"
    maint("s", write_jsonl(tmp_path / "src.jsonl", rows), extra=extra)
    assert cli("pool", "draw", "--suite", "s")[0] == 0
    code, _, err = cli("pool", "activate", "s@v1")
    assert code == 2 and "never qualified" in err
    assert (
        cli("pool", "activate", "s@v1", "--override", "the first version: no anchors yet")[0] == 0
    )
    code, stdout, err = cli("pool", "rotate", "s", "--force")
    assert code == 0 and "s@v2 is a draft" in stdout and "pool qualify s@v2" in stdout, err
    vault = Vault.open(project.root / ".holdout")
    assert vault.active_pool("s") == "s@v1" and vault.manifest("s@v2")["status"] == "draft"


NOW = 1_780_000_000  # the newest prompt of the stream below (2026-05-28)


def _stamp(t: float, k: int):
    """The same instant in the forms a source may use: ISO 8601 with Z or an offset, seconds,
    milliseconds."""
    import datetime as dt

    forms = [
        dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat().replace("+00:00", "Z"),
        dt.datetime.fromtimestamp(t, dt.timezone(dt.timedelta(hours=9))).isoformat(),
        int(t),
        int(t * 1000),
    ]
    return forms[k % len(forms)]


def _stream(tmp_path):
    """120 dated prompts over 90 days: the older 80 mostly English, the last 30 days' 40 mostly
    Chinese and Arabic (the arena's users changed), and 3 rows without a usable date."""
    rows = []
    for i in range(120):
        recent = i >= 80
        t = NOW - (i - 80) * 0.7 * DAY if recent else NOW - 31 * DAY - i * 0.7 * DAY
        lang = (
            ("en" if i % 4 == 0 else ("zh" if i % 2 else "ar"))
            if recent
            else ("zh" if i % 8 == 0 else "en")
        )
        rows.append(
            {
                "prompt": f"{'recent' if recent else 'older'} prompt {i}: "
                + " ".join(f"w{i}x{j}" for j in range(10)),
                "lang": lang,
                "ts": _stamp(t, i),
            }
        )
    rows += [
        {
            "prompt": f"undated {i}: " + " ".join(f"u{i}y{j}" for j in range(10)),
            "lang": "en",
            "ts": None if i else "not a date",
        }
        for i in range(3)
    ]
    return write_jsonl(tmp_path / "stream.jsonl", rows)


def test_a_timestamp_column_reads_every_form_as_the_same_instant():
    import datetime as dt

    from harness.vault.source import parse_time

    assert {parse_time(_stamp(NOW, k)) for k in range(4)} == {float(NOW)}
    assert parse_time(str(NOW)) == NOW
    assert parse_time(dt.datetime.fromtimestamp(NOW, dt.timezone.utc).replace(tzinfo=None)) == NOW
    for bad in (None, "soon", True, float("nan"), [NOW]):
        assert parse_time(bad) is None


def test_a_window_draw_uses_only_the_window_and_drift_rotates(maint, project, cli, tmp_path):
    """Drawn from the whole stream, v1 is mostly English; the last 30 days are not. `pool show
    --drift` says so per stratify key, `pool rotate` rotates on it, and the new version is drawn
    from the window alone; a window draw's report says what it left out."""
    extra = (
        "  timestamp: ts\ndraw: {size: 20, stratify: [lang], max_marginal_tv: 0.1}\n"
        "rotation: {max_drift: 0.1, window_days: 30}\n"
    )
    maint("s", _stream(tmp_path), metadata={"lang": "lang"}, extra=extra)  # under source:
    assert cli("pool", "draw", "--suite", "s")[0] == 0
    assert cli("pool", "activate", "s@v1")[0] == 0
    assert any(p.startswith("older") for p in pool_texts(project, "s@v1"))
    code, out, err = cli("pool", "show", "s@v1", "--drift", "--json")
    assert code == 0, err
    drift = json.loads(out)["drift"]
    assert drift["window"]["in_window"] == 40 and drift["window"]["undated"] == 3
    assert drift["window"]["older"] == 80 and drift["by_key"]["lang"] > 0.3
    code, out, _ = cli("pool", "show", "s@v1", "--drift")
    assert code == 0 and "drift from the current window" in out and "lang 0." in out
    code, out, err = cli("pool", "rotate", "s")
    assert code == 0 and "drifted from the source's last 30 days: lang is 0." in out, err
    assert "s@v2 is now active" in out
    assert all(p.startswith("recent") for p in pool_texts(project, "s@v2"))
    assert (
        json.loads(cli("pool", "show", "s@v2", "--json")[1])["draw_report"]["window"]["in_window"]
        == 40
    )
    code, out, _ = cli("pool", "show", "s@v2", "--drift", "--json")
    assert json.loads(out)["drift"]["max"] <= 0.1
    code, out, _ = cli("pool", "rotate", "s")
    assert code == 0 and "no rotation needed" in out
    # a window of its own on the command line
    code, out, err = cli(
        "pool", "draw", "--suite", "s", "--window", "10d", "--size", "5", "--stratify", ""
    )
    assert code == 0 and "window: the source's last 10 days" in out, err
    assert "undated left out" in out
    assert all(p.startswith("recent") for p in pool_texts(project, "s@v3"))


def test_a_daily_drop_reads_the_new_file_and_the_window_not_the_year(maint, project, cli, tmp_path):
    """60 daily files; a 7-day window draw reads them all once. The next day's file is appended:
    the next draw reads it and the window's files only. An old file that is garbage now but has
    its size and time unchanged proves it: reading it would fail. A file that changed is read
    again."""
    import os

    drops = tmp_path / "drops"
    drops.mkdir()

    def day(k):
        rows = [
            {
                "prompt": f"day {k} prompt {j}: " + " ".join(f"d{k}p{j}w{i}" for i in range(8)),
                "ts": NOW - (60 - k) * DAY + j,
                "ts2": NOW,
            }
            for j in range(3)
        ]
        return write_jsonl(drops / f"day-{k:03d}.jsonl", rows)

    for k in range(60):
        day(k)
    extra = "  timestamp: ts\ndraw: {size: 6, stratify: [], window_days: 7}\n"
    maint("s", str(drops / "*.jsonl"), extra=extra)
    code, out, err = cli("pool", "draw", "--suite", "s")
    assert code == 0 and "rows in it" in out and "not read again" not in out, err
    old = drops / "day-010.jsonl"
    st = old.stat()
    old.write_bytes(b"{" * st.st_size)  # unreadable now, same size; and the same time:
    os.utime(old, ns=(st.st_atime_ns, st.st_mtime_ns))
    day(60)  # the next day's drop
    code, out, err = cli("pool", "draw", "--suite", "s")
    assert code == 0, err
    window = json.loads(cli("pool", "show", "s@v2", "--json")[1])["draw_report"]["window"]
    assert window["files_skipped"] == 53 and window["files_read"] == 8  # days 53-60
    # the window starts at day 53's last row: 1 of its rows and days 54-60's 21
    assert window["in_window"] == 22 and window["older"] == 61 * 3 - 22
    assert "53 file(s) known to end before it were not read again" in out
    os.utime(old)  # touched: read again, and found unreadable
    code, _, err = cli("pool", "draw", "--suite", "s")
    assert code == 2 and "day-010" in err and "unreadable" in err
    old.unlink()
    # another suite reads the same, unchanged files by another column (every row's `ts2` is in
    # the last day): the first suite's records of the files' times are not its own
    extra2 = "  timestamp: ts2\ndraw: {size: 6, stratify: [], window_days: 7}\n"
    maint("t", str(drops / "*.jsonl"), extra=extra2)
    code, _, err = cli("pool", "draw", "--suite", "t")
    assert code == 0, err
    window = json.loads(cli("pool", "show", "t@v1", "--json")[1])["draw_report"]["window"]
    assert window["in_window"] == 60 * 3 and window["files_skipped"] == 0


def test_window_errors_are_clear(maint, cli, tmp_path):
    maint("s", write_jsonl(tmp_path / "x.jsonl", [{"prompt": "a b c d e f"}]))
    code, _, err = cli("pool", "draw", "--suite", "s", "--size", "1", "--window", "30d")
    assert code == 2 and "source.timestamp" in err
    code, _, err = cli("pool", "draw", "--suite", "s", "--size", "1", "--window", "a month")
    assert code == 2 and "--window: expected a number of days such as 30d" in err
    undated = write_jsonl(tmp_path / "y.jsonl", [{"prompt": "a b c d e f", "ts": "soon"}])
    maint("t", undated, extra="  timestamp: ts\ndraw: {window_days: 7}\n")
    code, _, err = cli("pool", "draw", "--suite", "t", "--size", "1")
    assert code == 2 and "no source row has a usable timestamp" in err and "soon" not in err


def test_draw_errors_are_clear(maint, cli, tmp_path):
    maint("s", tmp_path / "missing.jsonl")
    code, stdout, err = cli("pool", "draw", "--suite", "s", "--size", "3")
    assert code == 2 and "cannot stratify" not in stdout + err and "missing.jsonl" in stdout + err
    maint("t", write_jsonl(tmp_path / "x.jsonl", [{"prompt": "a"}]))
    code, stdout, err = cli("pool", "draw", "--suite", "t", "--size", "3", "--stratify", "language")
    assert (
        code == 2
        and "cannot stratify on language: not mapped under source.metadata" in stdout + err
    )


def _marginal_tvs(items, candidates, keys):
    from harness.vault.draw import marginal_distances

    src = Counter(tuple(c.metadata[k] for k in keys) for c in candidates)
    pool = Counter(tuple(it["metadata"][k] for k in keys) for it in items)
    return marginal_distances(src, pool, keys)


def test_two_key_strata_keep_every_marginal_on_real_arena_data():
    """m-arena-hard: 16 languages x the question clusters, 500 drawn: each key's shares within 0.05
    of the source's; the seed decides the pool (was: 2 languages of 16, total variation 0.9)."""
    from harness.vault.source import load_source

    data = needs_shared("m-arena-hard")
    mapping = {
        "data": f"{data}/*.jsonl",
        "prompt": "turns[0].content",
        "metadata": {"language": "$file", "cluster": "cluster"},
    }
    candidates = load_source(mapping["data"], mapping, "test", cache_root=None)
    keys = ["language", "cluster"]
    assert len({c.metadata["cluster"] for c in candidates}) > 100  # many joint strata of few items
    runs = {
        seed: draw(
            candidates,
            500,
            keys,
            seed=seed,
            floor=0,
            earlier_texts=[],
            reference_texts=[],
            suite="marena",
        )
        for seed in (7, 7, 8)
    }
    items, report = runs[7]
    assert len(items) == 500 and all(d <= 0.05 for d in report["marginals"].values()), report[
        "marginals"
    ]
    assert _marginal_tvs(items, candidates, keys) == report["marginals"]
    assert len({it["metadata"]["language"] for it in items}) == 16
    again = draw(
        candidates, 500, keys, seed=7, floor=0, earlier_texts=[], reference_texts=[], suite="marena"
    )[0]
    assert [it["id"] for it in again] == [it["id"] for it in items]  # same seed, same pool
    assert {it["id"] for it in runs[8][0]} != {it["id"] for it in items}  # another seed, another


@pytest.mark.parametrize(
    "languages, clusters, per, size, representable",
    [(22, 250, 2, 500, True), (40, 30, 3, 200, True), (5, 1000, 1, 300, False)],
)
def test_many_small_joint_strata_keep_every_marginal(languages, clusters, per, size, representable):
    rng = __import__("random").Random(languages)
    candidates = [
        Candidate(
            f"s{lang}-{c}-{k}",
            f"prompt {lang} {c} {k} " + " ".join(str(rng.random()) for _ in range(6)),
            {"language": f"L{lang}", "cluster": f"c{c}"},
        )
        for lang in range(languages)
        for c in range(clusters)
        for k in range(per)
    ]
    items, report = draw(
        candidates,
        size,
        ["language", "cluster"],
        seed=1,
        floor=0,
        earlier_texts=[],
        reference_texts=[],
        suite="s",
    )
    assert len(items) == size and report["marginals"]["language"] <= 0.05
    # 300 items cannot show 1,000 clusters of 5 in their shares: the distance says so (and `pool
    # draw` refuses)
    assert (report["marginals"]["cluster"] <= 0.05) == representable, report["marginals"]


def test_a_pool_too_small_for_its_strata_is_refused_with_the_distances(
    maint, project, cli, tmp_path
):
    rows = [
        {"prompt": f"Question {i} " + " ".join(f"w{i}x{j}" for j in range(8)), "lang": f"L{i % 22}"}
        for i in range(220)
    ]
    maint("s", write_jsonl(tmp_path / "src.jsonl", rows), metadata={"language": "lang"})
    code, out, err = cli("pool", "draw", "--suite", "s", "--size", "5", "--stratify", "language")
    assert code == 2 and "cannot represent the source's strata" in err and "language is 0." in err
    assert "max_marginal_tv" in err and Vault.open(project.root / ".holdout").pools("s") == []
    code, out, err = cli("pool", "draw", "--suite", "s", "--size", "110", "--stratify", "language")
    assert code == 0 and "language 0.000" in out + err


def test_translations_declared_as_groups_never_share_a_pool_or_come_back(maint, project, cli):
    """m-arena-hard: the same question_id in 16 languages. With source.group, two draws share no
    question; without it, the draw says that cross-language copies are not detected."""
    data = needs_shared("m-arena-hard")
    maint("grouped", f"{data}/*.jsonl", "turns[0].content", {"language": "$file"}, extra="")
    suite_file = project.root / "suites" / "grouped" / "suite.yaml"
    suite_file.write_text(
        suite_file.read_text().replace("  prompt:", "  group: question_id\n  prompt:")
    )
    code, out, err = cli(
        "pool",
        "draw",
        "--suite",
        "grouped",
        "--size",
        "300",
        "--stratify",
        "language",
        "--seed",
        "1",
    )
    assert code == 0 and "not detected across languages" not in out + err, err
    code, out, err = cli(
        "pool",
        "draw",
        "--suite",
        "grouped",
        "--size",
        "300",
        "--stratify",
        "language",
        "--seed",
        "2",
    )
    assert code == 0, err
    vault = Vault.open(project.root / ".holdout")
    groups = [
        [json.loads(x)["group"] for x in vault.read_jsonl(f"grouped@v{v}").decode().splitlines()]
        for v in (1, 2)
    ]
    assert len(groups[0]) == len(set(groups[0])) == 300  # one language of each question per pool
    assert len(groups[1]) == len(set(groups[1])) == 200  # the 200 questions v1 did not take
    assert not set(groups[0]) & set(groups[1])  # a drawn question never comes back translated
    assert vault.manifest("grouped@v2")["draw_report"]["dropped"]["group_in_an_earlier_version"] > 0
    # opaque: not the public question id
    assert all(g.startswith("g") and len(g) == 16 for g in groups[0])
    maint("plain", f"{data}/*.jsonl", "turns[0].content", {"language": "$file"})
    code, out, err = cli(
        "pool", "draw", "--suite", "plain", "--size", "100", "--stratify", "language"
    )
    assert code == 0 and "not detected across languages" in out + err
