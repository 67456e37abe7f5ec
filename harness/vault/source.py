"""Reading the arena source: local jsonl/json/parquet/csv files (a glob loads several), read
directly with no cache, or a dataset id that `datasets` can load, mapped to candidates by the
suite's `source:` section (prompt, id, metadata, group and timestamp columns)."""

from __future__ import annotations

import csv
import glob
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..errors import ConfigError


@dataclass
class Candidate:
    source_id: str
    text: str
    metadata: dict
    group: str | None = None  # the source's group column: translations and variants of one prompt
    time: float | None = None  # the source's timestamp column, in seconds since the epoch


def parse_time(value) -> float | None:
    """Seconds since the epoch from a timestamp column: a number (seconds, or milliseconds when
    past 1e11), an ISO 8601 string (UTC unless it says otherwise) or a datetime (parquet); None if
    it is none of them."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            try:
                return parse_time(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
            except ValueError:
                return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return value / 1000 if value > 1e11 else float(value)
    return None


def _get(row: dict, path: str):
    """A value by column path: 'turns[0].content', 'question_id'."""
    value = row
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            value = value[int(part[1:-1])]
        else:
            value = value[part]
    return value


def _local_rows(path: Path):
    """Rows of one local file, streamed, with no cache or temporary copy anywhere."""
    kind = path.suffix.lower()
    if kind == ".jsonl":
        with open(path, "rb") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)
    elif kind == ".json":
        data = json.loads(path.read_bytes())
        if isinstance(data, dict):  # {"data": [...]}, as some exports write it
            data = data.get("data", [])
        yield from data if isinstance(data, list) else []
    elif kind == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            yield from csv.DictReader(f)
    elif kind == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=2048):
            yield from batch.to_pylist()
    else:
        raise ConfigError(
            f"{path}: unsupported source file (expected .jsonl, .json, .parquet or .csv)"
        )


def _hub_rows(source: str, cache_root: Path, where: str):
    """A dataset id through `datasets`, cached only in a 0700 directory inside the vault that is
    removed on every exit (SIGTERM included: the CLI turns it into an exit); one left by `kill -9`
    is swept next time."""
    import datasets

    datasets.disable_progress_bars()
    sweep_stale_caches(cache_root)
    cache_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"draw-{os.getpid()}-", dir=cache_root) as cache:
        try:
            ds = datasets.load_dataset(source, split="train", cache_dir=cache)
        except Exception as e:  # noqa: BLE001 - any loading failure is the same message to a person
            raise ConfigError(
                f"{where}: cannot load source {source!r}: no such file, and as a dataset id: "
                f"{type(e).__name__}"
            ) from None
        yield from ds


def sweep_stale_caches(cache_root: Path) -> int:
    """Remove source caches whose drawing process is gone (killed with -9). Returns how many."""
    removed = 0
    for d in cache_root.glob("draw-*") if cache_root.is_dir() else ():
        try:
            pid = int(d.name.split("-")[1])
            os.kill(pid, 0)
            continue  # still drawing
        except (ValueError, IndexError, ProcessLookupError):
            pass
        except PermissionError:
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed += 1
    return removed


def source_files(source: str) -> list[str]:
    """The local files a source names (a glob, or one file); [] for a dataset id."""
    if any(c in source for c in "*?["):
        return sorted(glob.glob(source))
    return [source] if Path(source).is_file() else []


def load_source(
    source: str,
    mapping: dict,
    where: str,
    *,
    cache_root: Path,
    files: list[str] | None = None,
    allow_empty: bool = False,
) -> list[Candidate]:
    """Rows of the source (or of `files`, some of its files) as candidates. Local files (jsonl,
    json, csv, parquet) are read directly, one by one (so `$file` can name a file's stem); a
    dataset id or directory goes through `datasets` (`_hub_rows`)."""
    files = source_files(source) if files is None else files
    prompt_col, id_col, group_col, time_col = (
        mapping.get("prompt", "prompt"),
        mapping.get("id"),
        mapping.get("group"),
        mapping.get("timestamp"),
    )
    meta_cols = mapping.get("metadata", {})
    out: list[Candidate] = []
    parts = [(Path(f).stem, _local_rows(Path(f))) for f in files]
    if not files and not allow_empty:
        parts = [("", _hub_rows(source, cache_root, where))]
    for stem, rows in parts:
        try:
            for n, row in enumerate(rows):
                try:
                    text = _get(row, prompt_col)
                    sid = f"{stem}:{_get(row, id_col) if id_col else n}"
                    meta = {
                        k: (stem if col == "$file" else _get(row, col))
                        for k, col in meta_cols.items()
                    }
                    group = None if group_col is None else _get(row, group_col)
                    time = None if time_col is None else parse_time(_get(row, time_col))
                except (KeyError, IndexError, TypeError):
                    raise ConfigError(
                        f"{where}: source row {n} of {stem or source} has no column "
                        f"{prompt_col!r} / {id_col!r} / {group_col!r} / {time_col!r} / "
                        f"{list(meta_cols.values())} (see source: in the suite)"
                    ) from None
                if isinstance(text, str) and text.strip():
                    out.append(
                        Candidate(
                            sid,
                            text,
                            {k: str(v) for k, v in meta.items()},
                            None if group is None else str(group),
                            time,
                        )
                    )
        except (ValueError, UnicodeDecodeError, csv.Error) as e:
            raise ConfigError(
                f"{where}: source {stem or source}: unreadable ({type(e).__name__}); rows are "
                "not shown"
            ) from None
    if not out and not allow_empty:
        raise ConfigError(f"{where}: the source {source!r} has no rows with a prompt")
    return out
