"""YAML and JSON-schema loading that remembers where every key was, for error messages."""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import ConfigError

Path_ = tuple  # a key path: ("models", 0, "provider")

SECRET_HINTS = ("key", "token", "secret", "password")


def key_path(path: Path_) -> str:
    """("models", 0, "provider") -> "models[0].provider"."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


class CoreLoader(yaml.SafeLoader):
    """YAML 1.2 core scalars, so a config means what it says: only true/false are booleans (`on:`,
    `yes`, `no`, `off` stay strings), `012` is twelve, `1:30` is text, and `1e3` is a number."""


CoreLoader.yaml_implicit_resolvers = {
    first: [
        (tag, rx)
        for tag, rx in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
CoreLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
CoreLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
CoreLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _core_int(loader, node):
    text = loader.construct_scalar(node)
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text)


def _core_float(loader, node):
    """A float; a whole one (2.0, 1e3) is read as the integer it is, so `concurrency: 2.0` means
    2."""
    value = yaml.SafeLoader.construct_yaml_float(loader, node)
    return int(value) if math.isfinite(value) and value.is_integer() else value


CoreLoader.add_constructor("tag:yaml.org,2002:int", _core_int)
CoreLoader.add_constructor("tag:yaml.org,2002:float", _core_float)

# A config is small: more nodes than this (aliases expanding, a "billion laughs") or deeper nesting
# is refused.
MAX_NODES = 100_000
MAX_DEPTH = 64


def _check_values(file: Path, data: Any, path: Path_, marks: dict[Path_, int]) -> None:
    """NaN and infinity are never a setting (a budget of .inf is no budget), and text must be
    Unicode (YAML's \\u escapes can spell half a surrogate pair): refuse them where they are."""
    where = lambda: f"{file}:{_line_of(path, marks, 1)}: {key_path(path)}"  # noqa: E731
    if isinstance(data, float) and not math.isfinite(data):
        raise ConfigError(f"{where()}: expected a finite number, found {data}")
    if isinstance(data, str):
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError(
                f"{where()}: the text holds a lone surrogate (a \\u escape of half a character); "
                "not valid Unicode"
            ) from None
    if isinstance(data, dict):
        for k, v in data.items():
            _check_values(file, k, path, marks)
            _check_values(file, v, path + (k,), marks)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            _check_values(file, v, path + (i,), marks)


def load_yaml(file: Path) -> tuple[Any, dict[Path_, int]]:
    """Parse a YAML file; return the data and a map key path -> line number."""
    try:
        text = Path(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: file not found") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{file}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise ConfigError(f"{file}: cannot read ({e.strerror})") from None
    loader = None
    try:
        loader = CoreLoader(text)  # the reader rejects control characters already here
        node = loader.get_single_node()
        if node is None:
            raise ConfigError(f"{file}: the file is empty; expected a YAML mapping")
        marks: dict[Path_, int] = {}
        _record_marks(file, node, (), marks=marks, visited=[0])
        data = loader.construct_document(node)
        _check_values(file, data, (), marks)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else str(file)
        raise ConfigError(f"{where}: bad YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{file}: bad YAML: {e}") from None
    except RecursionError:
        raise ConfigError(
            f"{file}: nested deeper than a config can be (over {MAX_DEPTH} levels)"
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, marks


def _record_marks(
    file: Path, node: yaml.Node, path: Path_, *, marks: dict[Path_, int], visited: list
) -> None:
    """Line numbers by key path; also the guard against documents that expand (aliases) or nest
    without bound."""
    visited[0] += 1
    if visited[0] > MAX_NODES:
        raise ConfigError(
            f"{file}:{node.start_mark.line + 1}: the document expands to more than {MAX_NODES:,} "
            "values (aliases repeating aliases?); a config is never that large"
        )
    if len(path) > MAX_DEPTH:
        raise ConfigError(
            f"{file}:{node.start_mark.line + 1}: {key_path(path[:3])}...: nested deeper than "
            f"{MAX_DEPTH} levels (a recursive alias?)"
        )
    marks[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set = set()
        for knode, vnode in node.value:
            key = knode.value
            if key in seen:
                raise ConfigError(
                    f"{file}:{knode.start_mark.line + 1}: {key_path(path + (key,))}: duplicate key"
                )
            seen.add(key)
            _record_marks(file, vnode, path + (key,), marks=marks, visited=visited)
            marks[path + (key,)] = knode.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, child in enumerate(node.value):
            _record_marks(file, child, path + (i,), marks=marks, visited=visited)


def _read_schema(name: str) -> dict:
    return json.loads(
        resources.files("harness").joinpath("schemas", f"{name}.schema.json").read_text()
    )


@lru_cache(maxsize=None)
def schema(name: str) -> dict:
    """A JSON schema shipped in harness/schemas/. Run and suite schemas embed the grader schema, so
    a grader's errors carry their line numbers like any other key."""
    s = _read_schema(name)
    if name in ("run", "suite"):
        grader = _read_schema("grader")
        for k in ("$id", "$schema", "title"):
            grader.pop(k)
        s.setdefault("$defs", {}).update(grader.pop("$defs"))
        s["$defs"]["grader"] = grader
        s["properties"]["graders"]["items"] = {"$ref": "#/$defs/grader"}
    return s


@lru_cache(maxsize=None)
def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema(name))


def validate(
    data: Any,
    schema_name: str,
    file: Path | str,
    *,
    marks: dict[Path_, int] | None = None,
    line: int | None = None,
    quote: bool = True,
) -> None:
    """Raise ConfigError listing every schema violation, each with file, line, key path, expected,
    found. `quote=False` (pool items, which may be held-out) names what was found by its kind, never
    its value."""
    errors = sorted(
        _validator(schema_name).iter_errors(data), key=lambda e: list(map(str, e.absolute_path))
    )
    if errors:
        msgs = [describe(e, file, marks or {}, line=line, quote=quote) for e in errors]
        raise ConfigError("\n".join(dict.fromkeys(msgs)))


def _line_of(path: Path_, marks: dict[Path_, int], default: int | None) -> int | None:
    while path not in marks and path:
        path = path[:-1]
    return marks.get(path, default)


def _found_value(value: Any, path: Path_, quote: bool = True) -> str:
    if any(h in str(p).lower() for p in path for h in SECRET_HINTS) and isinstance(value, str):
        return "a string (not shown)"
    kind = {
        dict: "a mapping",
        list: "a list",
        str: "the string",
        bool: "the boolean",
        type(None): "nothing (null)",
        int: "the number",
        float: "the number",
    }.get(type(value), type(value).__name__)
    if not quote:
        return {
            "the string": "a string (not shown)",
            "the number": "a number",
            "the boolean": "a boolean",
        }.get(kind, kind)
    if isinstance(value, (dict, list)) or value is None:
        return kind
    shown = repr(value)
    return f"{kind} {shown[:60] + '...' if len(shown) > 60 else shown}"


def describe(
    error: jsonschema.ValidationError,
    file: Path | str,
    marks: dict[Path_, int],
    *,
    line: int | None,
    quote: bool = True,
) -> str:
    """One line a person can act on: where, which key, what was expected, what was found."""
    path = tuple(error.absolute_path)

    def _found(value, p):
        return _found_value(value, p, quote)

    def where(p):
        return f"{file}:{_line_of(p, marks, line)}" if _line_of(p, marks, line) else f"{file}"

    v, s = error.validator, error.schema
    if v == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(s.get("properties", {}))
        extra = [k for k in error.instance if k not in allowed]
        return "\n".join(
            f"{where(path + (k,))}: {key_path(path + (k,))}: unknown key '{k}'; expected one of: "
            f"{', '.join(allowed)}"
            for k in extra
        )
    if v == "required":
        missing = next((k for k in error.validator_value if k not in error.instance), "?")
        return f"{where(path)}: {key_path(path)}: missing required key '{missing}'"
    if v == "oneOf" and isinstance(error.instance, dict):
        options = [" or ".join(o.get("required", [])) for o in error.validator_value]
        return f"{where(path)}: {key_path(path)}: expected exactly one of: {', '.join(options)}"
    if v == "type":
        expected = (
            error.validator_value
            if isinstance(error.validator_value, str)
            else " or ".join(error.validator_value)
        )
        article = "an" if expected[0] in "aeiou" else "a"
        return (
            f"{where(path)}: {key_path(path)}: expected {article} {expected}, found "
            f"{_found(error.instance, path)}"
        )
    if v == "enum":
        return (
            f"{where(path)}: {key_path(path)}: expected one of: "
            f"{', '.join(map(str, error.validator_value))}; "
            f"found {_found(error.instance, path)}"
        )
    if v == "pattern" and path and path[-1] == "api_key_env":
        return (
            f"{where(path)}: {key_path(path)}: expected the NAME of an environment variable "
            "(e.g. OPENAI_API_KEY), "
            f"not the key itself; found {_found(error.instance, path)}"
        )
    if v == "pattern":
        return (
            f"{where(path)}: {key_path(path)}: expected text matching "
            f"{error.validator_value}, found {_found(error.instance, path)}"
        )
    bounds = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}
    if v in bounds:
        return (
            f"{where(path)}: {key_path(path)}: expected a number {bounds[v]} "
            f"{error.validator_value}, found {_found(error.instance, path)}"
        )
    if v in ("minItems", "minLength"):
        return (
            f"{where(path)}: {key_path(path)}: expected at least {error.validator_value} "
            f"{'items' if v == 'minItems' else 'characters'}"
        )
    if not quote:
        return f"{where(path)}: {key_path(path)}: fails the schema's '{v}' rule (value not shown)"
    return f"{where(path)}: {key_path(path)}: {error.message[:200]}"
