"""The export chokepoint: the only code that writes items or outputs outside the vault, and only
what `policy` allows. Every export is written with a manifest (what, under which rule, when, hashes)
so an audit can replay the decision; every refusal names the rule and the pool or item ids."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from pathlib import Path

from . import clock
from .egress import GATE
from .errors import HoldoutError
from .policy import Embargo, decide_output, decide_pool
from .sealed import reveal


def _csv(rows: list[dict]) -> str:
    """Rows as CSV, nested values flattened to dotted columns (a list or dict deeper down as JSON);
    every field quoted where it needs to be (multi-line prompts, commas, quotes)."""

    def flat(obj, prefix=""):
        for k, v in obj.items():
            if isinstance(v, dict):
                yield from flat(v, f"{prefix}{k}.")
            else:
                yield (
                    f"{prefix}{k}",
                    json.dumps(v, ensure_ascii=False) if isinstance(v, list) else v,
                )

    flats = [dict(flat(r)) for r in rows]
    columns = list(dict.fromkeys(k for r in flats for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(flats)
    return buf.getvalue()


def _write(
    out: Path, name: str, rows: list[dict], *, manifest: dict, vault=None, fmt: str = "jsonl"
) -> dict:
    """The rows (JSONL or CSV) and their manifest; the manifest is signed with the vault's key when
    there is a vault (`holdout verify FILE.manifest.json` checks it)."""
    if fmt == "csv":
        data = _csv(rows)
    else:
        data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    path = out / f"{name}.{fmt}"
    # text the policy released is written as is: the gate still refuses sealed values and checks the
    # destination
    GATE.write_text(path, data, scan=False)
    manifest = {
        **manifest,
        "file": path.name,
        "rows": len(rows),
        "sha256": hashlib.sha256(data.encode()).hexdigest(),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(clock.now())),
    }
    if vault is not None:
        manifest = vault.sign(manifest)
    GATE.write_json(out / f"{name}.manifest.json", manifest)
    return manifest


def export_items(
    vault, suite: str, purpose: str, *, out: Path, embargo: Embargo
) -> tuple[list[dict], list[dict]]:
    """Export every pool version of the suite that the policy allows. Returns (exported manifests,
    refusals)."""
    now = clock.now()
    exported, refused = [], []
    pools = vault.pools(suite)
    if not pools:
        raise HoldoutError(f"suite '{suite}' has no pools in the vault")
    for m in pools:
        d = decide_pool(m, purpose, now, embargo.days)
        if not d.allowed:
            refused.append({"pool": m["id"], "rule": d.rule, "why": d.why, "items": m["items"]})
            continue
        rows = []
        for line in vault.read_jsonl(m["id"]).decode().splitlines():
            if line.strip():
                item = json.loads(line)
                item["provenance"] = {
                    "pool": m["id"],
                    "license_class": m["license_class"],
                    **m.get("provenance", {}),
                    "created": m["created"],
                    "retired_at": m.get("retired_at"),
                }
                rows.append(item)
        exported.append(
            _write(
                out,
                m["id"].replace("@", "_"),
                rows,
                manifest={
                    "kind": "items",
                    "pool": m["id"],
                    "purpose": purpose,
                    "rule": d.rule,
                    "why": d.why,
                    **embargo.record(),
                    "pool_content_sha256": m["content_sha256"],
                    "canary": m["canary"],
                },
                vault=vault,
            )
        )
    return exported, refused


def _released_outputs(ctx, purpose: str, *, lab: str | None, embargo: Embargo):
    """The run's successful calls whose outputs may leave for `purpose` (only `lab`'s, if given),
    with their provenance; the refusals; and the vault when the run is held-out. Outputs of a
    held-out run echo its prompts: they share the pool's fate, under the same embargo as its
    items."""
    lab_of = {m: name for name, models in ctx.config.labs.items() for m in models}
    terms = {m.name: m.provider.output_terms for m in ctx.config.models}
    providers = {m.name: (m.provider.name, m.provider.type, m.model) for m in ctx.config.models}
    vault = None
    if ctx.pool.heldout:
        pool = ctx.pool.name
        from .vault import Vault

        vault = Vault.open(ctx.config.workspace)
        d = decide_pool(vault.manifest(pool), purpose, clock.now(), embargo.days)
        if not d.allowed:
            why = "outputs of a run on this pool: " + d.why
            return [], [{"pool": pool, "rule": d.rule, "why": why}], vault
    released, refused = [], {}
    for row in ctx.store.calls(ctx.run_id):
        if not row.ok or row.model not in terms:
            continue
        d = decide_output(terms[row.model], purpose, lab_of.get(row.model), lab)
        if not d.allowed:
            refused.setdefault((row.model, d.rule, d.why), []).append(row.item_id)
            continue
        prov, ptype, model = providers[row.model]
        provenance = {
            "run": ctx.run_id,
            "model": row.model,
            "provider": prov,
            "provider_type": ptype,
            "model_id": model,
            "lab": lab_of.get(row.model),
            "output_terms": list(terms[row.model]),
        }
        released.append((row, provenance))
    refusals = [
        {"model": m, "rule": rule, "why": why, "item_ids": ids[:20], "count": len(ids)}
        for (m, rule, why), ids in refused.items()
    ]
    return released, refusals, vault


def export_outputs(
    ctx, purpose: str, out: Path, *, lab: str | None, embargo: Embargo
) -> tuple[dict | None, list[dict]]:
    """Export a run's outputs that the providers' terms allow for `purpose` (and only `lab`'s, if
    given), under the pool's decision when the run is held-out."""
    released, refusals, vault = _released_outputs(ctx, purpose, lab=lab, embargo=embargo)
    rows = [
        {"item_id": r.item_id, "epoch": r.epoch, "output": reveal(r.output), "provenance": p}
        for r, p in released
    ]
    if not rows:
        return None, refusals
    manifest = _write(
        out,
        f"{ctx.run_id}.outputs" + (f".{lab}" if lab else ""),
        rows,
        manifest={
            "kind": "outputs",
            "run": ctx.run_id,
            "purpose": purpose,
            "lab": lab,
            "rule": "allowed",
            "models": sorted({r["provenance"]["model"] for r in rows}),
            "pool": ctx.pool.name,
            **embargo.record(),
        },
        vault=vault,
    )
    return manifest, refusals


