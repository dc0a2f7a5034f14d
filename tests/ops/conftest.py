"""Shared setup for the fused-loss tests (the oracle itself lives in ops_oracle.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

try:
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "pylaundering-ops", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    # HYPOTHESIS_PROFILE=pylaundering-ops-hunt for a long bug hunt (a few minutes)
    settings.register_profile("pylaundering-ops-hunt", parent=settings.get_profile("pylaundering-ops"),
                              max_examples=3000)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "pylaundering-ops"))
except ImportError:  # pragma: no cover
    pass

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tests run the ops on small inputs with one intra-op thread.

    The kernel splits rows into tasks of >= 64K elements, so these inputs are one task anyway, and
    one thread spares the eager float64 oracle OpenMP's start-up, which costs a scheduler quantum
    per parallel region on a busy 2-core machine (10x on the test matrix). Multi-threaded kernels
    are covered by tests that set the thread count themselves (test_thread_count_*) and by the
    subprocess tests. Module-scoped, so the setting never leaks into other test directories.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    yield


@pytest.fixture
def run_py():
    """Runs a Python snippet in a fresh interpreter with extra env vars; returns its last stdout line as JSON.

    Needed where a choice is made once per process (the CPU kernel variant) or at import time
    (whether the extension loads).
    """

    def run(code: str, env: dict | None = None, timeout: float = 120) -> dict:
        full_env = dict(os.environ)
        full_env.setdefault("OMP_NUM_THREADS", "2")
        full_env.update(env or {})
        proc = subprocess.run(
            [sys.executable, "-c", code], cwd=str(REPO), env=full_env, capture_output=True, text=True, timeout=timeout
        )
        assert proc.returncode == 0, f"subprocess failed (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
        assert lines, f"subprocess printed nothing; stderr:\n{proc.stderr}"
        result = json.loads(lines[-1])
        result["_stderr"] = proc.stderr
        return result

    return run
