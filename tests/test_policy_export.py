"""License separation: the policy as properties, the export chokepoint end to end, and no other way
out."""

import ast
import json
import time
from pathlib import Path

from conftest import needs_shared, sqlite_only
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import clock
from harness.policy import (
    DATA_LICENSES,
    DAY,
    PURPOSES,
    Embargo,
    allowed_by_data_license,
    decide_output,
    decide_pool,
)
from harness.vault import Vault

NOW = 1_800_000_000.0

manifests = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["draft", "active", "retired"]),
        "license_class": st.sampled_from(["heldout", "public", "licensable"]),
        "retired_days_ago": st.one_of(st.none(), st.floats(0, 400)),
        "distribution": st.one_of(st.none(), st.just("arena-live")),
        "data_license": st.one_of(st.none(), st.sampled_from(sorted(DATA_LICENSES))),
    }
)


def manifest(m):
    retired = (
        None
        if m["retired_days_ago"] is None or m["status"] != "retired"
        else NOW - m["retired_days_ago"] * DAY
    )
    return {
        "status": m["status"],
        "license_class": m["license_class"],
        "retired_at": retired,
        "provenance": {"distribution": m["distribution"], "data_license": m["data_license"]},
    }


def violations(m: dict, purpose: str, embargo: float) -> set[str]:
    """Each rule as a plain predicate, independent of the policy's control flow."""
    out = set()
    retired, prov = m["retired_at"], m["provenance"]
    if m["status"] == "draft" and m["license_class"] == "heldout":
        out.add("draft_pool")
    if m["status"] == "active":
        out.add("active_pool")
    if m["license_class"] == "heldout" and (retired is None or NOW < retired + embargo * DAY):
        out.add("heldout_embargo")
    if prov["distribution"] and (
        (retired is not None and NOW < retired + embargo * DAY)
        or (retired is None and m["license_class"] != "public")
    ):
        out.add("live_embargo")
    if purpose not in allowed_by_data_license(prov["data_license"]):
        out.add("data_license")
    return out


@settings(max_examples=400)
@given(m=manifests, purpose=st.sampled_from(PURPOSES), embargo=st.sampled_from([0, 30, 60, 90]))
def test_policy_allows_exactly_what_no_rule_forbids(m, purpose, embargo):
    man = manifest(m)
    d = decide_pool(man, purpose, NOW, embargo)
    broken = violations(man, purpose, embargo)
    if d.allowed:
        assert not broken
    else:
        assert d.rule in broken  # a refusal names a rule that is really violated


@given(
    terms=st.sets(st.sampled_from(PURPOSES)),
    purpose=st.sampled_from(PURPOSES),
    model_lab=st.sampled_from(["acme", "globex", None]),
    requester=st.sampled_from(["acme", "globex", None]),
)
def test_output_policy(terms, purpose, model_lab, requester):
    d = decide_output(tuple(terms), purpose, model_lab, requester)
    ok = purpose in terms and (requester is None or requester == model_lab)
    assert d.allowed == ok
    if not ok:
        assert d.rule == (
            "other_lab" if requester is not None and requester != model_lab else "output_terms"
        )


