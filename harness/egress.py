"""The egress gate: the one door out of the trust boundary for everything but model/judge requests
and the review page.

Files under results/, scorecards, exports, the terminal (stdout/stderr), log records and the
tracebacks shown to a user all pass through `GATE`. Safety is structural first: log records of the
SDKs and HTTP libraries are reduced to their code-written template and harmless arguments before any
handler sees them (`logsafety`), and exceptions carry ids and kinds. The gate is the second line: it
refuses sealed values outright and redacts any stretch of outgoing text that matches a fingerprint
of held-out text (`fingerprints`: escapes undone, NFKC, case folded, zero-width characters and
whitespace ignored, character n-grams for every script, short texts matched whole, reversed and
base64 forms), widened to whole words."""

from __future__ import annotations

import io
import json
import logging
import math
import os
import re
import sys
import tempfile
from pathlib import Path

from .errors import HoldoutError
from .fingerprints import Fingerprints
from .logsafety import reduce_record, safe_traceback
from .sealed import Sealed

REDACTED = "[held-out text redacted]"
_IDENTIFIER = re.compile(r"\w{10,}")


class EgressRefused(HoldoutError):
    pass


def _is_identifier(token: str) -> bool:
    return any(c.isdigit() for c in token) and any(c.isalpha() for c in token)


def finite(obj):
    """`obj` with every NaN or infinity replaced by None: what JSON can say."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def strict_json(obj, indent: int | None = 2) -> str:
    return json.dumps(finite(obj), indent=indent, ensure_ascii=False, allow_nan=False, default=str)


class Gate:
    def __init__(self):
        self.prints = Fingerprints()
        self.vault_dirs: list[Path] = []

    @property
    def armed(self) -> bool:
        """True once any held-out text is registered in this process."""
        return len(self.prints) > 0

    # -- fingerprints ---------------------------------------------------------
    def protect(self, text: str, *, short: bool = True, into=None) -> None:
        """Register held-out text (an item's turns, reference or free-text metadata, or an output of
        a held-out run): from now on it cannot leave through the gate. `short=False` (outputs) skips
        the whole-text match of texts too short for n-grams: a one-word answer may equal a model or
        label name that reports must show."""
        if not text:
            return
        prints = self.prints if into is None else into  # `into`: one version's set, to keep
        prints.add(text, short=short)
        if not short:
            return
        for m in _IDENTIFIER.finditer(text):  # a canary-like token is caught even on its own
            if _is_identifier(m.group()):
                prints.add_exact(m.group())

    def allow_label(self, label: str) -> None:
        """A declared stratum value that reports show; a short held-out text equal to it stays
        visible there."""
        self.prints.allow(label)

    # -- scanning -------------------------------------------------------------
    def scan(self, text: str) -> str:
        """`text` with every stretch that matches a held-out fingerprint replaced by a marker."""
        if not text or not self.armed:
            return text
        spans = self.prints.find(text)
        if not spans:
            return text
        out, pos = [], 0
        for s, e in spans:
            while s > pos and text[s - 1].isalnum():  # whole words: no fragment of a match is left
                s -= 1
            while e < len(text) and text[e].isalnum():
                e += 1
            if s < pos:
                s = pos
            if e <= pos:
                continue
            out.append(text[pos:s])
            out.append(REDACTED)
            pos = e
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
        scan=False only for the export chokepoint, whose content the license policy has released,
        and for write_json, which has scanned every string of it."""
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
            raise HoldoutError(
                f"{path}: cannot write ({e.strerror}); nothing in the store was lost, "
                "re-run the command once the disk/permissions are fixed"
            ) from None
        return path

    def append_line(self, path: Path | str, line: str) -> Path:
        """Append one line through the gate (an audit trail): one write() of O_APPEND, so lines of
        processes appending at once never interleave."""
        path = Path(path)
        self._check_destination(path)
        data = (self.scan(line).rstrip("\n") + "\n").encode("utf-8")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as e:
            raise HoldoutError(f"{path}: cannot write ({e.strerror})") from None
        return path

    def write_json(self, path: Path | str, obj) -> Path:
        """Strict JSON (a number that is not finite is written as null, never as a bare NaN), every
        key and string scanned. Scanned as values, not as serialised text: a match across the JSON's
        own syntax (a held-out judge reply `{"scores": {"quality": 4}}` against a card's `"scores":
        {"quality"`) would cut through quotes and newlines and leave a file that is not JSON."""
        return self.write_text(path, strict_json(self.clean(obj)) + "\n", scan=False)

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
        """A traceback for a person: frames kept, messages withheld once held-out text is loaded,
        scanned."""
        return self.scan(safe_traceback(exc, show_messages=not self.armed))

    def excepthook(self, etype, value, tb) -> None:
        sys.__stderr__.write(self.format_exception(value))


def _gate_record(record: logging.LogRecord, gate: Gate) -> logging.LogRecord:
    """Reduce a third-party record to what is safe (structural), then freeze its message and
    traceback text, scanned, so no handler or formatter ever sees raw text."""
    message = reduce_record(record)
    record.msg, record.args = gate.scan(message), None
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = gate.format_exception(record.exc_info[1]).rstrip("\n")
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
            cut = max(self.buffer_text.rfind("\n"), self.buffer_text.rfind("\r")) + 1 or len(
                self.buffer_text
            )
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
