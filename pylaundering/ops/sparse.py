"""Sparse teachers: the top-k entries of each row of the teacher's distribution, the form in which
teacher outputs are stored offline for large vocabularies (DistillKit stores top-k logits).

Semantics (the reference formulas below; the fused C++/CUDA kernel ``torch.ops.pylaundering.fused_sparse_distill``
computes the same in one pass structure, see csrc/kernels/sparse_params.h):

* ``topk_teacher(teacher_logits, k, temperature)`` keeps, per row, the k largest logits (``values``),
  their vocabulary ``indices`` and the row's ``log_normalizer = logsumexp(teacher_logits / T)`` over the
  full vocabulary, so the mass the k entries leave out is known: ``1 - sum exp(values / T - log_normalizer)``.
* **The missing mass is kept as one "rest" bucket.** Both distributions become distributions over
  k + 1 outcomes: the k kept entries and "everything else". The student's rest is its own mass outside
  the kept indices (its full softmax over V is formed, then split). Every soft kind (KL, reverse KL,
  JSD, TVD, the skewed KLs) is then the dense formula over those k + 1 outcomes (times T^2 where
  ``distill_loss`` multiplies by it). Nothing is
  renormalised, so the teacher's total mass on the kept entries is what the student is asked to put
  there; at k = V the rest is empty and the loss is the dense loss exactly.
* A teacher given as **log-probabilities** (what serving engines hand out, at T = 1 only):
  ``SparseTeacher(values=logprobs, indices, log_normalizer=zeros, temperature=1.0)`` keeps the rest
  bucket at T = 1. At any other temperature (and with ``log_normalizer=None``, or a temperature other
  than the one the teacher was cut at) the mass outside is unknown: the kept entries are renormalised
  among themselves (``softmax(values / T)`` over the k entries) and the teacher's rest is empty. The
  student keeps its rest bucket for KL, JSD, TVD and skewed KL (so its mass outside the kept entries
  is pushed down); for reverse KL and skewed reverse KL (which is reverse KL at skew 0), where any
  student mass on an empty teacher rest would be infinitely wrong, the student is renormalised over the
  kept entries too.
* ``kind="mse"`` compares the student's logits at the kept indices with ``values`` (mean over k); it
  needs logits, not log-probabilities.
* Cross-entropy (``alpha < 1``) uses the student's full logits and the hard labels, as ``distill_loss``.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F

from . import _ext
from .functional import (
    CE_ONLY,
    _check_kind,
    _check_label_range,
    _check_logits,
    _check_scalars,
    _denominator,
    _grad_scale,
    _reduce,
    _rows,
    make_spec,
    needs_float64,
)
from .reference import FORWARD_KL, JSD, MSE, REVERSE_KL, SKEW_KL, SKEW_REVERSE_KL, T2_SCALED, TVD, _masked_diff
from .spec import DistillSpec

__all__ = ["SparseTeacher", "sampled_teacher", "topk_distill_loss", "topk_teacher"]


class SparseTeacher(NamedTuple):
    """k entries per row of a teacher: ``values [N, k]`` (logits, or log-probabilities when
    ``log_normalizer`` is None), ``indices [N, k]`` (int64, distinct per row), the row's
    ``log_normalizer [N]`` (logsumexp of logits / temperature over the full vocabulary) or None, and
    the ``temperature`` it was taken at."""

    values: torch.Tensor
    indices: torch.Tensor
    log_normalizer: Optional[torch.Tensor]
    temperature: float = 1.0
    #: drawn by :func:`sampled_teacher`: the kept entries are a random sample with weights, an unbiased
    #: estimate of the teacher for forward KL at ``temperature`` (and of nothing else)
    sampled: bool = False

    def missing_mass(self) -> torch.Tensor:
        """Per row, the teacher's probability outside the kept entries (at its temperature)."""
        if self.log_normalizer is None:
            return torch.zeros(self.values.shape[0], dtype=torch.float32, device=self.values.device)
        acc = self.log_normalizer.dtype
        kept = torch.logsumexp(self.values.to(acc) / self.temperature, -1) - self.log_normalizer
        return (-torch.expm1(kept)).clamp(min=0)


