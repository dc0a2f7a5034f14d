"""Fused linear distillation: the loss of ``student_hidden @ student_weight.T (+ bias)`` against a
teacher, without ever holding the ``[N, V]`` logits.

At N = 4096 tokens and V = 128256 one fp32 logits tensor is 2.1 GB and a naive step holds several
(student logits, teacher logits, their gradient, softmax intermediates). Here the rows are walked in
chunks: the chunk's student logits come from one matmul, the teacher's from its logits (a slice) or
from its own hidden states and head; the fused kernel (``torch.ops.pylaundering.fused_distill``, the
same kernel and semantics as :func:`pylaundering.ops.distill_loss`) gives the chunk's per-row loss and
its gradient with respect to the chunk's logits; that gradient is turned into the gradients of the
hidden states, weight and bias at once and dropped. Peak extra memory is a few ``[chunk, V]`` buffers
plus the weight's gradient, which any implementation must return (its fp32 accumulator and final copy
for half-precision weights: the full count is in :func:`fused_linear_distill_loss`'s docstring).

For the scalar reductions the gradients are computed in the forward pass (as Liger-Kernel does) and
backward only scales them, so a training step costs the naive computation's three matmuls. With
``reduction="none"`` the upstream gradient differs per row, so backward walks the chunks again
(one extra matmul per chunk).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import nn

from ..loss_kinds import NO_DISTILL, name_of
from . import _ext
from ._registry import _keep_graph, first_order_only
from .functional import KINDS, _check_label_range, _reduce, _rows, kernel_code, make_spec, needs_float64
from .sparse import SparseTeacher, check_sampled_use, check_sparse_teacher, sparse_rows
from .spec import DistillSpec

__all__ = ["FusedLinearDistillLoss", "choose_chunk_size", "chunk_bytes_per_row", "fused_linear_distill_loss"]

_REDUCTION_CODES = {"none": 0, "sum": 1, "batchmean": 2, "mean": 2}
#: The most the [chunk, V] buffers (student and teacher logits, their gradient) take unless half the
#: weight gradient (which every implementation holds anyway; all of its fp32 accumulator on a GPU) is
#: more, and never more than a quarter of the free memory. Within that, the default chunk is sized from
#: the logits (LOGITS_SHARE), so the saving holds at every shape. Short chunks cost time: skinny
#: matmuls, and one pass over the weight gradient per chunk.
CHUNK_BUDGET_BYTES = 256 * 2**20
#: The default chunk's buffers together hold at most this share of the full [N, V] logits (one tensor
#: of the input's dtype), as the token-level step's chunk does (phases/token_level.token_chunk), ...
LOGITS_SHARE = 4
#: ... but never fewer rows than this (a matmul tile; a skinny chunk wastes the matmul) unless N is smaller.
MIN_CHUNK_ROWS = 64


def _free_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 2**30  # unknown: assume 4 GB


def chunk_bytes_per_row(vocab: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                        wide: bool = False) -> int:
    """Bytes one chunk row holds at the peak: the chunk's student logits, the teacher's and (unless the
    CPU kernel writes it over the logits) their gradient, in ``dtype``, plus fp32 per-element work. With
    ``wide`` (the float64 path of the soft kinds above HIGH_TEMPERATURE, see _row_grads) also the float64
    copies of both logits and the gradient's cast back to ``dtype`` (on a GPU the float64 gradient too)."""
    dev = torch.device(device)
    elt = torch.empty((), dtype=dtype).element_size()
    per_elt = (2 if _in_place(dev) else 3) * elt + 4
    if wide:
        per_elt += 2 * 8 + (elt if _in_place(dev) else 8)
    return vocab * per_elt


