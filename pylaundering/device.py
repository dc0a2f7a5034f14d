"""Where a command's models run (``--device``) and in what arithmetic (``--precision``), resolved once.

``--device auto`` (the default) takes the first CUDA device torch sees (under ``torchrun``: the rank's
``cuda:LOCAL_RANK``), else the CPU; ``cpu``, ``cuda`` and ``cuda:N`` ask for one. A CUDA device asked for
where torch sees none is a ``ConfigError`` (one line, exit 2), raised before anything is written.

``--precision auto`` is bf16 autocast on a GPU that supports it and fp32 everywhere else (a GPU without
bf16 keeps fp32: fp16 needs a gradient scaler and is asked for by name). ``bf16`` on the CPU runs under CPU
autocast; ``fp16`` is CUDA only (with a gradient scaler). Weights and optimiser state stay fp32 in every mode.

``--deterministic`` turns on ``torch.use_deterministic_algorithms`` around training (and sets
``CUBLAS_WORKSPACE_CONFIG``, which cuBLAS reads when it starts: hence at resolution, before any CUDA work).

A resolved :class:`Runtime` is what the phases take; on the CPU at fp32 it changes nothing they compute.
Imported by the CLI at start-up: torch is imported inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
#: cuBLAS's deterministic workspace setting (docs.nvidia.com/cuda/cublas, "Results reproducibility")
CUBLAS_WORKSPACE = ":4096:8"
#: Items per scoring batch on the CPU (and wherever the free memory cannot be read): the earlier fixed size
DEFAULT_SCORE_BATCH = 64
#: Share of the GPU's free memory a scoring batch's activations may take (the rest: the model, the
#: caching allocator's slack, a second model in the same process)
SCORE_MEMORY_SHARE = 0.25
#: The largest scoring batch chosen from free memory (beyond it a GPU gains nothing at these sizes)
MAX_SCORE_BATCH = 4096


def local_rank() -> int:
    """This process's rank on its node under torchrun (LOCAL_RANK), else 0."""
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def resolve_device(spec: Any = "auto", key: str = "device") -> str:
    """``"cpu"`` or ``"cuda:N"`` for ``spec`` (auto, cpu, cuda, cuda:N; None is auto); ConfigError naming
    ``key`` when it is not one of those, or asks for a CUDA device torch does not see."""
    import torch

    text = "auto" if spec is None else str(spec).strip().lower()
    if text == "auto":
        if not torch.cuda.is_available():
            return "cpu"
        text = "cuda"
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ConfigError(key, f"expected cpu or cuda (cuda:N), or auto, got {spec!r}")
    if dev.type == "cpu":
        return "cpu"
    if not torch.cuda.is_available():
        why = "a CPU-only build of torch" if torch.version.cuda is None else "no CUDA device is visible"
        raise ConfigError(key, f"{spec!r} asked for a CUDA device, but torch {torch.__version__} sees none here "
                          f"({why}); use --device cpu or auto")
    count = torch.cuda.device_count()
    rank = local_rank()
    if dev.index is not None and _world_size() > 1 and dev.index != rank:
        raise ConfigError(key, f"{spec!r} under torchrun: each process takes its own GPU (cuda:LOCAL_RANK, here "
                          f"cuda:{rank}); pass --device cuda or auto")
    index = dev.index if dev.index is not None else rank
    if index >= count:
        raise ConfigError(key, f"cuda:{index} does not exist: torch sees {count} CUDA device(s) "
                          f"(cuda:0 to cuda:{count - 1})")
    return f"cuda:{index}"


def _bf16_supported(device: str) -> bool:
    import torch

    if device == "cpu":
        return True
    with torch.cuda.device(torch.device(device)):
        return bool(torch.cuda.is_bf16_supported())


def resolve_precision(spec: Any, device: str, key: str = "precision") -> str:
    """fp32, bf16 or fp16 for ``spec`` on the resolved ``device`` (auto: bf16 on a GPU that has it, else fp32);
    ConfigError for a name not in PRECISIONS, fp16 on the CPU, bf16 on a GPU without it."""
    text = "auto" if spec is None else str(spec).strip().lower()
    if text not in PRECISIONS:
        raise ConfigError(key, f"expected one of {', '.join(PRECISIONS)}, got {spec!r}")
    cuda = device.startswith("cuda")
    if text == "auto":
        return "bf16" if cuda and _bf16_supported(device) else "fp32"
    if text == "fp16" and not cuda:
        raise ConfigError(key, "fp16 is for CUDA devices (autocast with a gradient scaler); on the CPU use fp32 or "
                          "bf16")
    if text == "bf16" and cuda and not _bf16_supported(device):
        raise ConfigError(key, f"this GPU ({device_name(device)}) has no bf16 arithmetic; use fp16 or fp32")
    return text


