"""Log records and tracebacks that cannot carry held-out text, whatever the libraries' debug
switches say.

The SDKs log whole request options at DEBUG (`Request options: {... 'json_data': {...messages...}}`)
when `OPENAI_LOG`/`ANTHROPIC_LOG` or `--log-level debug` turn them on, and HTTP libraries log URLs
(with any password in a base URL). So a record from any logger outside Holdout keeps only its
format string, which is written in the library's source code, and arguments that cannot hold text:
numbers, HTTP methods, exception and status names, short ids, and URLs reduced to scheme, host,
port and path. Everything else becomes `<omitted>`. A record whose message was built before logging
(no arguments) keeps only a short plain text, or the plain part before its first colon.
`--log-level debug` stays useful: timings, retries, status codes, request ids.

Tracebacks: frames (file, line, function, source line) come from code, so they are kept; an
exception's message is kept for Holdout's own errors (which name ids, never content), and for any
other exception only while no held-out text is loaded in the process. Both then pass the gate.
"""

from __future__ import annotations

import logging
import re
import traceback
from urllib.parse import urlsplit

OWN_LOGGERS = ("holdout", "harness")
OMITTED = "<omitted>"
_SAFE_WORD = re.compile(r"[A-Za-z0-9_.:/<>\-]{0,64}")
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_PLAIN_MESSAGE = re.compile(r"[A-Za-z0-9 _.,:;/()'`%=<>\-\[\]#*]{0,160}")


def safe_url(text: str) -> str:
    """scheme://host:port/path: no userinfo, query or fragment."""
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return OMITTED
    path = parts.path if _SAFE_WORD.fullmatch(parts.path) else "/<path>"
    return f"{parts.scheme}://{host}{port}{path}"


def _safe_arg(value):
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, BaseException):
        return type(value).__name__
    if isinstance(value, type):
        return value.__name__
    text = value if isinstance(value, str) else None
    if text is None:
        name = type(value).__name__
        if name in ("URL", "URI") or hasattr(value, "scheme") and hasattr(value, "host"):
            return safe_url(str(value))
        return OMITTED
    if _URL.fullmatch(text):
        return safe_url(text)
    return text if _SAFE_WORD.fullmatch(text) else OMITTED


def reduce_record(record: logging.LogRecord) -> str:
    """The message a record may carry out: our own records as they are, others reduced."""
    if record.name.split(".")[0] in OWN_LOGGERS:
        try:
            return record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not take the program down
            return str(record.msg)
    template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
    args = record.args
    # possibly built before logging (an f-string): keep a plain head, drop what follows a colon
    if not args:
        head, colon, _ = template.partition(":")
        if colon:
            return f"{head}: {OMITTED}" if _PLAIN_MESSAGE.fullmatch(head) else OMITTED
        return template if _PLAIN_MESSAGE.fullmatch(template) and len(template) <= 80 else OMITTED
    try:
        if isinstance(args, dict):
            return template % {k: _safe_arg(v) for k, v in args.items()}
        return template % tuple(_safe_arg(a) for a in args)
    except (TypeError, ValueError, KeyError):
        try:
            return template.replace("%", "%%") % () + f" [{OMITTED}]"
        except (TypeError, ValueError):
            return OMITTED


def safe_traceback(exc: BaseException, *, show_messages: bool) -> str:
    """The traceback of `exc` (and its causes) with messages only where they cannot carry text."""
    from .errors import HoldoutError

    chain, seen = [], set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        chain.append(e)
        e = (
            e.__cause__
            if e.__cause__ is not None
            else (None if e.__suppress_context__ else e.__context__)
        )
    parts = []
    for n, e in enumerate(reversed(chain)):
        if n:
            parts.append(
                "\nDuring handling of the above exception, another exception occurred:\n\n"
            )
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_tb(e.__traceback__))
        name = type(e).__qualname__
        if show_messages or isinstance(e, HoldoutError):
            parts.append("".join(traceback.format_exception_only(type(e), e)))
        else:
            parts.append(f"{name}: <message withheld: a held-out pool is loaded in this process>\n")
    return "".join(parts)
