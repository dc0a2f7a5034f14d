"""Rich progress bars for every long loop (it/s and ETA), silenced by --quiet."""

from __future__ import annotations

import contextlib

from rich.console import Console
from rich.text import Text
from rich.progress import ProgressColumn, BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

# Progress and status go to stderr so that --json output on stdout stays machine-readable.
console = Console(stderr=True)


class _SpeedColumn(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:6.1f} it/s" if task.speed else "    -- it/s")


class _Bar:
    def __init__(self, progress: Progress | None, task):
        self._progress, self._task = progress, task

    def advance(self, n: int = 1, **fields) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=n, **({"info": _fmt(fields)} if fields else {}))


def _fmt(fields: dict) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())


@contextlib.contextmanager
def progress_bar(total: int, description: str, *, quiet: bool = False, completed: int = 0):
    if quiet:
        yield _Bar(None, None)
        return
    columns = [
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        _SpeedColumn(), TimeElapsedColumn(), TextColumn("eta"),
        TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
    ]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total, completed=completed, info="")
        yield _Bar(progress, task)
