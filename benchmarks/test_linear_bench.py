"""fused_linear_distill_loss vs the naive computation vs Liger-Kernel's chunked loss (forward+backward).

    make bench                                                    # the default shape below
    PYLAUNDERING_BENCH_LINEAR_SHAPES=4096x2048x128256 pytest benchmarks/test_linear_bench.py --benchmark-only

Loss: generalized JSD (beta = 0.5, T = 1, no CE), the one loss Liger's chunked family shares with ours
(``LigerFusedLinearJSDLoss`` with weight_hard_loss=0, weight_soft_loss=1). Teacher as hidden states +
LM head, fp32. Implementations (pylaundering/bench/linear.py, shared with `launder bench linear`):
  fused        pylaundering.ops.fused_linear_distill_loss (default chunk size)
  naive        full [N, V] logits of student and teacher, then the dense fused op (pylaundering.ops.jsd)
  eager        full logits, then the loss in plain PyTorch (log_softmax, logsumexp)
  liger        liger_kernel.chunked_loss.LigerFusedLinearJSDLoss, when importable (it runs on the CPU:
               its chunked losses are PyTorch + torch.compile, no Triton); `pip install --no-deps
               liger-kernel` to include it; otherwise the case is skipped with that reason.
Peak memory of the same step: `python benchmarks/peak_memory.py --op linear --shape NxHxV`.
"""

from __future__ import annotations

import gc
import os

import pytest
import torch

import pylaundering.bench.linear as linear_bench
import pylaundering.bench.topk as topk_bench
import pylaundering.ops as O

SHAPES = [tuple(int(x) for x in s.split("x"))
          for s in os.environ.get("PYLAUNDERING_BENCH_LINEAR_SHAPES", "1024x1024x32000").split(",")]
IMPLS = ("fused", "naive", "eager", "liger")


def make_step(impl, th, tw):
    """pylaundering.bench.linear's implementations (the ones `launder bench linear` times); a missing
    Liger skips its case with the reason."""
    try:
        return linear_bench.make_step(impl, th, tw)
    except ImportError as e:
        pytest.skip(f"liger baseline missing: liger_kernel.chunked_loss not importable ({type(e).__name__}: {e})")


_INPUTS: dict = {}


def inputs(shape):
    if shape not in _INPUTS:
        _INPUTS.clear()
        gc.collect()
        _INPUTS[shape] = linear_bench.case_inputs(linear_bench.LinearCase(*shape, torch.float32), torch.device("cpu"))
    return _INPUTS[shape]


_LOSSES: dict = {}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_linear_fwd_bwd(benchmark, record, shape, impl):
    h0, w0, th, tw, y = inputs(shape)
    step = make_step(impl, th, tw)
    h, w = h0.clone().requires_grad_(True), w0.clone().requires_grad_(True)

    def run():
        h.grad = w.grad = None
        loss = step(h, w, y)
        loss.backward()
        return loss

    big = shape[0] * shape[2] > 50_000_000
    benchmark.group = "linear|" + "x".join(map(str, shape))
    loss = benchmark.pedantic(run, rounds=3 if big else 7, iterations=1, warmup_rounds=1)
    assert torch.isfinite(loss)
    # every implementation computes the same loss (a benchmark of a wrong answer is worthless)
    first = _LOSSES.setdefault(shape, float(loss))
    assert abs(float(loss) - first) <= 1e-3 * abs(first) + 1e-5, (impl, float(loss), first)
    N, H, V = shape
    record(benchmark, benchmark.group, impl, None, shape=list(shape), flops=3 * 2 * N * H * V + 2 * N * H * V,
           loss=float(loss), backend=str(O.backend()))


TOPK_IMPLS = ("fused", "sampled", "eager", "dense", "ce")
_TOPK: dict = {}


@pytest.mark.parametrize("impl", TOPK_IMPLS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_topk_fwd_bwd(benchmark, record, shape, impl):
    """Sparse teachers (k = 128) on the [N, V] logits of the same shape: pylaundering/bench/topk.py."""
    N, _, V = shape
    k = min(128, V)
    if shape not in _TOPK:
        _TOPK.clear()
        g = torch.Generator().manual_seed(0)
        s0, t = torch.randn(N, V, generator=g) * 3, torch.randn(N, V, generator=g) * 3
        y = torch.randint(0, V, (N,), generator=g)
        _TOPK[shape] = (s0, t, y, O.topk_teacher(t, k), O.sampled_teacher(t, k, generator=g))
    s0, t, y, top, sampled = _TOPK[shape]
    step = {"fused": lambda s: O.topk_distill_loss(s, top), "sampled": lambda s: O.topk_distill_loss(s, sampled),
            "eager": lambda s: topk_bench._eager(s, top), "dense": lambda s: O.distill_loss(s, t),
            "ce": lambda s: O.cross_entropy(s, y)}[impl]
    s = s0.clone().requires_grad_(True)

    def run():
        s.grad = None
        loss = step(s)
        loss.backward()
        return loss

    benchmark.group = f"topk|{N}x{V} k={k}"
    loss = benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    assert torch.isfinite(loss)
    record(benchmark, benchmark.group, impl, None, shape=[N, V, k], loss=float(loss), backend=str(O.backend()))
