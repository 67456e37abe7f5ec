"""Ed25519 signatures on scorecards, so a lab can check a scorecard is exactly what the evaluator issued.

The signing key lives in the vault, encrypted under the vault key; the public key travels in each
scorecard and its fingerprint is printed, so a lab can pin it once and verify every later card.
"""
from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import HoldoutError
from ..vault.keys import Cipher

KEY_FILE = "scorecard-signing.key"


def canonical(card: dict) -> bytes:
    return json.dumps({k: v for k, v in card.items() if k != "signature"}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def fingerprint(public_raw: bytes) -> str:
    return "ed25519:" + hashlib.sha256(public_raw).hexdigest()[:32]


def signing_key(vault) -> Ed25519PrivateKey:
    """The vault's scorecard key, created once (under the vault's lock: processes issuing their first cards at
    the same moment all sign with the one key a lab pins)."""
    cipher = Cipher(vault._key, "scorecard-signing")

    def make() -> bytes:
        raw = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                                         serialization.NoEncryption())
        return cipher.encrypt(raw, "scorecard-signing")
    return Ed25519PrivateKey.from_private_bytes(cipher.decrypt(vault.create_once(KEY_FILE, make), "scorecard-signing"))


def sign(card: dict, key: Ed25519PrivateKey) -> dict:
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    sig = key.sign(canonical(card))
    return {**card, "signature": {"algorithm": "ed25519", "public_key": base64.b64encode(public).decode(),
                                  "fingerprint": fingerprint(public), "value": base64.b64encode(sig).decode()}}


def verify(path: Path, pinned: str | None = None) -> str:
    """The signer's fingerprint if the file is intact (and signed by `pinned`, if given); else HoldoutError."""
    try:
        card = json.loads(Path(path).read_text(encoding="utf-8"))
        sig = card["signature"]
        public_raw = base64.b64decode(sig["public_key"])
        value = base64.b64decode(sig["value"])
    except FileNotFoundError:
        raise HoldoutError(f"{path}: not found") from None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise HoldoutError(f"{path}: not a signed scorecard (no readable signature)") from None
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(value, canonical(card))
    except (InvalidSignature, ValueError):
        raise HoldoutError(f"{path}: signature does NOT match: the scorecard was altered after it was signed") from None
    fp = fingerprint(public_raw)
    if pinned and pinned != fp:
        raise HoldoutError(f"{path}: intact, but signed by {fp}, not by the pinned key {pinned}")
    return fp
