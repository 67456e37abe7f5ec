"""Grader specs as configs and suites write them, checked when they load: names in order, and the
rules' regular expressions (a bad one is an error with file:line, not a failure at grade time)."""

from __future__ import annotations

import re

from .errors import ConfigError


def compile_pattern(name: str, spec: dict) -> re.Pattern | None:
    """A rule's `pattern`, compiled; a bad one is a config error naming the grader (checked when the
    config loads)."""
    if "pattern" not in spec:
        return None
    try:
        return re.compile(spec["pattern"], re.S)
    except (re.error, RecursionError, OverflowError) as e:
        raise ConfigError(
            f"grader '{name}': rules.pattern is not a valid regular expression "
            f"({getattr(e, 'msg', type(e).__name__)})"
        ) from None


def check_patterns(graders: list, file, marks: dict) -> list[str]:
    """Problems with the regular expressions of `graders` (a config's or suite's list), each with
    file:line."""
    problems = []
    for i, spec in enumerate(graders or ()):
        rule = spec.get("rules") if isinstance(spec, dict) else None
        if isinstance(rule, dict) and "pattern" in rule:
            try:
                compile_pattern(spec.get("name", "rules"), rule)
            except ConfigError as e:
                line = marks.get(("graders", i, "rules", "pattern"), marks.get(("graders", i), 1))
                problems.append(
                    f"{file}:{line}: graders[{i}].rules.pattern: {str(e).split(': ', 1)[1]}"
                )
    return problems


def grader_names(specs: list[dict]) -> list[str]:
    """Grader names in the order the config lists them (the headline is the first, unless
    `headline:` says)."""
    names, used = [], {}
    for spec in specs:
        kind = next((k for k in ("rules", "rubric", "pairwise", "human") if k in spec), None)
        if kind is None:
            continue
        used[kind] = used.get(kind, 0) + 1
        names.append(spec.get("name") or (kind if used[kind] == 1 else f"{kind}-{used[kind]}"))
    return names
