"""`holdout run`: config -> suite -> pool -> engine -> store -> results/<run_id>/summary.json."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Callable, Iterable

from rich.console import Console

from . import provenance
from .budget import Budget
from .calling import calls
from .callkinds import advice
from .config import RunConfig, check_api_keys, load_run_config
from .database import store_location
from .errors import ConfigError, HoldoutError
from .identity import find_item_changes, identity_hash, run_identity
from .jobs import item_jobs
from .lanes import lane_label
from .pool import PoolHandle
from .progress import progress_for
from .results import print_summary, write_summary
from .runlock import run_lock
from .runner import Outcome
from .sharedbudget import budget_for
from .store import Store
from .suite import Item, Suite, check_pool_file, load_suite, read_pool_file


def open_pool(config: RunConfig, suite: Suite, recorded: str | None = None) -> PoolHandle:
    """The pool of a new run (from the config), or of an existing one (`recorded`, as the store
    names it)."""
    if (recorded or config.pool) in ("public", f"{suite.name}/public"):
        if suite.public_pool is None:
            raise ConfigError(
                f"{config.where('pool')}: suite '{suite.name}' has no public_pool; "
                "set pool: heldout to use its active held-out pool"
            )
        count = check_pool_file(suite.public_pool)
        return PoolHandle(
            name=f"{suite.name}/public",
            count=count,
            items=lambda: read_pool_file(suite.public_pool),
        )
    from .vault import open_heldout_pool  # the vault is only needed for held-out runs

    return open_heldout_pool(config, suite, recorded)


SPENT_SQL = "SELECT COALESCE(SUM(cost_usd),0) FROM calls WHERE run_id=?"


def limited(items: Callable[[], Iterable[Item]], limit: int | None) -> Callable[[], Iterable[Item]]:
    return items if limit is None else (lambda: itertools.islice(items(), limit))


def run(
    config_path: str | Path,
    *,
    out: Console,
    err: Console,
    quiet: bool = False,
    recall_changed: bool = False,
    wait: bool = True,
) -> Outcome:
    """Results (the summary table) go to `out`, progress and explanations to `err`. `wait`:
    whether batches (`mode: batch`) are waited for, or left at the provider for a later run."""
    config = load_run_config(config_path)
    suite = load_suite(config.suite, config.suites_dir)
    with run_lock(config.workspace, config.run_id, f"run {config_path}"):  # one payer per run
        pool = open_pool(config, suite)
        try:
            check_api_keys(config)
            return _run(
                config,
                suite,
                pool,
                out=out,
                console=err,
                quiet=quiet,
                recall_changed=recall_changed,
                wait=wait,
            )
        finally:
            pool.close()


def _check_items(
    store: Store, config: RunConfig, pool: PoolHandle, *, console: Console, recall_changed: bool
) -> None:
    """A resumed run: refuse if items were edited or removed since their calls were made, unless
    asked to re-call exactly those (their calls, grades and judge calls are deleted first)."""
    stored = store.item_digests(config.run_id)
    if not stored:
        return
    changes = find_item_changes(stored, pool.items(), pool.digest)
    if not changes:
        return
    if not recall_changed:
        raise HoldoutError(
            f"run '{config.run_id}': {changes.describe()}. Their stored outputs and grades "
            "describe "
            "other items, so nothing was called. Choose: re-call just these items with "
            f"`holdout run {config.file} --recall-changed`, or set a new run_id in {config.file} "
            "for a fresh run."
        )
    deleted = store.delete_items(config.run_id, changes.ids())
    console.print(
        f"{changes.describe()}: their {deleted.calls} calls, {deleted.grades} grades and "
        f"{deleted.judge_calls} judge calls were deleted; the edited items are called again"
    )


def _run(
    config: RunConfig,
    suite: Suite,
    pool: PoolHandle,
    *,
    out: Console,
    console: Console,
    quiet: bool,
    recall_changed: bool = False,
    wait: bool = True,
) -> Outcome:
    n_items = min(pool.count, config.limit or pool.count)
    total = n_items * len(config.models) * config.epochs
    store = Store(store_location(config.workspace), cipher=pool.cipher)
    try:
        doc = run_identity(config, suite, pool.name)
        resumed = store.begin_run(
            config.run_id,
            identity_hash(doc),
            suite.name,
            pool=pool.name,
            heldout=pool.heldout,
            total=total,
            models=[m.name for m in config.models],
            config_file=str(config.file.resolve()),
            identity_doc=doc,
        )
        if resumed:
            _check_items(store, config, pool, console=console, recall_changed=recall_changed)
        budget = budget_for(
            config.budget_usd,
            store=store,
            scope=config.run_id,
            recount=(SPENT_SQL, (config.run_id,)),
        )
        done_before = store.done_count(config.run_id)
        console.print(
            f"run [bold]{config.run_id}[/]: {n_items} items x {len(config.models)} models x "
            f"{config.epochs} epochs = {total} calls"
            + (f"; resuming, {done_before} already done" if resumed and done_before else "")
        )
        with progress_for(config.run_id, total, console, quiet=quiet, completed=done_before) as bar:
            jobs = item_jobs(
                suite,
                limited(pool.items, config.limit),
                list(config.models),
                epochs=config.epochs,
                digest=pool.digest,
            )
            outcome = asyncio.run(
                calls(
                    config.run_id,
                    jobs,
                    config.models,
                    store=store,
                    budget=budget,
                    progress=bar,
                    on_sent=pool.on_sent,
                    wait=wait,
                )
            )
        _, summary = write_summary(
            store,
            config.run_id,
            config.results_dir,
            extra={
                "pacing": outcome.pacing,
                "provenance": provenance.of_run(store, config.run_id, config),
                **({"pool_sent_as_draft": pool.name} if pool.draft else {}),
            },
        )
        print_summary(out, summary)
        # outputs, or refusals (final answers), by every worker on a shared store
        done_now = store.done_count(config.run_id)
        _explain(console, config, outcome, total=total, done_now=done_now, budget=budget)
        outcome.complete = done_now >= total
        return outcome
    finally:
        store.close()


# what to do about an error the provider named (its own code, kept without its message)


def _explain(
    console: Console, config: RunConfig, o: Outcome, *, total: int, done_now: int, budget: Budget
) -> None:
    again = f"holdout run {config.file}"
    console.print(
        f"{o.calls_made} calls made this time ({o.ok} ok, {o.errors} errors), "
        f"${o.cost_usd:.4f}; {done_now}/{total} done in all."
    )
    if o.budget_stop:
        console.print(
            f"[yellow]Budget reached[/]: ${budget.spent:.4f} spent of ${config.budget_usd:.2f}; "
            f"{o.not_started} calls were not started. Raise budget_usd in {config.file} and run "
            f"`{again}` to continue."
        )
    for name, p in o.pacing.items():
        if p["rate_limited"] or p["paced_by"]:
            console.print(
                f"provider '{name}': "
                + (
                    f"paced to {p['requests_per_s']} req/s by {p['paced_by']}; "
                    if p["paced_by"]
                    else ""
                )
                + f"{p['rate_limited']} 429s answered, each retried"
            )
    for line in advice(o.error_kinds, o.given_up):
        console.print(line)
    for name, reason in o.dead_providers.items():
        what = lane_label(name)
        console.print(f"[red]Gave up on {what}[/]: {reason}. Its remaining calls were not started.")
    b = o.batches
    if b is not None and (b.submitted or b.collected or b.in_flight or b.adopted):
        console.print(
            f"batches: {b.submitted} submitted, {b.collected} collected"
            + (f", {b.adopted} found at the provider after a stop" if b.adopted else "")
            + (
                f"; {b.in_flight} in flight at the provider: `{again}` collects them"
                if b.in_flight
                else ""
            )
        )
    if o.interrupted:
        console.print(f"[yellow]Interrupted[/]: results so far are saved. Resume with `{again}`.")
    elif done_now < total and not o.budget_stop:
        console.print(
            f"{total - done_now} calls are not done (errors are retried on the next run): `{again}`"
        )
