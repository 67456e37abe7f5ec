"""The maintainer's loop: draw a version, activate it, watch exposure, rotate when the policy says
so."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from .. import clock
from ..errors import ConfigError
from ..suite import Suite
from . import gate, window
from .draw import draw, groups_of_jsonl, texts_of_jsonl
from .keys import VaultError
from .pools import Vault
from .printcache import keep
from .source import load_source


def draw_pool(
    vault: Vault,
    suite: Suite,
    source: str | None,
    *,
    size: int | None,
    stratify: list[str] | None,
    seed: int | None,
    floor: int | None = None,
    window_days: float | None = None,
) -> tuple[str, dict]:
    """A new draft version drawn from the source (its last `window_days` days, if given); returns
    (pool id, report of ids and numbers)."""
    src = suite.source
    defaults = suite.draw
    source = source or src.get("data")
    if not source:
        raise ConfigError(
            f"{suite.file}: no source to draw from: pass --source or set source.data in the suite"
        )
    size = size or defaults.get("size")
    if not size:
        raise ConfigError(
            f"{suite.file}: how many items? pass --size or set draw.size in the suite"
        )
    stratify = stratify if stratify is not None else defaults.get("stratify", list(suite.strata))
    seed = seed if seed is not None else defaults.get("seed", 0)
    floor = floor if floor is not None else defaults.get("floor", 0)
    window_days = window_days or defaults.get("window_days")
    unknown = [s for s in stratify if s not in (src.get("metadata") or {})]
    if unknown:
        raise ConfigError(
            f"{suite.file}: cannot stratify on {', '.join(unknown)}: not mapped under "
            "source.metadata "
            f"(mapped: {', '.join(src.get('metadata') or {}) or 'none'})"
        )
    candidates, cut = _candidates(vault, suite, source, window_days)
    earlier, earlier_groups = [], set()
    for m in vault.pools(suite.name):
        data = vault.read_jsonl(m["id"])
        earlier += texts_of_jsonl(data)
        earlier_groups |= groups_of_jsonl(data)
    reference = []
    for ref in src.get("reference_sets", []):
        path = (suite.dir / ref) if not Path(ref).is_absolute() else Path(ref)
        try:
            reference += texts_of_jsonl(path.read_bytes())
        except (OSError, ValueError, KeyError) as e:
            raise ConfigError(
                f"{suite.file}: reference set {ref}: cannot read ({type(e).__name__})"
            ) from None
    items, report = draw(
        candidates,
        size,
        stratify,
        seed=seed,
        floor=floor,
        earlier_texts=earlier,
        reference_texts=reference,
        suite=suite.name,
        earlier_groups=earlier_groups,
    )
    tolerance = defaults.get("max_marginal_tv", 0.05)
    off = {k: d for k, d in report["marginals"].items() if d > tolerance}
    if off and items:
        raise VaultError(
            f"{suite.file}: a pool of {len(items)} cannot represent the source's strata: "
            + ", ".join(f"{k} is {d:.3f} from the source's shares" for k, d in off.items())
            + f" (total variation; draw.max_marginal_tv is {tolerance:g}). Ask for a larger "
            "--size, "
            "stratify on fewer keys, or raise draw.max_marginal_tv in the suite. Nothing was "
            "stored."
        )
    _mask_undeclared_labels(vault, report, stratify, suite.strata)
    if not items:
        raise VaultError(
            f"nothing left to draw from {source}: every candidate repeats an earlier version or "
            "a reference set"
        )
    jsonl = "".join(json.dumps(it, ensure_ascii=False) + "\n" for it in items).encode()
    params = {"source": source, "size": size, "stratify": stratify, "seed": seed, "floor": floor}
    if cut is not None:
        params["window_days"] = window_days
        report["window"] = cut.summary()
    pool_id = vault.add_pool(
        suite.name,
        jsonl,
        "heldout",
        strata=[s for s in stratify if s in suite.strata],
        provenance={
            "source": source,
            "distribution": src.get("distribution"),
            "data_license": src.get("license"),
            "drawn": clock.now(),
        },
        extra={"draw": params, "draw_report": report},
    )
    keep(vault, pool_id)  # its gate fingerprints made now and kept, as at import
    return pool_id, report


def _candidates(vault: Vault, suite: Suite, source: str, window_days: float | None):
    """The source's candidates (those of its last `window_days` days, if given) and the Window."""
    if window_days and not suite.source.get("timestamp"):
        raise ConfigError(
            f"{suite.file}: a window of {window_days:g} days needs the source's time: map its "
            "timestamp column as source.timestamp"
        )
    if window_days:
        return window.recent_rows(
            vault, source, suite.source, where=str(suite.file), days=window_days
        )
    return load_source(source, suite.source, str(suite.file), cache_root=vault.dir / "tmp"), None


