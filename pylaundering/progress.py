"""Rich progress bars for every long loop (it/s and ETA), silenced by --quiet.

Where stderr is not a terminal (a batch job's log file, nohup, CI) a bar would be drawn only when
it ends, so a run of hours would show nothing until then: there a plain line is printed instead at
most every ``PYLAUNDERING_PROGRESS_SECONDS`` (default 30) seconds, and one when the loop ends.
"""

from __future__ import annotations

import contextlib
import os
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

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


class _LineBar:
    """Progress as plain lines: ``teacher: 15/150 (10%), 2.10 it/s, 0:00:07 elapsed, eta 0:01:04 epoch=3 loss=1.38``."""

    def __init__(self, total: int | None, description: str, completed: int, interval: float, clock=time.monotonic,
                 out: Console | None = None):
        self._total, self._description, self._done = total, description, completed
        self._start_done = completed
        self._interval, self._clock, self._out = interval, clock, out or console
        self._start = self._last = clock()
        self._info = ""

    def advance(self, n: int = 1, **fields) -> None:
        self._done += n
        if fields:
            self._info = _fmt(fields)
        if self._clock() - self._last >= self._interval:
            self.emit()

    def emit(self) -> None:
        now = self._clock()
        self._last = now
        elapsed = now - self._start
        rate = (self._done - self._start_done) / elapsed if elapsed > 0 else 0.0
        if self._total:
            line = f"{self._description}: {self._done}/{self._total} ({100 * self._done / self._total:.0f}%)"
        else:
            line = f"{self._description}: {self._done}"
        line += f", {rate:.2f} it/s, {_clock_text(elapsed)} elapsed"
        if self._total and rate > 0 and self._done < self._total:
            line += f", eta {_clock_text((self._total - self._done) / rate)}"
        if self._info:
            line += f" {self._info}"
        self._out.print(line, markup=False, highlight=False, soft_wrap=True)


def _clock_text(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _line_interval() -> float:
    try:
        return max(0.0, float(os.environ.get("PYLAUNDERING_PROGRESS_SECONDS", "30")))
    except ValueError:
        return 30.0


def _fmt(fields: dict) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())


def quiet_libraries() -> None:
    """Silences what transformers and huggingface_hub print on their own: tqdm bars ("Writing model
    shards", downloads), advisory warnings and hub retry lines. Called under --quiet."""
    import logging
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for name in ("transformers", "huggingface_hub", "datasets", "filelock", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except (ImportError, AttributeError):
        pass
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:
        pass
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # datasets is imported only when needed
    os.environ.setdefault("DATASETS_VERBOSITY", "error")


@contextlib.contextmanager
def progress_bar(total: int, description: str, *, quiet: bool = False, completed: int = 0):
    if quiet:
        yield _Bar(None, None)
        return
    if not (console.is_terminal or console.is_jupyter):
        bar = _LineBar(total, description, completed, _line_interval())
        try:
            yield bar
        finally:  # also where an interrupt stopped it
            bar.emit()
        return
    columns = [
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        _SpeedColumn(), TimeElapsedColumn(), TextColumn("eta"),
        TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
    ]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total, completed=completed, info="")
        yield _Bar(progress, task)
