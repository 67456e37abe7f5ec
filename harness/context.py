"""A finished (or partial) run reopened: its store, config, suite, pool and outputs, for
grade/report/scorecard."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import RunConfig, load_run_config
from .database import store_location
from .errors import HoldoutError
from .pool import PoolHandle
from .postgres import is_dsn
from .run import open_pool
from .store import Store
from .suite import Item, Suite, load_suite


def graders_of(config: RunConfig, suite: Suite) -> tuple[list[dict], str]:
    """The graders that apply (the run config's override the suite's) and the file they come
    from."""
    if config.graders is not None:
        return list(config.graders), str(config.file)
    return list(suite.graders), str(suite.file)


@dataclass
class RunContext:
    run_id: str
    info: dict
    config: RunConfig
    suite: Suite
    pool: PoolHandle
    store: Store

    def graders(self) -> tuple[list[dict], str]:
        """The graders that apply (the run config's override the suite's) and the file they come
        from."""
        return graders_of(self.config, self.suite)

    def items(self) -> dict[str, Item]:
        return {it.id: it for it in self.pool.items()}

    def outputs(self) -> dict[tuple, object]:
        """(model, item_id, epoch) -> output (Sealed for held-out runs) of every successful call."""
        return {
            (r.model, r.item_id, r.epoch): r.output for r in self.store.calls(self.run_id) if r.ok
        }

    def close(self) -> None:
        self.store.close()
        self.pool.close()


@dataclass
class Places:
    """Where a command reads and writes: one resolution for every command."""

    workspace: Path
    results_dir: Path
    config: Path | None  # the run config that decided them, if any
    run_config: RunConfig | None = None  # ... as loaded (so no command reads it twice)


def locate(
    run_id: str | None = None,
    *,
    workspace: Path | None = None,
    results_dir: Path | None = None,
    config: Path | None = None,
) -> Places:
    """Explicit --workspace/--results-dir win; else the run config's (--config, or the config the
    run recorded when it was made); else .holdout and results in the working directory."""
    if config is not None:
        cfg = load_run_config(config)
        return Places(workspace or cfg.workspace, results_dir or cfg.results_dir, Path(config), cfg)
    ws = workspace or Path(".holdout")
    shared = is_dsn(store_location(ws))
    if run_id is not None and results_dir is None and (shared or (ws / "store.sqlite").exists()):
        probe = Store(store_location(ws), create=False)
        try:
            info = probe.run_info(run_id)
        finally:
            probe.close()
        recorded = Path(info["config_file"]) if info and info.get("config_file") else None
        if recorded is not None and recorded.is_file():
            cfg = load_run_config(recorded)
            return Places(ws, cfg.results_dir, recorded, cfg)
    return Places(ws, results_dir or Path("results"), None)


def open_run(
    run_id: str,
    workspace: Path,
    config_path: str | Path | None = None,
    *,
    config: RunConfig | None = None,
) -> RunContext:
    """`config`: the run config already loaded (from `locate`), else it is read from `config_path`
    or the path the run recorded."""
    probe = Store(store_location(workspace), create=False)
    try:
        info = probe.run_info(run_id)
        known = [r["run_id"] for r in probe.status()]
    finally:
        probe.close()
    if info is None or "/grade/" in run_id:
        raise HoldoutError(
            f"no run '{run_id}' in {probe.path} (runs: {', '.join(known) or 'none'})"
        )
    if config is None:
        if config_path is None:
            config_path = info["config_file"]
            if not config_path or not Path(config_path).exists():
                raise HoldoutError(
                    f"run '{run_id}' was made from {config_path or 'a config'}, which is gone; "
                    "pass --config with its config"
                )
        config = load_run_config(config_path)  # a missing --config file is reported as that file
    suite = load_suite(config.suite, config.suites_dir)
    pool = open_pool(config, suite, recorded=info["pool"])
    return RunContext(
        run_id,
        info,
        config,
        suite,
        pool,
        Store(store_location(workspace), cipher=pool.cipher),
    )
