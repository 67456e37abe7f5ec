"""The qualification gate: a version goes live only if its recorded qualification passed the
suite's current thresholds (`qualify:` in suite.yaml), or an override says why, recorded in the
signed index. `pool qualify` (harness/qualify.py) measures; this only reads the record."""

from __future__ import annotations

import hashlib
import json

# threshold -> (metric it bounds, True if the metric must be at least the threshold)
THRESHOLDS = {
    "min_separability": ("separability", True),
    "min_agreement": ("agreement", True),
    "max_brier": ("brier", False),
    "max_source_distance": ("source_distance", False),
    "min_judge_human": ("judge_human", True),
}


def thresholds_of(suite) -> dict:
    return {k: v for k, v in (suite.qualify or {}).items() if k in THRESHOLDS}


def thresholds_digest(thresholds: dict) -> str:
    """Which thresholds a qualification was judged against (a later change asks for a new one)."""
    return hashlib.sha256(json.dumps(thresholds, sort_keys=True).encode()).hexdigest()[:16]


def blockers(state: dict, thresholds: dict) -> list[str]:
    """Why a version (its entry in the index) may not go live under `thresholds` (empty: it
    may)."""
    if not thresholds:
        return []
    q = state.get("qualification")
    if q is None:
        return ["it was never qualified (`holdout pool qualify POOL --pilot RUN`)"]
    if q["thresholds_digest"] != thresholds_digest(thresholds):
        return [
            "it was qualified against other thresholds than the suite's current ones: qualify it "
            "again"
        ]
    return [
        f"{c['metric']} is "
        + ("not computed" if c["value"] is None else f"{c['value']:.3f}")
        + f", {c['threshold']} is {c['bound']:g}"
        + (f" ({c['why']})" if "why" in c else "")
        for c in q["checks"]
        if not c["passed"]
    ]