@settings(max_examples=12, deadline=None)
@given(
    plan=st.lists(
        st.tuples(
            st.sampled_from(["keep", "activate"]),
            st.sampled_from(["heldout", "public", "licensable"]),
            st.sampled_from([None, "CC-BY-4.0", "CC-BY-NC-4.0"]),
        ),
        min_size=1,
        max_size=4,
    ),
    days_later=st.sampled_from([0, 59, 61, 200]),
    purpose=st.sampled_from(PURPOSES),
)
@sqlite_only
def test_exports_contain_exactly_the_allowed_pools(tmp_path_factory, plan, days_later, purpose):
    import os

    from harness.export import export_items
    from harness.policy import decide_pool as decide

    root = tmp_path_factory.mktemp("exp")
    os.environ.pop("HOLDOUT_VAULT_KEY", None)
    vault, _ = Vault.init(root / "ws")
    clock.inject(lambda: NOW)
    try:
        for n, (action, cls, lic) in enumerate(plan):
            rows = "".join(
                json.dumps({"id": f"v{n}i{k}", "prompt": f"pool {n} item {k}"}) + "\n"
                for k in range(3)
            )
            pid = vault.add_pool("s", rows.encode(), cls, provenance={"data_license": lic})
            if action == "activate":
                vault.activate(pid, thresholds={})
        clock.inject(lambda: NOW + days_later * DAY)
        out = root / "out"
        exported, refused = export_items(vault, "s", purpose, out=out, embargo=Embargo(60, 60))
        expected = {
            m["id"]
            for m in vault.pools("s")
            if decide(m, purpose, NOW + days_later * DAY, 60).allowed
        }
        assert {m["pool"] for m in exported} == expected
        assert {r["pool"] for r in refused} == {m["id"] for m in vault.pools("s")} - expected
        # the file holds exactly that pool's items, and the manifest's hash is the file's
        for m in exported:
            path = out / m["file"]
            ids = {json.loads(line)["id"] for line in path.read_text().splitlines()}
            assert ids == {f"v{int(m['pool'].split('@v')[1]) - 1}i{k}" for k in range(3)}
            import hashlib

            assert hashlib.sha256(path.read_bytes()).hexdigest() == m["sha256"]
        if out.exists():  # nothing refused was written
            written = {p.name for p in out.iterdir()}
            assert all(not any(r["pool"].replace("@", "_") in w for w in written) for r in refused)
    finally:
        clock.inject(None)


