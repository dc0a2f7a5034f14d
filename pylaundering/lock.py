"""Advisory folder locks: one process at a time works in a run, sweep or phase folder.

``locked(folder)`` takes an exclusive ``fcntl.flock`` on ``folder/.lock`` and writes into that file who
holds it (JSON: pid, host, command, since). A second process is refused at once with one line naming
the holder (``LockHeld``, exit 1 from the CLI), or, inside ``waiting()`` (a sweep's points waiting for
a shared teacher that another point of the same sweep is training), waits until the holder is done.

Released on every exit of the ``with`` block, an exception included. A lock file left by a process
that died is harmless: the kernel releases a flock when the last descriptor of its open file closes,
so also when its holder dies (even by SIGKILL); the next process takes the lock at once and writes
its own name over the stale one. The file is never deleted (deleting it would let two processes lock
two different files of one name).

Advisory: only pylaundering's own code takes these locks. Re-entrant within one process (a nested
``locked`` on a folder this process already holds goes through). On network filesystems flock is only
as good as the filesystem's support (Linux NFSv4 emulates it with byte-range locks, which every client
sees; some FUSE filesystems ignore it): a Ray sweep across nodes needs a filesystem that honours it.
POSIX only (fcntl); elsewhere no lock is taken.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from .errors import LockHeld

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locking
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "LockHeld", "check_free", "holder", "locked", "waiting"]

LOCK_NAME = ".lock"

_held: dict[str, list] = {}  # real path of a lock file this process holds -> [fd, depth]
_guard = threading.Lock()
_wait: contextvars.ContextVar[bool] = contextvars.ContextVar("pylaundering_lock_wait", default=False)


@contextlib.contextmanager
def waiting() -> Iterator[None]:
    """Inside this block, ``locked`` (with no explicit ``wait``) waits for a held lock instead of failing."""
    token = _wait.set(True)
    try:
        yield
    finally:
        _wait.reset(token)


def holder(folder: str | Path) -> dict | None:
    """What the lock file of ``folder`` says about its holder (None: no file, or nothing written)."""
    try:
        text = (Path(folder) / LOCK_NAME).read_text()
        info = json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def describe(info: dict | None) -> str:
    if not info:
        return "another process (it has not written its name yet)"
    command = str(info.get("command", ""))
    command = command if len(command) <= 100 else command[:97] + "..."
    return f"pid {info.get('pid')} on {info.get('host')} since {info.get('since')} ({command})"


def _refusal(folder: Path, what: str) -> LockHeld:
    return LockHeld(f"{folder} ({what}) is in use by {describe(holder(folder))}: wait for it to finish or stop it; "
                    "a lock left by a process that died is released by the kernel")


def check_free(folder: str | Path, what: str = "folder") -> None:
    """Raises LockHeld when another process holds ``folder``'s lock; creates nothing (a fast refusal
    before work that would otherwise come first)."""
    path = Path(folder) / LOCK_NAME
    if fcntl is None or not path.exists() or os.path.realpath(path) in _held:
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _refusal(Path(folder), what) from None
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(folder: str | Path, *, what: str = "folder", wait: bool | None = None, poll: float = 0.2,
           quiet: bool = False) -> Iterator[None]:
    """Holds ``folder``'s lock (the folder is created) for the ``with`` block. Held by another process:
    LockHeld naming it, or with ``wait`` (default: inside ``waiting()``) a wait, announced once on stderr
    unless ``quiet``."""
    folder = Path(folder)
    if fcntl is None:  # pragma: no cover
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    key = os.path.realpath(path)
    with _guard:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
    if entry is not None:  # this process holds it already
        try:
            yield
        finally:
            with _guard:
                entry[1] -= 1
        return
    wait = _wait.get() if wait is None else wait
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not wait:
                    raise _refusal(folder, what) from None
                if not announced and not quiet:
                    sys.stderr.write(f"waiting for {folder} ({what}): in use by {describe(holder(folder))}\n")
                    announced = True
                time.sleep(poll)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv) or sys.executable,
                "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        with _guard:
            _held[key] = [fd, 1]
        try:
            yield
        finally:
            with _guard:
                _held.pop(key, None)
            os.ftruncate(fd, 0)  # released: no holder named (a reader in between sees "not written yet")
    finally:
        os.close(fd)  # closing the last descriptor releases the flock