def topk_teacher(teacher_logits: torch.Tensor, k: int, temperature: float = 1.0) -> SparseTeacher:
    """The top-k entries of each row of ``teacher_logits [..., V]`` (rows = leading dims flattened)."""
    t = _check_logits("teacher", teacher_logits)
    _check_scalars(temperature, 1.0, "sum")
    V = t.shape[-1]
    if not (isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= V):
        raise ValueError(f"k must be an integer in [1, V] = [1, {V}], got {k!r}")
    t2 = t.detach().reshape(-1, V)
    values, indices = torch.topk(t2, k, dim=-1, sorted=True)
    # at k = V the kept entries are the whole row: the same logsumexp as the loss forms, bit for bit
    source = values if k == V else t2
    acc = torch.float64 if t.dtype == torch.float64 else torch.float32
    log_normalizer = torch.logsumexp(source.to(acc) / temperature, -1)
    return SparseTeacher(values, indices, log_normalizer, float(temperature))


def sampled_teacher(teacher_logits: torch.Tensor, k: int, temperature: float = 1.0, *,
                    generator: Optional[torch.Generator] = None, chunk_rows: int = 1024) -> SparseTeacher:
    """An unbiased sparse teacher (random-sampling KD, Anshumann et al., ACL 2025, arXiv 2503.16870):
    per row, ``k`` vocabulary entries drawn with replacement from the teacher's ``softmax(logits / T)``;
    each distinct entry drawn keeps the weight ``count / k``. Unlike top-k, whose kept entries always
    overweight the head, ``E[weight_j] = p_j`` for every entry, so the expected gradient of forward KL
    (``kind="kl"``) against it is exactly the dense teacher's; the loss value is an estimate whose constant
    part (the teacher's entropy) is not. Stored like a top-k teacher: ``values = T * log(weight)`` (so
    ``softmax(values / T)`` gives the weights), ``log_normalizer = 0``, and the slots of repeated draws are
    filled with unused indices at ``-inf`` (weight 0), so every row has exactly ``k`` distinct indices."""
    t = _check_logits("teacher", teacher_logits)
    _check_scalars(temperature, 1.0, "sum")
    V = t.shape[-1]
    if not (isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= V):
        raise ValueError(f"k must be an integer in [1, V] = [1, {V}], got {k!r}")
    t2 = t.detach().reshape(-1, V)
    n = t2.shape[0]
    acc = torch.float64 if t.dtype == torch.float64 else torch.float32
    values = torch.empty(n, k, dtype=t.dtype, device=t.device)
    indices = torch.empty(n, k, dtype=torch.int64, device=t.device)
    n_cand = min(V, 2 * k)  # at least k of 2k candidates are unused by the <= k distinct draws
    cand = torch.arange(n_cand, device=t.device)
    for i0 in range(0, n, chunk_rows):
        p = torch.softmax(t2[i0:i0 + chunk_rows].to(acc) / temperature, -1)
        draws = torch.multinomial(p, k, replacement=True, generator=generator).sort(-1).values
        first = torch.ones_like(draws, dtype=torch.bool)
        first[:, 1:] = draws[:, 1:] != draws[:, :-1]
        counts = torch.searchsorted(draws, draws, right=True) - torch.searchsorted(draws, draws)
        # unused candidates, in ascending order, for the slots of repeated draws
        c = cand.expand(draws.shape[0], n_cand).contiguous()
        pos = torch.searchsorted(draws, c).clamp(max=k - 1)
        used = draws.gather(1, pos) == c
        free = c.gather(1, (used.long() * n_cand + c).argsort(-1))
        slot = ((~first).long().cumsum(-1) - 1).clamp(min=0)
        indices[i0:i0 + chunk_rows] = torch.where(first, draws, free.gather(1, slot))
        w = torch.log(counts.to(acc) / k) * temperature
        values[i0:i0 + chunk_rows] = torch.where(first, w, torch.full_like(w, float("-inf"))).to(t.dtype)
    lognorm = torch.zeros(n, dtype=acc, device=t.device)
    return SparseTeacher(values, indices, lognorm, float(temperature), sampled=True)


