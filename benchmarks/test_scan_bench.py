"""Throughput and peak memory of `launder scan` (pylaundering.audit.scan) on generated data.

    pytest benchmarks/test_scan_bench.py --benchmark-only -s
    PYLAUNDERING_SCAN_BENCH=1000000x10000 pytest benchmarks/test_scan_bench.py --benchmark-only -s

ROWSxITEMS (default 100000x1000): ROWS training rows of 30 random words (a .txt file, one row per
line, read and scanned end to end as the CLI does) against ITEMS benchmark items (a 20-word question
and four 3-word choices, our JSONL). Words are drawn uniformly from a 20,000-word made-up vocabulary.
One row in 1,000 is a planted copy of a benchmark item (alternately exact, and a 13-word span inside
random text), so the scan has real hits to report; the test checks it finds every one.

Reported (stdout with -s, and the benchmark's extra_info): rows per second of the scan (the
benchmark index built first, then every row normalised, n-gram hashed and MinHash/LSH queried) with
near duplicates on (the default) and off, and the peak resident memory the scan added above the
process before it (modules already imported) (VmHWM after resetting it through /proc/self/clear_refs; where that is not
writable, ru_maxrss, which also counts what the process held before). Set
PYLAUNDERING_SCAN_BENCH_JSON=path to also write the numbers as JSON.
"""

from __future__ import annotations

import json
import os
import random
import resource
import time

import pytest

from pylaundering.audit import ScanParams, scan
from pylaundering.data.schema import MCExample, write_jsonl

SIZE = os.environ.get("PYLAUNDERING_SCAN_BENCH", "100000x1000")
ROWS, ITEMS = (int(x) for x in SIZE.lower().split("x"))
PLANT_EVERY = 1000


def _vocab(rng: random.Random, n: int = 20000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 9))))
    return sorted(words)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    import datasketch  # noqa: F401 - imported up front, so the peak during the scan counts data, not modules

    rng = random.Random(0)
    vocab = _vocab(rng)
    folder = tmp_path_factory.mktemp("scan_bench")
    bench = [MCExample(id=f"b{i}", question=" ".join(rng.choices(vocab, k=20)) + "?",
                       choices=tuple(" ".join(rng.choices(vocab, k=3)) for _ in range(4)), label=i % 4)
             for i in range(ITEMS)]
    write_jsonl(bench, folder / "bench.jsonl")
    planted: set[str] = set()
    with (folder / "train.txt").open("w", encoding="utf-8") as f:
        for r in range(ROWS):
            if r % PLANT_EVERY == PLANT_EVERY - 1:
                item = bench[(r // PLANT_EVERY) % ITEMS]
                planted.add(item.id)
                if (r // PLANT_EVERY) % 2:
                    f.write(" ".join([item.question, *item.choices]) + "\n")
                else:
                    span = item.question.split()[3:16]
                    f.write(" ".join(rng.choices(vocab, k=10) + span + rng.choices(vocab, k=10)) + "\n")
            else:
                f.write(" ".join(rng.choices(vocab, k=30)) + ".\n")
    return folder, planted


def _reset_peak() -> tuple[bool, int]:
    """(whether the kernel's peak-RSS counter was reset, the current RSS in bytes)."""
    reset = True
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        reset = False
    try:
        with open("/proc/self/statm") as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        rss = 0
    return reset, rss


def _peak() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@pytest.mark.parametrize("near", [True, False], ids=["near", "no-near"])
def test_scan_throughput(benchmark, data, near, capsys):
    folder, planted = data
    out: dict = {}

    def run():
        reset, base = _reset_peak()
        t0 = time.perf_counter()
        report = scan([str(folder / "train.txt")], str(folder / "bench.jsonl"), params=ScanParams(near=near))
        out.update(report=report, seconds=time.perf_counter() - t0, base=base, peak=_peak(), reset=reset)

    benchmark.group = f"scan {ROWS}x{ITEMS}"
    benchmark.pedantic(run, rounds=1, iterations=1)
    report = out["report"]
    assert report["totals"]["train_rows"] == ROWS
    found = {it["id"] for it in report["items"]}
    assert planted <= found, sorted(planted - found)[:5]
    extra_mb = (out["peak"] - out["base"]) / 2**20 if out["reset"] else None
    result = {
        "rows": ROWS, "items": ITEMS, "near": near,
        "seconds_total": round(out["seconds"], 2),
        "seconds_index": report["seconds"]["index"], "seconds_scan": report["seconds"]["scan"],
        "rows_per_second": report["rows_per_second"],
        "peak_rss_mb": round(out["peak"] / 2**20, 1),
        "peak_extra_mb": None if extra_mb is None else round(extra_mb, 1),
        "peak_measure": "VmHWM after clear_refs" if out["reset"] else "ru_maxrss (whole process)",
        "contaminated_items": report["totals"]["contaminated_items"], "planted_items": len(planted),
    }
    benchmark.extra_info.update(result)
    with capsys.disabled():
        print(f"\nscan {ROWS}x{ITEMS} near={near}: {result['rows_per_second']:.0f} rows/s "
              f"(scan {result['seconds_scan']} s, index {result['seconds_index']} s), peak RSS "
              f"{result['peak_rss_mb']} MB, +{result['peak_extra_mb']} MB during the scan ({result['peak_measure']})")
    path = os.environ.get("PYLAUNDERING_SCAN_BENCH_JSON")
    if path:
        old = json.loads(open(path).read()) if os.path.exists(path) else []
        with open(path, "w") as f:
            json.dump(old + [result], f, indent=2)
