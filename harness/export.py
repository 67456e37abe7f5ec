"""The export chokepoint: the only code that writes items or outputs outside the vault, and only
what `policy` allows. Every export is written with a manifest (what, under which rule, when, hashes)
so an audit can replay the decision; every refusal names the rule and the pool or item ids."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from . import clock
from .egress import GATE
from .errors import HoldoutError
from .policy import Embargo, decide_output, decide_pool
from .sealed import reveal


def _write(out: Path, name: str, rows: list[dict], *, manifest: dict, vault=None) -> dict:
    """The rows and their manifest; the manifest is signed with the vault's key when there is a
    vault (`holdout verify FILE.manifest.json` checks it)."""
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    path = out / f"{name}.jsonl"
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


def export_outputs(
    ctx, purpose: str, out: Path, *, lab: str | None, embargo: Embargo
) -> tuple[dict | None, list[dict]]:
    """Export a run's outputs that the providers' terms allow for `purpose` (and only `lab`'s, if
    given). Outputs of a held-out run echo its prompts: they share the pool's fate, under the same
    embargo as its items."""
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
            return None, [
                {"pool": pool, "rule": d.rule, "why": "outputs of a run on this pool: " + d.why}
            ]
    rows, refused = [], {}
    for row in ctx.store.calls(ctx.run_id):
        if not row.ok:
            continue
        if row.model not in terms:
            continue
        d = decide_output(terms[row.model], purpose, lab_of.get(row.model), lab)
        if not d.allowed:
            refused.setdefault((row.model, d.rule, d.why), []).append(row.item_id)
            continue
        prov, ptype, model = providers[row.model]
        rows.append(
            {
                "item_id": row.item_id,
                "epoch": row.epoch,
                "output": reveal(row.output),
                "provenance": {
                    "run": ctx.run_id,
                    "model": row.model,
                    "provider": prov,
                    "provider_type": ptype,
                    "model_id": model,
                    "lab": lab_of.get(row.model),
                    "output_terms": list(terms[row.model]),
                },
            }
        )
    refusals = [
        {"model": m, "rule": rule, "why": why, "item_ids": ids[:20], "count": len(ids)}
        for (m, rule, why), ids in refused.items()
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
