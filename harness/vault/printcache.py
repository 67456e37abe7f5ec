"""A held-out version's fingerprints for the egress gate, computed once and kept in the vault.

Registering a version's text (its turns, references and free-text metadata) costs about 20 us per
text; a run registers every version of its suite (a provider could echo a retired version's text),
so a suite with many versions paid that at every start. Instead the gate is salted by a secret
derived from the vault key (`Vault.seed_for`), and each version's fingerprints are kept beside its
items, encrypted under another derived key and bound to the version's id and content digest: the
next process decrypts and merges them. Without the key they are unreadable; a kept file that is
changed, moved to another version, or made for other content fails to decrypt or to match and is
made again. A process whose gate already holds text under its own salt (nothing the vault put
there) registers as before and keeps nothing."""

from __future__ import annotations

import io
import logging

import numpy as np

from ..egress import GATE
from ..fingerprints import Fingerprints
from ..sealed import reveal
from .files import atomic_write
from .keys import DecryptError

FILE = "fingerprints.bin"
SEED = "gate-fingerprints"
log = logging.getLogger("holdout.vault")


def protect(vault, pool_id: str) -> None:
    """Register a held-out version's text with the gate (other pools: nothing to do)."""
    manifest = vault.manifest(pool_id)
    if manifest["license_class"] != "heldout":
        return
    for values in manifest["strata"].values():
        for label in values:
            GATE.allow_label(label)
    if not GATE.prints.rekey(vault.seed_for(SEED)):
        # the gate holds text under another salt already: register as before, keep nothing
        for it in vault.stream_items(pool_id):
            _protect(it, public_keys=manifest["strata"], into=None)
        return
    kept = _read(vault, pool_id, manifest)
    GATE.prints.merge(kept if kept is not None else keep(vault, pool_id))


def keep(vault, pool_id: str) -> dict:
    """Make a version's fingerprints under the vault's salt and keep them (without arming this
    process's gate: `pool import` and `draw` call it for the runs to come). Returns them."""
    manifest = vault.manifest(pool_id)
    prints = Fingerprints.salted(vault.seed_for(SEED))
    for it in vault.stream_items(pool_id):
        _protect(it, public_keys=manifest["strata"], into=prints)
    arrays = prints.arrays()
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    try:
        atomic_write(
            _path(vault, pool_id), _cipher(vault).encrypt(buf.getvalue(), _label(manifest))
        )
    except OSError:  # a read-only vault: used all the same, kept another time
        log.warning("%s: cannot keep its fingerprints in the vault", pool_id)
    return arrays


def _read(vault, pool_id: str, manifest: dict) -> dict | None:
    path = _path(vault, pool_id)
    if not path.exists():
        return None
    try:
        arrays = np.load(io.BytesIO(_cipher(vault).decrypt(path.read_bytes(), _label(manifest))))
        return {k: arrays[k] for k in ("latin", "dense", "short", "short_lengths")}
    except (DecryptError, ValueError, KeyError, OSError):
        log.warning("%s: kept fingerprints unreadable; made again", pool_id)
        return None


def _path(vault, pool_id: str):
    return vault._pool_dir(pool_id) / FILE


def _cipher(vault):
    return vault.cipher_for("gate-fingerprints-file")


def _label(manifest: dict) -> str:
    """What a kept file is bound to: its version and the version's content."""
    return f"{manifest['id']}|{manifest['content_sha256']}"


def _protect(item, *, public_keys, into) -> None:
    """Every held-out text of an item: its turns, its reference, and its metadata other than the
    declared strata labels (which reports show)."""
    for _, content in item.messages:
        GATE.protect(reveal(content), into=into)
    if item.reference is not None:
        GATE.protect(reveal(item.reference), into=into)
    for key, value in item.metadata.items():
        if key not in public_keys and isinstance(value, str):
            GATE.protect(value, into=into)
