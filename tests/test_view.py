"""The maintainers' view (harness/view, `holdout view`): served in its own process and used over
HTTP and in headless Chromium. Only a maintainer sees a page (a reviewer's session: 404; none:
401); every held-out item shown is in a MAC-chained log that `holdout view log` checks."""

import json
import re
import sqlite3

import httpx
import pytest
from conftest import QUESTIONS, chromium_page, free_port, holdout_subprocess, wait_for_http
from conftest import login as reviewer_login


def _serve(project, *runs):
    port = free_port()
    proc = holdout_subprocess("view", "serve", *runs, "--port", port, cwd=project.root)
    url = f"http://127.0.0.1:{port}"
    wait_for_http(url + "/")
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
    db = sqlite3.connect(project.root / ".holdout" / "store.sqlite")
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
    db = sqlite3.connect(project.root / ".holdout" / "store.sqlite")
    with db:
        db.execute("UPDATE view_log SET maintainer='nobody' WHERE seq=2")
    code, out, _ = cli("view", "log")
    assert code == 3 and "row 2: changed outside holdout" in out
    with db:
        db.execute("UPDATE view_log SET maintainer='mia' WHERE seq=2")
        db.execute("DELETE FROM view_log WHERE seq=2")
    code, out, _ = cli("view", "log")
    assert code == 3 and "row 3: expected row 2" in out


def test_a_maintainer_in_chromium_filters_to_disagreements_and_opens_an_item(view, cli, tmp_path):
    import asyncio

    project, _, url = view
    code, out, _ = cli("view", "add-maintainer", "mia", "--port", url.rsplit(":", 1)[1])
    link = re.search(r"(http://\S+token=\S+)", out).group(1)

    async def session():
        async with chromium_page(tmp_path) as page:

            async def click(selector):
                await page.call(
                    "Runtime.evaluate", expression=f"document.querySelector({selector!r}).click()"
                )

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
