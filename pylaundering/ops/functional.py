"""Public distillation losses: raw logits in, shapes ``[..., V]``, reduce over the last dim.

Every function here is a thin front over one fused op (``torch.ops.pylaundering.fused_distill``)
computing, per row, ``alpha * distill + (1 - alpha) * CE`` and its gradient in one kernel.
Inputs are validated here, with errors that name the problem; the kernels check again so that
direct callers of the torch op are safe too.

Conventions (the kinds: ``pylaundering/loss_kinds.py``): the KL family (kl, reverse_kl, jsd, skew_kl, skew_reverse_kl)
is multiplied by T^2 (Hinton: the gradient keeps its size as T grows), tvd is not, MSE ignores T, CE uses
T = 1. The teacher is a constant: no gradient flows into it. Rows whose label equals ``ignore_index``
contribute nothing and are not counted by ``mean``/``batchmean``.

Reductions: ``none`` (per row, shape ``[...]``), ``sum``, ``batchmean`` (sum / counted rows) and
``mean``. ``mean`` follows torch per op: for ``kl_div``/``jsd`` it is sum / (rows * V) as
``F.kl_div(reduction="mean")``; for ``logit_mse`` it is the mean over all elements as
``F.mse_loss``; for ``cross_entropy`` and ``distill_loss`` it is sum / counted rows.
"""

from __future__ import annotations

import torch

from ..loss_kinds import LOSS_KINDS, NO_DISTILL, SOFT_KINDS
from . import _ext, reference
from ._registry import may_read_back
from .spec import DistillSpec, check_alpha, check_temperature

#: name -> kernel code of the kinds with a fused kernel (``loss_kinds.LOSS_KINDS``; ``hard`` has none)
KINDS = {k.name: k.code for k in LOSS_KINDS if k.code is not None}
_SOFT_CODES = frozenset(KINDS[name] for name in SOFT_KINDS)
_BETA_KINDS = frozenset(k.name for k in LOSS_KINDS if k.beta is not None)
REDUCTIONS = ("none", "sum", "mean", "batchmean")
_FLOAT_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
#: Soft (softmax at T) terms above this temperature are computed in float64 (see _rows): below it the
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


def _check_scalars(temperature: float, alpha: float, reduction: str) -> None:
    """The settings of a call that builds no :class:`DistillSpec` (a teacher's temperature, CE alone)."""
    check_temperature(temperature)
    check_alpha(alpha)
    _check_reduction(reduction)


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; expected one of {', '.join(REDUCTIONS)}")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")


def make_spec(kind: str, alpha: float, temperature: float, beta: float, reduction: str) -> DistillSpec:
    """The public functions' settings as one validated spec (kernel kinds only), and their reduction
    checked. A beta that the kind ignores is not looked at (the kernels ignore it too)."""
    _check_kind(kind)
    spec = DistillSpec(kind, alpha, temperature, beta if _uses_beta(kind) else 0.5)
    _check_reduction(reduction)
    return spec


def _uses_beta(kind: str) -> bool:
    return kind in _BETA_KINDS


def kernel_code(spec: DistillSpec) -> int:
    """The code the fused op runs for ``spec``: cross-entropy alone (NO_DISTILL) when alpha is 0."""
    return NO_DISTILL if spec.alpha == 0 else spec.code


#: cross-entropy alone: alpha 0 runs the kernel's NO_DISTILL code
CE_ONLY = DistillSpec("kl", 0.0, 1.0, 0.5)


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
    """Whether the soft (softmax at T) term of kind code ``kind`` is computed in float64: above
    HIGH_TEMPERATURE, for non-fp64 input."""
    return kind in _SOFT_CODES and temperature > HIGH_TEMPERATURE and dtype != torch.float64


def _rows(
    student: torch.Tensor,
    teacher: torch.Tensor | None,
    labels: torch.Tensor | None,
    spec: DistillSpec,
    ignore_index: int,
    grad_scale: float = 1.0,
) -> torch.Tensor:
    """Per-row losses, shape ``student.shape[:-1]``, in fp32 (fp64 for fp64 inputs). ``grad_scale``: the
    factor the compiled op writes its saved gradient with (see :func:`_grad_scale`)."""
    kind, alpha, temperature, beta = kernel_code(spec), spec.alpha, spec.temperature, spec.beta
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


def _loss(student, teacher, labels, spec: DistillSpec, ignore_index, reduction,
          mean_divisor: int = 1) -> torch.Tensor:
    """Rows (with the reduction's scale folded into the gradient) then the reduction."""
    wide = student.dtype == torch.float64 or needs_float64(kernel_code(spec), spec.temperature, student.dtype)
    denom = _denominator(student, labels, ignore_index, reduction, mean_divisor,
                         torch.float64 if wide else torch.float32)
    scale = _grad_scale(student, reduction, denom)
    rows = _rows(student, teacher, labels, spec, ignore_index, scale)
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
        kind: one of :data:`KINDS` (``loss_kinds.LOSS_KINDS``): ``"kl"`` (Hinton forward KL), ``"reverse_kl"``,
            ``"jsd"``, ``"mse"`` (on logits), ``"tvd"``, ``"skew_kl"``, ``"skew_reverse_kl"``.
        alpha: weight of the distillation term, in [0, 1].
        temperature: T > 0 for the soft terms (the KL family is scaled by T^2, tvd not); CE uses T = 1.
        beta: generalized JSD mixing weight in (0, 1) for ``kind="jsd"``; the skew in [0, 1) for the
            skewed KLs (``skew_kl``: KL(pt || beta pt + (1-beta) ps)); ignored by the other kinds.
        reduction: ``batchmean`` (default: mean over counted rows), ``mean`` (same here), ``sum``
            or ``none`` (per-row losses).
    """
    spec = make_spec(kind, alpha, temperature, beta, reduction)
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
    return _loss(student, teacher if alpha > 0 else None, labels, spec, ignore_index, reduction)


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
    spec = make_spec("kl" if direction == "forward" else "reverse_kl", 1.0, temperature, 0.5, reduction)
    _check_pair(student, teacher)
    return _loss(student, teacher, None, spec, -100, reduction, student.shape[-1])


def jsd(
    student: torch.Tensor,
    teacher: torch.Tensor,
    beta: float = 0.5,
    temperature: float = 1.0,
    reduction: str = "batchmean",
) -> torch.Tensor:
    """Generalized Jensen-Shannon divergence (TRL's): ``beta KL(pt||m) + (1-beta) KL(ps||m)``,
    ``m = beta pt + (1-beta) ps``, times T^2. ``beta`` must lie strictly inside (0, 1)."""
    spec = make_spec("jsd", 1.0, temperature, beta, reduction)
    _check_pair(student, teacher)
    return _loss(student, teacher, None, spec, -100, reduction, student.shape[-1])


def logit_mse(student: torch.Tensor, teacher: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Mean squared error between logits; per row it is the mean over V (``mean`` = ``F.mse_loss``)."""
    spec = make_spec("mse", 1.0, 1.0, 0.5, reduction)
    _check_pair(student, teacher)
    return _loss(student, teacher, None, spec, -100, reduction)


def cross_entropy(
    student: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100, reduction: str = "mean"
) -> torch.Tensor:
    """Hard-label cross-entropy, as ``F.cross_entropy`` with logits ``[..., V]`` and labels ``[...]``."""
    _check_reduction(reduction)
    _check_logits("student", student)
    labels = _check_labels(student, labels)
    return _loss(student, None, labels, CE_ONLY, ignore_index, reduction)
