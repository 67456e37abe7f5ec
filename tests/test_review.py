"""Human review over real HTTP: the reviewers' app served by `holdout review serve` in its own
process."""

import json
import re

import httpx
from conftest import (
    chromium_page,
    free_port,
    holdout_subprocess,
    login,
    need_chromium,
    wait_for_http,
)


def assignments(project):
    with project.db() as db:
        return db.execute(
            "SELECT item_id, reviewer, reason, gold IS NOT NULL FROM assignments ORDER BY 1, 2"
        ).fetchall()


def test_routing_and_assignment(reviewed, cli):
    project, _ = reviewed
    rows = assignments(project)
    routed = {r[0] for r in rows}
    assert routed == {"q0", "q1", "q3", "q5"}  # judge disagreement on odd items, q0 as gold
    per_item = {}
    for item, reviewer, reason, gold in rows:
        per_item.setdefault(item, []).append(reviewer)
        if item == "q0":
            assert reason == "gold" and gold
    # overlap 2, never the same reviewer twice
    assert all(len(r) == len(set(r)) == 2 for r in per_item.values())
    assert "bob" not in per_item["q5"]  # a ja item goes to reviewers who read ja
    # re-routing adds nothing
    assert cli("review", "route", "run")[0] == 0 and assignments(project) == rows


def submit(client: httpx.Client, where: str, data: dict) -> httpx.Response:
    """Post a review form the way the browser does: with the form's token, read from the page."""
    token = re.search(r"name=csrf value=(\w+)", client.get(where).text).group(1)
    return client.post(where, data={**data, "csrf": token})


def test_access_is_refused_without_a_valid_login_and_across_reviewers(server):
    project, tokens, url, _ = server
    anon = httpx.Client(base_url=url)
    r = anon.get("/next")
    assert (
        r.status_code == 401
        and "question" not in r.text
        and r.headers["cache-control"] == "no-store"
    )
    assert anon.post("/login", data={"token": "wrong"}).status_code == 401
    alice, bob = login(url, tokens["alice"]), login(url, tokens["bob"])
    # one-time link
    assert httpx.post(url + "/login", data={"token": tokens["alice"]}).status_code == 401
    first = alice.get("/next").headers["location"]
    page = alice.get(first)
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert "Review question" in page.text and "the model&#x27;s answer" in page.text
    # Arabic and Hebrew read right to left
    assert page.text.count("<pre dir=auto>") == 2 and "<pre>" not in page.text
    assert "judge" not in page.text and ">m<" not in page.text  # models never named
    stolen = bob.get(first)
    assert stolen.status_code == 404 and "question" not in stolen.text
    assert bob.post(first, data={"quality": "3"}).status_code == 404
    assert re.fullmatch(r"/a/[\w-]+", first)  # no text in URLs


def test_a_form_posted_from_another_site_is_refused(server):
    """The session cookie alone does not carry a submission: the form must hold the token from the
    reviewer's page."""
    project, tokens, url, _ = server
    alice, bob = login(url, tokens["alice"]), login(url, tokens["bob"])
    where = alice.get("/next").headers["location"]
    token = re.search(r"name=csrf value=(\w+)", alice.get(where).text).group(1)
    bobs_page = bob.get(bob.get("/next").headers["location"]).text
    bobs_token = re.search(r"name=csrf value=(\w+)", bobs_page).group(1)
    assert bobs_token != token
    for forged in (
        alice.post(where, data={"quality": "5"}),  # no token
        alice.post(where, data={"quality": "5", "csrf": bobs_token}),  # someone else's
        alice.post(
            where, data={"quality": "5", "csrf": token}, headers={"Origin": "https://evil.example"}
        ),
    ):
        assert forged.status_code == 403 and "Review question" not in forged.text
    with project.db() as db:
        assert (
            db.execute("SELECT COUNT(*) FROM assignments WHERE done IS NOT NULL").fetchone()[0] == 0
        )
    assert (
        alice.post(where, data={"quality": "5", "csrf": token}, headers={"Origin": url}).status_code
        == 303
    )


