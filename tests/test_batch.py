"""Batch mode (harness/batches.py) against the mock server's Batch API (harness/mockbatch.py),
through the official SDK: the same answers and grades as online at the batch price, no batch
sent twice and nothing paid twice whatever moment a process is killed at, failed and unanswered
requests sent again, the provider's files deleted, and the budget, the retention rule and the
exposure ledger kept."""

import json
import re

import pytest
from conftest import QUESTIONS, holdout_subprocess, store_db
from hypothesis import given, settings
from hypothesis import strategies as st

PRICE = "price: {input_per_mtok: 1.0, output_per_mtok: 2.0}"


def _config(project, url, *, run_id, mode, extra="", batch="", models=("m1", "m2"), api="openai"):
    """A run config of the mini suite; `api`: the provider's (openai: an openai-compatible
    endpoint with OpenAI's Batch API; anthropic: Anthropic's Message Batches)."""
    lines = "".join(f"  - {{provider: p, model: {m}, {PRICE}}}\n" for m in models)
    settings = f"    batch: {{poll_s: 0.05, max_poll_s: 0.2{batch}}}\n" if mode == "batch" else ""
    endpoint = (
        f"    type: openai-compatible\n    base_url: {url}/v1\n"
        if api == "openai"
        else f"    type: anthropic\n    base_url: {url}\n    api_key_env: MOCK_KEY\n"
    )
    return project.config(
        f"run_id: {run_id}\nsuite: mini\n{extra}providers:\n  p:\n{endpoint}"
        f"    mode: {mode}\n{settings}models:\n{lines}",
        name=f"{run_id}.yaml",
    )


def _created(mock_server, api: str) -> list:
    """The batches the provider was asked to create, in order."""
    if api == "openai":
        return mock_server.batches.snapshot()["batches_created"]
    return mock_server.message_batches.snapshot()["batches_created"]


def _left_at_provider(mock_server, api: str) -> list:
    """What the provider still holds: OpenAI's files, Anthropic's batches (and their results)."""
    if api == "openai":
        return mock_server.batches.snapshot()["files"]
    return mock_server.message_batches.snapshot()["held"]


def _calls(project, run_id) -> dict:
    db = store_db(project.root)
    return {
        (m, i, e): (ok, out, cost)
        for m, i, e, ok, out, cost in db.execute(
            "SELECT model, item_id, epoch, ok, output, cost_usd FROM calls WHERE run_id=?",
            (run_id,),
        )
    }


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_a_batch_run_gives_the_online_answers_and_grades_at_half_the_cost(
    project, cli, mock_server, api
):
    project.suite(n=1000, graders=[{"rules": {"type": "contains"}}])
    mock_server.behaviour.responder = lambda api, body: body["messages"][-1]["content"][-9:]
    for run_id, mode in (("online", "online"), ("batch", "batch")):
        config = _config(project, mock_server.url, run_id=run_id, mode=mode, api=api)
        code, out, err = cli("run", config, "-q")
        assert code == 0, err
        if mode == "batch":  # a call answered in a batch has no latency of its own: "-", not 0
            assert re.search(r"│ m1 .*│ +- │ +- │", out), out
        assert cli("grade", run_id, "-q")[0] == 0
    online, batch = _calls(project, "online"), _calls(project, "batch")
    assert len(online) == len(batch) == 2000
    assert {k: v[:2] for k, v in online.items()} == {k: v[:2] for k, v in batch.items()}
    for key, (_, _, cost) in online.items():
        assert batch[key][2] == pytest.approx(cost / 2)
    db = store_db(project.root)
    grades = {
        run: sorted(
            db.execute(
                "SELECT model, item_id, epoch, score FROM grades WHERE run_id=?", (run,)
            ).fetchall()
        )
        for run in ("online", "batch")
    }
    assert grades["online"] == grades["batch"] and len(grades["batch"]) == 2000
    assert len(_created(mock_server, api)) == 1 and mock_server.stats.batch_requests == 2000
    assert _left_at_provider(mock_server, api) == []  # input and output deleted at the provider
    recorded = db.execute("SELECT status, deleted FROM batches WHERE run_id='batch'").fetchall()
    assert [s for s, _ in recorded] == ["done"]
    assert len(json.loads(recorded[0][1])) == (2 if api == "openai" else 1)


