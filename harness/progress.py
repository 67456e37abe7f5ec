"""A progress bar (done/total, calls/s, ETA, cost, errors) on a terminal; silence elsewhere."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _Rate(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:,.1f}/s" if task.speed else "-/s", style="progress.data.speed")


class Bar:
    """Rendering is throttled by rich (4 refreshes/s), so advancing costs microseconds per call."""

    def __init__(self, description: str, total: int, console: Console, completed: int = 0):
        self.console = console
        self.cost = 0.0
        self.errors = 0
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _Rate(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("${task.fields[cost]:.4f}"),
            TextColumn("[red]{task.fields[errors]} errors"),
            console=console,
            refresh_per_second=4,
            transient=False,
        )
        self.task = self.progress.add_task(
            description, total=total, completed=completed, cost=0.0, errors=0
        )

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def advance(self, ok: bool, cost: float) -> None:
        self.cost += cost
        self.errors += not ok
        self.progress.update(self.task, advance=1, cost=self.cost, errors=self.errors)

    def note(self, message: str) -> None:
        self.progress.console.print(message)

    def whole(self, completed: int) -> None:
        """The run's done count as the shared store has it (every worker's calls, not only
        ours)."""
        self.progress.update(self.task, completed=completed)


class Silent:
    def __init__(self, console: Console | None = None):
        self.console = console

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def advance(self, ok: bool, cost: float) -> None:
        pass

    def note(self, message: str) -> None:
        if self.console:
            self.console.print(message)

    def whole(self, completed: int) -> None:
        pass


def progress_for(
    description: str, total: int, console: Console, *, quiet: bool, completed: int = 0
):
    if quiet or not console.is_terminal:
        return Silent(console)
    return Bar(description, total, console, completed)