def test_score_flag_and_move_on(server, cli):
    project, tokens, url, _ = server
    alice = login(url, tokens["alice"])
    seen = set()
    while (r := alice.get("/next")).status_code == 303:
        where = r.headers["location"]
        assert where not in seen
        seen.add(where)
        bad = submit(alice, where, {"quality": "9"})
        assert bad.status_code == 400 and "expected a whole number from 1 to 5, got 9" in bad.text
        item = re.search(r"Review question (\d)", alice.get(where).text).group(1)
        data = {"quality": "5"} if item != "3" else {"flag": "ambiguous", "comment": "two readings"}
        done = submit(alice, where, data)
        assert done.status_code == 303 and done.headers["location"] == "/next"
    assert "nothing is waiting for you" in alice.get("/next", follow_redirects=True).text
    assert len(seen) == sum(1 for a in assignments(project) if a[1] == "alice")
    code, stdout, err = cli("review", "status", "run")
    st = json.loads((project.root / "results" / "run" / "review_status.json").read_text())
    alice_had_gold = any(a[1] == "alice" and a[3] for a in assignments(project))
    assert st["reviewers"]["alice"]["gold_accuracy"] == (1.0 if alice_had_gold else None)
    assert st["flags"]["ambiguous"] == (
        1 if any(a[1] == "alice" and a[0] == "q3" for a in assignments(project)) else 0
    )
    assert "Review question" not in stdout + err


def test_status_agreement_gold_and_judge_vs_people(reviewed, cli, tmp_path):
    project, _ = reviewed
    rows = assignments(project)
    lines = []
    for item, reviewer, _reason, _gold in rows:
        # bob misses the gold item
        score = 1 if (reviewer == "bob" and item == "q0") else (5 if item in ("q0",) else 1)
        lines.append(
            json.dumps(
                {"reviewer": reviewer, "model": "m", "item_id": item, "scores": {"quality": score}}
            )
        )
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        lines[0]
        + "\n"
        + json.dumps({"reviewer": "zed", "model": "m", "item_id": "q0", "scores": {}})
        + "\n"
    )
    code, stdout, err = cli("review", "import", "run", bad)
    assert (
        code == 2
        and "bad.jsonl:2: item 'q0' of 'm' is not assigned to 'zed'" in stdout + err
        and "nothing was imported" in stdout + err
    )
    good = tmp_path / "d.jsonl"
    good.write_text("\n".join(lines) + "\n")
    code, stdout, err = cli("review", "import", "run", good)
    assert code == 0 and f"imported {len(lines)} decisions" in stdout + err
    cli("review", "status", "run")
    st = json.loads((project.root / "results" / "run" / "review_status.json").read_text())
    assert st["done"] == len(rows) and st["queue"] == 0
    if any(r[1] == "bob" and r[0] == "q0" for r in rows):
        assert st["reviewers"]["bob"]["flagged"] and st["reviewers"]["bob"]["gold_accuracy"] == 0.0
    # people agree except where bob missed the gold item; judges said 5 (judge-1) and 1 (judge-2) on
    # odd items
    assert st["judge_human"]["quality"]["items"] == 4


def test_a_reviewer_in_a_real_browser_logs_in_scores_and_sees_the_next_item(server, tmp_path):
    """Headless Chromium, driven over the DevTools protocol: the login link, a score typed with the
    keyboard (Space selects the focused radio, Enter submits), then the next item."""
    import asyncio

    need_chromium()
    project, tokens, url, _ = server

    async def drive():
        async with chromium_page(tmp_path) as page:
            await page.call("Page.navigate", url=f"{url}/login?token={tokens['carol']}")
            landing = await page.text()
            assert landing.startswith("/login") and "Sign in" in landing
            await page.key("Enter", "Enter", 13)  # the Sign in button has focus: press it
            first = await page.text()
            assert first.startswith("/a/") and "Review question" in first
            await page.key(" ", "Space", 32)  # the first radio has focus (autofocus): select it
            await page.key("Enter", "Enter", 13)  # submit the form
            second = await page.text()
            assert second.startswith("/a/") and second.split("\n")[0] != first.split("\n")[0]
            return first.split("\n")[0]

    first_path = asyncio.run(drive())
    with project.db() as db:
        saved = db.execute(
            "SELECT scores FROM assignments WHERE id=?", (first_path.split("/")[-1],)
        ).fetchone()[0]
    # Space chose the focused radio: the scale's first value
    assert json.loads(saved) == {"quality": 1}


