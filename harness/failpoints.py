"""Failpoints: named places where a test can make the process crash or die on purpose.

HOLDOUT_FAILPOINTS="store.flush=kill@3,runner.result=crash" kills the process with SIGKILL at the
third pass through `store.flush`, and raises at the first `runner.result`. Unset (always, outside
tests), `hit` is one dictionary lookup. Crashes carry the context they are given, so the leak
test can check that a traceback quoting held-out text is still redacted on its way out.
"""
from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("HOLDOUT_FAILPOINTS", "")
_ACTIVE: dict[str, list] = {}
for part in filter(None, (p.strip() for p in _SPEC.split(","))):
    name, _, action = part.partition("=")
    action, _, nth = action.partition("@")
    _ACTIVE[name] = [action or "crash", int(nth or 1)]


class FailpointCrash(RuntimeError):
    pass


def hit(name: str, context=None) -> None:
    """`context` may be a callable, called only if the failpoint fires (keeps hot paths free of work)."""
    spec = _ACTIVE.get(name)
    if spec is None:
        return
    spec[1] -= 1
    if spec[1] > 0:
        return
    if spec[0] == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise FailpointCrash(f"failpoint {name} reached with {context() if callable(context) else context}")
