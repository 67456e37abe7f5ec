"""Run the holdout CLI in this process, as the `holdout` command does, and record this process's
own CPU time and peak RSS.

Peak RSS is VmHWM from /proc: ru_maxrss survives execve on Linux, so a child would report its
parent's peak if that was higher."""

import gc
import json
import resource
import sys

from harness.cli import GC_THRESHOLDS, main

gc.set_threshold(*GC_THRESHOLDS)  # as the `holdout` command does (harness.cli.entry)
code = main(sys.argv[2:])
ru = resource.getrusage(resource.RUSAGE_SELF)
hwm_kb = next(
    int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")
)
with open(sys.argv[1], "w") as f:
    json.dump({"code": code, "cpu": ru.ru_utime + ru.ru_stime, "rss_mb": hwm_kb / 1024}, f)
gc.freeze()
sys.exit(code)
