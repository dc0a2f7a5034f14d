"""Peak extra memory of one forward+backward of the distillation loss: fused vs eager vs compiled.

    python benchmarks/peak_memory.py [--shape 4096x32000] [--alpha 1.0] [--out peak.json]

Each implementation runs in a fresh subprocess (a process's peak RSS only grows, so it must not
have run anything else): it allocates the inputs, warms up once (torch.compile compiles here; the
other two touch their lazy state), frees the warm-up's gradient, then

  * resets the kernel's peak-RSS counter (writing 5 to /proc/self/clear_refs, Linux >= 4.0) and
    reads the current RSS from /proc/self/statm as the baseline,
  * runs forward + backward once, keeping the student's gradient alive (a training step needs it),
  * reads the peak (VmHWM from /proc/self/status, which clear_refs reset; ru_maxrss agrees there).

extra = peak - baseline counts everything the step allocated, the gradient included, so an
implementation that allocates only the gradient scores 1.0 in units of the gradient's size.
Where clear_refs is not writable the worker skips the warm-up (compiled then includes compile-time
memory) and uses ru_maxrss, and says so in the table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

IMPLS = ("fused", "eager", "compiled")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _hwm_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def worker(impl: str, N: int, V: int, alpha: float, T: float) -> dict:
    import gc

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(int(os.environ.get("PYLAUNDERING_BENCH_THREADS", "2")))
    import pylaundering.ops as O

    def eager(s, t, y):
        kd = F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), log_target=True, reduction="batchmean") * T * T
        return kd if alpha >= 1 else alpha * kd + (1 - alpha) * F.cross_entropy(s, y)

    def fused(s, t, y):
        return O.distill_loss(s, t, y if alpha < 1 else None, kind="kl", alpha=alpha, temperature=T)

    fn = {"fused": fused, "eager": eager, "compiled": torch.compile(eager, dynamic=False)}[impl]
    g = torch.Generator().manual_seed(0)
    s = (torch.randn(N, V, generator=g) * 3).requires_grad_(True)
    t = torch.randn(N, V, generator=g) * 3
    y = torch.randint(0, V, (N,), generator=g)

    can_reset = _reset_peak()
    if can_reset:  # warm-up (compiles), then forget its peak
        fn(s, t, y).backward()
        s.grad = None
        gc.collect()
        _reset_peak()
    base = _rss_bytes()
    loss = fn(s, t, y)
    loss.backward()
    peak = _hwm_bytes() if can_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert s.grad is not None and torch.isfinite(loss)
    grad_bytes = s.grad.numel() * s.grad.element_size()
    return {
        "impl": impl, "shape": [N, V], "alpha": alpha, "temperature": T, "baseline_bytes": base, "peak_bytes": peak,
        "extra_bytes": peak - base, "grad_bytes": grad_bytes, "extra_over_grad": (peak - base) / grad_bytes,
        "method": "VmHWM after clear_refs reset, warm-up excluded" if can_reset else "ru_maxrss, no warm-up",
        "loss": float(loss), "backend": str(O.backend()),
        "THP_MEM_ALLOC_ENABLE": os.environ.get("THP_MEM_ALLOC_ENABLE"),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="4096x32000", help="NxV (default 4096x32000)")
    ap.add_argument("--alpha", type=float, default=1.0, help="distillation weight; < 1 mixes in CE")
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--impl", choices=IMPLS, action="append", help="implementations to measure (default: all)")
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--worker", choices=IMPLS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    N, V = (int(x) for x in args.shape.lower().split("x"))

    if args.worker:
        print(json.dumps(worker(args.worker, N, V, args.alpha, args.temperature)))
        return 0

    results = []
    for impl in args.impl or IMPLS:
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", impl, "--shape", args.shape,
               "--alpha", str(args.alpha), "--temperature", str(args.temperature)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{impl}: worker failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
            return 1
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))

    mib = 1024 * 1024
    print(f"peak extra memory of one forward+backward, {N}x{V} fp32, alpha={args.alpha}, T={args.temperature}")
    print(f"(gradient = {results[0]['grad_bytes'] / mib:.0f} MiB; {results[0]['method']})")
    print(f"{'impl':<10}{'baseline MiB':>14}{'peak MiB':>10}{'extra MiB':>11}{'extra/grad':>12}{'vs fused':>10}")
    fused_extra = next((r["extra_bytes"] for r in results if r["impl"] == "fused"), None)
    for r in results:
        rel = f"{r['extra_bytes'] / fused_extra:.2f}" if fused_extra else "-"
        print(f"{r['impl']:<10}{r['baseline_bytes'] / mib:>14.0f}{r['peak_bytes'] / mib:>10.0f}"
              f"{r['extra_bytes'] / mib:>11.0f}{r['extra_over_grad']:>12.2f}{rel:>10}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"shape": [N, V], "alpha": args.alpha, "temperature": args.temperature, "results": results}, f, indent=2)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
