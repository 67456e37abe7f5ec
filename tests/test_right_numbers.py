"""Right numbers or a loud failure (#18): each case an evaluator met in ordinary use, end to end
from the CLI against the mock server over 127.0.0.1 and a real SQLite store."""

import json
import os
import re
import shutil
import subprocess
import sys

from conftest import ROOT, free_port

from harness.config import DEFAULT_MAX_TOKENS
from harness.database import store_location

GRADER = "graders:\n  - rules: {type: exact}\n"


def config(url, *, models=("m",), extra="", run_id="run", provider_extra=""):
    lines = "".join(f"  - {{provider: mock, model: {m}}}\n" for m in models)
    return (
        f"run_id: {run_id}\nsuite: mini\nproviders:\n  mock:\n    type: openai-compatible\n    "
        f"base_url: {url}/v1\n"
        f"    api_key_env: MOCK_KEY\n{provider_extra}models:\n{lines}{extra}"
    )


def answers(right: int):
    """A responder that answers the first `right` questions of the mini suite correctly (2 * i), the
    rest wrongly."""

    def respond(api, body):
        m = re.search(r"Question number (\d+)", body["messages"][-1]["content"])
        if not m:
            return None
        i = int(m.group(1))
        return str(2 * i) if i < right else "no idea"

    return respond


def mean(project, grader="rules", model="m"):
    report = json.loads((project.root / "results" / "run" / "report.json").read_text())
    return report["graders"][grader]["models"][model]["mean"]


# 1. grades survive `runs delete`
# -------------------------------------------------------------------------


def test_a_deleted_run_takes_its_grades_and_judge_calls_with_it(project, cli, mock_server):
    project.suite(n=10)
    path = project.config(config(mock_server.url, extra=GRADER))
    mock_server.behaviour.responder = answers(8)
    assert cli("run", path, "-q")[0] == 0 and cli("grade", "run", "-q")[0] == 0
    cli("report", "run")
    assert mean(project) == 0.8
    code, out, _ = cli("runs", "delete", "run")
    assert code == 0 and "10 calls, 10 grades" in out
    mock_server.behaviour.responder = answers(2)  # another model under the same name
    assert cli("run", path, "-q")[0] == 0 and cli("grade", "run", "-q")[0] == 0
    cli("report", "run")
    assert mean(project) == 0.2  # not the deleted model's 0.8


def test_an_ok_call_is_never_overwritten_so_its_grade_always_describes_it(
    project, cli, mock_server
):
    from harness.rows import CallRow
    from harness.store import Store

    project.suite(n=2)
    path = project.config(config(mock_server.url, extra=GRADER))
    mock_server.behaviour.responder = answers(2)
    cli("run", path, "-q")
    store = Store(store_location(project.root / ".holdout"))
    store.add(
        CallRow(
            "run", "m", "q0", 0, True, "something else", "stop", 1, 1, 0.1, 0.0, 1, None, None, 0.0
        )
    )
    store.close()
    assert [r.output for r in Store(store_location(project.root / ".holdout")).calls("run")] == [
        "0",
        "2",
    ]


# 2. a judge outage, then recovery
# -----------------------------------------------------------------------

JUDGED = """graders:
  - rubric:
      judge: {provider: judges, model: judge-1}
      max_attempts: 2
      criteria: [{name: correctness, scale: [1, 5]}]
"""


