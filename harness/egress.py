"""The egress gate: the one door out of the trust boundary for everything but model/judge requests
and the review page.

Files under results/, scorecards, exports, the terminal (stdout/stderr), log records and the
tracebacks shown to a user all pass through `GATE`. It refuses sealed values outright and scans
outgoing text for fingerprints of held-out items, redacting what matches: models echo prompts,
judges quote them, exceptions format them.

Fingerprints: hashed shingles of consecutive words (case-folded, punctuation and whitespace
ignored), plus single identifier-like tokens (letters and digits mixed, >= 10 chars) so a quoted
canary string is caught even on its own.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import secrets
import sys
import tempfile
import traceback
from pathlib import Path

from .errors import HoldoutError
from .sealed import Sealed

WORD = re.compile(r"\w+", re.UNICODE)
SHINGLE = 5
REDACTED = "[held-out text redacted]"


class EgressRefused(HoldoutError):
    pass


def _is_identifier(token: str) -> bool:
    return len(token) >= 10 and any(c.isdigit() for c in token) and any(c.isalpha() for c in token)


class Gate:
    def __init__(self):
        self._salt = secrets.token_bytes(16)   # fingerprints mean nothing outside this process
        self._prints: set[bytes] = set()
        self.redactions = 0
        self.vault_dirs: list[Path] = []

    # -- fingerprints ---------------------------------------------------------
    def _h(self, words) -> bytes:
        return hashlib.blake2b(" ".join(words).encode(), key=self._salt, digest_size=12).digest()

    def protect(self, text: str) -> None:
        """Register held-out text: from now on it cannot leave through the gate."""
        words = [w.casefold() for w in WORD.findall(text)]
        for i in range(max(1, len(words) - SHINGLE + 1)):
            chunk = words[i:i + SHINGLE]
            if len(chunk) == SHINGLE or (len(words) < SHINGLE and len(" ".join(words)) >= 12):
                self._prints.add(self._h(chunk))
        for w in words:
            if _is_identifier(w):
                self._prints.add(self._h([w]))

    # -- scanning -------------------------------------------------------------
    def scan(self, text: str) -> str:
        """`text` with every stretch that matches a held-out fingerprint replaced by a marker."""
        if not self._prints or not text:
            return text
        matches = list(WORD.finditer(text))
        words = [m.group().casefold() for m in matches]
        hit = [False] * len(words)
        for i, w in enumerate(words):
            if _is_identifier(w) and self._h([w]) in self._prints:
                hit[i] = True
        for i in range(len(words) - SHINGLE + 1):
            if self._h(words[i:i + SHINGLE]) in self._prints:
                for j in range(i, i + SHINGLE):
                    hit[j] = True
        if len(words) < SHINGLE and words and self._h(words) in self._prints:
            hit = [True] * len(words)
        if not any(hit):
            return text
        out, pos, i = [], 0, 0
        while i < len(words):
            if hit[i]:
                j = i
                while j + 1 < len(words) and hit[j + 1]:
                    j += 1
                out.append(text[pos:matches[i].start()])
                out.append(REDACTED)
                pos = matches[j].end()
                self.redactions += 1
                i = j + 1
            else:
                i += 1
        out.append(text[pos:])
        return "".join(out)

    def clean(self, value):
        """A JSON-able value with strings scanned; refuses sealed values anywhere inside."""
        if isinstance(value, Sealed):
            raise EgressRefused(f"refused to write {value!r}: held-out text never leaves the vault")
        if isinstance(value, str):
            return self.scan(value)
        if isinstance(value, dict):
            return {self.clean(k): self.clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.clean(v) for v in value]
        return value

    # -- writing files --------------------------------------------------------
    def _check_destination(self, path: Path) -> None:
        resolved = path.resolve()
        for vault in self.vault_dirs:
            if resolved.is_relative_to(vault.resolve()):
                raise EgressRefused(f"{path}: refusing to write plain output inside the vault")

    def write_text(self, path: Path | str, text: str, scan: bool = True) -> Path:
        """Write through the gate, atomically (a crash leaves the old file or the new, never half).
        scan=False only for the export chokepoint, whose content the license policy has released."""
        path = Path(path)
        self._check_destination(path)
        if isinstance(text, Sealed):
            raise EgressRefused(f"refused to write {text!r}: held-out text never leaves the vault")
        data = self.scan(text) if scan else text
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError as e:
            if "tmp" in locals() and os.path.exists(tmp):
                os.unlink(tmp)
            raise HoldoutError(f"{path}: cannot write ({e.strerror}); nothing in the store was lost, "
                               "re-run the command once the disk/permissions are fixed") from None
        return path

    def write_json(self, path: Path | str, obj) -> Path:
        return self.write_text(path, json.dumps(self.clean(obj), indent=2, ensure_ascii=False) + "\n")

    # -- the terminal, logs, tracebacks ----------------------------------------
    def install(self) -> None:
        """Put the gate in front of stdout/stderr, every log record and uncaught tracebacks."""
        if not isinstance(sys.stdout, _GatedStream):
            sys.stdout = _GatedStream(sys.stdout, self)
        if not isinstance(sys.stderr, _GatedStream):
            sys.stderr = _GatedStream(sys.stderr, self)
        old_factory = logging.getLogRecordFactory()
        if not getattr(old_factory, "_holdout_gate", False):
            gate = self

            def factory(*args, **kwargs):
                record = old_factory(*args, **kwargs)
                return _gate_record(record, gate)
            factory._holdout_gate = True
            logging.setLogRecordFactory(factory)
        sys.excepthook = self.excepthook

    def format_exception(self, exc: BaseException) -> str:
        return self.scan("".join(traceback.format_exception(exc)))

    def excepthook(self, etype, value, tb) -> None:
        sys.__stderr__.write(self.scan("".join(traceback.format_exception(etype, value, tb))))


def _gate_record(record: logging.LogRecord, gate: Gate) -> logging.LogRecord:
    """Freeze a record's message and traceback text, scanned, so no handler or formatter sees raw text."""
    try:
        message = record.getMessage()
    except Exception:  # a broken format string must not take the program down
        message = str(record.msg)
    record.msg, record.args = gate.scan(message), None
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = gate.scan("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
        record.exc_info = None
    if record.stack_info:
        record.stack_info = gate.scan(record.stack_info)
    return record


class _GatedStream(io.TextIOBase):
    """A text stream whose writes pass through the gate. Lines are scanned whole."""

    def __init__(self, inner, gate: Gate):
        self.inner, self.gate, self.buffer_text = inner, gate, ""

    def write(self, s: str) -> int:
        if isinstance(s, Sealed):
            s = repr(s)
        self.buffer_text += s
        if "\n" in self.buffer_text or "\r" in self.buffer_text or len(self.buffer_text) > 65536:
            cut = max(self.buffer_text.rfind("\n"), self.buffer_text.rfind("\r")) + 1 or len(self.buffer_text)
            out, self.buffer_text = self.buffer_text[:cut], self.buffer_text[cut:]
            self.inner.write(self.gate.scan(out))
        return len(s)

    def flush(self) -> None:
        if self.buffer_text:
            out, self.buffer_text = self.buffer_text, ""
            self.inner.write(self.gate.scan(out))
        self.inner.flush()

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    @property
    def encoding(self):
        return getattr(self.inner, "encoding", "utf-8")

    def writable(self) -> bool:
        return True


GATE = Gate()
