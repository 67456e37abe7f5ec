"""The boundary in code: who may open sealed text, each for a stated reason. A module that starts
calling `reveal` fails here until it is listed (and its reason reviewed); one that stops must leave
the list."""

from __future__ import annotations

import ast
from pathlib import Path

HARNESS = Path(__file__).resolve().parent.parent / "harness"

# held-out text leaves the process here: the doors the design names (DESIGN.md, README "The
# boundary")
LEAVES = {
    "providers/_openai.py": "the model's request (door 1)",
    "providers/_anthropic.py": "the model's request (door 1)",
    "grading/judges.py": "the judge's request (door 1)",
    "review/app.py": "the reviewers' page, to a signed-in reviewer (door 2)",
    "review/queue.py": "the review push hook: assignments handed to the reviewers' tool a suite "
    "names",
    "export.py": "exports of outputs the policy allows (never a held-out prompt)",
}
# the text is used inside the process and nothing of it is written or sent
COMPUTES = {
    "providers/_replay.py": "a recorded answer's prompt length, for its token count",
    "runner.py": "token estimates for pacing and the budget's worst case; a test failpoint's "
    "message",
    "identity.py": "the digest of an item's content (what a grade was made from)",
    "grading/rules.py": "rule grades: the output against the reference",
    "grading/engine.py": "style features of outputs, for length control",
    "safeguards.py": "injection signals and duplicate answers across items",
    "vault/pools.py": "registering held-out text with the egress gate, so it can find it",
}


def _revealers() -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for path in HARNESS.rglob("*.py"):
        rel = path.relative_to(HARNESS).as_posix()
        if rel == "sealed.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            # any use of the name, called or passed on (`map(reveal, ...)` opens text too)
            named = (
                isinstance(node, ast.Name)
                and node.id == "reveal"
                and isinstance(node.ctx, ast.Load)
            )
            if named or isinstance(node, ast.Attribute) and node.attr == "reveal":
                found.setdefault(rel, []).append(node.lineno)
    return found


def test_only_the_listed_modules_open_sealed_text():
    found = _revealers()
    unlisted = {m: lines for m, lines in found.items() if m not in LEAVES and m not in COMPUTES}
    assert unlisted == {}, "these modules call reveal() without a reason listed here"
    assert set(LEAVES) | set(COMPUTES) == set(found), (
        "listed modules that no longer reveal: remove them"
    )


def test_reveal_cannot_be_reached_under_another_name():
    """An alias (`from .sealed import reveal as r`, `sealed.reveal`) would slip past the list
    above."""
    offenders = []
    for path in HARNESS.rglob("*.py"):
        rel = path.relative_to(HARNESS).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and any(
                a.name == "reveal" and a.asname not in (None, "reveal") for a in node.names
            ):
                offenders.append(f"{rel}:{node.lineno}")
            if (
                isinstance(node, ast.Name)
                and node.id == "reveal"
                and not isinstance(node.ctx, ast.Load)
            ):
                if rel != "sealed.py":
                    offenders.append(f"{rel}:{node.lineno}")
    assert offenders == []
