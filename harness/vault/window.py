"""The live window: the arena is a stream, and what a pool should look like is the distribution of
its *recent* prompts. A source with a timestamp column (`source.timestamp`) is cut to its last N
days, counted back from its newest prompt (a source read a week late still has a full window);
drift is how far a version's strata are from the window's, as total variation per stratify key."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass

from ..errors import ConfigError
from .draw import marginal_distances
from .files import atomic_write
from .source import Candidate, load_source, source_files

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
    files_read: int = 0  # local files read (others were known to end before the window)
    files_skipped: int = 0

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


INDEX = "source-times.json"  # per local source file: size, mtime, rows, and its time range


def _index(vault) -> dict:
    """The signed record of source files already read (no text: paths, sizes, counts, times);
    empty if missing or not signed by this vault (then every file is read again)."""
    try:
        record = json.loads((vault.dir / INDEX).read_bytes())
    except (OSError, ValueError):
        return {}
    return record.get("files", {}) if vault.signed_by_this_vault(record) else {}


def _entry(path: str, rows: list[Candidate]) -> dict:
    st = os.stat(path)
    times = [c.time for c in rows if c.time is not None]
    return {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "rows": len(rows),
        "dated": len(times),
        "first": min(times, default=None),
        "last": max(times, default=None),
    }


def recent_rows(
    vault, source: str, mapping: dict, *, where: str, days: float
) -> tuple[list, Window]:
    """`recent` over the source, reading only the local files that can hold rows of the window: a
    file read before and unchanged since (same size and modification time) whose newest row is
    older than the window is skipped, its counts taken from the vault's record. A daily drop
    appended to a year of files reads the new file and the window's, not the year."""
    files = source_files(source)
    cache = vault.dir / "tmp"
    if not files:  # a dataset id: read whole
        rows = load_source(source, mapping, where, cache_root=cache)
        return recent(rows, days, where=where)
    index = _index(vault)
    # a file's record holds what one mapping read from it (its timestamp column, its prompt
    # column): another suite reading the same file another way has records of its own
    mapped = hashlib.sha256(json.dumps(mapping, sort_keys=True).encode()).hexdigest()[:16]
    key = {f: f"{os.path.abspath(f)}|{mapped}" for f in files}
    read: dict[str, list] = {}
    for f in files:
        known = index.get(key[f])
        st = os.stat(f)
        if not known or (known["size"], known["mtime_ns"]) != (st.st_size, st.st_mtime_ns):
            read[f] = load_source(f, mapping, where, cache_root=cache, files=[f], allow_empty=True)
            index[key[f]] = _entry(f, read[f])
    entries = {f: index[key[f]] for f in files}
    ends = [e["last"] for e in entries.values() if e["last"] is not None]
    start = max(ends, default=0.0) - days * DAY
    for f, e in entries.items():
        if f not in read and e["last"] is not None and e["last"] >= start:
            read[f] = load_source(f, mapping, where, cache_root=cache, files=[f], allow_empty=True)
    atomic_write(vault.dir / INDEX, json.dumps(vault.sign({"files": index})).encode())
    skipped = [e for f, e in entries.items() if f not in read]
    kept, window = recent([c for f in files for c in read.get(f, [])], days, where=where)
    window.older += sum(e["dated"] for e in skipped)
    window.undated += sum(e["rows"] - e["dated"] for e in skipped)
    window.files_read, window.files_skipped = len(read), len(skipped)
    return kept, window
