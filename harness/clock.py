"""The one wall clock for records that matter: pool status changes, embargo decisions, ledger rows,
exports.

No environment variable or flag moves it: a production process always reads the system clock. Tests
replace it in their own process (`clock.inject`), or run the CLI through `tests/instrumented.py`, a
wrapper that is not part of the installed package. Whatever is written under an injected clock says
so (`injected()`): the vault's index marks such status changes and `vault verify` names them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

_source: Callable[[], float] | None = None


def now() -> float:
    """Seconds since the epoch."""
    return time.time() if _source is None else float(_source())


def injected() -> bool:
    return _source is not None


def inject(source: Callable[[], float] | None) -> None:
    """For tests only: make `now()` return `source()` (None: back to the system clock)."""
    global _source
    _source = source
