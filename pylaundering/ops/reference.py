"""Plain-PyTorch formulas of the distillation losses (DESIGN.md section 3).

These are the tests' oracle and the fallback when the compiled extension is missing. They are
written for clarity and exactness, not speed: every step is an ordinary differentiable torch op,
so their gradients come from autograd, independently of the kernels' hand-written gradients.

Masked logits (-inf) get probability 0 and contribute no loss and no gradient. The pattern
`p * where(p > 0, a - b, 0)` (mask *before* multiplying) keeps autograd from forming 0 * inf.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Kind codes shared with the C++/CUDA kernels (csrc/kernels/distill_params.h).
NO_DISTILL, FORWARD_KL, REVERSE_KL, JSD, MSE = 0, 1, 2, 3, 4


def _acc_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _masked_diff(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return p * torch.where(p > 0, a - b, torch.zeros_like(a))


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
        lm = torch.log(torch.where(m > 0, m, torch.ones_like(m)))
        row = beta * _masked_diff(pt, lt, lm).sum(-1) + (1 - beta) * _masked_diff(ps, ls, lm).sum(-1)
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
