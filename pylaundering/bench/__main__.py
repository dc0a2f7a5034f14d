"""``python -m pylaundering.bench [ops|linear] [--device cuda] [--json out.json] [--plot out.png] [--repeats N]
[--shapes ...] [--no-compile]``: the ops (or fused-linear and top-k) table without the CLI (the GPU check runs it from a
source tree that has no `launder` command); `launder bench ops|linear` are the full commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from . import linear
from .ops import format_table, make_cases, parse_shapes, run
from .plot import plot_report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pylaundering.bench", description=__doc__)
    ap.add_argument("kind", nargs="?", choices=("ops", "linear"), default="ops")
    ap.add_argument("--shapes", default=None, help="ops: ROWSxV[,...] (bfloat16 on CUDA, float32 on the CPU); "
                    "linear: NxHxV[,...]. Default: the device's cases")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile baseline")
    args = ap.parse_args(argv)
    if args.kind == "linear":
        cases = None
        if args.shapes:
            dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
            cases = linear.cases_for(linear.parse_linear_shapes(args.shapes), dtype)
        report = linear.run(args.device, cases, repeats=min(args.repeats, 5), compile_ok=not args.no_compile)
        print(linear.format_table(report))
    else:
        cases = None
        if args.shapes:
            dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
            cases = make_cases(parse_shapes(args.shapes), [dtype])
        report = run(args.device, cases=cases, repeats=args.repeats, compile_ok=not args.no_compile)
        print(format_table(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    if args.plot and args.kind == "ops":
        plot_report(report, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