def device_name(device: str) -> str:
    """The GPU's model name, or the CPU's (from /proc/cpuinfo where there is one)."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def _memory_gib(device: str) -> float | None:
    if device.startswith("cuda"):
        import torch

        return round(torch.cuda.get_device_properties(torch.device(device)).total_memory / 2**30, 1)
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


@dataclass(frozen=True)
class Runtime:
    """A resolved device and precision (``runtime()`` resolves and checks them); ``Runtime()`` is the CPU at
    fp32, where every method below is the identity."""

    device: str = "cpu"
    precision: str = "fp32"
    deterministic: bool = False

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def torch_device(self):
        import torch

        return torch.device(self.device)

    @property
    def autocast_dtype(self):
        """The autocast dtype, or None at fp32 (no autocast at all)."""
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)

    def autocast(self):
        """Autocast for forward passes at this precision (a no-op context at fp32)."""
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        import torch

        return torch.autocast(device_type=self.torch_device.type, dtype=dtype)

    def exact(self):
        """Autocast switched off: inside, ops run in their inputs' dtypes (for the fused ops, which are fed
        explicitly cast inputs, see ``cast``)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        import torch

        return torch.autocast(device_type=self.torch_device.type, enabled=False)

    def cast(self, x):
        """``x`` in the autocast dtype (a differentiable copy, as autocast makes of a linear's weight), or
        ``x`` itself at fp32 or when it is None."""
        dtype = self.autocast_dtype
        return x if x is None or dtype is None or x.dtype == dtype else x.to(dtype)

    def grad_scaler(self):
        """A gradient scaler for fp16 (its small exponent range underflows unscaled gradients), else None."""
        if self.precision != "fp16":
            return None
        import torch

        return torch.amp.GradScaler(self.torch_device.type)

    def to_device(self, batch):
        """``batch`` (a tensor, or a dataclass of tensors such as an MCBatch or TextBatch) on this device:
        through pinned memory with a non-blocking copy on CUDA; on the CPU the batch itself. An ``index`` field
        (the rows' positions in the data set) stays on the host: it indexes host-side data, and reading it
        there costs no device sync."""
        if not self.cuda:
            return batch
        dev = self.torch_device

        def move(t):
            import torch

            if not isinstance(t, torch.Tensor) or t.device == dev:
                return t
            if t.device.type == "cpu":
                t = t.pin_memory()
            return t.to(dev, non_blocking=True)

        if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
            return dataclasses.replace(batch, **{f.name: move(getattr(batch, f.name))
                                                 for f in dataclasses.fields(batch) if f.name != "index"})
        return move(batch)

    @contextlib.contextmanager
    def session(self):
        """Deterministic algorithms on while inside (``deterministic``; restored after), else nothing."""
        if not self.deterministic:
            yield
            return
        import torch

        before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
                  torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(before[0], warn_only=before[1])
            torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[2], before[3]

    def describe(self) -> dict:
        """What environment.json and metrics.json record: the device, its model and memory, the precision, the
        loss kernels' backend on it, and the determinism setting."""
        from .ops import backend

        used = backend(self.device)
        info = {"device": self.device, "name": device_name(self.device), "memory_gib": _memory_gib(self.device),
                "precision": self.precision, "loss_backend": used.name, "loss_backend_reason": used.reason,
                "deterministic": self.deterministic}
        if self.deterministic:
            info["cublas_workspace_config"] = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
        return info


def runtime(device: Any = "auto", precision: Any = "auto", deterministic: bool = False) -> Runtime:
    """The Runtime of ``device`` and ``precision`` (each resolved and checked: ConfigError naming the option).
    ``deterministic`` sets CUBLAS_WORKSPACE_CONFIG now, before cuBLAS starts (it reads it only then)."""
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    return Runtime(dev, prec, bool(deterministic))


def as_runtime(device: Runtime | str | None) -> Runtime:
    """What a phase's ``device`` argument accepts: a Runtime as is, a device name (its precision auto), or
    None (auto)."""
    if isinstance(device, Runtime):
        return device
    return runtime(device)


def model_runtime(model) -> Runtime:
    """A Runtime at fp32 on the device ``model``'s parameters are on (the CPU for a model without any)."""
    for p in model.parameters():
        return Runtime(str(p.device))
    return Runtime()


def score_batch_size(rt: Runtime, *, items: int, sequences_per_item: int, length: int, config=None, vocab: int = 0,
                     requested: int | None = None) -> int:
    """Items per scoring (inference) batch: ``requested`` when given; DEFAULT_SCORE_BATCH on the CPU; on a GPU as
    many as fill SCORE_MEMORY_SHARE of its free memory by an estimate of one sequence's activations (from the
    model's ``config``: hidden size and heads; ``vocab`` when [length, vocabulary] logits are formed, as a causal
    LM's loglik scorer does), at most MAX_SCORE_BATCH and ``items``, at least 1."""
    if requested is not None:
        return requested
    if not rt.cuda:
        return DEFAULT_SCORE_BATCH
    import torch

    free = torch.cuda.mem_get_info(rt.torch_device)[0]
    per_item = max(1, sequences_per_item) * max(1, length) * bytes_per_token(config, rt.precision, length, vocab)
    fit = int(free * SCORE_MEMORY_SHARE // per_item)
    return max(1, min(items, MAX_SCORE_BATCH, fit))


def bytes_per_token(config, precision: str, length: int, vocab: int = 0) -> int:
    """An upper estimate of one token's activation bytes in an inference forward pass (no gradients kept): a few
    live [tokens, hidden] buffers (the residual stream, the MLP's 4x expansion), a row of attention scores per
    head, and ``vocab`` fp32 logits with their log-softmax."""
    elt = 4 if precision == "fp32" else 2

    def get(*names, default):
        for n in names:
            v = getattr(config, n, None)
            if isinstance(v, int) and v > 0:
                return v
        return default

    hidden = get("hidden_size", "n_embd", "d_model", default=1024)
    heads = get("num_attention_heads", "n_head", default=16)
    return 16 * hidden * elt + heads * length * 4 + 8 * vocab
