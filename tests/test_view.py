"""The maintainers' view (harness/view, `holdout view`): served in its own process and used over
HTTP and in headless Chromium. Only a maintainer sees a page (a reviewer's session: 404; none:
401); every held-out item shown is in a MAC-chained log that `holdout view log` checks."""

import json
import re

import httpx
import pytest
from conftest import (
    QUESTIONS,
    chromium_page,
    free_port,
    holdout_subprocess,
    store_db,
    wait_for_http,
)
from conftest import login as reviewer_login


def _serve(project, *runs):
    port = free_port()
    proc = holdout_subprocess("view", "serve", *runs, "--port", port, cwd=project.root)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(url + "/")
    except AssertionError:
        proc.kill()
        raise AssertionError(proc.communicate()[1][-3000:]) from None
    return proc, url


def _maintainer(cli, url, name="mia") -> httpx.Client:
    code, out, err = cli("view", "add-maintainer", name, "--port", url.rsplit(":", 1)[1])
    assert code == 0, err
    token = re.search(r"token=(\S+)", out).group(1)
    client = httpx.Client(base_url=url, follow_redirects=False)
    assert "Sign in" in client.get("/login", params={"token": token}).text
    r = client.post("/login", data={"token": token})
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert client.post("/login", data={"token": token}).status_code == 401  # spent
    return client


def _sign_in_link(cli, url) -> str:
    """A maintainer's one-time link, as `view add-maintainer` prints it."""
    code, out, err = cli("view", "add-maintainer", "mia", "--port", url.rsplit(":", 1)[1])
    assert code == 0, err
    return re.search(r"(http://\S+token=\S+)", out).group(1)


async def _click(page, selector: str) -> None:
    await page.call("Runtime.evaluate", expression=f"document.querySelector({selector!r}).click()")


@pytest.fixture
def view(reviewed):
    project, tokens = reviewed
    proc, url = _serve(project, "run")
    yield project, tokens, url
    proc.terminate()
    proc.wait(10)


def test_only_a_maintainer_sees_the_view(view, cli):
    project, tokens, url = view
    for path in ("/", "/r/run", "/r/run/items", "/r/run/i/q1"):
        assert httpx.get(url + path).status_code == 401
    # a reviewer's session (their cookie reaches any port of the host): the view does not exist
    port = free_port()
    rproc = holdout_subprocess("review", "serve", "run", "--port", port, cwd=project.root)
    try:
        rurl = f"http://127.0.0.1:{port}"
        wait_for_http(rurl + "/next")
        reviewer = reviewer_login(rurl, tokens["alice"])
        cookies = {"holdout_review": reviewer.cookies["holdout_review"]}
        for path in ("/", "/r/run", "/r/run/i/q1"):
            assert httpx.get(url + path, cookies=cookies).status_code == 404
    finally:
        rproc.terminate()
        rproc.wait(10)
    m = _maintainer(cli, url)
    assert "run" in m.get("/").text and "judge-1" not in m.get("/").text
    run = m.get("/r/run").text
    assert "rubric" in run and "disagreements" in run
    assert m.get("/r/nosuch").status_code == 404 and m.get("/r/run/i/nosuch").status_code == 404
    assert cli("view", "revoke", "mia")[0] == 0
    assert m.get("/").status_code == 401


def test_filtering_to_judge_disagreements_and_an_item_page(view, cli):
    project, _, url = view
    m = _maintainer(cli, url)
    listing = m.get("/r/run/items", params={"grader": "rubric", "show": "disagree"})
    assert listing.status_code == 200
    shown = re.findall(r"/r/run/i/(q\d)", listing.text)
    assert shown == ["q1", "q3", "q5"]  # the judges disagree on odd items
    page = m.get("/r/run/i/q3").text
    assert "Review question 3 in en" in page and "the model&#x27;s answer to" in page
    assert page.count("quality") >= 2  # both judges' answers
    assert m.get("/r/run/items", params={"after": "bad"}).status_code == 404
    db = store_db(project.root)
    assert db.execute("SELECT COUNT(*) FROM view_log").fetchone() == (0,)  # public: not logged


def test_paging_walks_every_grade_once(view, cli, monkeypatch):
    """Pages of 2 (the app's page size, set small for the test): every grade once, in order, and
    the last page has no next link."""
    _, _, url = view
    m = _maintainer(cli, url)
    seen, path = [], "/r/run/items?grader=rubric&size=2"
    while path:
        text = m.get(path).text
        seen += re.findall(r"/r/run/i/(q\d)", text)
        nxt = re.search(r"rel=next href='([^']+)'", text)
        path = nxt.group(1).replace("&amp;", "&") if nxt else None
    assert seen == [f"q{i}" for i in range(6)]


