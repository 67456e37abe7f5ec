"""The boundary in code: who may open sealed text, each for a stated reason. A module that starts
calling `reveal` fails here until it is listed (and its reason reviewed); one that stops must leave
the list."""

from __future__ import annotations

import ast
import re
from pathlib import Path

HARNESS = Path(__file__).resolve().parent.parent / "harness"

# held-out text leaves the process here: the doors the design names (DESIGN.md, README "The
# boundary")
LEAVES = {
    "providers/_chat.py": "the model's request as an OpenAI-style body: the SDK's, plain HTTP's, a "
    "batch line's (door 1)",
    "providers/_anthropic.py": "the model's request (door 1)",
    "grading/judges.py": "the judge's request (door 1)",
    "review/app.py": "the reviewers' page, to a signed-in reviewer (door 2)",
    "view/pages.py": "the maintainers' item page, to a signed-in maintainer, logged (door 3)",
    "view/app.py": "reviewers' comments on an item, on that page (door 3)",
    "review/push.py": "the review push hook: assignments handed to the reviewers' tool a suite "
    "names",
    "export.py": "exports of outputs the policy allows (never a held-out prompt)",
}
# the text is used inside the process and nothing of it is written or sent
COMPUTES = {
    "providers/_replay.py": "a recorded answer's prompt length, for its token count",
    "runner.py": "token estimates for pacing and the budget's worst case; a test failpoint's "
    "message",
    "jobs.py": "a job's input bound, for the budget's worst case",
    "identity.py": "the digest of an item's content (what a grade was made from)",
    "grading/rules.py": "rule grades: the output against the reference",
    "grading/judging.py": "style features of outputs, for length control",
    "safeguards.py": "injection signals and duplicate answers across items",
    "vault/printcache.py": "registering held-out text with the egress gate, so it can find it",
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


# -- layers: each module imports only from its own layer or those below it, and nothing imports in a
# circle (lazy imports inside functions count: they are dependencies too). README "Layout".
LAYERS = [
    (
        "base",
        "errors callkinds clock sealed failpoints sqlite yamlfile pricing denseform fingerprints "
        "logsafety egress nearcopy stats lengthcontrol style textnorm hooks keylane progress "
        "provenance postgres database localpg pgpace workers budget sharedbudget runlock poolid "
        "mockreplies mockbatch mockserver sessions",
    ),
    ("inputs", "providerconfig config graderspecs suite identity policy pool jobs"),
    (
        "records",
        "rows storeschema storedeletes storebatches store lengthref callstats results vault "
        "vault.keys vault.files "
        "vault.ledger vault.gate vault.pools vault.importing vault.source vault.draw vault.window "
        "vault.rotation vault.printcache vault.runpool vault.shared",
    ),
    (
        "engine",
        "providers providers.make providers._sdk providers._chat providers._openai "
        "providers._compatible providers._anthropic "
        "providers._replay providers._openai_batch providers._anthropic_batch limits lanes "
        "retries runner batches calling",
    ),
    (
        "flows",
        "run context grading.rules grading.judges grading.judging grading.engine report paired "
        "safeguards checks qualify linking recorded review review.reviewers review.specs "
        "review.routing review.decisions review.quality review.push review.app scorecard "
        "scorecard.build scorecard.render scorecard.sign export view view.app view.pages "
        "view.queries view.figures view.accesslog",
    ),
    (
        "cli",
        "cli cli.__main__ cli._common cli.runs cli.grading cli.cards cli.exports cli.review "
        "cli.pools cli.poolgate cli.vaults cli.across cli.view cli.tools",
    ),
]


def _modules() -> dict[str, Path]:
    mods = {}
    for path in HARNESS.rglob("*.py"):
        parts = path.relative_to(HARNESS).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name or "harness"] = path
    return mods


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the harness modules it imports (at the top or inside functions)."""
    edges = {}
    for name, path in mods.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[: len(package) - node.level + 1] if node.level > 1 else package
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:
                    sub = f"{target}.{alias.name}" if target else alias.name
                    found.add(sub if sub in mods else target or "harness")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                module = node.module if isinstance(node, ast.ImportFrom) else None
                for alias in node.names:
                    full = module or alias.name
                    if full.startswith("harness."):
                        found.add(full.removeprefix("harness."))
        edges[name] = {t for t in found if t in mods and t != name}
    return edges


def test_every_module_has_a_layer():
    listed = [m for _, names in LAYERS for m in names.split()]
    assert len(listed) == len(set(listed))
    assert set(_modules()) - {"harness"} == set(listed)


def test_no_module_imports_from_a_layer_above_it():
    rank = {m: i for i, (_, names) in enumerate(LAYERS) for m in names.split()}
    rank["harness"] = 0
    upward = [
        f"{m} ({LAYERS[rank[m]][0]}) imports {t} ({LAYERS[rank[t]][0]})"
        for m, targets in _imports(_modules()).items()
        for t in targets
        if rank[t] > rank[m]
    ]
    assert upward == []


def test_no_import_circle():
    edges = _imports(_modules())
    circles, state = [], {}

    def visit(m, path):
        state[m] = "open"
        for t in sorted(edges[m]):
            if state.get(t) == "open":
                circles.append(" -> ".join(path[path.index(t) :] + [t]))
            elif t not in state:
                visit(t, path + [t])
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
    assert circles == []


def test_no_module_is_over_the_size_of_one_idea():
    """About 400 lines (430 at most): past that a module holds more than one idea (README
    "Layout")."""
    sizes = {m: len(p.read_text().splitlines()) for m, p in _modules().items()}
    assert {m: n for m, n in sizes.items() if n > 430} == {}


def test_the_cli_is_a_client():
    """The CLI parses, calls one flow, and prints: it holds no SQL and reaches into no object's
    private members (README "Layout")."""
    sql = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|PRAGMA)\b\s+\S")
    found = []
    for path in (HARNESS / "cli").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            where = f"{path.relative_to(HARNESS)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if sql.search(node.value):
                    found.append(f"{where} SQL")
            elif isinstance(node, ast.Attribute) and node.attr in ("execute", "executemany"):
                found.append(f"{where} .{node.attr}")
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
                if not node.attr.startswith("__") and not (
                    isinstance(node.value, ast.Name) and node.value.id in ("self", "cls", "sys")
                ):
                    found.append(f"{where} {ast.unparse(node)}")
    assert found == []


def test_wide_functions_take_their_details_by_keyword():
    """More than four parameters: all but the first three are keyword-only, so a call says what each
    argument is and two of them cannot be swapped silently."""
    wide = []
    for path in HARNESS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                positional = [a.arg for a in node.args.posonlyargs + node.args.args]
                positional = [a for a in positional if a not in ("self", "cls")]
                if len(positional) + len(node.args.kwonlyargs) > 4 and len(positional) > 3:
                    wide.append(f"{path.relative_to(HARNESS)}:{node.lineno} {node.name}")
    assert wide == []


def test_the_vault_key_never_leaves_its_owner():
    """Only the vault (and the ledger it hands the key to) hold the key: no module reads another
    object's `_key`; the scorecard signer asks the vault for a cipher of its own purpose."""
    readers = []
    for path in HARNESS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("_key", "_mac_key", "_label_key"):
                if not (isinstance(node.value, ast.Name) and node.value.id == "self"):
                    readers.append(f"{path.relative_to(HARNESS)}:{node.lineno}")
    assert readers == []


