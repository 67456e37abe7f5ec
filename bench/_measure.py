"""Run the holdout CLI in this process, as the `holdout` command does, and record its CPU time
(with its worker processes') and peak RSS (its own, and its largest worker's).

Peak RSS is VmHWM from /proc: ru_maxrss survives execve on Linux, so a child would report its
parent's peak if that was higher. For workers only ru_maxrss of RUSAGE_CHILDREN is there: the
largest of theirs, or this process's size when it started them, whichever is higher."""

import gc
import json
import resource
import sys

from harness.cli import GC_THRESHOLDS, main

gc.set_threshold(*GC_THRESHOLDS)  # as the `holdout` command does (harness.cli.entry)
code = main(sys.argv[2:])
ru = resource.getrusage(resource.RUSAGE_SELF)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
hwm_kb = next(
    int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")
)
with open(sys.argv[1], "w") as f:
    json.dump(
        {
            "code": code,
            "cpu": ru.ru_utime + ru.ru_stime + kids.ru_utime + kids.ru_stime,
            "rss_mb": hwm_kb / 1024,
            "worker_rss_mb": kids.ru_maxrss / 1024,
        },
        f,
    )
gc.freeze()
sys.exit(code)
