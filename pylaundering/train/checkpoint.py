"""Atomic writes: a crash or kill mid-write never leaves a truncated file behind."""

from __future__ import annotations

import dataclasses
import importlib
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


def write_figure(fig, path: str | Path, *, dpi: int = 150) -> Path:
    """A matplotlib figure saved as PNG atomically (as every run file): a reader never sees half a figure, and two
    writers never share a temporary name."""
    return _atomic(Path(path), lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))


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


#: The key that marks a dataclass written as a plain dict (see save_torch).
_DATACLASS = "__dataclass__"


def _plain(obj: Any) -> Any:
    """``obj`` with every dataclass instance (e.g. a TrainResult) written as a tagged plain dict, so the
    file holds only what ``torch.load(..., weights_only=True)`` reads: tensors, numbers, strings, None
    and lists, tuples and dicts of them."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        cls = type(obj)
        return {_DATACLASS: f"{cls.__module__}:{cls.__qualname__}",
                "fields": {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}}
    if isinstance(obj, dict):
        return type(obj)((k, _plain(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(_plain(v) for v in obj)
    return obj


def _revive(obj: Any) -> Any:
    """The inverse of _plain. Only dataclasses of this package are rebuilt (by their constructor, from
    their fields): a checkpoint names no other code to run."""
    if isinstance(obj, dict):
        if set(obj) == {_DATACLASS, "fields"}:
            module, _, name = str(obj[_DATACLASS]).partition(":")
            cls = None
            if module.split(".")[0] == __name__.split(".")[0]:
                cls = importlib.import_module(module)
                for part in name.split("."):
                    cls = getattr(cls, part, None)
            if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
                raise ValueError(f"checkpoint names {obj[_DATACLASS]!r}, not a dataclass of this package")
            return cls(**{k: _revive(v) for k, v in obj["fields"].items()})
        return type(obj)((k, _revive(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_revive(v) for v in obj)
    return obj


def save_torch(obj: Any, path: str | Path) -> Path:
    """``obj`` saved so that it loads under ``torch.load(..., weights_only=True)`` (dataclasses as tagged
    plain dicts; RNG states are a tensor and a tuple of ints already)."""
    return _atomic(Path(path), lambda tmp: torch.save(_plain(obj), tmp))


def load_torch(path: str | Path) -> Any:
    """What save_torch saved. ``weights_only=True``: a checkpoint file cannot run code when loaded."""
    return _revive(torch.load(path, map_location="cpu", weights_only=True))


def rng_state(device: str) -> dict:
    """The CUDA generator's state of ``device`` for a checkpoint (``{"cuda_rng": ..., "cuda_device": ...}``), so
    a resumed GPU run draws the same dropout masks as the uninterrupted one; ``{}`` on the CPU (whose generator
    the checkpoint holds as ``torch_rng``), so a CPU checkpoint is what it always was."""
    if not device.startswith("cuda"):
        return {}
    dev = torch.device(device)
    return {"cuda_rng": torch.cuda.get_rng_state(dev), "cuda_device": str(dev)}


def restore_rng(state: dict, device: str) -> bool:
    """Sets ``device``'s CUDA generator from a checkpoint's ``cuda_rng`` (rng_state); True when it did. A CPU
    run, or a checkpoint without one (written on the CPU), leaves the generator as seeded: the run continues,
    with other dropout masks than an uninterrupted run on this device would draw."""
    if not device.startswith("cuda") or state.get("cuda_rng") is None:
        return False
    torch.cuda.set_rng_state(state["cuda_rng"], torch.device(device))
    return True


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
