"""Benchmark setup: huge pages for torch's CPU allocator, 2 threads, and a summary table.

THP_MEM_ALLOC_ENABLE must be in the environment before torch is imported (c10 reads it once):
with it, allocations >= 2 MiB are 2 MiB-aligned and madvise(MADV_HUGEPAGE)d, so a fresh 524 MB
gradient costs 250 page faults instead of 128000 (about half the fused op's time otherwise).
Set THP_MEM_ALLOC_ENABLE=0 to measure without.
"""

from __future__ import annotations

import os
import sys

_TORCH_WAS_IMPORTED = "torch" in sys.modules
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

THREADS = int(os.environ.get("PYLAUNDERING_BENCH_THREADS", "2"))
torch.set_num_threads(THREADS)

# (group, impl) -> dict(median_s, min_s, gbps, ...); filled by the benchmarks, printed at the end
RESULTS: dict[tuple[str, str], dict] = {}


def _thp_mode() -> str:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


ENV_INFO = {
    "THP_MEM_ALLOC_ENABLE": os.environ.get("THP_MEM_ALLOC_ENABLE"),
    "thp_effective": not _TORCH_WAS_IMPORTED and os.environ.get("THP_MEM_ALLOC_ENABLE") == "1",
    "kernel_thp_mode": _thp_mode(),
    "threads": THREADS,
    "torch": torch.__version__,
}


@pytest.fixture
def record():
    """Records one benchmark's result for the summary table (and into benchmark.extra_info)."""

    def _record(benchmark, group: str, impl: str, bytes_moved: float | None, **extra):
        st = benchmark.stats.stats
        info = {"impl": impl, "median_s": st.median, "min_s": st.min, "rounds": st.rounds, **ENV_INFO, **extra}
        if bytes_moved is not None:
            info["bytes_moved"] = bytes_moved
            info["GBps_median"] = bytes_moved / st.median / 1e9
            info["GBps_best"] = bytes_moved / st.min / 1e9
        benchmark.extra_info.update(info)
        RESULTS[(group, impl)] = info

    return _record


def _linear_summary(tr) -> None:
    """benchmarks/test_linear_bench.py: each implementation's median and its time over the fused op's."""
    groups = sorted({g for g, _ in RESULTS if g.startswith("linear|")})
    if not groups:
        return
    impls = ("fused", "naive", "eager", "liger")
    tr.section("fused linear distillation (JSD, forward+backward, median of rounds)")
    hdr = f"{'shape NxHxV':<22}" + "".join(f"{i + ' ms':>16}" for i in impls) + "".join(
        f"{i + '/fused':>18}" for i in impls[1:]) + f"{'fused GFLOP/s':>15}"
    tr.write_line(hdr)
    for g in groups:
        rows = {i: RESULTS.get((g, i)) for i in impls}
        fused = rows["fused"]
        cells = "".join(f"{r['median_s'] * 1e3:>16.1f}" if r else f"{'missing':>16}" for r in rows.values())
        ratios = "".join(f"{rows[i]['median_s'] / fused['median_s']:>18.2f}" if rows[i] and fused else f"{'-':>18}"
                         for i in impls[1:])
        gflops = f"{fused['flops'] / fused['median_s'] / 1e9:>15.1f}" if fused else f"{'-':>15}"
        tr.write_line(f"{g.split('|')[1]:<22}{cells}{ratios}{gflops}")
    tr.write_line("missing: skipped, the reason is in the pytest summary (-rs). FLOPs: 4 matmuls of N*H*V "
                  "(student and teacher logits, the two gradients).")


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    tr = terminalreporter
    tr.section("pylaundering fused ops vs eager vs torch.compile (median of rounds)")
    tr.write_line(
        f"threads={THREADS}  THP_MEM_ALLOC_ENABLE={ENV_INFO['THP_MEM_ALLOC_ENABLE']} "
        f"(effective: {ENV_INFO['thp_effective']}, kernel THP: {ENV_INFO['kernel_thp_mode']})  "
        f"torch {torch.__version__}"
    )
    _linear_summary(tr)
    groups = sorted({g for g, _ in RESULTS if not g.startswith("linear|")}, key=lambda g: (g.split("|")[0], g))
    if not groups:
        return
    hdr = (
        f"{'case':<44}{'fused ms':>10}{'compile ms':>12}{'eager ms':>10}{'fused/comp':>11}{'fused/eager':>12}"
        f"{'fused GB/s':>11}{'copy GB/s':>10}{'clone GB/s':>11}"
    )
    tr.write_line(hdr)
    tr.write_line("-" * len(hdr))
    for g in groups:
        if g.startswith("copy"):
            continue
        f, c, e = (RESULTS.get((g, k)) for k in ("fused", "compiled", "eager"))
        shape = g.split("|")[0]
        cp, cl = RESULTS.get((f"copy|{shape}", "copy_")), RESULTS.get((f"copy|{shape}", "clone"))

        def ms(r):
            return f"{r['median_s'] * 1e3:.1f}" if r else "-"

        def ratio(a, b):
            return f"{a['median_s'] / b['median_s']:.2f}" if a and b else "-"

        def gbps(r):
            return f"{r['GBps_median']:.1f}" if r and "GBps_median" in r else "-"

        tr.write_line(
            f"{g:<44}{ms(f):>10}{ms(c):>12}{ms(e):>10}{ratio(f, c):>11}{ratio(f, e):>12}"
            f"{gbps(f):>11}{gbps(cp):>10}{gbps(cl):>11}"
        )
    tr.write_line(
        "GB/s: fused fwd moves 8 B/element (read s, t), fwd+bwd 12 B/element (read s, t, write grad); "
        "copy_ = x.copy_(y) into an existing tensor, clone = y.clone() into a fresh one (8 B/element)."
    )
