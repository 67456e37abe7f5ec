"""The vault's files on disk: written whole or not at all, one writer at a time, and signed so a
change made outside holdout is told from one made by it."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .keys import VaultError


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, flush it to disk, then rename it over
    `path`: a reader sees the old file or the new one, never half of either."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` across processes for the block."""
    with open(lock_path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class SignedJson:
    """JSON objects carrying an HMAC (field `mac`) under one of the vault's subkeys: only a holder
    of the vault key can make or check one."""

    def __init__(self, mac_key: bytes):
        self._mac_key = mac_key

    def mac(self, obj: dict) -> str:
        body = json.dumps({k: v for k, v in obj.items() if k != "mac"}, sort_keys=True).encode()
        return hmac.new(self._mac_key, body, hashlib.sha256).hexdigest()

    def sign(self, obj: dict) -> dict:
        obj = {**obj, "mac": ""}
        return {**obj, "mac": self.mac(obj)}

    def is_signed(self, obj: dict) -> bool:
        return isinstance(obj.get("mac"), str) and hmac.compare_digest(obj["mac"], self.mac(obj))

    def read(self, path: Path) -> dict:
        try:
            obj = json.loads(path.read_text())
        except (OSError, ValueError):
            raise VaultError(f"{path}: missing or unreadable") from None
        if not isinstance(obj, dict) or not self.is_signed(obj):
            raise VaultError(f"{path}: was modified outside holdout (its signature does not match)")
        return obj

    def write(self, path: Path, obj: dict) -> None:
        atomic_write(path, (json.dumps(self.sign(obj), indent=2, sort_keys=True) + "\n").encode())
