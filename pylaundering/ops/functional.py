"""Public distillation losses: raw logits in, shapes ``[..., V]``, reduce over the last dim.

Every function here is a thin front over one fused op (``torch.ops.pylaundering.fused_distill``)
computing, per row, ``alpha * distill + (1 - alpha) * CE`` and its gradient in one kernel.
Inputs are validated here, with errors that name the problem; the kernels check again so that
direct callers of the torch op are safe too.

Conventions (DESIGN.md section 3): KL and JSD are multiplied by T^2 (Hinton), MSE ignores T,
CE uses T = 1. The teacher is a constant: no gradient flows into it. Rows whose label equals
``ignore_index`` contribute nothing and are not counted by ``mean``/``batchmean``.

Reductions: ``none`` (per row, shape ``[...]``), ``sum``, ``batchmean`` (sum / counted rows) and
``mean``. ``mean`` follows torch per op: for ``kl_div``/``jsd`` it is sum / (rows * V) as
``F.kl_div(reduction="mean")``; for ``logit_mse`` it is the mean over all elements as
``F.mse_loss``; for ``cross_entropy`` and ``distill_loss`` it is sum / counted rows.
"""

from __future__ import annotations

import math

import torch

from . import _ext, reference
from ._registry import may_read_back
from .reference import FORWARD_KL, JSD, MSE, NO_DISTILL, REVERSE_KL

KINDS = {"kl": FORWARD_KL, "reverse_kl": REVERSE_KL, "jsd": JSD, "mse": MSE}
REDUCTIONS = ("none", "sum", "mean", "batchmean")
_FLOAT_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
#: Soft (KL / JSD) terms above this temperature are computed in float64 (see _rows): below it the
#: float32 kernels stay within ~1e-5 relative error of a float64 oracle.
HIGH_TEMPERATURE = 8.0


