"""Atomic writes: a crash or kill mid-write never leaves a truncated file behind."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it: set and restore at once
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode ``open(path, "w")`` would give a new file: 0o666 minus the process umask."""
    return 0o666 & ~_umask()


def _atomic(path: Path, write) -> Path:
    """Write through a temp file in the same folder, then rename over ``path``.

    ``mkstemp`` creates its file with mode 0600; the temp file is given the mode a plain
    ``open`` would have given (0o666 minus the umask) before the rename, so run files stay
    readable by whoever the umask allows (a shared group, a web server serving reports).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_torch(obj: Any, path: str | Path) -> Path:
    return _atomic(Path(path), lambda tmp: torch.save(obj, tmp))


def load_torch(path: str | Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=False)


def write_json(obj: Any, path: str | Path) -> Path:
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=False, default=str)
            f.write("\n")

    return _atomic(Path(path), write)


def write_text(text: str, path: str | Path) -> Path:
    def write(tmp):
        with open(tmp, "w") as f:
            f.write(text)

    return _atomic(Path(path), write)


def read_json(path: str | Path) -> Any:
    with open(path) as f:
        return json.load(f)