KILL_POINTS = [
    "batch.after_intent",
    "batch.after_create",
    "batch.after_create@2",
    "batch.before_collect",
    "batch.after_collect",
    "batch.after_collect@3",
    # inside the collection's transaction: nothing of it is kept
    "store.batch_collected.before_commit",
]


@pytest.mark.parametrize(
    "api, where",
    [("openai", w) for w in [*KILL_POINTS, "batch.after_upload"]]
    + [("anthropic", w) for w in KILL_POINTS],
)
def test_a_kill_at_any_step_sends_no_batch_twice_and_pays_nothing_twice(
    project, mock_server, api, where
):
    """120 calls in 4 batches of 30; the process is killed with SIGKILL at `where`, then run
    again: every call once, every batch created once, every request answered once, no file left
    at the provider."""
    project.suite(n=60)
    config = _config(
        project, mock_server.url, run_id="b", mode="batch", batch=", max_requests: 30", api=api
    )
    name, _, nth = where.partition("@")
    killed = holdout_subprocess(
        "run", config, "-q", cwd=project.root, failpoints=f"{name}=kill@{nth or 1}"
    )
    killed.communicate(timeout=120)
    assert killed.returncode == -9, where
    again = holdout_subprocess("run", config, "-q", cwd=project.root)
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    calls = _calls(project, "b")
    assert len(calls) == 120 and all(ok for ok, _, _ in calls.values())
    assert len(_created(mock_server, api)) == 4
    assert mock_server.stats.batch_requests == 120  # nothing answered (billed) twice
    assert _left_at_provider(mock_server, api) == []


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_failed_requests_go_in_a_new_batch_and_unanswered_ones_too(project, cli, mock_server, api):
    project.suite(n=40)
    mock_server.behaviour.batch_fail_every = 4  # a 500 for every 4th request of a batch
    config = _config(project, mock_server.url, run_id="f", mode="batch", models=("m1",), api=api)
    code, out, err = cli("run", config)
    assert code == 0, err
    assert "batches: 3 submitted, 3 collected" in err  # 40, then 10, then 2 (every 4th of 10)
    assert all(ok for ok, _, _ in _calls(project, "f").values())
    mock_server.behaviour.batch_fail_every = 0
    mock_server.behaviour.batch_expire = True  # each batch answers its first half, then expires
    config = _config(
        project,
        mock_server.url,
        run_id="x",
        mode="batch",
        models=("m1",),
        batch=", max_rounds: 2",
        api=api,
    )
    code, out, err = cli("run", config)
    assert code == 3  # 20, then 10 of the 20 left: 10 not answered after two batches
    assert len(_calls(project, "x")) == 30 and "10 calls are not done" in err
    assert _left_at_provider(mock_server, api) == []


def test_no_wait_returns_and_a_later_run_collects(project, cli, mock_server):
    project.suite(n=10)
    mock_server.behaviour.batch_delay_s = 1.0
    config = _config(
        project, mock_server.url, run_id="w", mode="batch", extra="labs:\n  acme: [m1, m2]\n"
    )
    code, _, err = cli("run", config, "--no-wait")
    assert code == 3 and "1 in flight at the provider" in err
    code, out, _ = cli("status")
    assert code == 0 and "1 batch in flight" in out
    # a report and a card made meanwhile say what they leave out
    code, out, _ = cli("report", "w")
    assert code == 0 and "m1: 10 call(s) are in batches at the provider" in out
    report = json.loads((project.root / "results" / "w" / "report.json").read_text())
    assert report["awaiting_batches"] == {"m1": 10, "m2": 10}
    assert cli("vault", "init")[0] == 0 and cli("scorecard", "w", "--lab", "acme")[0] == 0
    cards = project.root / "results" / "w" / "scorecards"
    assert json.loads((cards / "acme.json").read_text())["awaiting_batches"] == {"m1": 10, "m2": 10}
    assert "Not final" in (cards / "acme.html").read_text()
    code, out, err = cli("run", config)  # collects
    assert code == 0, err
    assert len(_calls(project, "w")) == 20
    code, out, _ = cli("report", "w")
    assert "in batches at the provider" not in out
    assert len(mock_server.batches.snapshot()["batches_created"]) == 1
    code, out, _ = cli("status")
    assert "in flight" not in out