def _check_sparse(student: torch.Tensor, teacher: SparseTeacher) -> SparseTeacher:
    V = student.shape[-1]
    return check_sparse_teacher(teacher, student.numel() // V if V else 0, V, student.device, student.dtype)


def check_sampled_use(teacher: SparseTeacher, kind: str, temperature: float) -> None:
    if teacher.sampled and (kind != "kl" or temperature != teacher.temperature):
        raise ValueError(f"a sampled teacher is an unbiased estimate of forward KL at the temperature it was "
                         f"drawn at (T = {teacher.temperature}); got kind={kind!r}, temperature={temperature}. "
                         "Use kind='kl' at that temperature, or topk_teacher for other kinds")


def check_sparse_teacher(teacher: SparseTeacher, n: int, V: int, device: torch.device,
                         dtype: torch.dtype, *, indices_checked: bool = False) -> SparseTeacher:
    """Checks a sparse teacher for n student rows of V classes (clear errors); indices made int64.
    ``indices_checked``: the caller checked them (``check_indices``) already, e.g. once for a whole cache
    whose rows each step slices: the shapes, dtypes and devices are still checked, the values not again."""
    if not isinstance(teacher, SparseTeacher):
        raise TypeError(f"teacher must be a SparseTeacher (from topk_teacher), got {type(teacher).__name__}")
    values, indices, lognorm = teacher.values, teacher.indices, teacher.log_normalizer
    if values.dim() != 2 or values.shape[0] != n:
        raise ValueError(f"teacher values {tuple(values.shape)} must be [N, k] with N = {n} rows of the student")
    if indices.shape != values.shape:
        raise ValueError(f"teacher indices {tuple(indices.shape)} must match values {tuple(values.shape)}")
    if indices.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"teacher indices must be int64 or int32, got {indices.dtype}")
    k = values.shape[1]
    if not 1 <= k <= V:
        raise ValueError(f"k = {k} kept entries per row, but the student has V = {V} classes")
    for name, x in (("values", values), ("indices", indices)) + ((("log_normalizer", lognorm),) if lognorm is not None
                                                                  else ()):
        if x.device != device:
            raise ValueError(f"device mismatch: student on {device}, teacher {name} on {x.device}")
    if values.dtype != dtype:
        raise TypeError(f"dtype mismatch: student {dtype} vs teacher values {values.dtype}")
    if lognorm is not None and lognorm.shape != (n,):
        raise ValueError(f"teacher log_normalizer {tuple(lognorm.shape)} must be [N] = [{n}]")
    if not torch.compiler.is_compiling() and not indices_checked:
        check_indices(indices, V)
    return SparseTeacher(values, indices.long(), lognorm, float(teacher.temperature), bool(teacher.sampled))


def check_indices(indices: torch.Tensor, V: int) -> None:
    """ValueError unless every index lies in [0, V) and no row repeats one: on a GPU, two reads back to the
    host and a sort of every row, so a training loop checks its cached teacher once, not at every step."""
    if not indices.numel():
        return
    if bool(((indices < 0) | (indices >= V)).any()):
        raise ValueError(f"teacher indices out of range [0, {V})")
    srt = indices.sort(-1).values
    if bool((srt[:, 1:] == srt[:, :-1]).any()):
        raise ValueError("teacher indices repeat within a row; each kept entry must be a distinct class")


def _teacher_log_rest(log_kept_total: torch.Tensor, log_normalizer: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(log_kept_total)): the teacher's rest mass, -inf (empty) when the kept entries hold all of
    it up to the rounding of the stored log-normaliser (a few ulps of it, in its own dtype: an error of one
    ulp in it is an error of eps * |log_normaliser| in the kept total), so k = V gives an empty rest."""
    tiny = 8 * torch.finfo(log_normalizer.dtype).eps * (1 + log_normalizer.to(log_kept_total.dtype).abs())
    d = torch.minimum(log_kept_total, -tiny)
    return torch.where(log_kept_total < -tiny, torch.log(-torch.expm1(d)), torch.full_like(d, float("-inf")))


def _xlogy_diff(p_log: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sum over outcomes of p * (a - b), outcomes of zero mass (p_log = -inf) contributing 0."""
    return _masked_diff(p_log.exp(), a, b).sum(-1)


