"""Ed25519 signatures on scorecards, so a lab can check a scorecard is exactly what the evaluator
issued.

The signing key lives in the vault, encrypted under the vault key; the public key travels in each
scorecard and its fingerprint is printed, so a lab can pin it once and verify every later card.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..egress import strict_json
from ..errors import HoldoutError

KEY_FILE = "scorecard-signing.key"


def canonical(card: dict) -> bytes:
    return json.dumps(
        {k: v for k, v in card.items() if k != "signature"},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def fingerprint(public_raw: bytes) -> str:
    return "ed25519:" + hashlib.sha256(public_raw).hexdigest()[:32]


def signing_key(vault) -> Ed25519PrivateKey:
    """The vault's scorecard key, created once (under the vault's lock: processes issuing their
    first cards at the same moment all sign with the one key a lab pins)."""
    cipher = vault.cipher_for("scorecard-signing")

    def make() -> bytes:
        raw = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return cipher.encrypt(raw, "scorecard-signing")

    return Ed25519PrivateKey.from_private_bytes(
        cipher.decrypt(vault.create_once(KEY_FILE, make), "scorecard-signing")
    )


def sign(card: dict, key: Ed25519PrivateKey) -> dict:
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    sig = key.sign(canonical(card))
    return {
        **card,
        "signature": {
            "algorithm": "ed25519",
            "public_key": base64.b64encode(public).decode(),
            "fingerprint": fingerprint(public),
            "value": base64.b64encode(sig).decode(),
        },
    }


@dataclass
class Verified:
    """An intact card: who signed it, and whether that signer is one the reader trusts."""

    fingerprint: str
    pinned: bool  # the reader named this signer (--key)
    this_vault: bool | None  # signed by the vault at hand (None: no vault here to ask)

    @property
    def trusted(self) -> bool:
        return self.pinned or bool(self.this_vault)


def strict_load(text: str, where: str) -> dict:
    """JSON with no duplicate keys, no NaN or infinities, no trailing data (json.loads refuses
    that), an object."""

    def pairs(kv):
        keys = [k for k, _ in kv]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise HoldoutError(
                f"{where}: duplicate key {dupes[0]!r}: a second value could hide behind the "
                "signed one; "
                "not a scorecard holdout wrote"
            )
        return dict(kv)

    def constant(name):
        raise HoldoutError(f"{where}: {name} is not JSON; not a scorecard holdout wrote")

    try:
        obj = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except ValueError as e:
        raise HoldoutError(f"{where}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(obj, dict):
        raise HoldoutError(f"{where}: not a scorecard (a JSON object is expected)")
    return obj


def _card_of(path: Path, text: str) -> tuple[dict, str]:
    """(card, the file as holdout would have written it from that card)."""
    from .render import render_html

    if path.suffix.lower() in (".html", ".htm"):
        m = re.search(r'<script type="application/json" id="scorecard">(.*?)</script>', text, re.S)
        if not m:
            raise HoldoutError(f"{path}: not a holdout scorecard page (it carries no signed card)")
        card = strict_load(m.group(1), f"{path} (embedded card)")  # JSON reads its <\\/ as </
        return card, render_html(card)
    card = strict_load(text, str(path))
    return card, strict_json(card) + "\n"


def verify(path: Path, pinned: str | None = None, vault_fingerprint: str | None = None) -> Verified:
    """The card (JSON or its HTML page) is intact: its signature matches, and the file is byte for
    byte what holdout writes for that card (so an edited page, a reformatted or padded file fails).
    `pinned`: the signer must be this key; `vault_fingerprint`: the vault at hand's own signing key,
    to compare with."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HoldoutError(f"{path}: not found") from None
    except UnicodeDecodeError:
        raise HoldoutError(f"{path}: not a scorecard (not UTF-8 text)") from None
    card, expected = _card_of(path, text)
    try:
        sig = card["signature"]
        public_raw = base64.b64decode(sig["public_key"], validate=True)
        value = base64.b64decode(sig["value"], validate=True)
    except (ValueError, KeyError, TypeError):
        raise HoldoutError(f"{path}: not a signed scorecard (no readable signature)") from None
    try:
        Ed25519PublicKey.from_public_bytes(public_raw).verify(value, canonical(card))
    except (InvalidSignature, ValueError):
        raise HoldoutError(
            f"{path}: signature does NOT match: the scorecard was altered after it was signed"
        ) from None
    if text != expected:
        raise HoldoutError(
            f"{path}: the signed card inside is intact, but the file around it was changed "
            "(it is not what holdout wrote for that card)"
        )
    fp = fingerprint(public_raw)
    if sig.get("fingerprint") != fp:
        raise HoldoutError(f"{path}: the fingerprint written in the card is not its key's ({fp})")
    if pinned and pinned != fp:
        raise HoldoutError(f"{path}: intact, but signed by {fp}, not by the pinned key {pinned}")
    if vault_fingerprint and not pinned and vault_fingerprint != fp:
        raise HoldoutError(
            f"{path}: intact, but signed by {fp}, not by this vault's scorecard key "
            f"{vault_fingerprint}: someone else signed it"
        )
    return Verified(
        fp,
        pinned=bool(pinned),
        this_vault=None if vault_fingerprint is None else vault_fingerprint == fp,
    )


def vault_fingerprint(vault) -> str | None:
    """The fingerprint of the vault's scorecard key, if it has one (verifying never creates a
    key)."""
    if not (vault.dir / KEY_FILE).exists():
        return None
    key = signing_key(vault)
    return fingerprint(
        key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
