"""Loading the compiled extension and saying which backend runs.

The extension registers its ops under ``torch.ops.pylaundering`` when imported. If it is
missing (a source checkout that was never built) everything still works on the plain-PyTorch
reference, with a one-time warning, and ``backend()`` says so.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch

_C = None
_LOAD_ERROR: str | None = None
try:
    from pylaundering import _C  # noqa: F401  (import registers the torch ops)
except ImportError as e:  # pragma: no cover - exercised only without a build
    _LOAD_ERROR = str(e)
# Read once: the ops consult it on every call, also inside torch.compile, which cannot trace a
# pybind11 function (a graph break that fails fullgraph=True).
_BUILT_WITH_CUDA = bool(_C.built_with_cuda()) if _C is not None else False

_WARNED = False


@dataclass(frozen=True)
class Backend:
    """Which implementation the ops use on a device, and why."""

    name: str  # "cpp", "cuda" or "reference"
    reason: str

    def __str__(self) -> str:
        return f"{self.name} ({self.reason})"


def forced_reference() -> bool:
    return os.environ.get("PYLAUNDERING_BACKEND", "").lower() == "reference"


def compiled_available(device: torch.device | str = "cpu") -> bool:
    if _C is None or forced_reference():
        return False
    dev = torch.device(device)
    if dev.type == "cuda":
        return _BUILT_WITH_CUDA
    return dev.type == "cpu"


def backend(device: torch.device | str = "cpu") -> Backend:
    """The implementation used for tensors on ``device``."""
    dev = torch.device(device)
    if forced_reference():
        return Backend("reference", "PYLAUNDERING_BACKEND=reference is set")
    if _C is None:
        return Backend("reference", f"compiled extension pylaundering._C not importable: {_LOAD_ERROR}")
    if dev.type == "cuda":
        if _BUILT_WITH_CUDA:
            cluster = os.environ.get("PYLAUNDERING_CUDA_ROW_CLUSTER", "")
            extra = f"; row-cluster mode PYLAUNDERING_CUDA_ROW_CLUSTER={cluster} (long rows, sm_90+)" if cluster else ""
            return Backend("cuda", "pylaundering._C built with CUDA kernels" + extra)
        return Backend("reference", "pylaundering._C was built without CUDA (torch or nvcc had no CUDA at build time)")
    if dev.type == "cpu":
        return Backend("cpp", f"pylaundering._C loaded, {_C.cpu_kernel_variant()} CPU kernel, "
                              f"{torch.get_num_threads()} threads")
    return Backend("reference", f"no compiled kernels for device type {dev.type!r}")


def warn_fallback(device: torch.device) -> None:
    global _WARNED
    if not _WARNED and not forced_reference():
        _WARNED = True
        warnings.warn(f"pylaundering: using the slow PyTorch reference losses: {backend(device).reason}", stacklevel=3)


def empty_cache() -> int:
    """Hands back the CPU ops' idle cached gradient buffer (kept so the next call of the same size
    writes into mapped pages instead of faulting in fresh ones; see csrc/cpu/grad_buffer.cpp), as
    ``torch.cuda.empty_cache`` does for GPU memory. Returns the bytes released. The cache holds at
    most one buffer, only of 64 MB or more; ``PYLAUNDERING_GRAD_CACHE=0`` turns it off."""
    return int(_C.empty_cache()) if _C is not None and hasattr(_C, "empty_cache") else 0


def cached_bytes() -> int:
    """Bytes held by the CPU ops' idle cached gradient buffer (0 when none)."""
    return int(_C.cached_bytes()) if _C is not None and hasattr(_C, "cached_bytes") else 0


_CUDA_DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.bfloat16: 2, torch.float16: 3}


def cuda_row_cluster_plan(rows: int, cols: int, dtype: torch.dtype, kind: int = 1,
                          aligned: bool = True) -> tuple[int, int]:
    """(blocks per row, rows in flight) that the CUDA kernel's row-cluster mode would use now on the
    current device for ``rows`` x ``cols`` logits; ``(0, 0)`` when the default kernel runs.

    The mode is opt-in (``PYLAUNDERING_CUDA_ROW_CLUSTER=2|4|8``; ``PYLAUNDERING_CUDA_CLUSTER_ROWS=n``
    sets the rows in flight) and needs an sm_90+ GPU and rows longer than 1024. ``kind`` is the op's
    kind code (``functional.KINDS``; 0 for cross-entropy alone)."""
    if _C is None or not _BUILT_WITH_CUDA:
        return (0, 0)
    code = _CUDA_DTYPE_CODES.get(dtype)
    if code is None:
        raise TypeError(f"cuda_row_cluster_plan: unsupported dtype {dtype}")
    cluster, in_flight = _C.cuda_row_cluster_plan(int(kind), int(rows), int(cols), code, bool(aligned))
    return int(cluster), int(in_flight)