def sparse_distill_rows(s: torch.Tensor, teacher: SparseTeacher, kind: int, temperature: float,
                        beta: float) -> torch.Tensor:
    """Per-row soft term of 2-D student logits ``s`` against a checked sparse teacher (float32/64)."""
    acc = torch.float64 if s.dtype == torch.float64 else torch.float32
    s = s.to(acc)
    values, idx = teacher.values.to(acc), teacher.indices
    if kind == MSE:
        kept = s.gather(1, idx)
        d = torch.where(kept == values, torch.zeros_like(kept), kept - values)  # both -inf: masked, as dense
        return (d * d).mean(-1)
    T = temperature
    ls_all = torch.log_softmax(s / T, -1)
    ls_kept = ls_all.gather(1, idx)
    # the student's rest from its own entries outside the kept ones (exactly empty at k = V), not as
    # 1 - kept, whose rounding and infinite slope at 0 would spoil the k = V case
    ls_rest = torch.logsumexp(ls_all.scatter(1, idx, float("-inf")), -1)
    if teacher.log_normalizer is not None:  # (callers pass None at another temperature than the teacher's)
        lt_kept = values / T - teacher.log_normalizer.to(acc).unsqueeze(1)
        lt_rest = _teacher_log_rest(torch.logsumexp(lt_kept, -1), teacher.log_normalizer)
        if idx.shape[1] == s.shape[1]:  # k = V: no class is left for a rest, whatever the rounding says
            lt_rest = torch.full_like(lt_rest, float("-inf"))
    else:  # log-probabilities, or another temperature: renormalised over the kept entries
        lt_kept = torch.log_softmax(values / T, -1)
        lt_rest = torch.full_like(lt_kept[:, 0], float("-inf"))
        if kind in (REVERSE_KL, SKEW_REVERSE_KL):  # against an empty rest student mass is infinitely wrong:
            ls_kept = torch.log_softmax(s.gather(1, idx) / T, -1)  # compare on the kept entries only
            ls_rest = torch.full_like(ls_kept[:, 0], float("-inf"))
    ls = torch.cat([ls_kept, ls_rest.unsqueeze(1)], 1)
    lt = torch.cat([lt_kept, lt_rest.unsqueeze(1)], 1)
    if kind == FORWARD_KL:
        row = _xlogy_diff(lt, lt, ls)
    elif kind == REVERSE_KL:
        row = _xlogy_diff(ls, ls, lt)
    elif kind == JSD:
        lm = torch.logaddexp(lt + torch.log(torch.tensor(beta, dtype=acc)), ls + torch.log(torch.tensor(1 - beta,
                                                                                                       dtype=acc)))
        row = beta * _xlogy_diff(lt, lt, lm) + (1 - beta) * _xlogy_diff(ls, ls, lm)
    elif kind == TVD:
        row = 0.5 * (lt.exp() - ls.exp()).abs().sum(-1)
    elif kind == SKEW_KL:
        row = _xlogy_diff(lt, lt, _log_mix(lt, ls, beta))
    elif kind == SKEW_REVERSE_KL:
        row = _xlogy_diff(ls, ls, _log_mix(ls, lt, beta))
    else:
        raise ValueError(f"unknown distillation kind code {kind}")
    return row * (T * T) if kind in T2_SCALED else row


def _log_mix(la: torch.Tensor, lb: torch.Tensor, a: float) -> torch.Tensor:
    """log(a exp(la) + (1 - a) exp(lb)) in log space (the mixture underflows long before its log does);
    at a = 0 exactly lb."""
    if a == 0:
        return lb
    log_a = torch.log(torch.tensor(a, dtype=la.dtype))
    return torch.logaddexp(la + log_a, lb + torch.log1p(torch.tensor(-a, dtype=lb.dtype)))


