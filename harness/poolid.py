"""A pool version's name, `<suite>@v<N>`: the one place that spells and parses it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import ConfigError

_FORM = re.compile(r"(?P<suite>[^@\s]+)@v(?P<version>[1-9][0-9]*)")


@dataclass(frozen=True, order=True)
class PoolId:
    suite: str
    version: int

    @classmethod
    def parse(cls, text: str) -> "PoolId":
        """`arena@v3` → PoolId("arena", 3); anything else is a ConfigError that says the form."""
        match = _FORM.fullmatch(str(text))
        if match is None:
            raise ConfigError(
                f"{text!r} is not a pool version: expected <suite>@v<N>, e.g. arena@v3 "
                "(see `holdout pool list`)"
            )
        return cls(match["suite"], int(match["version"]))

    def next(self) -> "PoolId":
        return PoolId(self.suite, self.version + 1)

    def __str__(self) -> str:
        return f"{self.suite}@v{self.version}"
