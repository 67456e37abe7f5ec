"""The vault: held-out pools encrypted at rest, the exposure ledger, and the key that opens them.

Public surface: `Vault` (init/open, pools, activate), `Ledger`, `open_heldout_pool` for runs,
`VaultError`. Held-out item text comes out of here only as `Sealed`.
"""

from .importing import import_pool_file
from .keys import DecryptError, VaultError
from .ledger import Ledger
from .pools import LICENSE_CLASSES, Vault

__all__ = [
    "Vault",
    "Ledger",
    "VaultError",
    "DecryptError",
    "LICENSE_CLASSES",
    "import_pool_file",
    "open_heldout_pool",
]


def open_heldout_pool(config, suite, recorded=None):
    from .runpool import open_heldout_pool as _open

    return _open(config, suite, recorded)