def topk_distill_loss(
    student: torch.Tensor,
    teacher: SparseTeacher,
    labels: Optional[torch.Tensor] = None,
    *,
    kind: str = "kl",
    alpha: float = 1.0,
    temperature: Optional[float] = None,
    beta: float = 0.5,
    reduction: str = "batchmean",
    ignore_index: int = -100,
) -> torch.Tensor:
    """``alpha * distill(student, sparse teacher) + (1 - alpha) * CE(student, labels)``; the soft term
    over the kept entries plus a rest bucket (module docstring). ``temperature`` defaults to the
    teacher's. Same kinds, reductions and ignored rows as :func:`pylaundering.ops.distill_loss`;
    ``teacher = topk_teacher(logits, k=V)`` gives the dense loss exactly."""
    _check_kind(kind)
    s = _check_logits("student", student)
    T = float(teacher.temperature) if temperature is None and isinstance(teacher, SparseTeacher) else temperature
    spec = make_spec(kind, alpha, T if T is not None else 1.0, beta, reduction)
    if alpha < 1 and labels is None:
        raise ValueError(f"alpha={alpha} < 1 mixes in cross-entropy, which needs labels")
    V = s.shape[-1]
    s2 = s.reshape(-1, V)
    y1 = None
    if labels is not None:
        if not isinstance(labels, torch.Tensor) or labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise TypeError("labels must be an integer tensor of class indices")
        if labels.shape != s.shape[:-1]:
            raise ValueError(f"labels {tuple(labels.shape)} must equal the student's leading shape "
                             f"{tuple(s.shape[:-1])}")
        y1 = labels.reshape(-1).long()
        _check_label_range(y1, V, ignore_index)
    # the mean's scale folded into the kernel's gradient (functional._grad_scale); the sparse CUDA
    # kernel writes the plain gradient, so there only the dense op folds
    rows_dtype = torch.float64 if s2.dtype == torch.float64 else torch.float32
    denom = _denominator(s2, y1, ignore_index, reduction, 1, rows_dtype)
    scale = _grad_scale(s2, reduction, denom) if s2.device.type == "cpu" or alpha == 0 else 1.0
    if alpha > 0:
        checked = _check_sparse(s, teacher)
        check_sampled_use(checked, kind, T)
        rows = sparse_rows(s2, checked, y1, spec, ignore_index, scale)
    else:  # cross-entropy alone: the dense op, no teacher
        rows = _rows(s2, None, y1, CE_ONLY, ignore_index, scale)
    out = _reduce(rows, y1, ignore_index, reduction, s.dtype, denom=denom)
    return out.reshape(s.shape[:-1]) if reduction == "none" else out


def sparse_rows(s2: torch.Tensor, teacher: SparseTeacher, y1: Optional[torch.Tensor], spec: DistillSpec,
                ignore_index: int, grad_scale: float = 1.0) -> torch.Tensor:
    """Per-row ``alpha * soft + (1 - alpha) * CE`` of 2-D student logits against a checked sparse teacher,
    0 on ignored rows: the fused kernel (``torch.ops.pylaundering.fused_sparse_distill``) when compiled,
    else the reference formulas. fp32 rows (fp64 for fp64 input, or above HIGH_TEMPERATURE as the dense op)."""
    kind, alpha, T, beta = spec.code, spec.alpha, spec.temperature, spec.beta
    lognorm = teacher.log_normalizer if T == teacher.temperature else None
    if _ext.compiled_available(s2.device):
        values = teacher.values
        if needs_float64(kind, T, s2.dtype):
            s2, values = s2.double(), values.double()
        if lognorm is not None:
            lognorm = lognorm.to(torch.float64 if s2.dtype == torch.float64 else torch.float32).contiguous()
        need_grad = torch.is_grad_enabled() and s2.requires_grad
        rows, _ = torch.ops.pylaundering.fused_sparse_distill(
            s2.contiguous(), values.contiguous(), teacher.indices.contiguous(), lognorm,
            y1.contiguous() if y1 is not None else None, kind, float(alpha), float(T), float(beta),
            int(ignore_index), need_grad, float(grad_scale))
        return rows
    _ext.warn_fallback(s2.device)
    rows = alpha * sparse_distill_rows(s2, teacher._replace(log_normalizer=lognorm), kind, T, beta)
    if y1 is not None:
        if alpha < 1:
            rows = rows + (1 - alpha) * F.cross_entropy(s2.to(rows.dtype), y1, ignore_index=ignore_index,
                                                        reduction="none")
        rows = torch.where(y1 == ignore_index, torch.zeros_like(rows), rows)
    return rows