@pytest.fixture
def heldout_view(heldout, project, cli, mock_server):
    def respond(api, body):
        if body["model"].startswith("judge"):
            return json.dumps({"scores": {"quality": 4}, "confidence": 0.9})
        return "echo: " + body["messages"][-1]["content"]

    mock_server.behaviour.responder = respond
    graders = (
        "graders: [{rubric: {judges: [{provider: a, model: judge-1}], criteria: [{name: quality, "
        "scale: [1, 5]}]}}]\n"
    )
    config = heldout(f"run_id: hv\n{graders}", name="hv.yaml")
    assert cli("run", config, "-q")[0] == 0
    assert cli("grade", "hv", "-q")[0] == 0
    proc, url = _serve(project, "hv")
    yield project, url
    proc.terminate()
    proc.wait(10)


def test_every_heldout_item_shown_is_logged_and_the_log_is_tamper_evident(heldout_view, cli):
    project, url = heldout_view
    m = _maintainer(cli, url)
    for i in (0, 6, 0):  # Chinese; multi-line and quoted; Chinese again
        page = m.get(f"/r/hv/i/h{i}")
        assert page.status_code == 200
        assert QUESTIONS[i].split("\n")[0] in page.text or QUESTIONS[i] in page.text
        assert "sent to providers" in page.text
    assert m.get("/r/hv/items").status_code == 200  # a listing shows ids and scores, not logged
    code, out, _ = cli("view", "log")
    assert code == 0 and "3 held-out item view(s); chain intact" in out and "mia hv h6" in out
    for q in QUESTIONS:
        assert q not in out
    db = store_db(project.root)
    with db:
        db.execute("UPDATE view_log SET maintainer='nobody' WHERE seq=2")
    code, out, _ = cli("view", "log")
    assert code == 3 and "row 2: changed outside holdout" in out
    with db:
        db.execute("UPDATE view_log SET maintainer='mia' WHERE seq=2")
        db.execute("DELETE FROM view_log WHERE seq=2")
    code, out, _ = cli("view", "log")
    assert code == 3 and "row 3: expected row 2" in out
    with db:  # the tail cut instead: the chain left is valid, the ledger's count is not
        db.execute("DELETE FROM view_log WHERE seq=3")
    code, out, _ = cli("view", "log")
    assert code == 3 and "rows 2-3 were removed from the end (the ledger saw 3 rows)" in out


def test_a_maintainer_in_chromium_filters_to_disagreements_and_opens_an_item(view, cli, tmp_path):
    import asyncio

    project, _, url = view
    link = _sign_in_link(cli, url)

    async def session():
        async with chromium_page(tmp_path) as page:

            async def click(selector):
                await _click(page, selector)

            await page.call("Page.navigate", url=link)
            await page.text()
            await page.key("Enter", "Enter", 13)  # the focused Sign in button
            assert "Runs" in await page.text()
            await click("a[href='/r/run']")
            await page.text()
            await click("a[href*='show=disagree']")
            text = await page.text()
            assert "q1" in text and "q3" in text and "q0" not in text
            await click("a[href='/r/run/i/q1']")
            text = await page.text()
            assert "Review question 1 in en" in text and "the model's answer to" in text
            assert "judge-1" in text and "judge-2" in text

    asyncio.run(session())


@pytest.fixture
def two_runs(project, cli, mock_server):
    """Runs 'r1' and 'r2' of 24 items (12 math, 12 trivia) and models m (right on even items in
    r1, on every item in r2) and 'shy' (a content filter on every call): a store the filters,
    the stratum table and the comparison have something to tell apart in."""
    project.suite(n=24, graders=[{"rules": {"type": "contains"}}])
    every = {"all": False}

    def respond(api, body):
        n = int(re.search(r"number (\d+)", body["messages"][-1]["content"]).group(1))
        return str(2 * n) if every["all"] or n % 2 == 0 else "not sure"

    mock_server.behaviour.responder = respond
    mock_server.behaviour.fault_models = {"shy": "content_filter"}
    for run_id in ("r1", "r2"):
        config = project.config(
            f"run_id: {run_id}\nsuite: mini\nproviders:\n  p:\n    type: openai-compatible\n"
            f"    base_url: {mock_server.url}/v1\n    max_attempts: 1\n"
            "models:\n  - {provider: p, model: m}\n  - {provider: p, model: shy}\n",
            name=f"{run_id}.yaml",
        )
        cli("run", config, "-q")
        assert cli("grade", run_id, "-q")[0] == 0
        every["all"] = True
    code, _, err = cli("check", "r1", "--json")
    assert code == 0, err
    proc, url = _serve(project, "r1", "r2")
    yield project, url
    proc.terminate()
    proc.wait(10)


