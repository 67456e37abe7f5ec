"""Pools in the vault: versioned, encrypted at rest, listed without decryption.

Layout of <workspace>/vault/:
  keycheck              a blob that tells a wrong key from a modified file
  index.json            lifecycle of every pool version (draft/active/retired), MAC'd, replaced
                        atomically
  pools/<suite>/v<N>/
    manifest.json       immutable facts: counts, strata, hash, license class, canary (MAC'd)
    items.bin           the items, AES-GCM, associated data = "<pool id>|<license class>"
  ledger.sqlite         the exposure ledger
A version is written to a temporary directory and renamed into place, and the index is replaced
in one rename, so a crash never leaves a half-imported pool or two active versions.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import io
import logging
import os
import shutil
import tempfile
import uuid
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

from .. import clock
from ..egress import GATE
from ..failpoints import hit
from ..poolid import PoolId
from ..suite import Item, iter_jsonl_items
from . import gate, shared
from .files import SignedJson, atomic_write, exclusive
from .keys import (
    Cipher,
    DecryptError,
    OutputCipher,
    VaultError,
    default_key_file,
    load_key,
    new_key,
    subkey,
    write_key_file,
)
from .ledger import Ledger

log = logging.getLogger("holdout.vault")
LICENSE_CLASSES = ("heldout", "public", "licensable")
KEYCHECK = b"holdout vault key check"


class Vault:
    def __init__(self, workspace: Path, key: bytes, key_source: str):
        self.workspace = Path(workspace)
        self.dir = self.workspace / "vault"
        self.key_source = key_source
        self._key = key
        self.items_cipher = Cipher(key, "pool-items")
        self._signed = SignedJson(subkey(key, "manifest-mac"))
        self._label_key = subkey(key, "stratum-labels")
        GATE.vault_dirs.append(self.dir)

    # -- opening --------------------------------------------------------------
    @classmethod
    def init(cls, workspace: Path) -> tuple["Vault", str]:
        workspace = Path(workspace)
        vdir = workspace / "vault"
        if (vdir / "keycheck").exists() or shared.published():
            raise VaultError(f"{vdir}: a vault already exists here (or in the shared store)")
        if os.environ.get("HOLDOUT_VAULT_KEY"):
            key, source = load_key(workspace)
        else:
            file = default_key_file(workspace)
            if file.exists():
                key, source = load_key(workspace)
            else:
                key = new_key()
                write_key_file(file, key)
                source = str(file)
        (vdir / "pools").mkdir(parents=True, exist_ok=True)
        os.chmod(vdir, 0o700)
        vault = cls(workspace, key, source)
        atomic_write(vdir / "keycheck", Cipher(key, "keycheck").encrypt(KEYCHECK, "keycheck"))
        vault._write_index({"pools": {}})
        return vault, source

    @classmethod
    def open(cls, workspace: Path) -> "Vault":
        vdir = Path(workspace) / "vault"
        shared.fetch(vdir)  # on a shared store: this machine's copy, brought up to date
        if not (vdir / "keycheck").exists():
            raise VaultError(
                f"no vault at {vdir}: create one with `holdout vault init`"
                + (f" --workspace {workspace}" if str(workspace) != ".holdout" else "")
            )
        key, source = load_key(Path(workspace))
        try:
            if (
                Cipher(key, "keycheck").decrypt((vdir / "keycheck").read_bytes(), "keycheck")
                != KEYCHECK
            ):
                raise DecryptError("keycheck")
        except DecryptError:
            raise VaultError(
                f"the vault key from {source} does not open the vault at {vdir} (wrong key)"
            ) from None
        return cls(workspace, key, source)

    def output_cipher(self) -> OutputCipher:
        return OutputCipher(self._key)

    def cipher_for(self, purpose: str) -> Cipher:
        """A cipher under a key derived from the vault key for one purpose (the scorecard signing
        key is kept encrypted with it): the vault key itself never leaves this class."""
        return Cipher(self._key, purpose)

    # -- signed JSON ----------------------------------------------------------
    def sign(self, obj: dict) -> dict:
        """`obj` with a MAC from the vault key (export manifests): only a holder of the key can make
        or check it."""
        return self._signed.sign(obj)

    def signed_by_this_vault(self, obj: dict) -> bool:
        return self._signed.is_signed(obj)

    @contextlib.contextmanager
    def _locked(self):
        """One writer at a time across processes (on a shared store, across machines too, each
        starting from the latest copy)."""
        with exclusive(self.dir / ".lock"), shared.locked(self.dir):
            yield

    @functools.cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.dir, subkey(self._key, "ledger-mac"))

    def _index(self) -> dict:
        """The signed index, refused if it is older than the last one written (a restored copy: a
        retired pool would be active again). The ledger remembers the highest serial written."""
        index = self._signed.read(self.dir / "index.json")
        seen = self.ledger.index_serial()
        if index.get("serial", 0) < seen and shared.fetch(self.dir):  # another machine wrote
            index = self._signed.read(self.dir / "index.json")
        if index.get("serial", 0) < seen:
            raise VaultError(
                f"{self.dir}/index.json: is older than the vault's last write (serial "
                f"{index.get('serial', 0)}, the vault has seen {seen}): an earlier copy was "
                "restored outside holdout. Nothing was done; see `holdout vault verify`."
            )
        if self.ledger.rows() < index.get("ledger_rows", 0):
            raise VaultError(
                f"{self.ledger.path}: holds {self.ledger.rows()} exposure rows, but it had "
                f"{index['ledger_rows']} when the vault index was last written: rows were "
                "removed or an older ledger was restored outside holdout. Nothing was done; see "
                "`holdout vault verify`."
            )
        return index

    def index_as_written(self) -> dict:
        """The signed index as it is on disk, without the rollback checks (for `vault verify`'s
        summary, which reports those as problems)."""
        return self._signed.read(self.dir / "index.json")

    def anchor_ledger(self) -> None:
        """Write the ledger's current row count into the signed index (after a run or a grading), so
        a ledger emptied or cut later is detected even though its own head row went with it."""
        try:
            with self._locked():
                index = self._index()
                if self.ledger.rows() != index.get("ledger_rows", 0):
                    self._write_index(index)
        except OSError as e:  # a full disk: the ledger is intact; the next command anchors it
            log.warning(
                "vault: could not record the ledger's row count in the index (%s)", e.strerror
            )

    def _write_index(self, index: dict) -> None:
        """Under the lock: a new serial; the ledger's row count at this moment (rows can only grow
        from here); and whether the record was made under an injected test clock."""
        index = {**index, "serial": index.get("serial", 0) + 1, "ledger_rows": self.ledger.rows()}
        if clock.injected():
            index["injected_clock_writes"] = index.get("injected_clock_writes", 0) + 1
        self._signed.write(self.dir / "index.json", index)
        shared.publish(self.dir)  # before the ledger says so: no machine sees a serial it lacks
        self.ledger.note_index(index["serial"])

    def verify(self) -> list[str]:
        """Everything that was changed outside holdout, or that a record cannot vouch for: the index
        (signature, rollback), every listed pool (manifest signature, its id, its encrypted items
        against the manifest's hash), the exposure ledger's chain, and status changes made under an
        injected test clock."""
        try:
            index = self._index()
        except VaultError as e:
            return [str(e)]
        problems = []
        for pool_id in index["pools"]:
            try:
                self.read_jsonl(pool_id)
            except (VaultError, DecryptError) as e:
                problems.append(f"{pool_id}: {e}")
            except OSError as e:
                problems.append(
                    f"{pool_id}: its encrypted items cannot be read ({e.strerror}): removed or "
                    "moved outside holdout"
                )
        problems += [
            f"exposure ledger: {p}" for p in self.ledger.verify(index.get("ledger_rows", 0))
        ]
        if index.get("injected_clock_writes"):
            problems.append(
                f"index.json: {index['injected_clock_writes']} write(s) were made under an "
                "injected test clock (their times are not the system's)"
            )
        return problems

    # -- pools ----------------------------------------------------------------
    def _pool_dir(self, pool_id: str) -> Path:
        pid = PoolId.parse(pool_id)
        return self.dir / "pools" / pid.suite / f"v{pid.version}"

    def manifest(self, pool_id: str, index: dict | None = None) -> dict:
        """The pool's signed manifest with its lifecycle state from the index (pass the index's
        `pools` to read it once). A version exists only once the index lists it; a manifest must
        name the version it sits in."""
        pools = index if index is not None else self._index()["pools"]
        if pool_id not in pools or not self._pool_dir(pool_id).exists():
            raise VaultError(f"no pool {pool_id} in the vault (see `holdout pool list`)")
        manifest = self._signed.read(self._pool_dir(pool_id) / "manifest.json")
        if manifest.get("id") != pool_id:
            raise VaultError(
                f"{self._pool_dir(pool_id)}/manifest.json: is the manifest of "
                f"{manifest.get('id')}, not of {pool_id} (moved outside holdout)"
            )
        return {**manifest, **pools[pool_id]}

    def create_once(self, name: str, make) -> bytes:
        """The vault file `name`, created by `make()` the first time, under the vault's lock and
        atomically, so processes starting together all get the same one."""
        path = self.dir / name
        with self._locked():
            first = path.read_bytes if path.exists() else make  # a local one is kept
            if (made := shared.create_once(name, first)) is not None:  # one for every machine
                atomic_write(path, made)
            elif not path.exists():
                atomic_write(path, make())
            return path.read_bytes()

    def _repair(self, index: dict) -> None:
        """Under the lock: remove what an interrupted import left (an `.incoming-*` directory, or a
        version renamed into place before the index listed it). Neither was ever listed, so nothing
        used them."""
        listed = {self._pool_dir(pid) for pid in index["pools"]}
        for suite_dir in (self.dir / "pools").glob("*"):
            for d in suite_dir.iterdir() if suite_dir.is_dir() else ():
                if d.name.startswith(".incoming-") or (d.is_dir() and d not in listed):
                    shutil.rmtree(d, ignore_errors=True)
                    log.warning(
                        "vault: removed %s, left unfinished by an interrupted import (never "
                        "listed, never sent); import it again if it is still wanted",
                        d.relative_to(self.dir),
                    )

    def pools(self, suite: str | None = None) -> list[dict]:
        index = self._index()["pools"]
        out = []
        for pool_id in index:
            if suite is None or PoolId.parse(pool_id).suite == suite:
                out.append(self.manifest(pool_id, index))
        return sorted(out, key=lambda m: (m["suite"], m["version"]))

    def active_pool(self, suite: str) -> str | None:
        for pool_id, state in self._index()["pools"].items():
            if PoolId.parse(pool_id).suite == suite and state["status"] == "active":
                return pool_id
        return None

    def add_pool(
        self,
        suite: str,
        jsonl: bytes,
        license_class: str,
        *,
        strata: Iterable[str] = (),
        max_retention: str | None = None,
        provenance: dict | None = None,
        extra: dict | None = None,
    ) -> str:
        """Encrypt and store a new draft version; return its id (suite@vN)."""
        if license_class not in LICENSE_CLASSES:
            raise VaultError(
                f"license class must be one of {', '.join(LICENSE_CLASSES)}, not {license_class!r}"
            )
        text = jsonl.decode("utf-8")
        items = list(iter_jsonl_items(text.splitlines(), "pool", sealed=False))
        counts = {s: dict(Counter(str(it.metadata.get(s)) for it in items)) for s in strata}
        with self._locked():
            index = self._index()
            self._repair(index)
            taken = [PoolId.parse(p) for p in index["pools"]]
            version = max((p.version for p in taken if p.suite == suite), default=0) + 1
            pool_id = str(PoolId(suite, version))
            manifest = {
                "id": pool_id,
                "suite": suite,
                "version": version,
                "items": len(items),
                "content_sha256": hashlib.sha256(jsonl).hexdigest(),
                "created": clock.now(),
                "license_class": license_class,
                "max_retention": max_retention,
                "strata": counts,
                "canary": f"holdout-canary-{uuid.uuid4()}",
                "provenance": provenance or {},
                **(extra or {}),
            }
            final = self._pool_dir(pool_id)
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".incoming-"))
            try:
                (tmp / "items.bin").write_bytes(
                    self.items_cipher.encrypt(jsonl, f"{pool_id}|{license_class}")
                )
                self._signed.write(tmp / "manifest.json", manifest)
                hit("vault.add_pool.before_rename")
                os.rename(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            hit("vault.add_pool.before_index")
            index["pools"][pool_id] = {"status": "draft", "status_changed": clock.now()}
            self._write_index(index)
        return pool_id

    def note(self, pool_id: str, key: str, value: dict) -> None:
        """Record a fact about a version in the signed index (its qualification)."""
        self.manifest(pool_id)
        with self._locked():
            index = self._index()
            index["pools"][pool_id][key] = value
            self._write_index(index)

    def activate(self, pool_id: str, *, thresholds: dict, override: str | None = None):
        """Make pool_id the suite's active version; the previous one is retired (its embargo starts
        now). `thresholds`: the suite's `qualify:` (harness/vault/gate.py); `override`: why it goes
        live though its qualification fails them (recorded in the index)."""
        self.manifest(pool_id)
        with self._locked():
            index = self._index()
            state = index["pools"][pool_id]
            if state["status"] == "retired":
                raise VaultError(
                    f"{pool_id} is retired; a retired pool never comes back (draw a new version)"
                )
            failed = gate.blockers(state, thresholds)
            if failed and not override:
                raise VaultError(
                    f"{pool_id} may not go live: " + "; ".join(failed) + ". Qualify a version "
                    "that passes, or pass --override REASON (recorded). Nothing was changed."
                )
            suite = PoolId.parse(pool_id).suite
            previous = None
            for pid, st in index["pools"].items():
                if pid != pool_id and PoolId.parse(pid).suite == suite and st["status"] == "active":
                    st.update(status="retired", status_changed=clock.now(), retired_at=clock.now())
                    previous = pid
            state.update(status="active", status_changed=clock.now(), activated_at=clock.now())
            state["activated_under"] = thresholds  # the suite's qualify: thresholds at the time
            if failed:
                state["activation_override"] = dict(reason=override, at=clock.now(), failed=failed)
            hit("vault.activate.before_index")
            self._write_index(index)
        return previous

    def retire(self, pool_id: str) -> None:
        self.manifest(pool_id)
        with self._locked():
            index = self._index()
            index["pools"][pool_id].update(
                status="retired", status_changed=clock.now(), retired_at=clock.now()
            )
            self._write_index(index)

    def read_jsonl(self, pool_id: str) -> bytes:
        """The decrypted JSONL, verified against the manifest. Callers keep it inside the
        boundary."""
        manifest = self.manifest(pool_id)
        blob = (self._pool_dir(pool_id) / "items.bin").read_bytes()
        data = self.items_cipher.decrypt(blob, f"{pool_id}|{manifest['license_class']}")
        if hashlib.sha256(data).hexdigest() != manifest["content_sha256"]:
            raise VaultError(f"pool {pool_id}: decrypted items do not match the manifest's hash")
        return data

    def stream_items(self, pool_id: str) -> Iterator[Item]:
        """The pool's items one at a time, sealed if held-out (their text only opens in a request
        builder). Each pass decrypts and verifies the pool again; the items are never all held as
        objects."""
        sealed = self.manifest(pool_id)["license_class"] == "heldout"
        yield from iter_jsonl_items(io.BytesIO(self.read_jsonl(pool_id)), pool_id, sealed=sealed)

    def opaque_label(self, key: str, value: str) -> str:
        """A stratum value that the suite does not declare as a public label, as an opaque, stable
        tag."""
        return (
            f"{key}#"
            + hmac.new(self._label_key, f"{key}={value}".encode(), "sha256").hexdigest()[:8]
        )

    def protect(self, pool_id: str) -> None:
        """Register a held-out pool's text with the egress gate (vault/printcache.py: from its
        kept fingerprints, or one streamed pass that keeps them)."""
        from .printcache import protect

        protect(self, pool_id)

    def seed_for(self, purpose: str) -> bytes:
        """A secret derived from the vault key for one purpose (the gate's fingerprint salt)."""
        return subkey(self._key, purpose)

    def load_items(self, pool_id: str) -> list[Item]:
        """All items at once, registered with the egress gate (for small pools, and tests)."""
        self.protect(pool_id)
        return list(self.stream_items(pool_id))
