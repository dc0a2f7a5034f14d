"""Atomic writes: a crash or kill mid-write never leaves a truncated file behind."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def _atomic(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
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
