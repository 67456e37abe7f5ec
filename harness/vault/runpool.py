"""A vault pool as a run sees it: sealed items, an encrypted store, the ledger, and the retention
rule."""

from __future__ import annotations

from ..errors import ConfigError
from ..identity import ItemDigest
from ..policy import check_retention
from ..poolid import PoolId
from .keys import VaultError
from .pools import Vault


def open_heldout_pool(config, suite, recorded: str | None = None):
    """The pool a run uses: the config's (for a new run) or the one it recorded (grading,
    reports)."""
    from ..pool import PoolHandle

    vault = Vault.open(config.workspace)
    if recorded:
        pool_id = recorded
    elif config.pool in ("heldout", "active"):
        pool_id = vault.active_pool(suite.name)
        if pool_id is None:
            raise VaultError(
                f"{config.where('pool')}: suite '{suite.name}' has no active pool in the vault "
                f"(import one with `holdout pool import FILE --suite {suite.name} --heldout`, "
                "then `holdout pool activate`)"
            )
    else:
        try:
            named = PoolId.parse(config.pool)
        except ConfigError:
            raise ConfigError(
                f"{config.where('pool')}: {config.pool!r} is not a pool: expected public, heldout "
                "or a vault version <suite>@v<N> such as arena@v3 (see `holdout pool list`)"
            ) from None
        if named.suite != suite.name:
            raise ConfigError(
                f"{config.where('pool')}: pool {named} belongs to suite '{named.suite}', "
                f"not '{suite.name}'"
            )
        pool_id = str(named)
    manifest = vault.manifest(pool_id)
    if not recorded and manifest["status"] == "retired" and manifest["license_class"] == "heldout":
        raise VaultError(
            f"{config.where('pool')}: pool {pool_id} is retired; run against the active pool "
            "instead"
        )
    if (
        not recorded
        and manifest["status"] == "draft"
        and manifest["license_class"] == "heldout"
        and not config.allow_draft
    ):
        raise VaultError(
            f"{config.where('pool')}: pool {pool_id} is a draft: a future held-out test set, and "
            "every "
            "model it is sent to sees it. Activate it first (`holdout pool activate`), or set "
            "`allow_draft: true` in the config to send it anyway (recorded in the run and on its "
            "scorecards). Nothing was sent."
        )
    check_retention(config, pool_id, manifest.get("max_retention"))
    # arm the egress gate before anything can be written: with this version's text, and every
    # other held-out version's of the suite (a retired version is still secret, and a provider
    # that saw it may echo it back, say as the id of the model that served)
    vault.protect(pool_id)
    for other in vault.pools(suite.name):
        if other["id"] != pool_id:
            vault.protect(other["id"])
    ledger = vault.ledger

    async def on_sent(item_id, provider, model, role="model"):
        """Before each request: the exposure is committed first (a failed write raises; nothing is
        sent). After an answer, the upstream a gateway says it passed the request to (role
        "upstream")."""
        await ledger.record(
            pool_id, item_id, provider, model=model, run_id=config.run_id, role=role
        )

    heldout = manifest["license_class"] == "heldout"
    cipher = vault.output_cipher() if heldout else None
    return PoolHandle(
        name=pool_id,
        draft=manifest["status"] == "draft",
        count=manifest["items"],
        items=lambda: vault.stream_items(pool_id),
        heldout=heldout,
        cipher=cipher,
        digest=ItemDigest(cipher.digest_key if cipher else None),
        on_sent=on_sent,
        max_retention=manifest.get("max_retention"),
        closers=[vault.anchor_ledger],
    )
