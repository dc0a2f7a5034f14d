"""A ten-second look at the fused losses: value against the plain-PyTorch formula, and time.

    python -m pylaundering.ops.demo [--rows 2048] [--vocab 32000] [--repeat 1]

For each op it prints the fused value, the eager PyTorch value of the textbook formula
(F.kl_div / F.log_softmax / F.cross_entropy / F.mse_loss, no pylaundering code), their relative
difference, and the time of one forward+backward of each (best of a few runs after a warm-up).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

if __name__ == "__main__" and "THP_MEM_ALLOC_ENABLE" not in os.environ:
    # torch's CPU allocator reads THP_MEM_ALLOC_ENABLE once, at import, and `python -m` imported torch
    # (via pylaundering.ops) before this line: restart once with huge pages for the 262 MB tensors
    # (every fresh one otherwise costs 64000 page faults, a large share of both columns' time).
    os.environ["THP_MEM_ALLOC_ENABLE"] = "1"
    os.execv(sys.executable, [sys.executable, "-m", "pylaundering.ops.demo", *sys.argv[1:]])

import torch
import torch.nn.functional as F

import pylaundering.ops as O

T = 2.0  # Hinton temperature for the soft terms
BETA = 0.5
ALPHA = 0.5


def _eager_jsd(s, t):
    ls, lt = F.log_softmax(s / T, -1), F.log_softmax(t / T, -1)
    lm = torch.logsumexp(torch.stack([lt + math.log(BETA), ls + math.log(1 - BETA)]), 0)
    kl_t = F.kl_div(lm, lt, log_target=True, reduction="batchmean")
    kl_s = F.kl_div(lm, ls, log_target=True, reduction="batchmean")
    return (BETA * kl_t + (1 - BETA) * kl_s) * T * T


def _eager_kl(s, t, reverse=False):
    ls, lt = F.log_softmax(s / T, -1), F.log_softmax(t / T, -1)
    inp, tgt = (lt, ls) if reverse else (ls, lt)
    return F.kl_div(inp, tgt, log_target=True, reduction="batchmean") * T * T


# name -> (fused, eager); all take (student, teacher, labels)
OPS = {
    f"kl_div (T={T:g})": (lambda s, t, y: O.kl_div(s, t, T), lambda s, t, y: _eager_kl(s, t)),
    f"kl_div reverse (T={T:g})": (
        lambda s, t, y: O.kl_div(s, t, T, direction="reverse"),
        lambda s, t, y: _eager_kl(s, t, reverse=True),
    ),
    f"jsd (beta={BETA:g}, T={T:g})": (lambda s, t, y: O.jsd(s, t, BETA, T), lambda s, t, y: _eager_jsd(s, t)),
    "logit_mse": (lambda s, t, y: O.logit_mse(s, t), lambda s, t, y: F.mse_loss(s, t)),
    "cross_entropy": (lambda s, t, y: O.cross_entropy(s, y), lambda s, t, y: F.cross_entropy(s, y)),
    f"distill kl + CE (alpha={ALPHA:g})": (
        lambda s, t, y: O.distill_loss(s, t, y, kind="kl", alpha=ALPHA, temperature=T),
        lambda s, t, y: ALPHA * _eager_kl(s, t) + (1 - ALPHA) * F.cross_entropy(s, y),
    ),
}


def _step(fn, s, t, y):
    s.grad = None
    loss = fn(s, t, y)
    loss.backward()
    return loss.detach()


def _best_time(fn, s, t, y, repeat: int) -> float:
    best = math.inf  # (the value computation before this was the warm-up)
    for _ in range(repeat):
        t0 = time.perf_counter()
        _step(fn, s, t, y)
        best = min(best, time.perf_counter() - t0)
    s.grad = None
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Fused distillation losses vs eager PyTorch.")
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--repeat", type=int, default=1, help="timed runs per op (best is shown)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: OMP_NUM_THREADS / torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    N, V = args.rows, args.vocab
    g = torch.Generator().manual_seed(0)
    s = (torch.randn(N, V, generator=g) * 3).requires_grad_(True)
    t = torch.randn(N, V, generator=g) * 3
    y = torch.randint(0, V, (N,), generator=g)

    print(f"pylaundering fused losses: backend {O.backend()}")
    thp = os.environ.get("THP_MEM_ALLOC_ENABLE", "unset")
    print(f"{N} x {V} fp32 logits, one forward+backward (best of {max(2, args.repeat)} fused, {args.repeat} eager); "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, THP_MEM_ALLOC_ENABLE={thp}")
    hdr = f"{'op':<28}{'fused':>14}{'eager torch':>14}{'rel diff':>10}{'fused ms':>10}{'eager ms':>10}{'speed-up':>10}"
    print(hdr)
    print("-" * len(hdr))
    worst = 0.0
    for name, (fused, eager) in OPS.items():
        vf = _step(fused, s, t, y)  # also the fused op's warm-up
        g_f = s.grad.clone()
        t0 = time.perf_counter()
        ve = _step(eager, s, t, y)  # eager allocates afresh on every call: one run is representative
        te = time.perf_counter() - t0
        g_e = s.grad
        rel = abs(float(vf) - float(ve)) / max(abs(float(ve)), 1e-30)
        grad_rel = float((g_f - g_e).abs().max() / g_e.abs().max().clamp_min(1e-30))
        worst = max(worst, rel, grad_rel)
        del g_f, g_e
        s.grad = None
        tf = _best_time(fused, s, t, y, max(2, args.repeat))  # cheap, so at least two runs
        if args.repeat > 1:
            te = min(te, _best_time(eager, s, t, y, args.repeat - 1))
        print(f"{name:<28}{float(vf):>14.6f}{float(ve):>14.6f}{rel:>10.1e}"
              f"{tf * 1e3:>10.1f}{te * 1e3:>10.1f}{te / tf:>9.1f}x")
    print(f"largest relative difference (values and max-normalised gradients): {worst:.1e}")
    return 0 if worst < 1e-3 else 1


if __name__ == "__main__":
    raise SystemExit(main())
