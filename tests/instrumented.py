"""The holdout CLI with test instruments armed, for tests that need a separate process (kill -9,
Ctrl-C).

    python tests/instrumented.py [--failpoints SPEC] [--now EPOCH_SECONDS] -- <holdout arguments>

This file is not part of the installed package, so a production install has no way to arm a
failpoint or move the clock (see harness/clock.py and harness/failpoints.py).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import clock, failpoints  # noqa: E402
from harness.cli import main  # noqa: E402


def run(argv: list[str]) -> int:
    split = argv.index("--") if "--" in argv else 0
    opts, args = argv[:split], argv[split + 1 :] if "--" in argv else argv
    while opts:
        flag, value, *opts = opts
        if flag == "--failpoints":
            failpoints.arm(value)
        elif flag == "--now":
            clock.inject(lambda t=float(value): t)
        else:
            raise SystemExit(f"instrumented.py: unknown option {flag}")
    return main(args)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