def _listed(m, run="r1", **params) -> list[tuple[str, str]]:
    """Every (model, item) the item list shows under these filters, walking all its pages."""
    seen, path, query = [], f"/r/{run}/items", {"size": 5, **params}
    while path:
        r = m.get(path, params=query)
        assert r.status_code == 200
        seen += re.findall(r"/i/(q\d+)'>q\d+</a></td><td>([^<]+)</td>", r.text)
        nxt = re.search(r"rel=next href='([^']+)'", r.text)
        path, query = (nxt.group(1).replace("&amp;", "&"), None) if nxt else (None, None)
    return [(model, item) for item, model in seen]


def test_the_run_page_has_a_model_by_stratum_table_with_cis_and_error_rates(two_runs, cli):
    from harness import stats

    _, url = two_runs
    page = _maintainer(cli, url).get("/r/r1").text
    assert "rules by category" in page
    # m is right on the even items: every trivia item (even ids), no math item
    assert re.search(r"category%3Dtrivia'>1\.000 \[1\.000, 1\.000\] n=12", page)
    assert "category%3Dmath'>0.000 [0.000, 0.000] n=12" in page
    assert "not graded" in page
    assert "errors 100.0%" in page  # shy: every call refused
    assert "<th>retries</th><th>mean latency s</th><th>calls/s</th>" in page
    assert re.search(r"<td>m</td><td>24</td><td>-</td><td>0\.0000</td><td>0</td><td>\d", page)
    # the normal interval agrees with the report's bootstrap at a stratum's size
    from harness.view.figures import _cell

    scores = [1.0] * 7 + [0.0] * 5
    mean = sum(scores) / 12
    normal = _cell(12, mean, sum(s * s for s in scores) / 12)
    boot = stats.bootstrap_means([stats.clustered(scores, list(range(12)))], seed=0)[0]
    assert abs(normal["ci_low"] - boot["ci_low"]) < 0.05
    assert abs(normal["ci_high"] - boot["ci_high"]) < 0.05
    # the figures are kept until the store changes: another process deletes run r1
    code, _, err = cli("runs", "delete", "r1")
    assert code == 0, err
    again = _maintainer(cli, url, name="max").get("/r/r1").text
    assert "n=12" not in again and "errors 100.0%" not in again


def test_item_filters_sorting_and_paging(two_runs, cli):
    project, url = two_runs
    m = _maintainer(cli, url)
    everything = _listed(m, grader="rules")
    assert len(everything) == len(set(everything)) == 48  # 24 items x 2 models, once each
    math = _listed(m, stratum="category=math", model="m")
    assert math == [("m", f"q{i}") for i in sorted(range(1, 24, 2), key=str)]
    right = _listed(m, min="0.5")
    assert {i for _, i in right} == {f"q{i}" for i in range(0, 24, 2)}
    assert {model for model, _ in right} == {"m"}
    assert _listed(m, max="0.5", model="m") == [
        ("m", f"q{i}") for i in sorted(range(1, 24, 2), key=str)
    ]
    refused = _listed(m, error="content_filter")
    assert {model for model, _ in refused} == {"shy"} and len(refused) == 24
    flagged = json.loads((project.root / "results" / "r1" / "safeguards.json").read_text())
    assert flagged["shy"]["refusals"]["count"] == 24
    by_flag = _listed(m, safeguard="refusals")
    assert sorted(by_flag) == sorted(("shy", i) for i in flagged["shy"]["refusals"]["item_ids"])
    # by score, high first: every scored grade once, in order, across pages of 5
    high_first = _listed(m, sort="highest", model="m")
    assert len(high_first) == 24 and {i for _, i in high_first[:12]} == {
        f"q{i}" for i in range(0, 24, 2)
    }
    low_first = _listed(m, sort="lowest", model="m")
    assert low_first == high_first[::-1]  # ties by item, the other way round
    assert low_first[:12] == sorted(low_first[:12], key=lambda r: r[1])
    # a choice that is not the run's is dropped; a malformed page key is a 404
    assert len(_listed(m, stratum="category=nosuch", model="m")) == 24
    assert m.get("/r/r1/items", params={"sort": "lowest", "after": "x|m|q1|0"}).status_code == 404


def test_human_decisions_that_disagree_with_the_judges(reviewed, cli, tmp_path):
    """Judges average 3 on q1 (5 and 1); a person says 5 (two points away): listed. On q3 a person
    says 3 (agrees): not listed. The gold item q0: judges 5, person 5."""
    project, _ = reviewed
    db = store_db(project.root)
    assigned = db.execute(
        "SELECT reviewer, item_id, model, epoch FROM assignments WHERE run_id='run'"
    ).fetchall()
    says = {"q0": 5, "q1": 5, "q3": 3, "q5": 3}
    decisions = tmp_path / "decisions.jsonl"
    decisions.write_text(
        "".join(
            json.dumps(
                {
                    "reviewer": r,
                    "item_id": i,
                    "model": mo,
                    "epoch": ep,
                    "scores": {"quality": says[i]},
                }
            )
            + "\n"
            for r, i, mo, ep in assigned
            if i in says
        )
    )
    code, _, err = cli("review", "import", "run", decisions)
    assert code == 0, err
    proc, url = _serve(project, "run")
    try:
        m = _maintainer(cli, url)
        assert _listed(m, run="run", grader="rubric", show="human") == [("m", "q1")]
    finally:
        proc.terminate()
        proc.wait(10)