def test_a_batch_is_sent_only_if_its_worst_case_fits_the_budget(project, cli, mock_server):
    """Each call's worst case at the batch price is about (40 bytes + 16) x $1/M + 4096 x $2/M
    / 2 ≈ $0.0041: a $0.05 budget admits 12 of 20."""
    project.suite(n=10)
    config = _config(project, mock_server.url, run_id="u", mode="batch", extra="budget_usd: 0.05\n")
    code, _, err = cli("run", config)
    assert code == 3 and "Budget reached" in err
    calls = _calls(project, "u")
    assert 0 < len(calls) < 20 and sum(c for _, _, c in calls.values()) <= 0.05
    assert f"{20 - len(calls)} calls were not started" in err
    assert mock_server.stats.batch_requests == len(calls)


def test_batch_is_its_own_retention_class_and_every_request_is_in_the_ledger(
    heldout, project, cli, mock_server
):
    pool = project.root / "zero.jsonl"
    pool.write_text(
        "".join(
            json.dumps({"id": f"z{i}", "prompt": q}, ensure_ascii=False) + "\n"
            for i, q in enumerate(QUESTIONS)
        )
    )
    code, _, err = cli(
        "pool", "import", pool, "--suite", "s", "--heldout", "--max-retention", "zero"
    )
    assert code == 0, err
    pool_id = "s@v2"
    code, _, err = cli("pool", "activate", pool_id, "--override", "retention test")
    assert code == 0, err
    zero = "    retention: zero\n"  # the provider keeps online prompts for no time ...
    config = heldout("run_id: z\n", name="z.yaml")
    text = config.read_text().replace(
        "    base_url:", f"{zero}    mode: batch\n    batch: {{poll_s: 0.05}}\n    base_url:"
    )
    config.write_text(text)
    code, _, err = cli("run", config)
    assert code == 2 and "batch.retention" in err and "Nothing was sent" in err
    assert mock_server.stats.requests == 0
    config.write_text(
        text.replace("batch: {poll_s: 0.05}", "batch: {poll_s: 0.05, retention: zero}")
    )
    code, _, err = cli("run", config)
    assert code == 0, err
    code, out, _ = cli("pool", "exposure", "s", "--pool", pool_id, "--json")
    assert code == 0
    sent = json.loads(out)["exposure"]
    assert {r["item_id"] for r in sent} == {f"z{i}" for i in range(len(QUESTIONS))}
    assert sum(r["sent"] for r in sent) == len(QUESTIONS) == mock_server.stats.batch_requests


def test_a_batch_request_the_provider_refuses_is_final_and_its_message_is_not_kept(
    project, cli, mock_server
):
    """The provider's code names the kind (as online); its message, which quotes the prompt, is
    not stored; a final answer is not sent again in another batch."""
    project.suite(n=5)
    mock_server.behaviour.fault_models = {"long": "context_length", "shy": "refusal"}
    config = _config(project, mock_server.url, run_id="k", mode="batch", models=("long", "shy"))
    code, _, err = cli("run", config)
    assert code == 0, err
    db = store_db(project.root)
    rows = db.execute("SELECT model, ok, error_kind, error FROM calls WHERE run_id='k'").fetchall()
    assert {(m, ok, kind) for m, ok, kind, _ in rows} == {
        ("long", 0, "context_length"),
        ("shy", 0, "content_filter"),
    }
    assert not any("Question" in (e or "") for *_, e in rows)
    assert len(mock_server.batches.snapshot()["batches_created"]) == 1


