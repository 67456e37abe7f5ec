"""Property-based bad input: random and mutated configs, suites and pool files never produce a
traceback; every message names the file (and the line or item id) and what is wrong."""

import json

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import main

VALID = {
    "suite": "mini",
    "epochs": 1,
    "providers": {
        "p": {"type": "openai-compatible", "base_url": "http://127.0.0.1:9/v1", "concurrency": 2}
    },
    "models": [{"provider": "p", "model": "m", "params": {"temperature": 0, "max_tokens": 5}}],
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False, width=16),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from paths(v, prefix + (i,))


@st.composite
def mutated_configs(draw):
    cfg = json.loads(json.dumps(VALID))
    for _ in range(draw(st.integers(1, 3))):
        all_paths = [p for p in paths(cfg) if p]
        if not all_paths:
            break
        path = draw(st.sampled_from(all_paths))
        parent = cfg
        for part in path[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["delete", "retype", "unknown"]))
        if action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        elif action == "unknown" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["temprature", "modle", "x", "Suite"]))] = draw(scalars)
        else:
            parent[path[-1]] = draw(scalars)
    return cfg


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, err


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cfg=mutated_configs())
def test_mutated_run_configs_get_clear_errors(project, capsys, cfg):
    project.suite(n=1)
    path = project.config(yaml.safe_dump(cfg, sort_keys=False))
    code, err = run_cli(capsys, "run", path, "-q")
    assert "Traceback" not in err
    if code not in (0, 3):  # 3: it ran, and calls to the closed port failed
        assert code == 2 and err.startswith("error: ")
        assert str(path) in err or "suite" in err


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=200))
def test_random_text_as_a_config(project, capsys, text):
    project.suite(n=1)
    path = project.config(text)
    code, err = run_cli(capsys, "run", path, "-q")
    assert code == 2 and "Traceback" not in err and err.startswith(f"error: {path}")


good_line = st.fixed_dictionaries(
    {
        "id": st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True),
        "prompt": st.text(min_size=1, max_size=30).filter(str.strip),
    }
)
bad_line = st.one_of(
    st.just("{not json"),
    st.just('{"prompt": "no id"}'),
    st.just('{"id": "x"}'),
    st.just('{"id": 5, "prompt": "p"}'),
    st.just('{"id": "x", "prompt": "p", "extra": 1}'),
    st.just("[1, 2]"),
    st.just('{"id": "", "prompt": "p"}'),
)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    good=st.lists(good_line, max_size=5),
    bad=st.lists(bad_line, min_size=1, max_size=3),
    data=st.data(),
)
def test_pool_files_with_bad_lines_name_every_bad_line(project, capsys, good, bad, data):
    lines = [json.dumps(g) for g in good]
    positions = []
    for b in bad:
        pos = data.draw(st.integers(0, len(lines)))
        lines.insert(pos, b)
        positions = [p + 1 if p >= pos else p for p in positions] + [pos]
    project.suite(lines=lines)
    path = project.config(yaml.safe_dump(VALID))
    code, err = run_cli(capsys, "run", path, "-q")
    assert code == 2 and "Traceback" not in err and "nothing was run" in err
    for pos in positions:
        assert f"items.jsonl:{pos + 1}:" in err


def test_wrong_encoding_and_huge_prompt_and_duplicates(project, capsys):
    d = project.suite(n=1)
    (d / "items.jsonl").write_bytes(
        b'{"id": "a", "prompt": "ok"}\n{"id": "b", "prompt": "caf\xe9"}\n'
        + json.dumps({"id": "c", "prompt": "x" * 10_000_000}).encode()
        + b"\n"
        + b'{"id": "a", "prompt": "again"}\n'
    )
    path = project.config(yaml.safe_dump(VALID))
    code, err = run_cli(capsys, "run", path, "-q")
    assert code == 2 and "Traceback" not in err
    assert "items.jsonl:2: not UTF-8 text" in err
    assert "items.jsonl:3: the line is 10.0 MB; items are limited to 1 MB" in err
    assert "items.jsonl:4: item id 'a' appears more than once" in err


@settings(max_examples=200, deadline=None)
@given(
    form=st.dictionaries(
        st.sampled_from(["quality", "style", "flag", "comment", "x"]),
        st.one_of(st.text(max_size=12), st.integers(-3, 9).map(str), st.none()),
        max_size=5,
    )
)
def test_reviewer_submissions_are_validated_with_clear_messages(form):
    """Any form a browser (or a hand-made POST) can send: saved if valid, else a message naming the
    field."""
    import sqlite3

    from harness.review import decisions, reviewers

    db = sqlite3.connect(":memory:", isolation_level=None)
    reviewers.setup(db)
    db.execute(
        "INSERT INTO assignments(id, run_id, model, item_id, epoch, reviewer, assigned) VALUES "
        "('a','r','m','i',0,'ann',0)"
    )
    criteria = [{"name": "quality", "scale": [1, 5]}, {"name": "style", "scale": [1, 3]}]
    scores = {c["name"]: form.get(c["name"]) for c in criteria}
    try:
        decisions.submit(
            db,
            "ann",
            "a",
            scores=scores,
            criteria=criteria,
            flag=form.get("flag") or None,
            comment=form.get("comment") or "",
        )
    except ValueError as e:
        assert any(str(e).startswith(k) for k in ("quality:", "style:", "flag:", "comment:"))
        # nothing half-saved
        assert db.execute("SELECT done FROM assignments").fetchone()[0] is None
    else:
        saved = json.loads(db.execute("SELECT scores FROM assignments").fetchone()[0])
        assert all(1 <= saved[c] <= (5 if c == "quality" else 3) for c in saved)
    try:
        decisions.submit(db, "bob", "a", scores=scores, criteria=criteria, flag=None, comment="")
        raise AssertionError("another reviewer could submit")
    except PermissionError:
        pass