def _check_logits(name: str, x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of logits, got {type(x).__name__}")
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{name} logits must be float32, float64, bfloat16 or float16, got {x.dtype}")
    if x.dim() < 1:
        raise ValueError(f"{name} logits must have shape [..., V] with at least one dimension, got a scalar")
    if x.shape[-1] < 1:
        raise ValueError(f"{name} logits have an empty class dimension (V = 0)")
    return x


def _check_pair(student: torch.Tensor, teacher: torch.Tensor) -> None:
    _check_logits("student", student)
    _check_logits("teacher", teacher)
    if student.shape != teacher.shape:
        raise ValueError(f"shape mismatch: student {tuple(student.shape)} vs teacher {tuple(teacher.shape)}")
    if student.dtype != teacher.dtype:
        raise TypeError(f"dtype mismatch: student {student.dtype} vs teacher {teacher.dtype}")
    if student.device != teacher.device:
        raise ValueError(f"device mismatch: student on {student.device}, teacher on {teacher.device}")


def _check_labels(student: torch.Tensor, labels: object) -> torch.Tensor:
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor of class indices, got {type(labels).__name__}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor of class indices, got {labels.dtype}")
    if labels.shape != student.shape[:-1]:
        raise ValueError(
            f"shape mismatch: labels {tuple(labels.shape)} must equal the student's leading shape "
            f"{tuple(student.shape[:-1])} (student is {tuple(student.shape)})"
        )
    if labels.device != student.device:
        raise ValueError(f"device mismatch: student on {student.device}, labels on {labels.device}")
    return labels.long()


def _check_scalars(temperature: float, alpha: float, beta: float | None, reduction: str) -> None:
    # Comparisons only (no math.isfinite): under torch.compile a temperature that varies between calls
    # becomes a SymFloat, which math.isfinite cannot trace (fullgraph=True would fail). NaN fails both.
    if not (isinstance(temperature, (int, float)) and 0 < temperature < math.inf):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if not (isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0):
        raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")
    if beta is not None and not (isinstance(beta, (int, float)) and 0.0 < beta < 1.0):
        raise ValueError(
            f"beta must lie strictly inside (0, 1), got {beta!r}; at 0 or 1 the generalized JSD is "
            "identically 0: use kl_div (direction='forward' or 'reverse') instead"
        )
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; expected one of {', '.join(REDUCTIONS)}")


def _check_label_range(labels: torch.Tensor, num_classes: int, ignore_index: int) -> None:
    # The compiled kernels check labels themselves; the reference path checks here, except while
    # torch.compile traces (a data-dependent check would break the graph).
    if torch.compiler.is_compiling() or labels.numel() == 0:
        return
    bad = (labels != ignore_index) & ((labels < 0) | (labels >= num_classes))
    if bool(bad.any()):
        first = labels[bad][0].item()
        raise ValueError(
            f"label {first} is out of range [0, {num_classes}) and is not ignore_index ({ignore_index})"
        )


def needs_float64(kind: int, temperature: float, dtype: torch.dtype) -> bool:
    """Whether the soft (KL / JSD) term is computed in float64: above HIGH_TEMPERATURE, for non-fp64 input."""
    return kind in (FORWARD_KL, REVERSE_KL, JSD) and temperature > HIGH_TEMPERATURE and dtype != torch.float64


def _rows(
    student: torch.Tensor,
    teacher: torch.Tensor | None,
    labels: torch.Tensor | None,
    kind: int,
    alpha: float,
    temperature: float,
    beta: float,
    ignore_index: int,
    grad_scale: float = 1.0,
) -> torch.Tensor:
    """Per-row losses, shape ``student.shape[:-1]``, in fp32 (fp64 for fp64 inputs). ``grad_scale``: the
    factor the compiled op writes its saved gradient with (see :func:`_grad_scale`)."""
    V = student.shape[-1]
    lead = student.shape[:-1]
    s2 = student.reshape(-1, V)
    t2 = teacher.detach().reshape(-1, V) if teacher is not None else None
    if needs_float64(kind, temperature, s2.dtype):
        # The soft terms are T^2 times a KL that shrinks like 1/T^2, formed from log-probabilities
        # of size log V: float32 rounding then grows like T^2 (relative error 3e-4 at T = 64, a
        # negative "KL" at T = 1e6, in plain PyTorch too). Above the threshold, compute in float64
        # (1e-4 at T = 1e6); autograd casts the gradient back to the input dtype.
        s2, t2 = s2.double(), t2.double()
    y1 = labels.reshape(-1) if labels is not None else None
    if _ext.compiled_available(student.device):
        need_grad = torch.is_grad_enabled() and student.requires_grad
        rows, _ = torch.ops.pylaundering.fused_distill(
            s2.contiguous(),
            t2.contiguous() if t2 is not None else None,
            y1.contiguous() if y1 is not None else None,
            kind,
            float(alpha),
            float(temperature),
            float(beta),
            int(ignore_index),
            need_grad,
            float(grad_scale),
        )
    else:
        _ext.warn_fallback(student.device)
        if y1 is not None:
            _check_label_range(y1, V, ignore_index)
        rows = reference.fused_distill_rows(s2, t2, y1, kind, alpha, temperature, beta, ignore_index)
    return rows.reshape(lead)


def _denominator(student: torch.Tensor, labels: torch.Tensor | None, ignore_index: int, reduction: str,
                 mean_divisor: int, rows_dtype: torch.dtype) -> torch.Tensor | None:
    """What a mean or batchmean divides the row sum by (a tensor on the student's device, no sync), or
    None for ``none``/``sum``. Formed once per call and shared by :func:`_grad_scale` and :func:`_reduce`:
    one count of the labels instead of two, and the same rounding in both by construction."""
    if reduction in ("none", "sum"):
        return None
    if labels is not None:
        count = (labels != ignore_index).sum()
    else:
        count = torch.tensor(student.numel() // max(1, student.shape[-1]), device=student.device)
    # clamp: when every row is ignored the loss is 0 (and so is its gradient), never 0/0.
    return count.clamp(min=1).to(rows_dtype) * (mean_divisor if reduction == "mean" else 1)


def _grad_scale(student: torch.Tensor, reduction: str, denom: torch.Tensor | None) -> float:
    """What the reduction's backward hands each row when the loss's own gradient is 1: ``1 / denom``
    (:func:`_denominator`'s, the one :func:`_reduce` divides by), computed as it computes it (same
    dtype, same rounding), so backward finds it exactly and skips its pass over the [rows, V]
    gradient. On a GPU only where that pass costs more than the syncs (reading the scale here,
    reading the gradient back there); never while tracing (the count is data). 1 (nothing folded)
    otherwise."""
    if denom is None or reduction in ("none", "sum") or torch.compiler.is_compiling():
        return 1.0
    if not (torch.is_grad_enabled() and student.requires_grad) or not may_read_back(student.device, student.numel()):
        return 1.0
    return float(torch.ones((), dtype=denom.dtype, device=denom.device) / denom)


def _loss(student, teacher, labels, kind, alpha, temperature, beta, ignore_index, reduction,
          mean_divisor: int = 1) -> torch.Tensor:
    """Rows (with the reduction's scale folded into the gradient) then the reduction."""
    wide = student.dtype == torch.float64 or needs_float64(kind, temperature, student.dtype)
    denom = _denominator(student, labels, ignore_index, reduction, mean_divisor,
                         torch.float64 if wide else torch.float32)
    scale = _grad_scale(student, reduction, denom)
    rows = _rows(student, teacher, labels, kind, alpha, temperature, beta, ignore_index, scale)
    return _reduce(rows, labels, ignore_index, reduction, student.dtype, mean_divisor, denom)


def _reduce(
    rows: torch.Tensor,
    labels: torch.Tensor | None,
    ignore_index: int,
    reduction: str,
    out_dtype: torch.dtype,
    mean_divisor: int = 1,
    denom: torch.Tensor | None = None,
) -> torch.Tensor:
    if reduction == "none":
        return rows.to(out_dtype)
    total = rows.sum()
    if reduction == "sum":
        return total.to(out_dtype)
    if denom is None or denom.dtype != rows.dtype:
        denom = _denominator(rows.unsqueeze(-1), labels, ignore_index, reduction, mean_divisor, rows.dtype)
    return (total / denom).to(out_dtype)


def distill_loss(
    student: torch.Tensor,
    teacher: torch.Tensor | None,
    labels: torch.Tensor | None = None,
    *,
    kind: str = "kl",
    alpha: float = 1.0,
    temperature: float = 1.0,
    beta: float = 0.5,
    reduction: str = "batchmean",
    ignore_index: int = -100,
) -> torch.Tensor:
    """``alpha * distill(student, teacher) + (1 - alpha) * CE(student, labels)`` in one fused kernel.

    Args:
        student: raw student logits ``[..., V]`` (fp32/bf16/fp16/fp64).
        teacher: raw teacher logits, same shape, dtype and device (a constant: no gradient);
            may be None only when ``alpha == 0``.
        labels: integer class indices of shape ``[...]``; needed when ``alpha < 1``. Rows equal
            to ``ignore_index`` are skipped (both terms) and not counted.
        kind: ``"kl"`` (Hinton forward KL), ``"reverse_kl"``, ``"jsd"`` or ``"mse"`` (on logits).
        alpha: weight of the distillation term, in [0, 1].
        temperature: T > 0 for the soft terms (KL/JSD are scaled by T^2); CE uses T = 1.
        beta: generalized JSD mixing weight in (0, 1), used when ``kind="jsd"``.
        reduction: ``batchmean`` (default: mean over counted rows), ``mean`` (same here), ``sum``
            or ``none`` (per-row losses).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    _check_scalars(temperature, alpha, beta if kind == "jsd" else None, reduction)
    if alpha > 0 or teacher is not None:
        if teacher is None:
            raise ValueError("teacher logits are required when alpha > 0")
        _check_pair(student, teacher)
    else:
        _check_logits("student", student)
    if alpha < 1 and labels is None:
        raise ValueError(f"alpha={alpha} < 1 mixes in cross-entropy, which needs labels")
    if labels is not None:
        labels = _check_labels(student, labels)
    code = KINDS[kind] if alpha > 0 else NO_DISTILL
    return _loss(student, teacher if alpha > 0 else None, labels, code, alpha, temperature, beta, ignore_index,
                 reduction)


def kl_div(
    student: torch.Tensor,
    teacher: torch.Tensor,
    temperature: float = 1.0,
    reduction: str = "batchmean",
    direction: str = "forward",
) -> torch.Tensor:
    """Hinton's ``T^2 * KL(softmax(t/T) || softmax(s/T))`` (``direction="forward"``) or the reverse KL.

    ``reduction="batchmean"`` equals ``F.kl_div(log_softmax(s/T), log_softmax(t/T), log_target=True,
    reduction="batchmean") * T**2`` for 2-D inputs (rows = all leading dims flattened).
    """
    if direction not in ("forward", "reverse"):
        raise ValueError(f"unknown direction {direction!r}; expected 'forward' or 'reverse'")
    _check_scalars(temperature, 1.0, None, reduction)
    _check_pair(student, teacher)
    code = FORWARD_KL if direction == "forward" else REVERSE_KL
    return _loss(student, teacher, None, code, 1.0, temperature, 0.5, -100, reduction, student.shape[-1])


def jsd(
    student: torch.Tensor,
    teacher: torch.Tensor,
    beta: float = 0.5,
    temperature: float = 1.0,
    reduction: str = "batchmean",
) -> torch.Tensor:
    """Generalized Jensen-Shannon divergence (TRL's): ``beta KL(pt||m) + (1-beta) KL(ps||m)``,
    ``m = beta pt + (1-beta) ps``, times T^2. ``beta`` must lie strictly inside (0, 1)."""
    _check_scalars(temperature, 1.0, beta, reduction)
    _check_pair(student, teacher)
    return _loss(student, teacher, None, JSD, 1.0, temperature, beta, -100, reduction, student.shape[-1])


def logit_mse(student: torch.Tensor, teacher: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean squared error between logits; per row it is the mean over V (``mean`` = ``F.mse_loss``)."""
    _check_scalars(1.0, 1.0, None, reduction)
    _check_pair(student, teacher)
    return _loss(student, teacher, None, MSE, 1.0, 1.0, 0.5, -100, reduction)


def cross_entropy(
    student: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100, reduction: str = "mean"
) -> torch.Tensor:
    """Hard-label cross-entropy, as ``F.cross_entropy`` with logits ``[..., V]`` and labels ``[...]``."""
    _check_scalars(1.0, 0.0, None, reduction)
    _check_logits("student", student)
    labels = _check_labels(student, labels)
    return _loss(student, None, labels, NO_DISTILL, 0.0, 1.0, 0.5, ignore_index, reduction)
