"""``nn.Module`` wrappers of the functional losses, for code that composes losses as modules."""

from __future__ import annotations

import torch
from torch import nn

from . import functional as F


class DistillLoss(nn.Module):
    """``alpha * distill + (1 - alpha) * CE``; see :func:`pylaundering.ops.distill_loss` (the kinds:
    :data:`pylaundering.loss_kinds.LOSS_KINDS`)."""

    def __init__(self, kind: str = "kl", alpha: float = 1.0, temperature: float = 1.0, beta: float = 0.5,
                 reduction: str = "batchmean", ignore_index: int = -100):
        super().__init__()
        self.kind, self.alpha, self.temperature, self.beta = kind, alpha, temperature, beta
        self.reduction, self.ignore_index = reduction, ignore_index

    def forward(self, student: torch.Tensor, teacher: torch.Tensor | None, labels: torch.Tensor | None = None):
        return F.distill_loss(student, teacher, labels, kind=self.kind, alpha=self.alpha,
                              temperature=self.temperature, beta=self.beta, reduction=self.reduction,
                              ignore_index=self.ignore_index)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, alpha={self.alpha}, temperature={self.temperature}, reduction={self.reduction!r}"


class KLDivLoss(nn.Module):
    def __init__(self, temperature: float = 1.0, reduction: str = "batchmean", direction: str = "forward"):
        super().__init__()
        self.temperature, self.reduction, self.direction = temperature, reduction, direction

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        return F.kl_div(student, teacher, self.temperature, self.reduction, self.direction)


class JSDLoss(nn.Module):
    def __init__(self, beta: float = 0.5, temperature: float = 1.0, reduction: str = "batchmean"):
        super().__init__()
        self.beta, self.temperature, self.reduction = beta, temperature, reduction

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        return F.jsd(student, teacher, self.beta, self.temperature, self.reduction)


class LogitMSELoss(nn.Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        return F.logit_mse(student, teacher, self.reduction)


class CrossEntropyLoss(nn.Module):
    def __init__(self, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__()
        self.ignore_index, self.reduction = ignore_index, reduction

    def forward(self, student: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(student, labels, self.ignore_index, self.reduction)