def drift_of(vault: Vault, suite: Suite, pool_id: str, *, window_days: float | None) -> dict:
    """How far `pool_id`'s strata are from the source's recent window, per stratify key. The window
    is `window_days`, else rotation.window_days, else the version's own draw window, else 30; a
    source without source.timestamp is compared whole (window None)."""
    m = vault.manifest(pool_id)
    params = m.get("draw") or {}
    days = (
        window_days
        or suite.rotation.get("window_days")
        or params.get("window_days")
        or suite.draw.get("window_days")
        or 30.0
    )
    keys = params.get("stratify", list(suite.strata))
    source = params.get("source") or suite.source.get("data")
    if not source:
        raise ConfigError(f"{suite.file}: no source to measure drift against (source.data)")
    dated = bool(suite.source.get("timestamp"))
    rows, w = _candidates(vault, suite, source, days if dated else None)
    metadata = [
        json.loads(line).get("metadata") or {}
        for line in vault.read_jsonl(pool_id).splitlines()
        if line.strip()
    ]
    return {
        "pool": pool_id,
        "window": w.summary() if w else None,
        "stratify": keys,
        **window.drift(rows, metadata, keys),
    }


def _mask_undeclared_labels(vault: Vault, report: dict, stratify: list[str], declared) -> None:
    """Values of a stratify key that the suite does not list under `strata:` (say, topic clusters)
    may be free text about the held-out prompts: the report, and so the manifest and `pool show`,
    name them only by an opaque tag."""
    for row in report["strata"]:
        values = row.pop("values")
        if values:
            row["stratum"] = "/".join(
                v if key in declared else vault.opaque_label(key, v)
                for key, v in zip(stratify, values)
            )


def exposure(vault: Vault, pool_id: str) -> list[dict]:
    """Sends per item and provider, from a ledger whose chain verifies (a changed ledger is refused:
    counts from it could hide exposure)."""
    vault.ledger.check(vault._index().get("ledger_rows", 0))
    rows = vault.ledger.counts(pool_id)
    return [
        {"item_id": i, "provider": p, "sent": n, "first_seen": f, "last_seen": last}
        for i, p, n, f, last in rows
    ]


def rotation_reasons(
    vault: Vault, suite: str, max_exposure: int | None, max_age_days: float | None
) -> list[str]:
    """Why the suite's active pool should rotate now (empty: it should not)."""
    active = vault.active_pool(suite)
    if active is None:
        return [f"suite '{suite}' has no active pool"]
    reasons = []
    if max_exposure:
        spent = defaultdict(int)
        for row in exposure(vault, active):
            if row["sent"] >= max_exposure:
                spent[row["provider"]] += 1
        for provider, n in sorted(spent.items()):
            reasons.append(
                f"{n} item(s) of {active} were sent to provider '{provider}' at least "
                f"{max_exposure} times"
            )
    if max_age_days:
        m = vault.manifest(active)
        age = (clock.now() - m.get("activated_at", m["created"])) / 86400
        if age >= max_age_days:
            reasons.append(f"{active} has been active {age:.1f} days (max {max_age_days:g})")
    return reasons


def rotate(
    vault: Vault,
    suite: Suite,
    max_exposure: int | None,
    *,
    max_age_days: float | None,
    max_drift: float | None = None,
    force: bool = False,
) -> tuple[list[str], str | None, dict | None, bool]:
    """Draw and activate a fresh version if the policy says so, with the latest draw's settings
    (and a new seed). Returns (reasons, new pool id or None, draw report, whether it went live).
    A suite that sets `qualify:` thresholds gets the new version as a draft: it goes live once a
    pilot run qualifies it (`pool qualify`, then `pool activate`)."""
    reasons = rotation_reasons(vault, suite.name, max_exposure, max_age_days)
    active = vault.active_pool(suite.name)
    drift_days = (
        None  # measured drift: the next version is drawn from the window it was measured on
    )
    if max_drift is not None and active is not None:
        d = drift_of(vault, suite, active, window_days=None)
        drift_days = d["window"]["days"] if d["window"] else None
        if d["max"] > max_drift:
            worst = max(d["by_key"], key=d["by_key"].get)
            reasons.append(
                f"{active} drifted from the source's "
                + (f"last {drift_days:g} days" if drift_days else "rows")
                + f": {worst} is {d['max']:.3f} away (total variation; max drift {max_drift:g})"
            )
    if force:
        reasons = reasons or ["forced"]
    if not reasons:
        return [], None, None, False
    # the draw settings of the newest drawn version (the active one may have been imported, not
    # drawn)
    drawn = [m for m in vault.pools(suite.name) if m.get("draw")]
    params = drawn[-1]["draw"] if drawn else {}
    version = len(vault.pools(suite.name)) + 1
    pool_id, report = draw_pool(
        vault,
        suite,
        params.get("source"),
        size=params.get("size"),
        stratify=params.get("stratify"),
        seed=(params.get("seed") or 0) + version,
        floor=params.get("floor"),
        window_days=drift_days or params.get("window_days"),
    )
    thresholds = gate.thresholds_of(suite)
    if not thresholds:
        vault.activate(pool_id, thresholds=thresholds)
    return reasons, pool_id, report, not thresholds