def export_results(
    ctx, purpose: str, out: Path, *, lab: str | None, embargo: Embargo, fmt: str = "jsonl"
) -> tuple[dict | None, list[dict]]:
    """Per item, model and epoch: the conversation, the reference, the output and every grade
    (status, score, parsed verdicts), for the outputs `export_outputs` would release: a public
    pool's run in full, a held-out one only where its pool may leave for the purpose."""
    released, refusals, vault = _released_outputs(ctx, purpose, lab=lab, embargo=embargo)
    if not released:
        return None, refusals
    items = ctx.items()
    grades: dict[tuple, dict] = {}
    for g in ctx.store.iter_grades(ctx.run_id):
        grades.setdefault((g["model"], g["item_id"], g["epoch"]), {})[g["grader"]] = {
            "status": g["status"],
            "score": g["score"],
            "detail": g["detail"],
        }
    rows = []
    for r, provenance in released:
        item = items.get(r.item_id)
        rows.append(
            {
                "item_id": r.item_id,
                "epoch": r.epoch,
                "model": r.model,
                "prompt": reveal(item.prompt) if item else None,
                "messages": [
                    {"role": role, "content": reveal(text)} for role, text in item.messages
                ]
                if item
                else None,
                "reference": reveal(item.reference) if item and item.reference else None,
                "output": reveal(r.output),
                "grades": grades.get((r.model, r.item_id, r.epoch), {}),
                "provenance": provenance,
            }
        )
    manifest = _write(
        out,
        f"{ctx.run_id}.results" + (f".{lab}" if lab else ""),
        rows,
        manifest={
            "kind": "results",
            "run": ctx.run_id,
            "purpose": purpose,
            "lab": lab,
            "rule": "allowed",
            "models": sorted({r["model"] for r in rows}),
            "graders": sorted({g for r in rows for g in r["grades"]}),
            "pool": ctx.pool.name,
            **embargo.record(),
        },
        vault=vault,
        fmt=fmt,
    )
    return manifest, refusals
