"""Rule graders: deterministic checks of an output, scored in [0, 1]. No calls, no text written
anywhere."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import jsonschema

from ..errors import ConfigError, HoldoutError
from ..graderspecs import compile_pattern
from ..hooks import load_hook
from ..sealed import reveal
from ..textnorm import normalize


class RuleError(HoldoutError):
    """A rule could not grade one output (a Python rule raised or returned something that is not a
    score). The message names the exception type only: an exception's text may quote the output."""


NUMBER = re.compile(r"[-+]?\d[\d,]*\.?\d*(?:[eE][-+]?\d+)?")


def _number(text: str) -> float | None:
    found = NUMBER.findall(text)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def _json_of(text: str):
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    return json.loads(fenced.group(1) if fenced else text)


class RuleGrader:
    kind = "rules"

    def __init__(self, name: str, spec: dict, base_dir: Path | None = None):
        self.name, self.spec = name, spec
        self.type = spec["type"]
        self.pattern = compile_pattern(name, spec)
        self.on = spec.get(
            "on",
            "pattern"
            if self.type in ("json_schema", "python")
            or (self.type == "regex" and self.pattern is not None and not self.pattern.groups)
            else "reference",
        )
        if self.type == "regex" and self.pattern is None:
            raise ConfigError(f"grader '{name}': a regex rule needs 'pattern'")
        if self.type == "json_schema":
            if "schema" not in spec:
                raise ConfigError(f"grader '{name}': a json_schema rule needs 'schema'")
            self.validator = jsonschema.Draft202012Validator(spec["schema"])
        if self.type == "python":
            self.function = load_function(name, spec.get("function", ":"), base_dir)

    def grade(self, output, item) -> tuple[float | None, dict]:
        """(score, detail) with score None when the rule does not apply (e.g. no reference): never a
        guess."""
        out = reveal(output)
        ref = reveal(item.reference) if item.reference is not None else None
        if self.on == "reference" and ref is None:
            return None, {"skipped": "no reference"}
        t = self.type
        if t == "exact":
            return float(out.strip() == ref.strip()), {}
        if t == "normalized":
            return float(normalize(out) == normalize(ref)), {}
        if t == "contains":
            return float(normalize(ref) in normalize(out)), {}
        if t == "regex":
            m = self.pattern.search(out)
            if self.on == "pattern" or not self.pattern.groups:
                return float(m is not None), {}
            return float(m is not None and normalize(m.group(1)) == normalize(ref)), {
                "extracted": m is not None
            }
        if t == "numeric":
            got = _number(
                self.pattern.search(out).group(1)
                if self.pattern and self.pattern.search(out)
                else out
            )
            want = _number(ref)
            if want is None:
                return None, {"skipped": "reference is not a number"}
            tol = self.spec.get("tolerance", 1e-6) * (abs(want) if self.spec.get("relative") else 1)
            return float(got is not None and abs(got - want) <= tol), {"parsed": got is not None}
        if t == "json_schema":
            try:
                value = _json_of(out)
            except ValueError:
                return 0.0, {"valid_json": False}
            return float(self.validator.is_valid(value)), {"valid_json": True}
        if t == "python":
            try:
                result = self.function(out, item)
            except Exception as e:
                raise RuleError(f"the rule function raised {type(e).__name__}") from None
            if result is None:
                return None, {"skipped": "the rule function returned None"}
            # True/False: 1/0
            if not isinstance(result, (int, float)) or math.isnan(result) or not 0 <= result <= 1:
                shown = (
                    type(result).__name__ if not isinstance(result, (int, float)) else repr(result)
                )
                raise RuleError(
                    f"the rule function returned {shown}; expected a score in [0, 1] or None"
                )
            return float(result), {}
        raise AssertionError(t)


def load_function(grader: str, ref: str, base_dir: Path | None):
    """`module:function`, a file next to the file that names it (the suite or the run config), else
    an importable module (harness/hooks.py)."""
    return load_hook(ref, what=f"grader '{grader}': rules.function", base_dir=base_dir)