def test_failed_judgments_are_retried_by_the_next_grade_without_calling_models_again(
    project, cli, mock_server
):
    project.suite(n=4)
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: connection refused
    judges = (
        "  judges:\n    type: openai-compatible\n    base_url: {url}\n    api_key_env: "
        "MOCK_KEY\n    max_attempts: 1\n"
    )
    text = config(mock_server.url, extra=JUDGED).replace(
        "models:\n", judges.format(url=dead) + "models:\n", 1
    )
    path = project.config(text)

    def respond(api, body):
        if body["model"] == "judge-1":
            return json.dumps({"scores": {"correctness": 4}})
        return "an answer"

    mock_server.behaviour.responder = respond
    assert cli("run", path, "-q")[0] == 0
    model_calls = mock_server.stats.by_model["m"]
    code, out, err = cli("grade", "run", "-q")
    assert code == 3 and "4 failed" in out  # 3: it ran, and judgments failed
    with project.db() as db:
        kinds = {
            k for (k,) in db.execute("SELECT error_kind FROM calls WHERE run_id='run/grade/rubric'")
        }
        statuses = {s for (s,) in db.execute("SELECT status FROM grades WHERE run_id='run'")}
    # refused is a connection error, not a timeout
    assert kinds == {"connection"} and statuses == {"error"}
    path.write_text(path.read_text().replace(dead, mock_server.url + "/v1"))  # the judge is back
    code, out, err = cli("grade", "run", "-q")
    assert code == 0, out + err
    with project.db() as db:
        grades = db.execute("SELECT status, score FROM grades WHERE run_id='run'").fetchall()
    assert grades == [("ok", 0.75)] * 4
    assert mock_server.stats.by_model["m"] == model_calls  # no model call repeated
    assert mock_server.stats.by_model["judge-1"] == 4


def test_changed_grader_settings_are_refused_then_regraded_on_purpose(project, cli, mock_server):
    project.suite(n=3)
    path = project.config(config(mock_server.url, extra=GRADER))
    mock_server.behaviour.responder = answers(3)
    cli("run", path, "-q")
    assert cli("grade", "run", "-q")[0] == 0
    path.write_text(path.read_text().replace("type: exact", "type: contains"))
    code, _, err = cli("grade", "run", "-q")
    assert code == 2 and "grader 'rules': its settings" in err and "--regrade rules" in err
    code, out, _ = cli("grade", "run", "-q", "--regrade", "rules")
    assert code == 0 and "rules: 3 graded now" in out


# 3. rotation between two runs of one config
# ------------------------------------------------------------


def test_a_rotation_between_runs_is_refused_never_mixed_and_the_old_run_still_grades(
    project, cli, mock_server, monkeypatch, tmp_path
):
    monkeypatch.delenv("HOLDOUT_VAULT_KEY", raising=False)
    project.suite(name="mini", n=1)
    cli("vault", "init")
    for version in (1, 2):
        pool = tmp_path / f"v{version}.jsonl"
        pool.write_text(
            "".join(
                json.dumps(
                    {
                        "id": f"v{version}i{i}",
                        "prompt": f"Question number {i}: v{version}",
                        "reference": str(2 * i),
                    }
                )
                + "\n"
                for i in range(4)
            )
        )
        cli("pool", "import", pool, "--suite", "mini", "--heldout")
    cli("pool", "activate", "mini@v1")
    path = project.config(
        config(mock_server.url, extra=GRADER).replace(
            "suite: mini\n", "suite: mini\npool: heldout\n"
        )
    )
    mock_server.behaviour.responder = answers(4)
    assert cli("run", path, "-q")[0] == 0
    cli("pool", "activate", "mini@v2")  # a rotation: v1 retired
    before = mock_server.stats.requests
    code, _, err = cli("run", path, "-q")
    assert code == 2 and "pool was 'mini@v1', now 'mini@v2'" in err and "pin `pool: mini@v1`" in err
    assert mock_server.stats.requests == before  # nothing sent, nothing mixed
    code, out, err = cli("grade", "run", "-q")
    assert code == 0 and "rules: 4 graded now" in out, err
    code, out, _ = cli("status", "--json")
    assert [(r["pool"], r["done"], r["total"]) for r in json.loads(out)] == [("mini@v1", 4, 4)]


# 4. an edited item
# ---------------------------------------------------------------------------------------