def test_scorecards_show_human_review_with_agreement_and_reviewer_segments(reviewed, cli, tmp_path):
    project, _ = reviewed
    # profile fields
    cli("review", "add-reviewer", "alice", "--languages", "en,ja", "--country", "JP")
    lines = [
        json.dumps(
            {
                "reviewer": r,
                "model": "m",
                "item_id": i,
                "scores": {"quality": 5 if i in ("q0", "q1") else 1},
            }
        )
        for i, r, *_ in assignments(project)
    ]
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n")
    assert cli("review", "import", "run", tmp_path / "d.jsonl")[0] == 0
    cfg = project.root / "configs" / "run.yaml"
    cfg.write_text(cfg.read_text() + "labs:\n  acme: [m]\nmin_segment_size: 2\n")
    cli("vault", "init")
    code, stdout, err = cli("scorecard", "run", "--lab", "acme")
    assert code == 0, err
    card = json.loads((project.root / "results" / "run" / "scorecards" / "acme.json").read_text())
    human = card["models"]["m"]["human_review"]
    # gold items are not scores
    assert human["reviews"] == sum(1 for a in assignments(project) if not a[3])
    assert "quality" in human["judge_human"]
    alice_reviews = sum(1 for a in assignments(project) if a[1] == "alice" and not a[3])
    seg = human["segments"]["country/quality"]["JP"]
    assert seg == (
        {"suppressed": True, "reason": "fewer than 2 reviews"}
        if alice_reviews < 2
        else {"n": alice_reviews, "mean": seg["mean"]}
    )
    assert (
        "judge vs people"
        in (project.root / "results" / "run" / "scorecards" / "acme.html").read_text()
    )


def test_pairwise_review_shows_two_unnamed_outputs_in_random_order(project, cli, mock_server):
    # the order is a coin per assignment: with 8 of them all came out alike once in 128 runs (seen
    # once in a fresh clone); with 32, once in 2^31
    items = [{"id": f"q{i}", "prompt": f"Pairwise question {i}"} for i in range(32)]
    project.suite(
        items=items,
        graders=[
            {"pairwise": {"judge": {"provider": "p", "model": "jp"}, "baseline": "base"}},
            {"human": {"route": {"sample": 1.0}, "overlap": 1, "compare": "pairwise"}},
        ],
    )
    mock_server.behaviour.responder = lambda api, body: (
        "[[A=B]]"
        if body["model"] == "jp"
        else f"answer by {body['model']}-secret-{body['messages'][-1]['content'][-1]}"
    )
    path = project.config(
        "suite: mini\nproviders:\n  p:\n    type: openai-compatible\n    base_url: "
        f"{mock_server.url}/v1\n"
        f"models:\n  - {{provider: p, model: cand}}\n  - {{provider: p, model: base}}\n"
    )
    cli("run", path, "-q")
    cli("grade", "run", "-q")
    code, out, _ = cli("review", "add-reviewer", "ann")
    token = out.strip().split("token=")[1]
    assert cli("review", "route", "run")[0] == 0
    with project.db() as db:
        rows = db.execute("SELECT model, baseline FROM assignments").fetchall()
    assert len(rows) == 32 and set(rows) == {("cand", "base")}
    port = free_port()
    proc = holdout_subprocess("review", "serve", "run", "--port", port, cwd=project.root)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(url + "/next")
        ann = login(url, token)
        firsts = []
        while (r := ann.get("/next")).status_code == 303:
            page = ann.get(r.headers["location"]).text
            one = re.search(r"Response 1</h3><pre dir=auto>(.*?)</pre>", page, re.S).group(1)
            two = re.search(r"Response 2</h3><pre dir=auto>(.*?)</pre>", page, re.S).group(1)
            assert {one.split("-secret")[0], two.split("-secret")[0]} == {
                "answer by cand",
                "answer by base",
            }
            firsts.append(one.startswith("answer by cand"))
            # always prefer the candidate's response strongly, wherever it is shown
            submit(
                ann,
                r.headers["location"],
                {"preference": "5" if two.startswith("answer by cand") else "1"},
            )
        assert 0 < sum(firsts) < len(firsts)  # the order really varies
    finally:
        proc.terminate()
        proc.wait(10)
    with project.db() as db:
        prefs = [
            json.loads(s)["model_preference"]
            for (s,) in db.execute("SELECT scores FROM assignments")
        ]
    assert prefs == [1.0] * 32  # un-swapped: the candidate won every time
    code, stdout, err = cli("review", "status", "run")
    st = json.loads((project.root / "results" / "run" / "review_status.json").read_text())
    assert st["judge_human"]["model_preference"]["items"] == 32 and "secret" not in stdout + err
