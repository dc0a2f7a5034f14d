"""Plain-PyTorch formulas of the distillation losses (the kinds and their conventions: ``pylaundering/loss_kinds.py``).

These are the tests' oracle and the fallback when the compiled extension is missing. They are
written for clarity and exactness, not speed: every step is an ordinary differentiable torch op,
so their gradients come from autograd, independently of the kernels' hand-written gradients.

Masked logits (-inf) get probability 0 and contribute no loss and no gradient. The pattern
`p * where(p > 0, a - b, 0)` (mask *before* multiplying) keeps autograd from forming 0 * inf.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..loss_kinds import NO_DISTILL, kernel_code

# Kind codes shared with the C++/CUDA kernels, from the one table (a test checks them against the C++ enum).
FORWARD_KL = kernel_code("kl")
REVERSE_KL = kernel_code("reverse_kl")
JSD = kernel_code("jsd")
MSE = kernel_code("mse")
TVD = kernel_code("tvd")
SKEW_KL = kernel_code("skew_kl")
SKEW_REVERSE_KL = kernel_code("skew_reverse_kl")
#: the kinds whose loss is multiplied by T^2
T2_SCALED = (FORWARD_KL, REVERSE_KL, JSD, SKEW_KL, SKEW_REVERSE_KL)


def _acc_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _masked_diff(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return p * torch.where(p > 0, a - b, torch.zeros_like(a))


def _log_mix(m: torch.Tensor) -> torch.Tensor:
    """log m, 0 where the mixture m is 0 (its terms are then 0: a denormal p can make m underflow); a NaN
    stays NaN (a NaN logit poisons the row, as in the kernels)."""
    return torch.log(torch.where(m == 0, torch.ones_like(m), m))


def distill_term_rows(s: torch.Tensor, t: torch.Tensor, kind: int, temperature: float, beta: float) -> torch.Tensor:
    """Per-row distillation term for 2-D float logits ``s`` (student) and ``t`` (teacher)."""
    if kind == MSE:
        d = torch.where(s == t, torch.zeros_like(s), s - t)  # two -inf entries are a mask, not NaN
        return (d * d).mean(dim=-1)
    T = temperature
    ls = F.log_softmax(s / T, dim=-1)
    lt = F.log_softmax(t / T, dim=-1)
    ps, pt = ls.exp(), lt.exp()
    if kind == FORWARD_KL:
        row = _masked_diff(pt, lt, ls).sum(-1)
    elif kind == REVERSE_KL:
        row = _masked_diff(ps, ls, lt).sum(-1)
    elif kind == JSD:
        m = beta * pt + (1 - beta) * ps
        lm = _log_mix(m)
        row = beta * _masked_diff(pt, lt, lm).sum(-1) + (1 - beta) * _masked_diff(ps, ls, lm).sum(-1)
    elif kind == TVD:
        # |x| has subgradient 0 at x = 0 in autograd: ties pt = ps get no gradient, as in the kernels
        return 0.5 * (pt - ps).abs().sum(-1)
    elif kind == SKEW_KL:
        row = _masked_diff(pt, lt, _log_mix(beta * pt + (1 - beta) * ps)).sum(-1)
    elif kind == SKEW_REVERSE_KL:
        row = _masked_diff(ps, ls, _log_mix(beta * ps + (1 - beta) * pt)).sum(-1)
    else:
        raise ValueError(f"unknown distillation kind code {kind}")
    return row * (T * T)


def fused_distill_rows(
    student: torch.Tensor,
    teacher: torch.Tensor | None,
    labels: torch.Tensor | None,
    kind: int,
    alpha: float,
    temperature: float,
    beta: float,
    ignore_index: int,
) -> torch.Tensor:
    """Per-row ``alpha * distill + (1 - alpha) * CE`` for 2-D logits; ignored rows give 0.

    Same contract as the compiled op's first output. The teacher is treated as a constant.
    """
    acc = _acc_dtype(student)
    s = student.to(acc)
    rows = torch.zeros(s.shape[0], dtype=acc, device=s.device)
    distill_w = 0.0 if kind == NO_DISTILL else alpha
    if distill_w != 0.0:
        assert teacher is not None
        rows = rows + distill_w * distill_term_rows(s, teacher.detach().to(acc), kind, temperature, beta)
    if labels is not None and distill_w != 1.0:
        ce = F.cross_entropy(s, labels, ignore_index=ignore_index, reduction="none")
        rows = rows + (1.0 - distill_w) * ce
    if labels is not None:
        rows = torch.where(labels == ignore_index, torch.zeros_like(rows), rows)
    return rows