def test_draw_activate_retire_wait_out_the_embargo_export(
    project, cli, monkeypatch, tmp_path, set_clock
):
    monkeypatch.delenv("HOLDOUT_VAULT_KEY", raising=False)
    rows = [
        {"prompt": f"Live question {i}: " + " ".join(f"q{i}k{j}" for j in range(10))}
        for i in range(20)
    ]
    (tmp_path / "src.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    d = project.root / "suites" / "arena"
    d.mkdir(parents=True)
    (d / "suite.yaml").write_text(
        f"name: arena\nsource:\n  data: '{tmp_path}/src.jsonl'\n  distribution: arena-live\n"
        f"  license: CC-BY-4.0\ndraw: {{size: 5, stratify: []}}\nlicense: {{embargo_days: 60}}\n"
    )
    t0 = time.time()
    set_clock(t0)
    cli("vault", "init")
    cli("pool", "draw", "--suite", "arena")
    cli("pool", "activate", "arena@v1")
    out = project.root / "licensed"
    code, stdout, err = cli(
        "export", "items", "--suite", "arena", "--purpose", "license", "--out", out
    )
    assert code == 3 and "refused arena@v1: rule active_pool" in stdout + err and not out.exists()
    cli("pool", "draw", "--suite", "arena")
    cli("pool", "activate", "arena@v2")  # v1 retired now: its embargo starts
    set_clock(t0 + 59 * DAY)
    code, stdout, err = cli(
        "export", "items", "--suite", "arena", "--purpose", "license", "--out", out
    )
    assert (
        code == 3
        and "refused arena@v1: rule heldout_embargo: retired 59 days ago; releasable in 1 more days"
        in stdout + err
    )
    set_clock(t0 + 60 * DAY + 60)
    code, stdout, err = cli(
        "export", "items", "--suite", "arena", "--purpose", "license", "--out", out
    )
    assert (
        code == 0
        and "exported 5 items of arena@v1" in stdout + err
        and "refused arena@v2: rule active_pool" in stdout + err
    )
    manifest = json.loads((out / "arena_v1.manifest.json").read_text())
    assert (
        manifest["rule"] == "allowed" and manifest["purpose"] == "license" and manifest["rows"] == 5
    )
    item = json.loads((out / "arena_v1.jsonl").read_text().splitlines()[0])
    assert item["provenance"]["distribution"] == "arena-live" and item["provenance"]["retired_at"]
    code, stdout, err = cli("policy", "explain", "arena@v2")
    assert "license    refused (active_pool)" in stdout + err


def test_real_case_alpaca_eval_is_non_commercial(project, cli, monkeypatch, set_clock):
    data = needs_shared("alpaca-eval")
    monkeypatch.delenv("HOLDOUT_VAULT_KEY", raising=False)
    d = project.root / "suites" / "alpaca"
    d.mkdir(parents=True)
    (d / "suite.yaml").write_text(
        f"name: alpaca\nsource:\n  data: '{data}/model_outputs/gpt4_1106_preview.json'\n"
        f"  prompt: instruction\n  metadata: {{dataset: dataset}}\n  license: CC-BY-NC-4.0\n"
        f"draw: {{size: 40, stratify: [dataset], seed: 1}}\n"
    )
    t0 = time.time()
    set_clock(t0)
    cli("vault", "init")
    assert cli("pool", "draw", "--suite", "alpaca")[0] == 0
    cli("pool", "activate", "alpaca@v1")
    cli("pool", "draw", "--suite", "alpaca", "--seed", "2")
    cli("pool", "activate", "alpaca@v2")
    set_clock(t0 + 61 * DAY)
    out = project.root / "out"
    code, stdout, err = cli(
        "export", "items", "--suite", "alpaca", "--purpose", "license", "--out", out
    )
    assert (
        code == 3
        and "refused alpaca@v1: rule data_license: the source data licence CC-BY-NC-4.0 does not "
        "allow 'license'"
        in stdout + err
    )
    code, stdout, err = cli(
        "export", "items", "--suite", "alpaca", "--purpose", "evaluation", "--out", out
    )
    assert code == 0 and "exported 40 items of alpaca@v1" in stdout + err


def test_output_exports_follow_provider_terms_and_labs(project, cli, mock_server):
    project.suite(n=3)
    path = project.config(
        "suite: mini\nproviders:\n  open:\n    type: openai-compatible\n    base_url: "
        f"{mock_server.url}/v1\n"
        "    output_terms: [evaluation, research, training]\n  closed:\n    type: "
        "openai-compatible\n"
        f"    base_url: {mock_server.url}/v1\nmodels:\n  - {{provider: open, model: a1}}\n"
        f"  - {{provider: closed, model: b1}}\nlabs:\n  acme: [a1]\n  globex: [b1]\n"
    )
    cli("run", path, "-q")
    out = project.root / "data"
    code, stdout, err = cli("export", "outputs", "run", "--purpose", "training", "--out", out)
    assert code == 0 and "exported 3 outputs of a1" in stdout + err
    assert "refused b1: 3 outputs, e.g. q0, q1, q2: rule output_terms" in stdout + err
    rows = [json.loads(x) for x in (out / "run.outputs.jsonl").read_text().splitlines()]
    assert {r["provenance"]["model"] for r in rows} == {"a1"}
    code, stdout, err = cli(
        "export", "outputs", "run", "--purpose", "evaluation", "--lab", "globex", "--out", out
    )
    rows = [json.loads(x) for x in (out / "run.outputs.globex.jsonl").read_text().splitlines()]
    assert {r["provenance"]["model"] for r in rows} == {"b1"} and "rule other_lab" in stdout + err


ALLOWED_WRITERS = {
    "egress.py": "the egress gate: every file outside the vault",
    "vault/pools.py": "encrypted pools, signed manifests, the index (inside the vault)",
    "vault/keys.py": "the vault key file (0600)",
    "vault/files.py": "atomic and signed writes for the vault modules (the only ones to import it)",
    "scorecard/sign.py": "the encrypted scorecard signing key (inside the vault)",
    "runlock.py": "who holds a run's lock (a pid, a command name, a time), in the workspace",
    "keylane.py": "a key's shared send times and count (no text, no key), in the user's runtime "
    "directory",
    "localpg.py": "a local PostgreSQL server's port number, beside its data directory",
}
WRITE_CALLS = {
    "write_text",
    "write_bytes",
    "dump",
    "fdopen",
    "mkstemp",
    "FileHandler",
    "copy",
    "copyfile",
    "move",
    "pwrite",
}


def test_no_code_path_writes_files_outside_the_gate_and_the_vault():
    """The policy is the only way out: only the listed modules may write files (the store and ledger
    are SQLite inside the workspace; logs go through a FileHandler the CLI sets up behind the
    gate)."""
    root = Path(__file__).resolve().parent.parent / "harness"
    offenders = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = (
                node.func.attr
                if isinstance(node.func, ast.Attribute)
                else getattr(node.func, "id", "")
            )
            through_gate = (
                isinstance(node.func, ast.Attribute)
                and getattr(node.func.value, "id", "") == "GATE"
            )
            writes = name in WRITE_CALLS and not through_gate
            if name == "open":
                modes = [a.value for a in node.args[1:2] if isinstance(a, ast.Constant)] + [
                    k.value.value
                    for k in node.keywords
                    if k.arg == "mode" and isinstance(k.value, ast.Constant)
                ]
                writes = any(set(str(m)) & set("wax+") for m in modes)
            if (
                writes
                and rel not in ALLOWED_WRITERS
                and not (rel == "cli/__init__.py" and name == "FileHandler")
            ):
                offenders.append(f"{rel}:{node.lineno}: {name}")
        for node in ast.walk(tree):  # the vault's file writer serves the vault alone
            if isinstance(node, ast.ImportFrom) and not rel.startswith("vault/"):
                if (node.module or "").endswith("vault.files") or (
                    (node.module or "").endswith("vault")
                    and any(a.name == "files" for a in node.names)
                ):
                    offenders.append(f"{rel}:{node.lineno}: imports vault.files")
    assert offenders == []


def test_result_exports_carry_prompt_output_and_grades_in_jsonl_and_csv(project, cli, mock_server):
    """A public pool's run: per item and model, the conversation, the reference, the output and
    every grade, for the outputs the providers' terms release; prompts in other scripts and on
    several lines survive both formats (CSV quoting included)."""
    prompts = ["请解释光合作用。", 'مدينة, "quoted"', "Line one\nline two", "Hi"]
    items = [
        {"id": f"q{i}", "prompt": p, "reference": p[:2], "metadata": {"category": "x"}}
        for i, p in enumerate(prompts)
    ]
    project.suite(items=items, graders=[{"rules": {"type": "contains"}}])
    path = project.config(
        "suite: mini\nproviders:\n  open:\n    type: openai-compatible\n    base_url: "
        f"{mock_server.url}/v1\n    output_terms: [evaluation, training]\n  closed:\n    type: "
        f"openai-compatible\n    base_url: {mock_server.url}/v1\n"
        "models:\n  - {provider: open, model: a1}\n  - {provider: closed, model: b1}\n"
    )
    assert cli("run", path, "-q")[0] == 0
    assert cli("grade", "run", "-q")[0] == 0
    out = project.root / "data"
    code, stdout, err = cli("export", "results", "run", "--purpose", "training", "--out", out)
    assert code == 0 and "exported 4 results" in stdout and "rules" in stdout, err
    assert "refused b1: 4 outputs" in stdout + err
    rows = [json.loads(x) for x in (out / "run.results.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in sorted(rows, key=lambda r: r["item_id"])] == prompts
    assert {r["model"] for r in rows} == {"a1"}
    assert all(r["grades"]["rules"]["status"] == "ok" for r in rows)
    assert rows[0]["messages"][-1]["role"] == "user" and rows[0]["output"]
    manifest = json.loads((out / "run.results.manifest.json").read_text())
    assert manifest["kind"] == "results" and manifest["graders"] == ["rules"]
    code, _, err = cli(
        "export", "results", "run", "--purpose", "training", "--out", out, "--format", "csv"
    )
    assert code == 0, err
    import csv

    with open(out / "run.results.csv", newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert sorted(r["prompt"] for r in table) == sorted(prompts)
    assert {r["grades.rules.status"] for r in table} == {"ok"}
    code, stdout, err = cli("export", "results", "run", "--purpose", "license", "--out", out)
    assert code == 3 and "rule output_terms" in stdout + err
