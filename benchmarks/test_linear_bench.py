"""fused_linear_distill_loss vs the naive computation vs Liger-Kernel's chunked loss (forward+backward).

    make bench                                                    # the default shape below
    PYLAUNDERING_BENCH_LINEAR_SHAPES=4096x2048x128256 pytest benchmarks/test_linear_bench.py --benchmark-only

Loss: generalized JSD (beta = 0.5, T = 1, no CE), the one loss Liger's chunked family shares with ours
(``LigerFusedLinearJSDLoss`` with weight_hard_loss=0, weight_soft_loss=1). Teacher as hidden states +
LM head, fp32. Implementations:
  fused        pylaundering.ops.fused_linear_distill_loss (default chunk size)
  naive_fused  full [N, V] logits of student and teacher, then the dense fused op (pylaundering.ops.jsd)
  naive_eager  full logits, then the loss in plain PyTorch (log_softmax, logsumexp)
  liger        liger_kernel.chunked_loss.LigerFusedLinearJSDLoss, when importable (it runs on the CPU:
               its chunked losses are PyTorch + torch.compile, no Triton); `pip install --no-deps
               liger-kernel` to include it; otherwise the case is skipped with that reason.
Peak memory of the same step: `python benchmarks/peak_memory.py --op linear --shape NxHxV`.
"""

from __future__ import annotations

import gc
import math
import os

import pytest
import torch

import pylaundering.ops as O

SHAPES = [tuple(int(x) for x in s.split("x"))
          for s in os.environ.get("PYLAUNDERING_BENCH_LINEAR_SHAPES", "1024x1024x32000").split(",")]
BETA = 0.5
IMPLS = ("fused", "naive_fused", "naive_eager", "liger")


def naive_eager_jsd(s, t, beta=BETA):
    ls, lt = torch.log_softmax(s, -1), torch.log_softmax(t, -1)
    lm = torch.logsumexp(torch.stack([lt + math.log(beta), ls + math.log(1 - beta)]), dim=0)
    kl_t = (lt.exp() * (lt - lm)).sum(-1)
    kl_s = (ls.exp() * (ls - lm)).sum(-1)
    return (beta * kl_t + (1 - beta) * kl_s).mean()


def make_step(impl, th, tw):
    if impl == "fused":
        return lambda h, w, y: O.fused_linear_distill_loss(h, w, (th, tw), kind="jsd", beta=BETA)
    if impl == "naive_fused":
        return lambda h, w, y: O.jsd(h @ w.T, (th @ tw.T).detach(), beta=BETA)
    if impl == "naive_eager":
        return lambda h, w, y: naive_eager_jsd(h @ w.T, (th @ tw.T).detach())
    try:
        from liger_kernel.chunked_loss import LigerFusedLinearJSDLoss
    except Exception as e:  # noqa: BLE001 - any import failure means the baseline cannot run here
        pytest.skip(f"liger baseline missing: liger_kernel.chunked_loss not importable ({type(e).__name__}: {e})")
    # Liger's beta weighs the student side (its JSD(beta) = beta KL(s||m) + (1-beta) KL(t||m)); at 0.5 the two agree.
    loss = LigerFusedLinearJSDLoss(weight_hard_loss=0.0, weight_soft_loss=1.0, beta=BETA, temperature=1.0)
    return lambda h, w, y: loss(h, w, th, tw, y)


_INPUTS: dict = {}


def inputs(shape):
    if shape not in _INPUTS:
        _INPUTS.clear()
        gc.collect()
        N, H, V = shape
        g = torch.Generator().manual_seed(0)
        _INPUTS[shape] = (torch.randn(N, H, generator=g), torch.randn(V, H, generator=g) / H ** 0.5,
                          torch.randn(N, H, generator=g), torch.randn(V, H, generator=g) / H ** 0.5,
                          torch.randint(0, V, (N,), generator=g))
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