def test_an_unknown_mock_server_fault_is_refused_by_name(capsys):
    """A typo in --faults would otherwise serve answers and make a fault test pass for nothing."""
    with pytest.raises(SystemExit) as exit:
        main(["mock-server", "--faults", "500,garbeld", "--port", "0"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "garbeld" in err and "garbled" in err


@pytest.mark.parametrize(
    "bad_id",
    ["请用三句话解释光合作用", "ما هي عاصمة المغرب", "What is the capital of Finland?", "x" * 200],
)
def test_a_prompt_in_the_id_field_is_never_quoted_in_the_error(project, capsys, bad_id):
    """A held-out pool line whose id field holds text (a prompt pasted into the wrong column):
    the import is refused naming the file and line, and the text is in no message."""
    project.suite("s")
    pool = project.root / "pool.jsonl"
    pool.write_text(
        json.dumps({"id": "ok1", "prompt": "fine"})
        + "\n"
        + json.dumps({"id": bad_id, "prompt": "the prompt"}, ensure_ascii=False)
        + "\n",
        encoding="utf-8",
    )
    assert run_cli(capsys, "vault", "init")[0] == 0
    code, err = run_cli(capsys, "pool", "import", str(pool), "--suite", "s", "--heldout")
    assert code == 2 and "pool.jsonl:2:" in err and "id" in err and "Traceback" not in err
    assert bad_id not in err and bad_id[:12] not in err


# whitespace in several scripts' spacing: ASCII, CRLF, the ideographic space, NBSP and an em space
BLANK_PROMPTS = [" ", "\n\t ", "\r\n", "\u3000", "\u00a0\u2003"]


def test_a_blank_prompt_is_refused_where_items_come_in(project, capsys):
    """A prompt of whitespace only asks nothing and would pay for an answer to nothing: an import
    and a public pool's run refuse it, naming each line (a system turn does not make it a
    question)."""
    project.suite("s")
    lines = [json.dumps({"id": "ok", "prompt": "fine"})]
    lines += [json.dumps({"id": f"b{i}", "prompt": p}) for i, p in enumerate(BLANK_PROMPTS)]
    turns = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "\u3000"}]
    lines.append(json.dumps({"id": "m", "messages": turns}))
    pool = project.root / "pool.jsonl"
    pool.write_text("\n".join(lines) + "\n")
    assert run_cli(capsys, "vault", "init")[0] == 0
    code, err = run_cli(capsys, "pool", "import", str(pool), "--suite", "s", "--heldout")
    assert code == 2 and "Traceback" not in err
    assert f"{len(lines) - 1} bad item(s); nothing was imported" in err
    for n in range(2, len(lines) + 1):
        assert f"pool.jsonl:{n}: item " in err
    assert err.count("the prompt is blank (only whitespace)") == len(lines) - 1
    project.suite(lines=lines)
    code, err = run_cli(capsys, "run", project.config(yaml.safe_dump(VALID)), "-q")
    assert code == 2 and "bad item(s); nothing was run" in err and "items.jsonl:7: item 'm'" in err


def test_a_pool_file_with_a_byte_order_mark_and_crlf_lines_is_read_as_written(
    project, cli, mock_server
):
    """Editors on Windows save UTF-8 with a byte-order mark and CRLF line ends: the first item is
    not a JSON error, and each prompt reaches the model exactly as written."""
    from harness.mockserver import MockBehaviour

    items = [
        {"id": "a", "prompt": "第一行\r\nsecond line"},
        {"id": "b", "prompt": "ما هي عاصمة المغرب؟"},
    ]
    d = project.suite()
    raw = "".join(json.dumps(i, ensure_ascii=False) + "\r\n" for i in items) + "\r\n"
    (d / "items.jsonl").write_bytes(b"\xef\xbb\xbf" + raw.encode("utf-8"))
    mock_server.behaviour = MockBehaviour(record_bodies=True)
    cfg = {
        **VALID,
        "providers": {"p": {**VALID["providers"]["p"], "base_url": mock_server.url + "/v1"}},
    }
    assert cli("run", project.config(yaml.safe_dump(cfg)), "-q")[0] == 0
    sent = sorted(json.loads(b)["messages"][-1]["content"] for b in mock_server.stats.bodies)
    assert sent == sorted(i["prompt"] for i in items)
