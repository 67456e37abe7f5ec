"""The vault key: where it comes from, and the ciphers derived from it.

The key is 32 random bytes, from HOLDOUT_VAULT_KEY (urlsafe base64) or a key file that only its
owner can read (mode 0600; anything looser is refused). Each use gets its own subkey (HKDF), and
every blob is AES-GCM with associated data naming what it is (pool id and license class, or run,
model and item), so a blob moved under another label fails to decrypt instead of being misread.
"""

from __future__ import annotations

import base64
import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ..egress import GATE
from ..errors import HoldoutError
from ..sealed import Sealed

MAGIC = b"HOV1"
KEY_ENV = "HOLDOUT_VAULT_KEY"
KEY_FILE_ENV = "HOLDOUT_VAULT_KEY_FILE"


class VaultError(HoldoutError):
    pass


class DecryptError(VaultError):
    pass


def new_key() -> bytes:
    return secrets.token_bytes(32)


def encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def _decode(text: str, where: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode())
    except (ValueError, TypeError):
        key = b""
    if len(key) != 32:
        raise VaultError(
            f"{where}: not a vault key (expected 32 bytes in urlsafe base64, as `holdout vault "
            "init` writes)"
        )
    return key


def default_key_file(workspace: Path) -> Path:
    return Path(os.environ.get(KEY_FILE_ENV) or workspace / "vault.key")


def load_key(workspace: Path) -> tuple[bytes, str]:
    """The key and a description of where it came from (never the key itself)."""
    if os.environ.get(KEY_ENV):
        return _decode(
            os.environ[KEY_ENV], f"environment variable {KEY_ENV}"
        ), f"environment variable {KEY_ENV}"
    file = default_key_file(workspace)
    try:
        st = file.stat()
    except FileNotFoundError:
        raise VaultError(
            f"no vault key: set {KEY_ENV}, or put the key file at {file} "
            f"(`holdout vault init` creates one)"
        ) from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise VaultError(
            f"{file}: the vault key file can be read by others (mode "
            f"{stat.S_IMODE(st.st_mode):o}); "
            f"refusing to use it. Fix with: chmod 600 {file}"
        )
    return _decode(file.read_text(), str(file)), str(file)


def write_key_file(file: Path, key: bytes) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(encode_key(key) + "\n")


def subkey(key: bytes, purpose: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=f"holdout/{purpose}".encode()
    ).derive(key)


class Cipher:
    """AES-GCM under a subkey for one purpose; associated data binds each blob to its label."""

    def __init__(self, key: bytes, purpose: str):
        self.aead = AESGCM(subkey(key, purpose))
        self.purpose = purpose

    def encrypt(self, data: bytes, label: str) -> bytes:
        nonce = secrets.token_bytes(12)
        return MAGIC + nonce + self.aead.encrypt(nonce, data, label.encode())

    def decrypt(self, blob: bytes, label: str) -> bytes:
        if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 12 + 16:
            raise DecryptError(f"{label}: not a vault blob (truncated or replaced)")
        nonce, body = blob[4:16], blob[16:]
        try:
            return self.aead.decrypt(nonce, body, label.encode())
        except InvalidTag:
            raise DecryptError(
                f"{label}: cannot decrypt: wrong vault key, or the data was modified or moved"
            ) from None


class OutputCipher:
    """What the run store uses for outputs of held-out runs: encrypted at rest, sealed when read
    back."""

    def __init__(self, key: bytes):
        self.cipher = Cipher(key, "store-outputs")
        # keys the item-content digests stored beside outputs
        self.digest_key = subkey(key, "item-digest")

    def encrypt_output(self, run_id: str, model: str, item_id: str, text: str) -> bytes:
        # a held-out run's output is held-out text: models and judges echo prompts
        GATE.protect(text, short=False)
        return self.cipher.encrypt(text.encode(), f"{run_id}|{model}|{item_id}")

    def decrypt_output(self, run_id: str, model: str, item_id: str, blob: bytes) -> Sealed:
        text = self.cipher.decrypt(bytes(blob), f"{run_id}|{model}|{item_id}").decode()
        GATE.protect(text, short=False)
        return Sealed(text, item_id)
