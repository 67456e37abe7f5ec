"""Rule graders: deterministic checks of an output, scored in [0, 1]. No calls, no text written anywhere."""
from __future__ import annotations

import importlib
import json
import re
import unicodedata

import jsonschema

from ..errors import ConfigError
from ..sealed import reveal

NUMBER = re.compile(r"[-+]?\d[\d,]*\.?\d*(?:[eE][-+]?\d+)?")


def normalize(text: str) -> str:
    """Case, accents, punctuation and spacing do not matter."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


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

    def __init__(self, name: str, spec: dict):
        self.name, self.spec = name, spec
        self.type = spec["type"]
        self.on = spec.get("on", "pattern" if self.type in ("json_schema", "python") or
                           (self.type == "regex" and "pattern" in spec and not re.compile(spec["pattern"]).groups)
                           else "reference")
        try:
            self.pattern = re.compile(spec["pattern"], re.S) if "pattern" in spec else None
        except re.error as e:
            raise ConfigError(f"grader '{name}': rules.pattern is not a valid regular expression ({e})") from None
        if self.type == "regex" and self.pattern is None:
            raise ConfigError(f"grader '{name}': a regex rule needs 'pattern'")
        if self.type == "json_schema":
            if "schema" not in spec:
                raise ConfigError(f"grader '{name}': a json_schema rule needs 'schema'")
            self.validator = jsonschema.Draft202012Validator(spec["schema"])
        if self.type == "python":
            module, _, func = spec.get("function", ":").partition(":")
            try:
                self.function = getattr(importlib.import_module(module), func)
            except (ImportError, AttributeError) as e:
                raise ConfigError(f"grader '{name}': cannot load rules.function {spec.get('function')!r} ({e})") from None

    def grade(self, output, item) -> tuple[float | None, dict]:
        """(score, detail) with score None when the rule does not apply (e.g. no reference): never a guess."""
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
            return float(m is not None and normalize(m.group(1)) == normalize(ref)), {"extracted": m is not None}
        if t == "numeric":
            got = _number(self.pattern.search(out).group(1) if self.pattern and self.pattern.search(out) else out)
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
            result = self.function(out, item)
            return (float(result) if result is not None else None), {}
        raise AssertionError(t)