def test_the_error_tree_names_every_error_a_person_reads():
    """harness/errors.py draws the tree of HoldoutError; a new subclass must be drawn there."""
    import harness.errors

    tree = harness.errors.__doc__
    classes = {}
    for path in HARNESS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                classes[node.name] = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
    errors, grew = {"HoldoutError"}, True
    while grew:
        found = {name for name, bases in classes.items() if bases & errors} - errors
        errors |= found
        grew = bool(found)
    assert len(errors) >= 10  # the walk found the tree (a walk that finds nothing checks nothing)
    assert [e for e in sorted(errors) if f" {e} " not in tree] == []


def test_the_stated_api_exists():
    """harness/__init__.py names the entry points for programs; each must be there to be called."""
    import importlib
    import re

    import harness

    named = re.findall(r"^\s+(harness(?:\.\w+)+)\(", harness.__doc__, flags=re.M)
    assert len(named) >= 8
    for dotted in named:
        parts = dotted.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
            assert callable(obj), dotted
            break
        else:
            raise AssertionError(f"{dotted} cannot be imported")


def test_the_readme_layout_names_every_room():
    """README "Layout": every module and package of harness/ has its line."""
    readme = (HARNESS.parent / "README.md").read_text()
    layout = readme[readme.index("## Layout") :]
    layout = layout[: layout.find("\n## ", 1)] if "\n## " in layout[1:] else layout
    rooms = [p.name for p in HARNESS.glob("*.py") if p.name != "__init__.py"]
    rooms += [f"{p.name}/" for p in HARNESS.iterdir() if p.is_dir() and p.name != "__pycache__"]
    assert [r for r in rooms if r not in layout] == []