def test_an_edited_item_is_named_and_recalled_only_on_request(project, cli, mock_server):
    suite = project.suite(n=5)
    path = project.config(config(mock_server.url, extra=GRADER + "epochs: 2\n"))
    mock_server.behaviour.responder = answers(5)
    cli("run", path, "-q")
    cli("grade", "run", "-q")
    lines = (suite / "items.jsonl").read_text().splitlines()
    item = json.loads(lines[3])
    item["prompt"] = item["prompt"] + "\nPlease show your working."  # multi-line edit of q3
    lines[3] = json.dumps(item)
    (suite / "items.jsonl").write_text("\n".join(lines) + "\n")
    before = mock_server.stats.requests
    code, _, err = cli("run", path, "-q")
    assert (
        code == 2
        and "1 item(s) edited since they were called: q3" in err
        and "--recall-changed" in err
    )
    assert mock_server.stats.requests == before
    code, out, err = cli("run", path, "-q", "--recall-changed")
    assert code == 0 and "2 calls, 2 grades" in err
    assert mock_server.stats.requests == before + 2  # q3, both epochs; nothing else
    code, out, _ = cli("grade", "run", "-q")
    assert "rules: 2 graded now" in out
    assert cli("run", path, "-q")[0] == 0 and mock_server.stats.requests == before + 2


def test_a_limit_trial_is_the_start_of_the_full_run(project, cli, mock_server):
    project.suite(n=6)
    path = project.config(config(mock_server.url, extra="limit: 2\n"))
    assert cli("run", path, "-q")[0] == 0 and mock_server.stats.requests == 2
    path.write_text(path.read_text().replace("limit: 2\n", ""))
    code, _, err = cli("run", path, "-q")
    assert code == 0 and mock_server.stats.requests == 6 and "resuming, 2 already done" in err


# 5. the budget is a ceiling
# -------------------------------------------------------------------------------

PRICED = "    price: {input_per_mtok: 1.0, output_per_mtok: 10.0}\n"


def priced_config(url, budget):
    return (
        f"suite: mini\nbudget_usd: {budget}\nproviders:\n  mock:\n    type: openai-compatible\n  "
        f"  base_url: {url}/v1\n"
        "    api_key_env: MOCK_KEY\n    concurrency: 16\nmodels:\n  - provider: mock\n    "
        f"model: m\n{PRICED}"
    )


