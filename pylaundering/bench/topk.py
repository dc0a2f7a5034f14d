"""Sparse teachers on raw logits: the fused top-k / sampled kernel vs the plain-PyTorch formulas, the
dense loss it replaces, and cross-entropy (the floor any KD loss pays), forward + backward.

A case is ``[N, V]`` student logits and a teacher stored as k entries per row (forward KL, T = 1,
batchmean). Implementations:

* ``fused``: ``topk_distill_loss`` on a top-k teacher (``torch.ops.pylaundering.fused_sparse_distill``);
* ``sampled``: the same kernel on a ``sampled_teacher`` (random-sampling KD: unbiased);
* ``eager``: the reference formulas of ``pylaundering/ops/sparse.py`` (gathers, logsumexp, a scatter);
  ``compile``: ``torch.compile`` of ``eager``;
* ``dense``: the dense fused op against the full ``[N, V]`` teacher logits (what the cache avoids storing);
* ``ce``: cross-entropy alone through the dense fused op (Anshumann et al. quote random-sampling KD at
  under 10% over cross-entropy).

Effective bandwidth counts the least any of them must move: the student logits read and their gradient
written (2 N V elements).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import pylaundering.ops as O
from pylaundering.ops.reference import FORWARD_KL
from pylaundering.ops.sparse import _check_sparse, sparse_distill_rows

from .ops import copy_times, failure, pooled_copy, time_impl

IMPLS = ("fused", "sampled", "eager", "compile", "dense", "ce")


@dataclass(frozen=True)
class TopkCase:
    rows: int
    vocab: int
    k: int
    dtype: torch.dtype

    @property
    def name(self) -> str:
        return f"{self.rows}x{self.vocab} k={self.k} {str(self.dtype).replace('torch.', '')} top-k kl fwd+bwd"


def _eager(s: torch.Tensor, teacher) -> torch.Tensor:
    return sparse_distill_rows(s, teacher, FORWARD_KL, 1.0, 0.5).mean()


def bench_case(case: TopkCase, device: torch.device, repeats: int = 5, warmup: int = 1,
               compile_ok: bool = True) -> dict:
    g = torch.Generator(device="cpu").manual_seed(0)
    s0 = (torch.randn(case.rows, case.vocab, generator=g) * 3).to(device=device, dtype=case.dtype)
    t = (torch.randn(case.rows, case.vocab, generator=g) * 3).to(device=device, dtype=case.dtype)
    y = torch.randint(0, case.vocab, (case.rows,), generator=g).to(device)
    top = O.topk_teacher(t, case.k)
    sampled = O.sampled_teacher(t, case.k, generator=torch.Generator(device=device).manual_seed(0))
    checked = _check_sparse(s0, top)
    n = case.rows * case.vocab
    bytes_min = 2 * n * s0.element_size()
    copy_before = copy_times(s0, device, repeats, warmup)

    steps = {
        "fused": lambda s: O.topk_distill_loss(s, top),
        "sampled": lambda s: O.topk_distill_loss(s, sampled),
        "eager": lambda s: _eager(s, checked),
        "dense": lambda s: O.distill_loss(s, t),
        "ce": lambda s: O.cross_entropy(s, y),
    }
    missing: dict[str, str] = {}
    if compile_ok:
        torch._dynamo.reset()
        compiled = torch.compile(_eager, dynamic=False)
        steps["compile"] = lambda s: compiled(s, checked)
    else:
        missing["compile"] = "disabled (--no-compile)"
    results, losses = {}, {}
    for impl in IMPLS:
        if impl not in steps:
            continue
        s = s0.detach().clone().requires_grad_(True)

        def run(step=steps[impl], s=s):
            s.grad = None
            loss = step(s)
            loss.backward()
            return loss

        try:
            r, losses[impl] = time_impl(run, device, repeats, warmup, keep_loss=True)
        except Exception as e:  # noqa: BLE001 - a failing baseline is reported, not fatal
            missing[impl] = failure(e)
            continue
        r["GBps"] = bytes_min / (r["median_ms"] / 1e3) / 1e9
        results[impl] = r
    copy_gbps = pooled_copy(copy_before, copy_times(s0, device, repeats, warmup), 2 * n * s0.element_size())["GBps"]
    for r in results.values():
        r["copy_fraction"] = r["GBps"] / copy_gbps
    if "fused" in results:
        for r in results.values():
            r["fused_speedup"] = r["median_ms"] / results["fused"]["median_ms"]
    # the top-k implementations compute one loss; sampled, dense and ce are other losses by design
    same = [i for i in ("fused", "eager", "compile") if i in losses]
    ref = losses.get("eager", losses.get("fused"))
    # the fused loss comes back in the input dtype (as F.kl_div's does): bf16 rounds it to ~3 digits
    rtol = max(1e-3, 2 * torch.finfo(case.dtype).eps)
    disagree = {k: losses[k] for k in same if abs(losses[k] - ref) > rtol * abs(ref) + 1e-5}
    return {"case": case.name, "kind": "topk", "rows": case.rows, "vocab": case.vocab, "k": case.k,
            "dtype": str(case.dtype).replace("torch.", ""), "copy_gbps": copy_gbps, "bytes_min": bytes_min,
            "losses": losses, "losses_disagree": disagree, "results": results, "missing": missing}


def format_rows(c: dict, width: int = 42) -> list[str]:
    """The table rows of one top-k case; ``width``: the case column's (the longest case name + 2)."""
    lines = []
    for name, r in c["results"].items():
        peak = f"{r['peak_extra_mb']:.0f}" if "peak_extra_mb" in r else "-"
        lines.append(f"{c['case']:<{width}}{name:<9}{r['median_ms']:>11.1f}{r['min_ms']:>10.1f}{r['spread']:>8.2f}"
                     f"{r.get('fused_speedup', float('nan')):>8.2f}  {r['GBps']:.1f} GB/s "
                     f"({r['copy_fraction']:.0%} of copy){peak:>8}")
    for name, why in c["missing"].items():
        lines.append(f"{'':<{width}}{name:<9} missing: {why}")
    for name, value in c["losses_disagree"].items():
        lines.append(f"{'':<{width}}{name:<9} WARNING: loss {value:.6g} disagrees with the others")
    return lines