def test_comparing_two_runs_item_by_item(two_runs, cli):
    _, url = two_runs
    m = _maintainer(cli, url)
    assert "compare" in m.get("/compare").text
    page = m.get("/compare", params={"a": "r1", "b": "r2"}).text
    row = re.search(r"<tr><td>m</td><td>24</td><td>0\.500</td><td>1\.000</td><td>\+0\.500 \*", page)
    assert row, page
    changed = re.findall(r"<tr><td>m</td><td>(q\d+)</td><td>0\.000</td><td>1\.000</td>", page)
    assert changed and all(int(i[1:]) % 2 == 1 for i in changed)
    assert "/r/r2/i/q1" in page or "/r/r2/i/" in page
    assert "no run" not in m.get("/compare", params={"a": "r1", "b": "nosuch"}).text


def test_the_item_listing_and_the_run_list_on_the_command_line(two_runs, cli):
    code, out, err = cli(
        "runs", "items", "r1", "--stratum", "category=math", "--model", "m", "--json"
    )
    assert code == 0, err
    listing = json.loads(out)
    assert listing["grader"] == "rules" and not listing["more"]
    assert [r["item_id"] for r in listing["rows"]] == sorted(
        (f"q{i}" for i in range(1, 24, 2)), key=str
    )
    assert {r["score"] for r in listing["rows"]} == {0.0}
    code, out, _ = cli("runs", "items", "r1", "--error", "content_filter", "--limit", "3")
    assert code == 0 and out.count("call failed: content_filter") == 3
    with pytest.raises(SystemExit) as refused:  # argparse: usage and the reason, exit 2
        cli("runs", "items", "r1", "--min", "nan")
    assert refused.value.code == 2
    code, _, err = cli("runs", "items", "r1", "--grader", "nosuch")
    assert code != 0 and "graders: rules" in err
    code, out, _ = cli("runs", "list", "--json")
    assert code == 0 and sorted(r["run_id"] for r in json.loads(out)) == ["r1", "r2"]


def test_in_chromium_a_pairwise_flip_shows_both_outputs_and_both_verdicts(
    project, cli, mock_server, tmp_path
):
    """A judge that always says the first answer is better is consistent with itself only where
    the order does not matter: for m-bad against the baseline its verdict flips with the order.
    The maintainer filters to those flips and sees the outputs side by side and both verdicts."""
    import asyncio

    project.suite(n=3, strata=[])

    def respond(api, body):
        if body["model"] == "judge-p":
            prompt = body["messages"][-1]["content"]
            return "[[A>B]]" if "bad answer" in prompt else "[[A=B]]"
        return {"m-good": "GOOD answer", "m-bad": "bad answer", "base": "baseline answer"}[
            body["model"]
        ]

    mock_server.behaviour.responder = respond
    config = project.config(
        f"suite: mini\nproviders:\n  p:\n    type: openai-compatible\n    base_url: "
        f"{mock_server.url}/v1\nmodels:\n  - {{provider: p, model: m-good}}\n"
        "  - {provider: p, model: m-bad}\n  - {provider: p, model: base}\n"
        "graders:\n  - pairwise: {judge: {provider: p, model: judge-p}, baseline: base}\n"
    )
    assert cli("run", config, "-q")[0] == 0 and cli("grade", "run", "-q")[0] == 0
    proc, url = _serve(project, "run")
    link = _sign_in_link(cli, url)

    async def session():
        async with chromium_page(tmp_path) as page:

            async def click(selector):
                await _click(page, selector)
                return await page.text()

            await page.call("Page.navigate", url=link)
            await page.text()
            await page.key("Enter", "Enter", 13)
            await page.text()
            await click("a[href='/r/run']")
            listing = await click("a[href*='model=m-bad'][href*='show=disagree']")
            assert "flips with the order" in listing and "m-good" not in listing.split("filter")[1]
            text = await click("a[href='/r/run/i/q1']")
            for output in ("GOOD answer", "bad answer", "baseline answer"):
                assert output in text
            assert '"judge:judge-p": ["A>B", "A>B"]' in text  # both orders, as the judge said them
            assert '"judge:judge-p": ["A=B", "A=B"]' in text  # m-good: a tie either way

    try:
        asyncio.run(session())
    finally:
        proc.terminate()
        proc.wait(10)
