"""A finished (or partial) run reopened: its store, config, suite, pool and outputs, for grade/report/scorecard."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import RunConfig, load_run_config
from .errors import HoldoutError
from .run import PoolHandle, open_pool
from .store import Store
from .suite import Item, Suite, load_suite


@dataclass
class RunContext:
    run_id: str
    info: dict
    config: RunConfig
    suite: Suite
    pool: PoolHandle
    store: Store

    def graders(self) -> tuple[list[dict], str]:
        """The graders that apply (the run config's override the suite's) and the file they come from."""
        if self.config.graders is not None:
            return list(self.config.graders), str(self.config.file)
        return list(self.suite.graders), str(self.suite.file)

    def items(self) -> dict[str, Item]:
        return {it.id: it for it in self.pool.items()}

    def outputs(self) -> dict[tuple, object]:
        """(model, item_id, epoch) -> output (Sealed for held-out runs) of every successful call."""
        return {(r.model, r.item_id, r.epoch): r.output for r in self.store.calls(self.run_id) if r.ok}

    def close(self) -> None:
        self.store.close()
        self.pool.close()


def open_run(run_id: str, workspace: Path, config_path: str | Path | None = None) -> RunContext:
    probe = Store(Path(workspace) / "store.sqlite")
    try:
        info = probe.run_info(run_id)
        known = [r["run_id"] for r in probe.status()]
    finally:
        probe.close()
    if info is None or "/grade/" in run_id:
        raise HoldoutError(f"no run '{run_id}' in {workspace}/store.sqlite (runs: {', '.join(known) or 'none'})")
    path = config_path or info["config_file"]
    if not Path(path).exists():
        raise HoldoutError(f"run '{run_id}' was made from {path}, which is gone; pass --config with its config")
    config = load_run_config(path)
    suite = load_suite(config.suite, config.suites_dir)
    pool = open_pool(config, suite, recorded=info["pool"])
    return RunContext(run_id, info, config, suite, pool, Store(Path(workspace) / "store.sqlite", cipher=pool.cipher))