def choose_chunk_size(n_rows: int, vocab: int, dtype: torch.dtype = torch.float32,
                      device: torch.device | str = "cpu", hidden: int | None = None, *, kind: str = "kl",
                      temperature: float = 1.0) -> int:
    """Rows per chunk: as many as keep the chunk's buffers (:func:`chunk_bytes_per_row`) within
    ``1/LOGITS_SHARE`` of the full ``[N, V]`` logits in ``dtype``, with at least MIN_CHUNK_ROWS rows (all of
    them when N is smaller), and within ``min(free memory / 4, max(CHUNK_BUDGET_BYTES, share of the weight
    gradient))``; rounded down to a multiple of 64 (a matmul tile) when that leaves at least 64, never more
    than ``n_rows``. ``hidden``: the student's hidden size (the weight gradient is ``[V, hidden]``). The
    share is half the weight gradient on the CPU and all of its fp32 accumulator on a GPU: each chunk
    reads and writes that accumulator once, which on a GPU costs more than the chunk's own work when
    chunks are short. ``kind`` and ``temperature``: the loss's (a soft kind above HIGH_TEMPERATURE runs in
    float64, whose copies are counted)."""
    dev = torch.device(device)
    elt = torch.empty((), dtype=dtype).element_size()
    wide = kind in KINDS and needs_float64(KINDS[kind], float(temperature), dtype)
    per_row = chunk_bytes_per_row(vocab, dtype, dev, wide)
    if not hidden:
        share = 0
    elif dev.type == "cuda":
        share = vocab * hidden * max(elt, 4)
    else:
        share = (vocab * hidden * elt) // 2
    budget = min(max(CHUNK_BUDGET_BYTES, share), _free_bytes(dev) // 4)
    logits = n_rows * vocab * elt // LOGITS_SHARE
    rows = max(1, min(budget, max(logits, MIN_CHUNK_ROWS * per_row)) // max(1, per_row))
    if rows >= 64:
        rows -= rows % 64
    return int(max(1, min(n_rows, rows)))


def _in_place(device: torch.device) -> bool:
    """Whether the chunk's gradient is written over its logits (the CPU kernels' _out ops): one
    [chunk, V] buffer fewer at the peak."""
    return device.type == "cpu"


class TeacherSide(NamedTuple):
    """The teacher of a fused-linear call in one of three forms, the other fields None: ``logits [N, V]``;
    ``hidden [N, Ht]``, ``weight [V, Ht]`` and ``bias [V]`` or None (its logits formed chunk by chunk);
    or a sparse teacher's ``values``, ``indices`` ``[N, k]`` and ``lognorm [N]`` or None (dropped by the
    caller when the loss's temperature is not the teacher's). All None: no teacher (cross-entropy)."""

    logits: Optional[torch.Tensor] = None
    hidden: Optional[torch.Tensor] = None
    weight: Optional[torch.Tensor] = None
    bias: Optional[torch.Tensor] = None
    values: Optional[torch.Tensor] = None
    indices: Optional[torch.Tensor] = None
    lognorm: Optional[torch.Tensor] = None

    @property
    def sparse(self) -> bool:
        return self.values is not None

    def rows(self, sl: slice):
        """The teacher of rows ``sl``: a logits slice, logits formed from its hidden states and head, a
        sparse teacher's rows ``(values, indices, log_normalizer)``, or None."""
        if self.logits is not None:
            return self.logits[sl]
        if self.hidden is not None:
            tc = self.hidden[sl]
            return torch.addmm(self.bias, tc, self.weight.t()) if self.bias is not None else tc @ self.weight.t()
        if self.values is not None:
            return self.values[sl], self.indices[sl], self.lognorm[sl] if self.lognorm is not None else None
        return None

    def cut(self, sl: slice) -> TeacherSide:
        """The per-row tensors cut to rows ``sl`` (the teacher's head whole)."""
        c = lambda x: x[sl] if x is not None else None  # noqa: E731
        return TeacherSide(c(self.logits), c(self.hidden), self.weight, self.bias, c(self.values), c(self.indices),
                           c(self.lognorm))


def _op_spec(kind: int, alpha: float, temperature: float, beta: float) -> DistillSpec:
    """The spec of the custom op's scalar arguments (a custom op's schema cannot take a dataclass)."""
    if kind == NO_DISTILL:
        return DistillSpec("kl", 0.0, temperature, 0.5)
    return DistillSpec(name_of(kind), alpha, temperature, beta)


def _row_grads(s: torch.Tensor, t, y: Optional[torch.Tensor], spec: DistillSpec, ignore_index: int,
               need_grad: bool, grad_scale: float = 1.0):
    """(per-row loss in fp32/fp64, d row / d s in s's dtype or None) for one chunk of logits ``s`` (a
    temporary this function may overwrite) against teacher logits ``t`` or a sparse teacher ``(values,
    indices, log_normalizer or None)``, from the compiled kernels (the custom op runs below autograd, so
    the reference path is `_checkpointed`). ``grad_scale`` multiplies the dense kernel's gradient
    (a sparse teacher's gradient is returned unscaled: callers scale it)."""
    yc = y.contiguous() if y is not None else None
    kind, alpha, temperature, beta = kernel_code(spec), spec.alpha, spec.temperature, spec.beta
    wide = needs_float64(kind, temperature, s.dtype)  # as functional._rows: float32 loses the soft term
    work_s = (s.double() if wide else s).contiguous()
    sparse = isinstance(t, tuple)
    if sparse:
        values, indices, lognorm = t
        values = (values.double() if wide else values).contiguous()
        if lognorm is not None:
            lognorm = lognorm.to(torch.float64 if work_s.dtype == torch.float64 else torch.float32).contiguous()
        args = (values, indices.contiguous(), lognorm, yc, kind, float(alpha), float(temperature), float(beta),
                int(ignore_index))
    else:
        work_t = t.double() if wide and t is not None else t
        args = (work_t.contiguous() if work_t is not None else None, yc, kind, float(alpha), float(temperature),
                float(beta), int(ignore_index))
    scale = () if sparse else (float(grad_scale),)
    if need_grad and _in_place(s.device):
        op = torch.ops.pylaundering.fused_sparse_distill_out if sparse else torch.ops.pylaundering.fused_distill_out
        rows = op(work_s, *args, work_s, *scale)  # the gradient over the logits
        grad = work_s
    else:
        op = torch.ops.pylaundering.fused_sparse_distill if sparse else torch.ops.pylaundering.fused_distill
        rows, grad = op(work_s, *args, need_grad, *scale)
    return rows, (grad.to(s.dtype) if need_grad else None)


def _chunk_rows(h, w, b, teacher: TeacherSide, y, spec: DistillSpec, ignore_index):
    s = torch.addmm(b, h, w.t()) if b is not None else h @ w.t()
    t = teacher.rows(slice(None))
    if isinstance(t, tuple):
        # the teacher's temperature is the loss's: its log-normaliser was dropped by the caller otherwise
        return sparse_rows(s, SparseTeacher(*t, temperature=spec.temperature), y, spec, ignore_index)
    return _rows(s, t, y, spec, ignore_index)


def _checkpointed(h, w, b, teacher: TeacherSide, labels, spec: DistillSpec, ignore_index, reduction, chunk):
    """Without the compiled kernels: the same chunks in plain PyTorch (functional._rows on the reference
    formulas), each under activation checkpointing, so backward recomputes a chunk's logits instead of
    keeping them. Slower (each chunk's forward runs twice), same memory bound, any reduction."""
    from torch.utils.checkpoint import checkpoint

    parts = []
    for i0 in range(0, h.shape[0], chunk):
        sl = slice(i0, i0 + chunk)
        parts.append(checkpoint(_chunk_rows, h[sl], w, b, teacher.cut(sl), labels[sl] if labels is not None else None,
                                spec, ignore_index, use_reentrant=False))
    rows = torch.cat(parts) if parts else h.new_zeros((0,), dtype=torch.float32)
    return _reduce(rows, labels, ignore_index, reduction, h.dtype)


def _walk(h, w, b, teacher: TeacherSide, labels, row_weight, spec: DistillSpec, ignore_index, chunk, need_grad):
    """The chunk loop. Returns (rows [N] fp32/fp64, grad_h, grad_w, grad_b) of sum_i row_weight_i * row_i;
    row_weight is a per-row tensor, one float for every row (folded into the dense kernel's gradient),
    or None for all ones; grads are None when not needed."""
    uniform = isinstance(row_weight, float)
    fold = uniform and not teacher.sparse
    n = h.shape[0]
    rows = torch.empty(n, dtype=torch.float64 if h.dtype == torch.float64 else torch.float32, device=h.device)
    acc = torch.float32 if h.dtype in (torch.bfloat16, torch.float16) else h.dtype
    grad_h = torch.empty_like(h) if need_grad else None
    # written by the first chunk (no zero-fill pass over a weight-sized buffer), accumulated by the rest
    grad_w = torch.empty(w.shape, dtype=acc, device=w.device) if need_grad else None
    grad_b = torch.empty(w.shape[0], dtype=acc, device=w.device) if need_grad and b is not None else None
    if need_grad and n == 0:
        grad_w.zero_()
        if grad_b is not None:
            grad_b.zero_()
    for i0 in range(0, n, chunk):
        i1 = min(n, i0 + chunk)
        hc = h[i0:i1]
        s = torch.addmm(b, hc, w.t()) if b is not None else hc @ w.t()
        t = teacher.rows(slice(i0, i1))
        y = labels[i0:i1] if labels is not None else None
        rows[i0:i1], g = _row_grads(s, t, y, spec, ignore_index, need_grad, row_weight if fold else 1.0)
        del s, t
        if not need_grad:
            continue
        if row_weight is not None and not fold:
            g.mul_(row_weight if uniform else row_weight[i0:i1].to(g.dtype).unsqueeze(1))
        torch.mm(g, w, out=grad_h[i0:i1])
        first = i0 == 0
        if acc == g.dtype:
            torch.mm(g.t(), hc, out=grad_w) if first else grad_w.addmm_(g.t(), hc)
        else:
            _accumulate_wide(grad_w, g.t(), hc, first)
        if grad_b is not None:
            torch.sum(g, 0, dtype=acc, out=grad_b) if first else grad_b.add_(g.sum(0, dtype=acc))
    if need_grad:
        grad_w = grad_w.to(w.dtype)
        grad_b = grad_b.to(w.dtype) if grad_b is not None else None
    return rows, grad_h, grad_w, grad_b


#: Whether this torch's CUDA matmuls take ``out_dtype`` (bf16/fp16 inputs, fp32 result); None until tried.
_WIDE_MM: dict[str, bool] = {}


def _accumulate_wide(acc: torch.Tensor, a: torch.Tensor, b: torch.Tensor, first: bool) -> None:
    """``acc = a @ b`` (first) or ``acc += a @ b`` for half-precision ``a``, ``b`` and an fp32 ``acc``. On a
    GPU one matmul with an fp32 output does it (cuBLAS accumulates in fp32 anyway); otherwise the
    half-precision product is formed, widened and added: two more weight-sized passes per chunk."""
    if acc.device.type == "cuda" and _WIDE_MM.get("cuda", True):
        try:
            if first:
                torch.mm(a, b, out_dtype=acc.dtype, out=acc)
            else:
                torch.addmm(acc, a, b, out_dtype=acc.dtype, out=acc)
            _WIDE_MM["cuda"] = True
            return
        except (RuntimeError, TypeError, NotImplementedError):
            if _WIDE_MM.get("cuda"):
                raise  # it worked before: a real error
            _WIDE_MM["cuda"] = False
    prod = a @ b
    acc.copy_(prod) if first else acc.add_(prod)


def _empty(like: torch.Tensor) -> torch.Tensor:
    return like.new_empty((0,))


@torch.library.custom_op("pylaundering::fused_linear_distill", mutates_args=())
def _fused_linear_distill(
    h: torch.Tensor, w: torch.Tensor, b: Optional[torch.Tensor], t_logits: Optional[torch.Tensor],
    t_hidden: Optional[torch.Tensor], t_weight: Optional[torch.Tensor], t_bias: Optional[torch.Tensor],
    t_values: Optional[torch.Tensor], t_indices: Optional[torch.Tensor], t_lognorm: Optional[torch.Tensor],
    labels: Optional[torch.Tensor], kind: int, alpha: float, temperature: float, beta: float, ignore_index: int,
    reduction: int, chunk: int, compute_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, grad_h, grad_w, grad_b): loss is per row (reduction 0) or the reduced scalar; for a scalar
    reduction with compute_grad the gradients of that scalar, otherwise empty tensors."""
    scalar = reduction != 0
    weight = None
    if reduction == 2:  # batchmean / mean: divide by the rows counted (not ignored), at least 1
        count = (labels != ignore_index).sum() if labels is not None else torch.tensor(h.shape[0], device=h.device)
        if compute_grad:
            # one number for every row, folded into the kernel's gradient (on a GPU reading it is
            # one sync per call, against a pass over each chunk's [chunk, V] gradient)
            weight = 1.0 / max(1, int(count))
    teacher = TeacherSide(t_logits, t_hidden, t_weight, t_bias, t_values, t_indices, t_lognorm)
    rows, gh, gw, gb = _walk(h, w, b, teacher, labels, weight, _op_spec(kind, alpha, temperature, beta), ignore_index,
                             chunk, compute_grad and scalar)
    if not scalar:
        loss = rows
    elif reduction == 1:  # sum
        loss = rows.sum().to(h.dtype)
    else:
        loss = (rows.sum() / count.clamp(min=1).to(rows.dtype)).to(h.dtype)
    return (loss, gh if gh is not None else _empty(h), gw if gw is not None else _empty(w),
            gb if gb is not None else _empty(w))


@_fused_linear_distill.register_fake
def _(h, w, b, t_logits, t_hidden, t_weight, t_bias, t_values, t_indices, t_lognorm, labels, kind, alpha,
      temperature, beta, ignore_index, reduction, chunk, compute_grad):
    rows_dtype = torch.float64 if h.dtype == torch.float64 else torch.float32
    loss = h.new_empty((), dtype=h.dtype) if reduction else h.new_empty((h.shape[0],), dtype=rows_dtype)
    grads = compute_grad and reduction != 0
    return (loss, h.new_empty(h.shape) if grads else h.new_empty((0,)),
            w.new_empty(w.shape) if grads else w.new_empty((0,)),
            w.new_empty((w.shape[0],)) if grads and b is not None else w.new_empty((0,)))


@torch.library.custom_op("pylaundering::fused_linear_distill_backward", mutates_args=())
def _fused_linear_distill_backward(
    grad_rows: torch.Tensor, h: torch.Tensor, w: torch.Tensor, b: Optional[torch.Tensor],
    t_logits: Optional[torch.Tensor], t_hidden: Optional[torch.Tensor], t_weight: Optional[torch.Tensor],
    t_bias: Optional[torch.Tensor], t_values: Optional[torch.Tensor], t_indices: Optional[torch.Tensor],
    t_lognorm: Optional[torch.Tensor], labels: Optional[torch.Tensor], kind: int, alpha: float, temperature: float,
    beta: float, ignore_index: int, chunk: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of sum_i grad_rows_i * row_i (reduction "none"): the chunks walked again."""
    teacher = TeacherSide(t_logits, t_hidden, t_weight, t_bias, t_values, t_indices, t_lognorm)
    _, gh, gw, gb = _walk(h, w, b, teacher, labels, grad_rows, _op_spec(kind, alpha, temperature, beta), ignore_index,
                          chunk, True)
    return gh, gw, gb if gb is not None else _empty(w)


@_fused_linear_distill_backward.register_fake
def _(grad_rows, h, w, b, t_logits, t_hidden, t_weight, t_bias, t_values, t_indices, t_lognorm, labels, kind, alpha,
      temperature, beta, ignore_index, chunk):
    return h.new_empty(h.shape), w.new_empty(w.shape), (w.new_empty((w.shape[0],)) if b is not None
                                                        else w.new_empty((0,)))


def _setup_context(ctx, inputs, output):
    (h, w, b, t_logits, t_hidden, t_weight, t_bias, t_values, t_indices, t_lognorm, labels, kind, alpha, temperature,
     beta, ignore_index, reduction, chunk, compute_grad) = inputs
    ctx.set_materialize_grads(False)
    ctx.reduction, ctx.has_bias = reduction, b is not None
    ctx.scalars = (kind, alpha, temperature, beta, ignore_index, chunk)
    if reduction:
        ctx.save_for_backward(output[1], output[2], output[3])
    else:
        ctx.save_for_backward(h, w, b, t_logits, t_hidden, t_weight, t_bias, t_values, t_indices, t_lognorm, labels)


def _backward(ctx, grad_loss, *_unused):
    result = [None] * 19
    if grad_loss is None:
        return tuple(result)
    if ctx.reduction:
        gh, gw, gb = ctx.saved_tensors
        if gh.numel() == 0 and gw.numel() != 0:
            raise RuntimeError("pylaundering::fused_linear_distill: backward needs compute_grad=True "
                               "(fused_linear_distill_loss sets it for you)")
        # In place when the graph is freed after this backward: a product would hold a second
        # weight-sized gradient at the peak (as the dense ops' registry does).
        in_place = not (_keep_graph() or torch.compiler.is_compiling())
        scale = grad_loss.to(gh.dtype)
        grads = [g.mul_(scale) if in_place else g * scale for g in (gh, gw, gb if ctx.has_bias else None)
                 if g is not None]
        result[0], result[1] = grads[0], grads[1]
        if ctx.has_bias:
            result[2] = grads[2]
        return first_order_only("fused_linear_distill_loss", result)
    h, w, b, t_logits, t_hidden, t_weight, t_bias, t_values, t_indices, t_lognorm, labels = ctx.saved_tensors
    gh, gw, gb = torch.ops.pylaundering.fused_linear_distill_backward(
        grad_loss, h, w, b, t_logits, t_hidden, t_weight, t_bias, t_values, t_indices, t_lognorm, labels,
        *ctx.scalars)
    result[0], result[1] = gh, gw
    if ctx.has_bias:
        result[2] = gb
    return first_order_only("fused_linear_distill_loss", result)


_fused_linear_distill.register_autograd(_backward, setup_context=_setup_context)


# ------------------------------------------------------------------------------------------------ checks


def _check_float(name: str, x: object, dim: int) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
        raise TypeError(f"{name} must be float32, float64, bfloat16 or float16, got {x.dtype}")
    if x.dim() != dim:
        raise ValueError(f"{name} must have {dim} dimension(s), got shape {tuple(x.shape)}")
    return x


def _same(name: str, x: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    if x.device != ref.device:
        raise ValueError(f"device mismatch: {ref_name} on {ref.device}, {name} on {x.device}")
    if x.dtype != ref.dtype:
        raise TypeError(f"dtype mismatch: {ref_name} is {ref.dtype}, {name} is {x.dtype}")


def _check_head(prefix: str, hidden, weight, bias, ref_name: str, ref: torch.Tensor):
    hidden = _check_float(f"{prefix}_hidden", hidden, 2)
    weight = _check_float(f"{prefix}_weight", weight, 2)
    _same(f"{prefix}_hidden", hidden, ref_name, ref)
    _same(f"{prefix}_weight", weight, ref_name, ref)
    if hidden.shape[1] != weight.shape[1]:
        raise ValueError(f"{prefix} hidden size {hidden.shape[1]} does not match {prefix}_weight "
                         f"{tuple(weight.shape)} (expected [V, {hidden.shape[1]}])")
    if bias is not None:
        bias = _check_float(f"{prefix}_bias", bias, 1)
        _same(f"{prefix}_bias", bias, ref_name, ref)
        if bias.shape[0] != weight.shape[0]:
            raise ValueError(f"{prefix}_bias has {bias.shape[0]} entries, {prefix}_weight has V = {weight.shape[0]}")
    return hidden, weight, bias


def _flatten_lead(teacher, labels, lead: torch.Size):
    """The teacher and labels of ``[..., H]`` hidden states with leading shape ``lead`` as rows: teacher
    logits ``[..., V]``, teacher hidden states ``[..., Ht]``, a sparse teacher's ``[..., k]`` rows (one
    already ``[N, k]`` is kept) and labels ``[...]``, each checked to have the same leading shape."""
    def rows(name: str, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[:-1] != lead:
            raise ValueError(f"{name} {tuple(getattr(x, 'shape', ()))} must have student_hidden's leading "
                             f"dimensions {tuple(lead)} (then its own last one)")
        return x.reshape(-1, x.shape[-1])

    if isinstance(teacher, SparseTeacher):
        if teacher.values.dim() > 2:
            teacher = teacher._replace(values=rows("sparse teacher values", teacher.values),
                                       indices=rows("sparse teacher indices", teacher.indices),
                                       log_normalizer=None if teacher.log_normalizer is None
                                       else teacher.log_normalizer.reshape(-1))
    elif isinstance(teacher, torch.Tensor):
        teacher = rows("teacher logits", teacher)
    elif isinstance(teacher, (tuple, list)) and len(teacher) in (2, 3):
        teacher = (rows("teacher_hidden", teacher[0]), *teacher[1:])
    if isinstance(labels, torch.Tensor):
        if labels.shape != lead:
            raise ValueError(f"labels {tuple(labels.shape)} must have student_hidden's leading dimensions "
                             f"{tuple(lead)}")
        labels = labels.reshape(-1)
    return teacher, labels


def fused_linear_distill_loss(
    student_hidden: torch.Tensor,
    student_weight: torch.Tensor,
    teacher,
    labels: Optional[torch.Tensor] = None,
    *,
    student_bias: Optional[torch.Tensor] = None,
    kind: str = "kl",
    alpha: float = 1.0,
    temperature: float = 1.0,
    beta: float = 0.5,
    ignore_index: int = -100,
    reduction: str = "batchmean",
    chunk_size: Optional[int] = None,
    _teacher_indices_checked: bool = False,
) -> torch.Tensor:
    """``distill_loss(student_hidden @ student_weight.T + student_bias, teacher_logits, labels, ...)``
    without the ``[N, V]`` logits: same kinds, conventions (T^2, ignored rows, -inf masks) and
    reductions as :func:`pylaundering.ops.distill_loss`.

    Args:
        student_hidden: ``[N, Hs]``, or ``[..., Hs]`` (e.g. batch x sequence): then the teacher's logits or
            hidden states and the labels have the same leading dimensions, and ``reduction="none"`` returns
            per-row losses shaped ``[...]``.
        student_weight: the student's LM head ``[V, Hs]``; ``student_bias`` ``[V]`` or None.
        teacher: teacher logits ``[N, V]``, or ``(teacher_hidden [N, Ht], teacher_weight [V, Ht],
            teacher_bias or None)``, whose logits are then formed chunk by chunk too, or a
            :class:`~pylaundering.ops.SparseTeacher` (``topk_teacher``, ``sampled_teacher``: the semantics of
            :func:`~pylaundering.ops.topk_distill_loss`); a constant (no gradient); None only when ``alpha == 0``.
        labels: ``[N]`` class indices (needed when alpha < 1); ``ignore_index`` rows are skipped.
        chunk_size: rows per chunk; default :func:`choose_chunk_size` (from N, V, H, the loss and free
            memory: the chunk's buffers at most a quarter of the full logits, at least 64 rows).
        _teacher_indices_checked: internal, for a training loop that checked its whole cached
            :class:`~pylaundering.ops.SparseTeacher` once (:func:`pylaundering.ops.sparse.check_indices`) and
            passes the rows it slices at each step: their indices are not checked again (on a GPU two reads back
            to the host and a sort per call). Shapes, dtypes and devices are checked either way; unchecked
            indices out of range would be read out of bounds by the kernel, so never pass it for other input.
    Gradients flow into ``student_hidden``, ``student_weight`` and ``student_bias`` (first order only:
    differentiating those gradients again, ``create_graph=True``, raises).

    Peak extra memory, for a ``[V, Hs]`` head with ``c`` rows per chunk: the chunk's buffers
    (:func:`chunk_bytes_per_row` each row: student and teacher logits and, on a GPU, their gradient, in the
    input's dtype, plus fp32 work, plus float64 copies of both and the gradient's cast above
    ``HIGH_TEMPERATURE`` = 8 for the soft kinds); ``grad_hidden`` ``[N, Hs]``; the weight gradient: for
    bf16/fp16 an fp32 accumulator ``[V, Hs]`` (4 bytes an entry), its final copy in the input's dtype
    (alive together at the end), and on the CPU each chunk's half-precision product ``[V, Hs]`` before it
    is added; for fp32/fp64 the gradient itself. ``reduction="none"`` saves the inputs and walks the
    chunks again in backward (the same buffers then).
    """
    spec = make_spec(kind, alpha, temperature, beta, reduction)
    lead = None
    if isinstance(student_hidden, torch.Tensor) and student_hidden.dim() > 2:
        lead = student_hidden.shape[:-1]
        student_hidden = student_hidden.reshape(-1, student_hidden.shape[-1])
        teacher, labels = _flatten_lead(teacher, labels, lead)
    h, w, b = _check_head("student", student_hidden, student_weight, student_bias, "student_hidden", student_hidden)
    n, vocab = h.shape[0], w.shape[0]
    side = TeacherSide()
    if teacher is not None and alpha > 0:
        if isinstance(teacher, SparseTeacher):
            sp = check_sparse_teacher(teacher, n, vocab, h.device, h.dtype,
                                      indices_checked=_teacher_indices_checked)
            check_sampled_use(sp, kind, temperature)
            side = TeacherSide(values=sp.values.detach(), indices=sp.indices,
                               lognorm=sp.log_normalizer if temperature == sp.temperature else None)
        elif isinstance(teacher, torch.Tensor):
            t_logits = _check_float("teacher logits", teacher, 2)
            _same("teacher logits", t_logits, "student_hidden", h)
            if t_logits.shape != (n, vocab):
                raise ValueError(f"teacher logits {tuple(t_logits.shape)} do not match the student's [N, V] = "
                                 f"[{n}, {vocab}] (N from student_hidden, V from student_weight)")
            side = TeacherSide(logits=t_logits.detach())
        elif isinstance(teacher, (tuple, list)) and len(teacher) in (2, 3):
            th, tw, tb = (*teacher, None) if len(teacher) == 2 else teacher
            t_hidden, t_weight, t_bias = (x.detach() if x is not None else None
                                          for x in _check_head("teacher", th, tw, tb, "student_hidden", h))
            side = TeacherSide(hidden=t_hidden, weight=t_weight, bias=t_bias)
            if t_hidden.shape[0] != n:
                raise ValueError(f"teacher_hidden has {t_hidden.shape[0]} rows, student_hidden has {n}")
            if t_weight.shape[0] != vocab:
                raise ValueError(f"vocabulary mismatch: teacher_weight has V = {t_weight.shape[0]}, "
                                 f"student_weight has V = {vocab}")
        else:
            raise TypeError("teacher must be logits [N, V], a tuple (teacher_hidden, teacher_weight[, "
                            f"teacher_bias]) or a SparseTeacher, got {type(teacher).__name__}")
    elif alpha > 0:
        raise ValueError("a teacher is required when alpha > 0")
    if alpha < 1 and labels is None:
        raise ValueError(f"alpha={alpha} < 1 mixes in cross-entropy, which needs labels")
    if labels is not None:
        if not isinstance(labels, torch.Tensor) or labels.dtype.is_floating_point or labels.dtype.is_complex \
                or labels.dtype == torch.bool:
            raise TypeError(f"labels must be an integer tensor of class indices, got "
                            f"{getattr(labels, 'dtype', type(labels).__name__)}")
        if labels.shape != (n,):
            raise ValueError(f"labels {tuple(labels.shape)} must have shape [N] = [{n}] "
                             "(one per row of student_hidden)")
        if labels.device != h.device:
            raise ValueError(f"device mismatch: student_hidden on {h.device}, labels on {labels.device}")
        labels = labels.long()
        _check_label_range(labels, vocab, ignore_index)
    if chunk_size is None:
        chunk_size = choose_chunk_size(n, vocab, h.dtype, h.device, hidden=h.shape[1], kind=spec.kind,
                                       temperature=spec.temperature if spec.alpha > 0 else 1.0)
    elif not (isinstance(chunk_size, int) and not isinstance(chunk_size, bool) and chunk_size >= 1):
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    chunk = int(max(1, min(chunk_size, max(n, 1))))
    if not _ext.compiled_available(h.device):
        loss = _checkpointed(h, w, b, side, labels, spec, int(ignore_index), reduction, chunk)
    else:
        need_grad = torch.is_grad_enabled() and any(x is not None and x.requires_grad for x in (h, w, b))
        loss, *_ = torch.ops.pylaundering.fused_linear_distill(
            h, w, b, *side, labels, kernel_code(spec), float(spec.alpha), float(spec.temperature),
            float(spec.beta), int(ignore_index), _REDUCTION_CODES[reduction], chunk, need_grad)
        loss = loss if reduction != "none" else loss.to(h.dtype)
    return loss.reshape(lead) if lead is not None and reduction == "none" else loss


class FusedLinearDistillLoss(nn.Module):
    """:func:`fused_linear_distill_loss` with the student's LM head as a module (an ``nn.Linear`` whose
    weight is ``[V, H]``): ``loss = FusedLinearDistillLoss(model.lm_head)(hidden, teacher, labels)``."""

    def __init__(self, lm_head: nn.Linear, kind: str = "kl", alpha: float = 1.0, temperature: float = 1.0,
                 beta: float = 0.5, ignore_index: int = -100, reduction: str = "batchmean",
                 chunk_size: Optional[int] = None):
        super().__init__()
        if not isinstance(getattr(lm_head, "weight", None), torch.Tensor):
            raise TypeError(f"lm_head must be a module with a [V, H] weight (nn.Linear), got {type(lm_head).__name__}")
        self.lm_head = lm_head
        self.kind, self.alpha, self.temperature, self.beta = kind, alpha, temperature, beta
        self.ignore_index, self.reduction, self.chunk_size = ignore_index, reduction, chunk_size

    def forward(self, student_hidden: torch.Tensor, teacher, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``student_hidden`` ``[..., H]``; the teacher and labels with the same leading dimensions (as
        :func:`fused_linear_distill_loss`)."""
        return fused_linear_distill_loss(student_hidden, self.lm_head.weight, teacher, labels,
                                         student_bias=getattr(self.lm_head, "bias", None), kind=self.kind,
                                         alpha=self.alpha, temperature=self.temperature, beta=self.beta,
                                         ignore_index=self.ignore_index, reduction=self.reduction,
                                         chunk_size=self.chunk_size)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, alpha={self.alpha}, temperature={self.temperature}, reduction={self.reduction!r}"
