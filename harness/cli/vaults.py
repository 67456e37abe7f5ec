"""`holdout vault ...`: create the vault and its key, and verify what is on disk."""

from __future__ import annotations

from ._common import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    _err,
    _out,
    _places,
    _print_json,
    json_flag,
    workspace,
)


def cmd_vault_init(args) -> int:
    from ..vault import Vault

    vault, source = Vault.init(_places(args).workspace)
    _out().print(
        f"vault created at {vault.dir}\nkey: {source}\n"
        "Keep a copy of the key somewhere safe (a password manager or secrets store): without it "
        "the "
        "vault's pools and held-out run outputs cannot be read. To keep it out of the workspace, "
        "move it "
        "and point HOLDOUT_VAULT_KEY_FILE at it, or put its contents in HOLDOUT_VAULT_KEY."
    )
    return 0


def cmd_vault_verify(args) -> int:
    """Exit 0: intact; 3: something was changed outside holdout (each named)."""
    from ..vault import Vault

    vault = Vault.open(_places(args).workspace)
    problems = vault.verify()
    index = vault.index_as_written()
    summary = {
        "intact": not problems,
        "problems": problems,
        "index_serial": index.get("serial", 0),
        "pools": len(index["pools"]),
        "ledger_rows": vault.ledger.rows(),
    }
    if args.json:
        _print_json(summary)
    elif problems:
        _err().print(
            "the vault was changed outside holdout:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    else:
        _out().print(
            f"OK: vault intact (index serial {summary['index_serial']}, {summary['pools']} pools, "
            f"{summary['ledger_rows']} exposure rows in an unbroken chain). Keep the serial: an "
            "older "
            "index restored together with an older ledger can only be told from it."
        )
    return EXIT_OK if not problems else EXIT_INCOMPLETE


def register(sub) -> None:
    """The vault command(s)."""
    sp = sub.add_parser("vault", help="the encrypted store of held-out pools")
    vsub = sp.add_subparsers(dest="vault_command", metavar="ACTION", required=True)
    vp = vsub.add_parser(
        "init", help="create the vault and its key (a 0600 key file, or HOLDOUT_VAULT_KEY)"
    )
    workspace(vp)
    vp.set_defaults(func=cmd_vault_init)
    vp = vsub.add_parser(
        "verify",
        help="check everything a command-line user without the key could have changed: "
        "index (and rollback), manifests, pool contents, the exposure ledger's chain",
    )
    workspace(vp)
    json_flag(vp)
    vp.set_defaults(func=cmd_vault_verify)
