"""Failpoints: named places where a test can make the process crash or die on purpose.

`arm("store.flush=kill@3,runner.result=crash")` kills the process with SIGKILL at the third pass
through `store.flush`, and raises at the first `runner.result`. Nothing in the installed package
arms them (no environment variable or flag does): tests call `arm` in their own process, or run the
CLI through `tests/instrumented.py`. Unarmed, `hit` is one dictionary lookup. Crashes carry the
context they are given, so the leak test can check that a traceback quoting held-out text is still
redacted on its way out."""

from __future__ import annotations

import os
import signal

_ACTIVE: dict[str, list] = {}


def arm(spec: str) -> None:
    """For tests only: `name=action[@nth]`, comma separated; action is `kill` or `crash`."""
    _ACTIVE.clear()
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, action = part.partition("=")
        action, _, nth = action.partition("@")
        _ACTIVE[name] = [action or "crash", int(nth or 1)]


def armed() -> bool:
    return bool(_ACTIVE)


class FailpointCrash(RuntimeError):
    pass


def hit(name: str, context=None) -> None:
    """`context` may be a callable, called only if the failpoint fires (keeps hot paths free of
    work)."""
    spec = _ACTIVE.get(name)
    if spec is None:
        return
    spec[1] -= 1
    if spec[1] > 0:
        return
    if spec[0] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise FailpointCrash(
        f"failpoint {name} reached with {context() if callable(context) else context}"
    )
