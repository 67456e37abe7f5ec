"""The live window: the arena is a stream, and what a pool should look like is the distribution of
its *recent* prompts. A source with a timestamp column (`source.timestamp`) is cut to its last N
days, counted back from its newest prompt (a source read a week late still has a full window);
drift is how far a version's strata are from the window's, as total variation per stratify key."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass

from ..errors import ConfigError
from .draw import marginal_distances
from .source import Candidate

DAY = 86400.0


def parse_days(text: str, flag: str) -> float:
    """'30d', '30' or '7.5d' as days."""
    if not re.fullmatch(r"\d+(\.\d+)?d?", text.strip()) or float(text.strip().rstrip("d")) == 0:
        raise ConfigError(f"{flag}: expected a number of days such as 30d, not {text!r}")
    return float(text.strip().rstrip("d"))


@dataclass
class Window:
    days: float
    start: float  # seconds since the epoch
    end: float  # the newest prompt's time
    in_window: int
    older: int
    undated: int  # rows without a usable timestamp (left out)

    def summary(self) -> dict:
        return asdict(self)


def recent(candidates: list[Candidate], days: float, *, where: str) -> tuple[list, Window]:
    """The candidates of the last `days` days of the source, and what was cut."""
    dated = [c for c in candidates if c.time is not None]
    if not dated:
        raise ConfigError(
            f"{where}: no source row has a usable timestamp (source.timestamp: a number of "
            "seconds or milliseconds, or an ISO 8601 date): a window needs them"
        )
    end = max(c.time for c in dated)
    start = end - days * DAY
    kept = [c for c in dated if c.time >= start]
    return kept, Window(
        days, start, end, len(kept), len(dated) - len(kept), len(candidates) - len(dated)
    )


def drift(window: list[Candidate], pool_metadata: list[dict], keys: list[str]) -> dict:
    """Per stratify key, the total variation distance between the window's shares and the pool's;
    `max` is the largest."""
    source = Counter(tuple(c.metadata.get(k, "") for k in keys) for c in window)
    pool = Counter(tuple(str(m.get(k, "")) for k in keys) for m in pool_metadata)
    by_key = marginal_distances(dict(source), dict(pool), keys)
    return {"by_key": by_key, "max": max(by_key.values(), default=0.0)}