def test_judge_calls_go_by_batch_for_a_judge_in_batch_mode(project, cli, mock_server):
    """The model is called online; the rubric judge's provider is in batch mode: its calls go in
    a batch, at the batch price, and the grades are the ones an online judge gives."""
    project.suite(n=6)

    def respond(api, body):
        if body["model"] == "judge":
            return json.dumps({"scores": {"quality": 4}, "confidence": 0.9})
        return "an answer"

    mock_server.behaviour.responder = respond
    grader = (
        "graders:\n  - rubric:\n      judges: [{provider: %s, model: judge, "
        + PRICE
        + "}]\n      criteria: [{name: quality, scale: [1, 5]}]\n"
    )
    for run_id, judge_provider in (("jo", "p"), ("jb", "j")):
        config = project.config(
            f"run_id: {run_id}\nsuite: mini\nproviders:\n  p:\n    type: openai-compatible\n"
            f"    base_url: {mock_server.url}/v1\n  j:\n    type: openai-compatible\n"
            f"    base_url: {mock_server.url}/v1\n    mode: batch\n    batch: {{poll_s: 0.05}}\n"
            f"models:\n  - {{provider: p, model: m1, {PRICE}}}\n" + grader % judge_provider,
            name=f"{run_id}.yaml",
        )
        assert cli("run", config, "-q")[0] == 0
        code, _, err = cli("grade", run_id, "-q")
        assert code == 0, err
    assert len(mock_server.batches.snapshot()["batches_created"]) == 1
    assert mock_server.stats.batch_requests == 6
    online, batch = (_calls(project, f"{r}/grade/rubric") for r in ("jo", "jb"))
    assert len(online) == len(batch) == 6
    for key, (ok, out, cost) in online.items():
        assert batch[key][:2] == (ok, out) and batch[key][2] == pytest.approx(cost / 2)
    db = store_db(project.root)
    scores = {
        r: db.execute(
            "SELECT item_id, score FROM grades WHERE run_id=? ORDER BY 1", (r,)
        ).fetchall()
        for r in ("jo", "jb")
    }
    assert scores["jo"] == scores["jb"] and len(scores["jb"]) == 6


def test_failed_requests_can_be_retried_online(project, cli, mock_server):
    project.suite(n=12)
    mock_server.behaviour.batch_fail_every = 3
    config = _config(
        project, mock_server.url, run_id="o", mode="batch", models=("m1",), batch=", failed: online"
    )
    code, _, err = cli("run", config)
    assert code == 0, err
    assert len(_created(mock_server, "openai")) == 1  # no second batch: the 4 failed went online
    assert mock_server.stats.batch_requests == 12 and mock_server.stats.requests == 16
    assert all(ok for ok, _, _ in _calls(project, "o").values())


@given(st.text(min_size=1, max_size=300), st.sampled_from(QUESTIONS))
@settings(max_examples=200, deadline=None)
def test_a_request_line_is_never_larger_than_its_size_bound(text, question):
    """The bound that keeps a batch under the provider's size limit holds for any script: Chinese,
    Arabic, Hebrew, emoji, escapes, control characters."""
    from harness.batches import _line_bytes
    from harness.config import ModelConfig
    from harness.jobs import Job
    from harness.providerconfig import ProviderConfig
    from harness.providers import Request
    from harness.providers._anthropic import request_body as anthropic_body
    from harness.providers._openai import request_body as openai_body

    messages = [("system", text), ("user", question + text)]
    model = ModelConfig(name="m", provider=ProviderConfig(name="p", type="openai"), model="gpt-4o")
    job = Job("i", "i", model, 0, messages)
    request = Request("i", "gpt-4o", messages, model.request_params(), 60)
    cid = "0" * 32
    for line in (
        {
            "custom_id": cid,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": openai_body(request, "openai"),
        },
        {"custom_id": cid, "params": anthropic_body(request)},
    ):
        assert len((json.dumps(line) + "\n").encode()) <= _line_bytes(job)
