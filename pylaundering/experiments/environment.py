"""environment.json of a run folder: versions, threads, the CPU ops' backend, the git commit and the run's device
(``Runtime.describe``); a resume keeps the first run's record and appends its own to ``resumes``."""

from __future__ import annotations

import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from .. import __version__
from ..device import Runtime
from ..train.checkpoint import read_json, write_json


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(rt: Runtime | None = None) -> dict:
    """Versions, threads, the CPU ops' backend and, with ``rt``, the run's device, precision and the loss kernels'
    backend there (``runtime``: ``Runtime.describe``)."""
    import torch
    import transformers

    from ..ops import backend

    env = {"pylaundering": __version__, "python": sys.version.split()[0], "platform": platform.platform(),
           "torch": torch.__version__, "cuda": torch.version.cuda, "transformers": transformers.__version__,
           "threads": torch.get_num_threads(), "ops_backend": str(backend()), "git_commit": _git_commit()}
    if rt is not None:
        env["runtime"] = rt.describe()
    return env


def record_environment(out: Path, rt: Runtime | None = None) -> None:
    """Writes environment.json on a first run; on a resume keeps it and appends to ``resumes``."""
    path = out / "environment.json"
    env = environment(rt)
    if path.exists():
        first = read_json(path)
        first.setdefault("resumes", []).append(
            {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "environment": env})
        write_json(first, path)
    else:
        write_json({**env, "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}, path)