def test_a_budget_admits_every_call_it_reserved_even_while_they_wait_for_the_pace(
    project, cli, mock_server
):
    """Each call costs exactly its worst case (output priced only, every answer as long as its cap),
    so $0.50 admits floor(0.50 / 0.04096) = 12 calls. Paced at 10 a second, most of the 12 wait for
    their slot when the 13th is refused: they were within the budget and are sent all the same (a
    budget stop starts nothing new; it does not drop what it admitted)."""
    project.suite(n=40)
    mock_server.behaviour.output_tokens = 100_000
    path = project.config(
        f"suite: mini\nbudget_usd: 0.50\nproviders:\n  mock:\n    type: openai-compatible\n"
        f"    base_url: {mock_server.url}/v1\n    api_key_env: MOCK_KEY\n    concurrency: 16\n"
        "    rpm: 600\nmodels:\n  - provider: mock\n    model: m\n"
        "    price: {input_per_mtok: 0.0, output_per_mtok: 10.0}\n"
    )
    code, _, err = cli("run", path, "-q")
    assert code == 3 and "Budget reached" in err
    worst = DEFAULT_MAX_TOKENS * 10.0 / 1e6
    assert mock_server.stats.ok == int(0.50 // worst) == 12
    assert abs(project.summary("run")["models"]["m"]["cost_usd"] - 12 * worst) < 1e-9


def test_budget_holds_against_a_server_reporting_long_outputs(project, cli, mock_server):
    project.suite(n=200)
    mock_server.behaviour.output_tokens = 100_000  # every answer as long as the model is allowed
    mock_server.behaviour.record_bodies = True
    path = project.config(priced_config(mock_server.url, 0.50))
    code, _, err = cli("run", path, "-q")
    assert code == 3 and "Budget reached" in err
    spent = project.summary("run")["models"]["m"]["cost_usd"]
    assert 0 < spent <= 0.50  # the cap is sent, so the worst case is a real bound
    assert {json.loads(b)["max_tokens"] for b in mock_server.stats.bodies} == {DEFAULT_MAX_TOKENS}


def test_a_server_billing_past_the_cap_overshoots_by_at_most_the_calls_in_flight(
    project, cli, mock_server
):
    project.suite(n=200)
    mock_server.behaviour.output_tokens = 100_000
    # a broken gateway: bills 100k tokens whatever it was sent
    mock_server.behaviour.honour_max_tokens = False
    mock_server.behaviour.latency_s = 0.02
    path = project.config(priced_config(mock_server.url, 0.50))
    code, _, err = cli("run", path, "-q")
    assert code == 3
    spent = project.summary("run")["models"]["m"]["cost_usd"]
    per_call = 100_000 * 10.0 / 1e6 + 1e-4  # $1 a call, plus a little input
    assert spent <= 0.50 + 16 * per_call  # budget + in flight (concurrency 16) x what each billed
    assert mock_server.stats.requests <= 16


def test_a_judge_of_unknown_price_is_refused_under_a_budget(project, cli, mock_server):
    project.suite(n=2)
    text = priced_config(mock_server.url, 1.0) + JUDGED.replace(
        "provider: judges", "provider: mock"
    )
    path = project.config(text)
    assert cli("run", path, "-q")[0] == 0
    before = mock_server.stats.requests
    code, _, err = cli("grade", "run", "-q")
    assert (
        code == 2
        and "graders[0].rubric.judges[0]: no price is known for judge model 'judge-1'" in err
    )
    assert mock_server.stats.requests == before


def test_judge_spend_is_shown_per_grader(project, cli, mock_server):
    project.suite(n=2)
    text = config(
        mock_server.url,
        extra=JUDGED.replace(
            "provider: judges, model: judge-1",
            "provider: mock, model: judge-1, price: {input_per_mtok: 1000, output_per_mtok: 1000}",
        ),
    )
    mock_server.behaviour.responder = lambda api, body: (
        json.dumps({"scores": {"correctness": 5}}) if body["model"] == "judge-1" else "an answer"
    )
    path = project.config(text)
    cli("run", path, "-q")
    assert cli("grade", "run", "-q")[0] == 0
    status = json.loads(cli("status", "--json")[1])[0]
    assert status["judge_cost_usd"]["rubric"] > 0
    report = json.loads(cli("report", "run", "--json")[1])
    assert report["graders"]["rubric"]["judge_cost_usd"] == status["judge_cost_usd"]["rubric"]


# 6. safeguards that do not cry wolf
# ----------------------------------------------------------------------


def test_a_deterministic_model_over_two_epochs_is_not_flagged_as_repeating(
    project, cli, mock_server
):
    project.suite(n=12)
    path = project.config(config(mock_server.url, extra="epochs: 2\n"))
    mock_server.behaviour.responder = lambda api, body: (
        "A careful answer to: "
        + body["messages"][-1]["content"]
        + " The result follows from adding the two numbers."
    )
    cli("run", path, "-q")
    results = json.loads(cli("check", "run", "--json")[1])
    assert (
        results["m"]["repeated_outputs"]["count"] == 0
        and not results["m"]["repeated_outputs"]["flagged"]
    )
    mock_server.behaviour.responder = lambda api, body: (
        "I will not answer this question, whatever it is."
    )
    cli("runs", "delete", "run")
    cli("run", path, "-q")
    # still catches the real thing
    assert json.loads(cli("check", "run", "--json")[1])["m"]["repeated_outputs"]["flagged"]


def test_the_demo_scorecards_carry_no_flags(tmp_path):
    for part in ("configs", "suites"):
        shutil.copytree(ROOT / part, tmp_path / part)
    holdout = [sys.executable, "-m", "harness.cli"]
    for args in (
        ["run", "configs/demo.yaml", "-q"],
        ["grade", "demo", "-q"],
        ["vault", "init"],
        ["scorecard", "demo", "--all"],
    ):
        proc = subprocess.run(
            holdout + args, cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stderr
    for lab in ("acme", "globex"):
        card = json.loads(
            (tmp_path / "results" / "demo" / "scorecards" / f"{lab}.json").read_text()
        )
        flagged = {
            m: [d for d, r in e["safeguards"].items() if r["flagged"]]
            for m, e in card["models"].items()
        }
        assert flagged == {m: [] for m in card["models"]}, flagged
        assert "⚑" not in (tmp_path / "results" / "demo" / "scorecards" / f"{lab}.html").read_text()


# 7. exit codes and output for scripts
# ---------------------------------------------------------------------


def test_failed_calls_exit_3_and_results_pipe_through_grep(project, cli, mock_server):
    project.suite(n=16)
    mock_server.behaviour.error_rate = 0.6
    mock_server.behaviour.faults = ("400",)  # not retryable: these calls fail for good
    path = project.config(config(mock_server.url, models=("m1", "m2", "m3", "m4")))
    code, out, err = cli("run", path, "-q")
    with project.db() as db:
        failed = db.execute("SELECT COUNT(*) FROM calls WHERE ok=0").fetchone()[0]
    assert failed > 0 and code == 3 and "calls are not done" in err
    proc = subprocess.run(
        f"{sys.executable} -m harness.cli status | grep -c ' mini '",
        shell=True,
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "1", proc.stderr


def test_every_reporting_command_speaks_json(project, cli, mock_server):
    project.suite(n=3)
    path = project.config(config(mock_server.url, extra=GRADER))
    mock_server.behaviour.responder = answers(3)
    cli("run", path, "-q")
    cli("grade", "run", "-q")
    for args in (("status",), ("report", "run"), ("check", "run")):
        code, out, _ = cli(*args, "--json")
        assert code == 0 and isinstance(json.loads(out), (dict, list)), args


# 8. scorecards: headline by config order, every grader shown
# ---------------------------------------------


def test_headline_follows_the_config_and_models_are_sorted_by_it(project, cli, mock_server):
    project.suite(n=6)
    graders = (
        "graders:\n  - name: zeta\n    rules: {type: contains}\n  - name: alpha\n    "
        "rules: {type: exact}\n"
    )
    path = project.config(config(mock_server.url, models=("weak", "strong"), extra=graders))

    def respond(api, body):
        i = int(re.search(r"number (\d+)", body["messages"][-1]["content"]).group(1))
        return (
            f"It is {2 * i}" if body["model"] == "strong" else ("no" if i % 2 else f"It is {2 * i}")
        )

    mock_server.behaviour.responder = respond
    cli("run", path, "-q")
    cli("grade", "run", "-q")
    report = json.loads(cli("report", "run", "--json")[1])
    assert report["headline"] == "zeta" and list(report["graders"]) == ["zeta", "alpha"]
    out = cli("report", "run")[1]
    assert out.index("strong") < out.index("weak")  # best headline score first
    path.write_text(path.read_text() + "headline: alpha\n")
    assert json.loads(cli("report", "run", "--json")[1])["headline"] == "alpha"
    path.write_text(path.read_text().replace("headline: alpha", "headline: nobody"))
    code, _, err = cli("report", "run")
    assert (
        code == 2
        and "headline: 'nobody' is not a grader of this config (graders: zeta, alpha)" in err
    )


# 9. one workspace resolution
# -----------------------------------------------------------------------------


def test_every_command_follows_the_config_workspace_and_results_dir(project, cli, mock_server):
    project.suite(n=2)
    path = project.config(
        config(mock_server.url, extra=GRADER + "workspace: ../ws\nresults_dir: ../out\n")
    )
    mock_server.behaviour.responder = answers(2)
    assert cli("run", path, "-q")[0] == 0
    shared = os.environ.get("HOLDOUT_STORE")  # a shared store: no file in the workspace
    assert (shared or (project.root / "ws" / "store.sqlite").exists()) and not (
        project.root / ".holdout"
    ).exists()
    assert cli("grade", "run", "--config", path, "-q")[0] == 0
    assert cli("report", "run", "--config", path)[0] == 0
    assert (project.root / "out" / "run" / "report.json").exists()
    # the run's recorded config decides
    assert cli("report", "run", "--workspace", project.root / "ws")[0] == 0
    code, _, err = cli("grade", "run", "--config", project.root / "nope.yaml")
    assert code == 2 and "nope.yaml: file not found" in err and "which is gone" not in err
    assert not (project.root / ".holdout").exists()


def test_status_in_an_empty_directory_creates_nothing(tmp_path, cli, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("status")
    assert code == 0 and "no runs" in err and list(tmp_path.iterdir()) == []


# 10. YAML 1.1 surprises
# -----------------------------------------------------------------------------------


def test_yaml_on_yes_no_are_words_not_booleans(project, cli, mock_server):
    project.suite(n=2)
    path = project.config(
        config(
            mock_server.url,
            extra="graders:\n  - rules:\n      type: regex\n"
            "      pattern: 'It is (\\d+)'\n      on: reference\n",
        )
    )
    mock_server.behaviour.responder = lambda api, body: "It is 2"
    assert cli("run", path, "-q")[0] == 0
    code, out, err = cli("grade", "run", "-q")
    assert code == 0 and "rules: 2 graded now" in out, err
    path.write_text(path.read_text().replace("on: reference", "on: yes"))
    code, _, err = cli("grade", "run", "-q", "--regrade", "rules")
    assert (
        code == 2
        and "graders[0].rules.on: expected one of: reference, pattern; found the string 'yes'"
        in err
    )


def test_infinite_budget_is_refused(project, cli, mock_server):
    project.suite(n=1)
    path = project.config(config(mock_server.url, extra="budget_usd: .inf\n"))
    code, _, err = cli("run", path, "-q")
    assert code == 2 and "budget_usd: expected a finite number, found inf" in err


# 11. Python rule graders
# ---------------------------------------------------------------------------------


def test_python_rules_load_from_the_suite_and_a_raise_is_an_error_grade(project, cli, mock_server):
    suite = project.suite(n=4, graders=[{"rules": {"type": "python", "function": "checks:score"}}])
    (suite / "checks.py").write_text(
        "def score(output, item):\n"
        "    if item.id == 'q1':\n"
        "        raise ValueError('cannot parse ' + output)\n"  # an exception quoting the output
        "    if item.id == 'q2':\n"
        "        return 7\n"
        "    return 1.0\n"
    )
    path = project.config(config(mock_server.url))
    mock_server.behaviour.responder = lambda api, body: "SECRET-OUTPUT-TEXT"
    cli("run", path, "-q")
    code, out, err = cli("grade", "run", "-q")  # no PYTHONPATH: the module sits next to suite.yaml
    assert code == 3 and "2 failed" in out and "SECRET-OUTPUT-TEXT" not in out + err
    with project.db() as db:
        rows = dict(
            (i, (s, sc, json.loads(d)))
            for i, s, sc, d in db.execute("SELECT item_id, status, score, detail FROM grades")
        )
    assert rows["q0"][:2] == ("ok", 1.0) and rows["q3"][:2] == ("ok", 1.0)
    assert rows["q1"] == ("error", None, {"reason": "the rule function raised ValueError"})
    assert rows["q2"] == (
        "error",
        None,
        {"reason": "the rule function returned 7; expected a score in [0, 1] or None"},
    )
    out = cli("report", "run")[1]
    assert "grade errors" in out


# 12. smaller
# ----------------------------------------------------------------------------------------------


def test_config_cross_check_errors_come_together(project, cli):
    project.suite(n=1)
    path = project.config(
        "suite: mini\nbudget_usd: 1\nmodels:\n  - {provider: nowhere, model: a}\n"
        "  - {provider: openai, model: unknown-model}\nlabs:\n  acme: [ghost]\n"
    )
    code, _, err = cli("run", path, "-q")
    assert code == 2
    assert "models[0].provider: unknown provider 'nowhere'" in err
    assert "no price is known for 'unknown-model'" in err and "lab 'acme' owns 'ghost'" in err


def test_item_metadata_must_be_scalars(project, cli, mock_server):
    project.suite(lines=[json.dumps({"id": "a", "prompt": "p", "metadata": {"tags": ["x", "y"]}})])
    code, _, err = cli("run", project.config(config(mock_server.url)), "-q")
    assert (
        code == 2
        and "items.jsonl:1: metadata.tags: expected a string or number or boolean or null, found "
        "a list"
        in err
    )


def test_a_grader_whose_grades_all_failed_is_not_printed_as_a_mean(project, cli, mock_server):
    suite = project.suite(n=2, graders=[{"rules": {"type": "python", "function": "checks:score"}}])
    (suite / "checks.py").write_text("def score(output, item):\n    raise RuntimeError\n")
    cli("run", project.config(config(mock_server.url)), "-q")
    cli("grade", "run", "-q")
    out = cli("report", "run")[1]
    assert "- (all 2 failed)" in out


def test_prices_match_exact_names_and_dated_snapshots_never_a_prefix():
    from harness.pricing import KNOWN, price_for

    assert price_for("openai", "o3-pro") == KNOWN["o3-pro"] != KNOWN["o3"]
    assert price_for("openai", "o3-2025-04-16") == KNOWN["o3"]
    assert price_for("anthropic", "claude-sonnet-4-20250514") == KNOWN["claude-sonnet-4"]
    assert price_for("anthropic", "claude-opus-4-1-20250805") == KNOWN["claude-opus-4-1"]
    assert price_for("anthropic", "claude-3-5-haiku-latest") == KNOWN["claude-3-5-haiku"]
    assert price_for("openai", "gpt-4o-audio-preview") is None  # another model, not gpt-4o
    assert price_for("openai", "gpt-4o-mini") == KNOWN["gpt-4o-mini"]


def test_a_second_run_of_a_heldout_pool_in_other_scripts_is_not_mistaken_for_edits(
    project, cli, mock_server, monkeypatch, tmp_path
):
    """Item digests are keyed and computed from sealed text in each process: they must agree across
    runs for Chinese, Arabic, Hindi and multi-line prompts, or every re-run would be refused."""
    monkeypatch.delenv("HOLDOUT_VAULT_KEY", raising=False)
    project.suite(name="mini", n=1)
    prompts = [
        "请用一句话解释光合作用。",
        "ما هي عاصمة المغرب؟\nأجب بكلمة واحدة.",
        "भारत की राजधानी क्या है?",
        "Line one\n\nLine two \\n with an escape",
        "2+2?",
    ]
    pool = tmp_path / "pool.jsonl"
    pool.write_text(
        "".join(
            json.dumps({"id": f"s{i}", "prompt": p, "reference": "x"}, ensure_ascii=False) + "\n"
            for i, p in enumerate(prompts)
        ),
        encoding="utf-8",
    )
    cli("vault", "init")
    cli("pool", "import", pool, "--suite", "mini", "--heldout", "--activate")
    path = project.config(
        config(mock_server.url).replace("suite: mini\n", "suite: mini\npool: heldout\nlimit: 3\n")
    )
    assert cli("run", path, "-q")[0] == 0 and mock_server.stats.requests == 3
    path.write_text(path.read_text().replace("limit: 3\n", ""))
    code, _, err = cli("run", path, "-q")  # the rest, in a second process' worth of digests
    assert code == 0 and "edited" not in err and mock_server.stats.requests == 5, err
    code, _, err = cli("run", path, "-q")
    assert code == 0 and mock_server.stats.requests == 5 and "0 calls made" in err


def test_rule_grading_streams_across_write_batches(project, cli, mock_server):
    """Grades are written every `batch` rows while the store's calls are still being read."""
    from harness.config import load_run_config
    from harness.grading.engine import _grade_rules, build_graders
    from harness.store import Store
    from harness.suite import read_pool_file

    suite = project.suite(n=11)
    path = project.config(config(mock_server.url, extra=GRADER + "epochs: 2\n"))
    mock_server.behaviour.responder = answers(7)
    cli("run", path, "-q")
    (grader,) = build_graders([{"rules": {"type": "exact"}}], load_run_config(path), str(path))
    store = Store(store_location(project.root / ".holdout"))
    items = {it.id: it for it in read_pool_file(suite / "items.jsonl")}
    assert _grade_rules(store, "run", grader, items=items, batch=3)["graded_now"] == 22
    # all written, nothing twice
    assert _grade_rules(store, "run", grader, items=items, batch=3)["graded_now"] == 0
    scores = [g["score"] for g in store.iter_grades("run")]
    store.close()
    assert len(scores) == 22 and sum(scores) == 14
