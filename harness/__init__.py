"""Holdout: an evaluation harness for private, rotating, held-out suites.

The `holdout` command (harness/cli) is the supported interface. For programs, these are the
entry points below it, each keyword-only past its first arguments, with the same checks and
errors as the command (every HoldoutError names what to fix):

    harness.config.load_run_config(file)          a run config, checked (file:line on error)
    harness.suite.load_suite(name, suites_dir)    a suite and its graders
    harness.run.run(config, ...)                  run it: resumable, paced, within the budget
    harness.store.Store(path)                     the run store: calls, grades, reviews
    harness.grading.engine.grade(run_id, ...)     grade a run's outputs (rules, judges)
    harness.report.build_report(store, run_id, ...)   scores with CIs, ratings, error rates
    harness.scorecard.build.build_scorecard(...)  a lab's card; harness.scorecard.sign.verify(path)
    harness.vault.Vault.open(workspace)           held-out pools, the exposure ledger

Everything that leaves the trust boundary passes `harness.egress.GATE`; the layers and the rules
the code keeps are in README "Layout" and tests/test_architecture.py.
"""

__version__ = "0.1.0"

import os as _os

# One BLAS thread unless the caller chose otherwise, set before anything imports numpy. Its
# products here are matrix-vector ones (bootstrap resamples) that one thread does as fast, and
# idle BLAS threads spin: beside the check workers they took 10 s of a 33 s scorecard
# (bench/README.md, "Checks in worker processes").
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
