"""Fused distillation losses (C++ CPU and CUDA kernels registered as torch custom ops).

    import pylaundering.ops as O
    loss = O.distill_loss(student_logits, teacher_logits, labels, kind="kl", alpha=0.5, temperature=2.0)
    O.backend()   # which implementation runs, and why
"""

from __future__ import annotations

import torch

from . import _ext
from ._registry import REGISTRY, register_row_fused_op
from .functional import KINDS, REDUCTIONS, cross_entropy, distill_loss, jsd, kl_div, logit_mse
from .modules import CrossEntropyLoss, DistillLoss, JSDLoss, KLDivLoss, LogitMSELoss
from .spec import DistillSpec

backend = _ext.backend
empty_cache = _ext.empty_cache
cached_bytes = _ext.cached_bytes


def _fused_distill_fake(student, teacher, labels, kind, alpha, temperature, beta, ignore_index, compute_grad,
                        grad_scale=1.0):
    loss_dtype = torch.float64 if student.dtype == torch.float64 else torch.float32
    rows = student.new_empty((student.shape[0],), dtype=loss_dtype)
    grad = student.new_empty(student.shape) if compute_grad else student.new_empty((0,))
    return rows, grad


def _fused_sparse_distill_fake(student, values, indices, log_normalizer, labels, kind, alpha, temperature, beta,
                               ignore_index, compute_grad, grad_scale=1.0):
    loss_dtype = torch.float64 if student.dtype == torch.float64 else torch.float32
    rows = student.new_empty((student.shape[0],), dtype=loss_dtype)
    grad = student.new_empty(student.shape) if compute_grad else student.new_empty((0,))
    return rows, grad


if _ext._C is not None and "pylaundering::fused_distill" not in REGISTRY:
    register_row_fused_op("pylaundering::fused_distill", n_inputs=10, grad_inputs=(0,), fake=_fused_distill_fake,
                          scale_input=9)
    register_row_fused_op("pylaundering::fused_sparse_distill", n_inputs=12, grad_inputs=(0,),
                          fake=_fused_sparse_distill_fake, scale_input=11)

# After the dense op's registration: the fused-linear op calls it chunk by chunk.
from .linear import FusedLinearDistillLoss, choose_chunk_size, fused_linear_distill_loss  # noqa: E402
from .sparse import SparseTeacher, sampled_teacher, topk_distill_loss, topk_teacher  # noqa: E402

__all__ = [
    "KINDS", "REDUCTIONS", "DistillSpec", "backend", "cached_bytes", "empty_cache",
    "cross_entropy", "distill_loss", "jsd", "kl_div", "logit_mse",
    "CrossEntropyLoss", "DistillLoss", "JSDLoss", "KLDivLoss", "LogitMSELoss",
    "FusedLinearDistillLoss", "choose_chunk_size", "fused_linear_distill_loss",
    "SparseTeacher", "sampled_teacher", "topk_distill_loss", "topk_teacher",
]
