"""Suites (public definitions in the repo) and their items (JSONL pools)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .errors import ConfigError
from .sealed import Sealed
from .yamlfile import load_yaml, validate

ITEM_KEYS = {"id", "prompt", "messages", "reference", "metadata"}
ITEM_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")  # as in schemas/item.schema.json


@dataclass(frozen=True, slots=True)
class Item:
    """One prompt. Text fields are `Sealed` when the item comes from a held-out pool."""

    id: str
    messages: tuple  # of (role, content) with content str | Sealed
    reference: str | Sealed | None = None
    metadata: dict = field(default_factory=dict)

    @property
    def prompt(self) -> str | Sealed:
        """The last user turn: what templates and graders refer to as the prompt."""
        return next(c for r, c in reversed(self.messages) if r == "user")


@dataclass(frozen=True)
class Suite:
    name: str
    dir: Path
    file: Path
    description: str = ""
    system: str | None = None
    template: str = "{prompt}"
    strata: tuple[str, ...] = ()
    public_pool: Path | None = None
    graders: tuple[dict, ...] = ()
    # settings checked by suite.schema.json, as written there (their keys are documented in README)
    source: dict = field(default_factory=dict)  # where `pool draw` reads the live stream
    draw: dict = field(default_factory=dict)  # a draw's defaults: size, stratify, dedupe
    rotation: dict = field(default_factory=dict)  # when `pool rotate` retires a version
    license: dict = field(default_factory=dict)  # the source data's licence, embargo_days
    safeguards: dict | None = None  # thresholds of `holdout check`
    qualify: dict = field(default_factory=dict)  # thresholds of `pool qualify` / `pool activate`
    anchors: tuple[str, ...] = ()  # models re-run on every version: they link versions' scores
    min_segment_size: int | None = None  # segments smaller than this are suppressed on cards
    marks: dict = field(default_factory=dict, repr=False)

    def render(self, item: Item) -> list[tuple[str, str | Sealed]]:
        """The chat messages for an item: system prompt, then the item's turns with the template
        applied to the last user turn. Sealed text stays sealed."""
        msgs = list(item.messages)
        last_user = max(i for i, (r, _) in enumerate(msgs) if r == "user")
        role, content = msgs[last_user]
        if self.template != "{prompt}":
            content = (
                content.into(self.template)
                if isinstance(content, Sealed)
                else self.template.replace("{prompt}", content)
            )
        msgs[last_user] = (role, content)
        return ([("system", self.system)] if self.system else []) + msgs


def load_suite(name_or_path: str, suites_dir: Path = Path("suites")) -> Suite:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        file = path
    elif path.is_dir():
        file = path / "suite.yaml"
    else:
        file = suites_dir / name_or_path / "suite.yaml"
    if not file.exists():
        known = (
            sorted(p.parent.name for p in suites_dir.glob("*/suite.yaml"))
            if suites_dir.is_dir()
            else []
        )
        raise ConfigError(
            f"suite '{name_or_path}': {file} not found (suites in {suites_dir}: "
            f"{', '.join(known) or 'none'})"
        )
    data, marks = load_yaml(file)
    if not isinstance(data, dict):
        raise ConfigError(f"{file}:1: expected a mapping (name, template, strata, ...)")
    validate(data, "suite", file, marks=marks)
    from .graderspecs import check_patterns

    problems = check_patterns(data.get("graders"), file, marks)
    if problems:
        raise ConfigError("\n".join(problems))
    template = data.get("template", "{prompt}")
    if "{prompt}" not in template:
        raise ConfigError(
            f"{file}:{marks.get(('template',), 1)}: template: expected the placeholder "
            f"{{prompt}} somewhere in it"
        )
    return Suite(
        name=data["name"],
        dir=file.parent,
        file=file,
        description=data.get("description", ""),
        system=data.get("system"),
        template=template,
        strata=tuple(data.get("strata", ())),
        public_pool=(file.parent / data["public_pool"]) if "public_pool" in data else None,
        graders=tuple(data.get("graders", ())),
        source=data.get("source") or {},
        draw=data.get("draw") or {},
        rotation=data.get("rotation") or {},
        license=data.get("license") or {},
        safeguards=data.get("safeguards"),
        qualify=data.get("qualify") or {},
        anchors=tuple(data.get("anchors", ())),
        min_segment_size=data.get("min_segment_size"),
        marks=marks,
    )


def parse_item(obj, where: str, sealed: bool = False) -> Item:
    """One item from its decoded JSON; raises ConfigError naming `where` (file:line) and the item
    id."""
    ok = (
        isinstance(obj, dict)
        and isinstance(obj.get("id"), str)
        and ITEM_ID.fullmatch(obj["id"])
        and obj.keys() <= ITEM_KEYS
        and (
            isinstance(obj.get("prompt"), str)
            and obj["prompt"]
            and "messages" not in obj
            or isinstance(obj.get("messages"), list)
            and "prompt" not in obj
        )
        and isinstance(obj.get("reference", ""), str)
        and isinstance(obj.get("metadata", {}), dict)
        and all(
            v is None or isinstance(v, (str, int, float)) for v in obj.get("metadata", {}).values()
        )
    )
    if not ok:  # the slow path only when something is wrong: it explains what
        try:
            validate(obj, "item", where, quote=False)
        except ConfigError as e:
            # only a valid id is named: anything else in the id field may be text (a prompt
            # pasted into the wrong field), and a held-out line's text never goes into an error
            label = (
                f" (item {obj['id']!r})"
                if isinstance(obj, dict)
                and isinstance(obj.get("id"), str)
                and ITEM_ID.fullmatch(obj["id"])
                else ""
            )
            raise ConfigError(str(e).replace(f"{where}: (top level)", where) + label) from None
    if "messages" in obj:
        validate(obj, "item", where, quote=False)
        if not any(m["role"] == "user" for m in obj["messages"]):
            raise ConfigError(
                f"{where}: item {obj['id']!r}: messages: expected at least one 'user' turn"
            )
        turns = tuple((m["role"], m["content"]) for m in obj["messages"])
    else:
        turns = (("user", obj["prompt"]),)
    ref = obj.get("reference")
    if sealed:
        turns = tuple((r, Sealed(c, obj["id"])) for r, c in turns)
        ref = Sealed(ref, obj["id"]) if ref is not None else None
    return Item(id=obj["id"], messages=turns, reference=ref, metadata=obj.get("metadata", {}))


# a larger "prompt" is almost always a data error, and would be paid for
MAX_PROMPT_BYTES = 1_000_000


def _encodable(obj) -> bool:
    """Whether every string in `obj` is valid Unicode (JSON's \\u escapes can spell half a surrogate
    pair)."""
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(obj, dict):
        return all(_encodable(k) and _encodable(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(_encodable(v) for v in obj)
    return True


def _not_a_number(name: str):
    raise ValueError(f"{name} is not valid JSON (a value must be a finite number)")


def _parse_line(line: str, where: str, sealed: bool) -> Item:
    if len(line) > MAX_PROMPT_BYTES:
        raise ConfigError(
            f"{where}: the line is {len(line) / 1e6:.1f} MB; items are limited to "
            f"{MAX_PROMPT_BYTES / 1e6:.0f} MB (is this the right file?)"
        )
    try:
        obj = json.loads(line, parse_constant=_not_a_number)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
    except ValueError as e:
        raise ConfigError(f"{where}: {e}") from None
    except RecursionError:
        raise ConfigError(f"{where}: nested too deeply to be an item") from None
    if ("\\ud" in line or "\\uD" in line) and not _encodable(obj):
        raise ConfigError(
            f"{where}: a text holds a lone surrogate (a \\u escape of half a character): not valid "
            "Unicode, and no provider could be sent it"
        )
    return parse_item(obj, where, sealed)


def _decoded_lines(raw_lines, source: str):
    """(line number, text) of non-blank lines; a line that is not UTF-8 is an error naming it."""
    for n, raw in enumerate(raw_lines, 1):
        try:
            line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as e:
            raise ConfigError(
                f"{source}:{n}: not UTF-8 text (byte {e.start} of the line); save the file as UTF-8"
            ) from None
        line = line.removeprefix("\ufeff")  # a byte-order mark, as some editors save UTF-8
        if line.strip():
            yield n, line


def iter_jsonl_items(lines, source: str, sealed: bool = False) -> Iterator[Item]:
    """Items from JSONL lines (str or bytes), streamed. A bad line raises ConfigError with
    `source:line`."""
    for n, line in _decoded_lines(lines, source):
        yield _parse_line(line, f"{source}:{n}", sealed)


def _open_lines(path: Path):
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise ConfigError(f"{path}: pool file not found") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror})") from None


def read_pool_file(path: Path, sealed: bool = False) -> Iterator[Item]:
    """Stream items from a JSONL pool file (memory stays flat however long the pool)."""
    with _open_lines(path) as f:
        yield from iter_jsonl_items(f, str(path), sealed)


def check_pool_lines(
    lines, source: str, *, max_errors: int = 20, refused: str = "nothing was run"
) -> int:
    """Parse every line; return the item count, or raise listing each bad line (bad items are never
    dropped); `refused` says what the error stopped."""
    errors, ids, count = [], set(), 0
    for n, raw in enumerate(lines, 1):
        try:
            decoded = list(_decoded_lines([raw], source))
            if not decoded:
                continue
            item = _parse_line(decoded[0][1], f"{source}:{n}", False)
        except ConfigError as e:
            errors.append(str(e).replace(f"{source}:1:", f"{source}:{n}:", 1))
            continue
        if item.id in ids:
            errors.append(f"{source}:{n}: item id {item.id!r} appears more than once")
        if not any(role == "user" and text.strip() for role, text in item.messages):
            # it asks nothing, and would pay for an answer to nothing (checked here, where items
            # come in, not where a stored version is read: that one is what it is)
            errors.append(f"{source}:{n}: item {item.id!r}: the prompt is blank (only whitespace)")
        ids.add(item.id)
        count += 1
    if errors:
        shown = errors[:max_errors] + (
            [f"... and {len(errors) - max_errors} more"] if len(errors) > max_errors else []
        )
        raise ConfigError(f"{source}: {len(errors)} bad item(s); {refused}:\n" + "\n".join(shown))
    if count == 0:
        raise ConfigError(f"{source}: the pool has no items")
    return count


def check_pool_file(path: Path) -> int:
    with _open_lines(path) as f:
        return check_pool_lines(f, str(path))
