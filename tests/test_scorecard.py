"""Scorecards: isolation between labs, segment suppression, signatures, reproducible CIs, a real
render."""

import json
import shutil
import subprocess

import pytest

from harness.mockserver import MockBehaviour


@pytest.fixture
def graded_run(project, cli, mock_server, monkeypatch):
    """4 models of 2 labs on 24 items in 3 categories (12/8/4 items), graded by a rule; outputs
    carry their model's name."""
    monkeypatch.delenv("HOLDOUT_VAULT_KEY", raising=False)
    items = [
        {
            "id": f"q{i}",
            "prompt": f"question {i}",
            "reference": "yes",
            "metadata": {"category": ["big", "mid", "small"][0 if i < 12 else 1 if i < 20 else 2]},
        }
        for i in range(24)
    ]
    project.suite(
        items=items,
        graders=[{"rules": {"type": "contains"}}],
        strata=["category"],
        min_segment_size=5,
    )

    def respond(api, body):
        model, n = body["model"], int(body["messages"][-1]["content"].split()[-1])
        ok = {"acme-x": n % 4 != 0, "acme-y": n % 2 == 0, "globex-1": n % 3 != 0, "globex-2": True}[
            model
        ]
        return f"{'yes' if ok else 'no'} private-output-of-{model}-item-{n}"

    mock_server.behaviour = MockBehaviour(responder=respond)
    models = "".join(
        f"  - {{provider: p, model: {m}}}\n" for m in ("acme-x", "acme-y", "globex-1", "globex-2")
    )
    path = project.config(
        "suite: mini\nproviders:\n  p:\n    type: openai-compatible\n    base_url: "
        f"{mock_server.url}/v1\n"
        f"models:\n{models}labs:\n  acme: [acme-x, acme-y]\n  globex: [globex-1, globex-2]\n"
    )
    assert cli("run", path, "-q")[0] == 0 and cli("grade", "run", "-q")[0] == 0
    assert cli("vault", "init")[0] == 0
    return project


def load(project, lab):
    d = project.root / "results" / "run" / "scorecards"
    return json.loads((d / f"{lab}.json").read_text()), (d / f"{lab}.html").read_text()


def test_lab_scorecards_are_isolated(graded_run, cli):
    code, _, err = cli("scorecard", "run", "--all")
    assert code == 0, err
    acme, acme_html = load(graded_run, "acme")
    assert set(acme["models"]) == {"acme-x", "acme-y"}
    text = json.dumps(acme) + acme_html
    for other in ("globex-1", "globex-2"):
        assert other not in text
        for n in range(24):
            assert f"private-output-of-{other}-item-{n}" not in text
    # the field, anonymised: acme has 2 of the 4 models, so 2 others: too few for a median and best
    # that hide them
    assert acme["field"]["rules"]["models"] == 4 and acme["field"]["rules"]["suppressed"]
    assert "best" not in acme["field"]["rules"] and "median" not in acme["field"]["rules"]
    assert acme["models"]["acme-x"]["rank"]["of"] == 4


def test_segments_below_the_minimum_are_suppressed(graded_run, cli):
    cli("scorecard", "run", "--lab", "acme")
    acme, html = load(graded_run, "acme")
    segs = acme["models"]["acme-x"]["graders"]["rules"]["segments"]["category"]
    assert segs["big"]["n"] == 12 and segs["mid"]["n"] == 8
    assert segs["small"] == {"suppressed": True, "reason": "fewer than 5 items"}
    assert segs["big"]["mean"] == pytest.approx(9 / 12)


def test_signature_fails_on_a_one_byte_change(graded_run, cli):
    code, out, _ = cli("scorecard", "run", "--lab", "acme")
    fp = out.split("signed ")[1].rstrip(")\n")
    path = graded_run.root / "results" / "run" / "scorecards" / "acme.json"
    code, out, _ = cli("verify", path, "--key", fp)
    assert code == 0 and "intact" in out
    code, out, _ = cli("verify", path, "--key", fp, "--json")
    assert code == 0 and json.loads(out) == {
        "file": str(path),
        "intact": True,
        "fingerprint": fp,
        "pinned": True,
        "signed_by_this_vault": None,
        "trusted": True,
    }
    data = path.read_bytes()
    i = data.index(b'"error_rate": 0.0') + len(b'"error_rate": 0.')
    path.write_bytes(data[:i] + b"1" + data[i + 1 :])  # 0.0 -> 0.1: one byte
    code, _, err = cli("verify", path)
    assert code == 2 and "signature does NOT match" in err
    # the page was not touched: it verifies on its own
    code, out, err = cli("verify", path.with_suffix(".html"))
    assert code == 0 and "intact" in out, err


def test_cis_are_reproducible_for_a_seed(graded_run, cli):
    cards = []
    for seed in ("3", "3", "4"):
        cli("scorecard", "run", "--lab", "acme", "--seed", seed)
        card, _ = load(graded_run, "acme")
        cards.append(card["models"]["acme-x"]["graders"]["rules"])
    assert cards[0] == cards[1]
    assert cards[0]["ci_low"] != cards[2]["ci_low"] or cards[0]["ci_high"] != cards[2]["ci_high"]


def test_leaderboard_is_aggregates_only_unless_public(graded_run, cli):
    code, _, err = cli("leaderboard", "run")
    board = json.loads((graded_run.root / "results" / "run" / "leaderboard.json").read_text())
    assert (
        code == 0
        and "models" not in board
        and "acme-x" not in err
        and board["field"]["rules"]["models"] == 4
    )
    cfg = graded_run.root / "configs" / "run.yaml"
    cfg.write_text(cfg.read_text() + "leaderboard_public: true\n")
    code, _, err = cli("leaderboard", "run")
    board = json.loads((graded_run.root / "results" / "run" / "leaderboard.json").read_text())
    assert set(board["models"]) == {"acme-x", "acme-y", "globex-1", "globex-2"}
    assert board["models"]["globex-2"]["rank"]["rank"] == 1


def test_scorecard_renders_in_a_real_browser(graded_run, cli, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("chromium is not installed (Debian package 'chromium'; .ci/run installs it)")
    cli("scorecard", "run", "--lab", "acme")
    page = graded_run.root / "results" / "run" / "scorecards" / "acme.html"
    flags = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    shot = tmp_path / "card.png"
    proc = subprocess.run(
        flags + ["--window-size=1000,1600", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert shot.exists() and shot.stat().st_size > 20_000  # a page with pixels, not a blank
    assert "CONSOLE(" not in proc.stderr  # the page logged nothing (no errors) to the console
    dom = subprocess.run(
        flags + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=90
    ).stdout
    assert 'id="score-chart"' in dom and 'id="frontier"' in dom and 'class="heatmap"' in dom
    assert "<rect" in dom and "<circle" in dom  # the plots drew their marks
