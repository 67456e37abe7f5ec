"""Adding a pool file to the vault: every bad line reported at once, then a new draft version."""

from __future__ import annotations

from pathlib import Path

from .. import clock
from ..errors import ConfigError
from ..suite import check_pool_lines
from .pools import Vault
from .printcache import keep


def import_pool_file(
    vault: Vault,
    suite_name: str,
    path: Path,
    *,
    license_class: str,
    strata=(),
    max_retention: str | None = None,
    data_license: str | None = None,
    distribution: str | None = None,
) -> str:
    """Validate a JSONL file (every bad line reported) and add it as a new draft version."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: pool file not found") from None
    check_pool_lines(data.splitlines(), str(path), refused="nothing was imported")
    pool_id = vault.add_pool(
        suite_name,
        data,
        license_class,
        strata=strata,
        max_retention=max_retention,
        provenance={
            "source": Path(path).name,
            "imported": clock.now(),
            "data_license": data_license,
            "distribution": distribution,
        },
    )
    keep(vault, pool_id)  # its gate fingerprints made now and kept: the first run starts fast
    return pool_id
