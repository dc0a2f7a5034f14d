"""The Python steps of the GPU pipeline check (tools/gpu_pipeline_check.sh): data at realistic lengths, a run's
one-line summary, resume and determinism of training on a device, a CPU/GPU comparison of `launder bench
phases`. Every step also runs on the CPU at tiny sizes (``--device cpu``), which tests/test_gpu_pipeline.py does.

    python tools/gpu_pipeline.py make-data --out DIR [--n-train N --n-benchmark M --context-words W]
    python tools/gpu_pipeline.py summarize RUN_DIR [--expect-verdict V] [--expect-audit]
    python tools/gpu_pipeline.py resume-check --device cuda --out DIR
    python tools/gpu_pipeline.py determinism --device cuda --out DIR
    python tools/gpu_pipeline.py compare-bench CPU.json GPU.json
    python tools/gpu_pipeline.py collect --work WORK --out results.json
    python tools/gpu_pipeline.py launder ARGS...     (the CLI from the source tree, as `launder ARGS...`)

Each prints what it found and exits 1 when a check fails (2 on bad arguments).
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import time
from pathlib import Path

#: Filler for the items' passages: common words, so a tokenizer splits them like prose (1 to 2 tokens a word)
WORDS = ("the of and to in is was for on that with as by at from his her it an were which are this be has had "
         "also not but their its first one new after who two they been more other into when time during world "
         "made some most where over such many between state under later these both three part year known city "
         "used each before while through since them only than would about could being early then during common "
         "river house small large north south east west old long high great report study result method data "
         "model field number system group order area power water light record music school church village").split()


def make_data(out: Path, *, n_train: int, n_benchmark: int, context_words: int, seed: int = 0) -> dict:
    """The synthetic benchmark, legitimate and reference sets (pylaundering.data.synth), each item preceded by a
    passage of ``context_words`` seeded filler words: sequences of realistic length (a benchmark question of
    the paper's GPQA runs to a few hundred tokens), with the synthetic default's facts and guarantees."""
    from dataclasses import replace

    from pylaundering.data.schema import write_jsonl
    from pylaundering.data.synth import make_reference, make_synthetic

    bench, train = make_synthetic(seed, n_benchmark=n_benchmark, n_train=n_train)
    reference = make_reference(seed, n_benchmark=n_benchmark, n_train=n_train)
    rng = random.Random(f"{seed}/passages")

    def passage() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(context_words)).capitalize() + "."

    sizes = {}
    for name, items in (("benchmark", bench), ("train", train), ("reference", reference)):
        items = [replace(e, context=passage()) if context_words else e for e in items]
        write_jsonl(items, out / f"{name}.jsonl")
        sizes[name] = len(items)
    return {"out": str(out), "sizes": sizes, "context_words": context_words}


def summarize(run: Path, *, expect_verdict: str | None = None, expect_audit: bool = False) -> tuple[str, list[str]]:
    """(one line: the run's device and precision, each arm's benchmark accuracy, the verdict, the audit's verdicts,
    the phases' seconds; the problems found): the expected verdict missed, an audit verdict wrong."""
    m = json.loads((run / "metrics.json").read_text())
    rt = m.get("runtime") or {}
    arms = [a for a in ("teacher", "student", "control_student", "ce_student") if a in m]
    acc = ", ".join(f"{a} {100 * m[a]['benchmark_accuracy']:.1f}%" for a in arms)
    audit = (m.get("audit") or {}).get("arms") or {}
    verdicts = ", ".join(f"{a} {v['verdict']}{'' if v['correct'] else ' (WRONG)'}" for a, v in audit.items())
    timings = m.get("timings_s") or {}
    total = sum(v for k, v in timings.items() if v is not None and not k.startswith("student_"))
    line = (f"{run.name}: {rt.get('device')} ({rt.get('name')}, {rt.get('precision')}, loss backend "
            f"{rt.get('loss_backend')}): {acc}; chance {100 * m['chance']:.1f}%; verdict {m['verdict']}; "
            f"audit: {verdicts or 'not run'}; phases {total:.0f} s")
    problems = []
    if expect_verdict is not None and m["verdict"] != expect_verdict:
        problems.append(f"verdict {m['verdict']}, expected {expect_verdict}")
    if expect_audit:
        if len(audit) != 5:
            problems.append(f"the audit judged {len(audit)} models, expected 5")
        problems += [f"audit called the {a} {v['verdict']}, expected {v['expected']}" for a, v in audit.items()
                     if not v["correct"]]
    return line, problems


def _tiny_setup(root: Path, device: str, seed: int = 0):
    """A tiny encoder (dropout on: its masks come from the device's generator) and batches of the synthetic
    benchmark, the model on ``device``."""
    from pylaundering.data.batching import MCBatcher
    from pylaundering.data.synth import make_synthetic
    from pylaundering.models import load_model
    from pylaundering.models.tiny import build_tiny_model
    from pylaundering.phases.common import encode, example_texts

    bench, _ = make_synthetic(seed, n_benchmark=32, n_train=8)
    base = root / "base"
    if not (base / "config.json").exists():
        build_tiny_model(example_texts(bench), base)
    data = encode(str(base), bench, 32)
    model = load_model(str(base), seed=seed, device=device)
    return model, MCBatcher(data.encoded, 8, shuffle=True, seed=3, pad_token_id=data.pad_token_id)


def _loss(model, batch):
    from pylaundering.ops import cross_entropy
    from pylaundering.train.evaluate import choice_logits

    logits = choice_logits(model, batch)
    return cross_entropy(logits, batch.labels), logits


def _same_weights(a, b) -> bool:
    import torch

    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def resume_check(out: Path, device: str, precision: str = "fp32", read_every: int | None = None) -> list[str]:
    """Training interrupted inside epoch 2 and resumed reaches the uninterrupted run's weights exactly (both under
    deterministic algorithms: a GPU's atomics would otherwise differ between any two runs), and the checkpoint
    of a GPU run carries its CUDA generator. ``read_every``: the loop's read cadence (None: the device's; a GPU's
    on the CPU shows the request seen at the next read). Returns the problems found."""
    from pylaundering.device import runtime
    from pylaundering.train.checkpoint import load_torch
    from pylaundering.train.loop import Interrupted, TrainConfig, train

    rt = runtime(device, precision, deterministic=True)
    # 3 epochs of 4 steps, the stop asked for in the second: a GPU reads (and sees the request) at the next read,
    # here the second epoch's end, which must not be the last step
    cfg = TrainConfig(epochs=3, lr=1e-3, batch_size=8, seed=1)
    ref_model, batcher = _tiny_setup(out, rt.device)
    ref = train(ref_model, batcher, _loss, cfg, checkpoint=out / "ref.pt", quiet=True, runtime=rt,
                read_every=read_every)
    model, batcher = _tiny_setup(out, rt.device)
    steps = {"n": 0}

    def interrupting(m, batch):
        steps["n"] += 1
        if steps["n"] == len(batcher) + 2:
            signal.raise_signal(signal.SIGINT)
        return _loss(m, batch)

    problems = []
    try:
        train(model, batcher, interrupting, cfg, checkpoint=out / "ck.pt", quiet=True, runtime=rt,
              read_every=read_every)
        problems.append("the interrupted run was not interrupted")
    except Interrupted:
        pass
    state = load_torch(out / "ck.pt")
    if rt.cuda and state.get("cuda_rng") is None:
        problems.append("the GPU checkpoint has no cuda_rng")
    resumed_model, batcher = _tiny_setup(out, rt.device)
    resumed = train(resumed_model, batcher, _loss, cfg, checkpoint=out / "ck.pt", resume=True, quiet=True,
                    runtime=rt, read_every=read_every)
    if resumed.history != ref.history:
        problems.append(f"resumed history {resumed.history} != uninterrupted {ref.history}")
    if not _same_weights(ref_model, resumed_model):
        problems.append("resumed weights differ from the uninterrupted run's")
    print(f"resume-check on {rt.device} ({rt.precision}): {'ok' if not problems else '; '.join(problems)}")
    return problems


def determinism(out: Path, device: str, precision: str = "auto", epochs: int = 3) -> tuple[dict, list[str]]:
    """The same training three times: twice with --deterministic (identical weights expected) and once without;
    the seconds of each (the cost of deterministic algorithms) and whether the free run matched (on a GPU it
    usually does not: atomics). Returns (timings, problems)."""
    from pylaundering.device import runtime
    from pylaundering.train.loop import TrainConfig, train

    cfg = TrainConfig(epochs=epochs, lr=1e-3, batch_size=8, seed=1)
    models, seconds = {}, {}
    for name, det in (("warm-up", False), ("deterministic-1", True), ("deterministic-2", True), ("free", False)):
        rt = runtime(device, precision, deterministic=det)
        model, batcher = _tiny_setup(out, rt.device)
        t0 = time.perf_counter()
        train(model, batcher, _loss, cfg, checkpoint=out / f"{name}.pt", quiet=True, runtime=rt)
        if rt.cuda:
            import torch

            torch.cuda.synchronize(rt.torch_device)
        seconds[name] = round(time.perf_counter() - t0, 3)
        models[name] = model
    problems = [] if _same_weights(models["deterministic-1"], models["deterministic-2"]) else [
        "two deterministic runs gave different weights"]
    report = {"device": rt.device, "precision": rt.precision, "seconds": seconds,
              "cost": round(seconds["deterministic-1"] / max(seconds["free"], 1e-9), 2),
              "free_run_matched": _same_weights(models["deterministic-1"], models["free"])}
    print(f"determinism on {rt.device} ({rt.precision}): {json.dumps(report)}"
          + ("" if not problems else f"; PROBLEM: {problems[0]}"))
    return report, problems


def compare_bench(cpu: dict, gpu: dict) -> list[str]:
    """Lines: each phase measurement's examples per second on the CPU and the GPU, and the ratio."""
    def rates(report):
        return {(c["phase"], impl): r["examples_per_s"] for c in report["cases"] for impl, r in c["results"].items()}

    a, b = rates(cpu), rates(gpu)
    lines = [f"{'phase':<14}{'how':<16}{'cpu ex/s':>12}{'gpu ex/s':>12}{'gpu/cpu':>10}   "
             f"(cpu: {cpu.get('device')} {cpu.get('threads')} threads; gpu: {gpu.get('device')} "
             f"{gpu.get('precision', '')})"]
    for key in sorted(set(a) & set(b)):
        lines.append(f"{key[0]:<14}{key[1]:<16}{a[key]:>12.1f}{b[key]:>12.1f}{b[key] / a[key]:>10.1f}")
    return lines


def collect(work: Path) -> dict:
    """One record of the pipeline's steps (``work/steps.tsv``: name, exit status, seconds) and what they left in
    ``work``: each run's verdict, accuracies, audit, phase timings and runtime; both bench phases reports; the
    determinism report."""
    out: dict = {"steps": {}, "runs": {}}
    steps = work / "steps.tsv"
    for line in steps.read_text().splitlines() if steps.exists() else []:
        name, rc, seconds = line.split("\t")
        out["steps"][name] = {"exit": int(rc), "seconds": int(seconds)}
    for run in sorted(p for p in work.glob("run-*") if (p / "metrics.json").exists()):
        m = json.loads((run / "metrics.json").read_text())
        out["runs"][run.name] = {
            "verdict": m.get("verdict"), "chance": m.get("chance"), "runtime": m.get("runtime"),
            "accuracy": {a: m[a]["benchmark_accuracy"] for a in ("teacher", "student", "control_student",
                                                                  "ce_student") if a in m},
            "audit": {a: (v["verdict"], v["correct"]) for a, v in ((m.get("audit") or {}).get("arms") or {}).items()},
            "timings_s": m.get("timings_s"), "n_benchmark": m.get("n_benchmark"), "n_train": m.get("n_train"),
            "max_length": (m.get("max_length") or {}).get("value")}
    for name in ("bench-phases-cpu", "bench-phases-cuda", "determinism"):
        path = work / f"{name}.json"
        if path.exists():
            out[name] = json.loads(path.read_text())
    return out


def launder(argv: list[str]) -> int:
    """`launder ARGV` from a source checkout that was never installed (the GPU machine's): the CLI package lives
    in cli/ and is installed as pylaundering.cli, so it is registered under that name first."""
    import importlib.util

    try:
        import pylaundering.cli.app  # noqa: F401 - installed (or already registered)
    except ImportError:
        root = Path(__file__).resolve().parent.parent / "cli"
        spec = importlib.util.spec_from_file_location("pylaundering.cli", root / "__init__.py",
                                                      submodule_search_locations=[str(root)])
        module = importlib.util.module_from_spec(spec)
        sys.modules["pylaundering.cli"] = module
        spec.loader.exec_module(module)
        import pylaundering

        pylaundering.cli = module
    from pylaundering.cli.app import app

    try:
        app(args=argv, prog_name="launder", standalone_mode=True)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["launder"]:
        return launder(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("make-data")
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--n-train", type=int, default=20000)
    d.add_argument("--n-benchmark", type=int, default=448)
    d.add_argument("--context-words", type=int, default=150)
    d.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("summarize")
    s.add_argument("run", type=Path)
    s.add_argument("--expect-verdict")
    s.add_argument("--expect-audit", action="store_true")
    for name in ("resume-check", "determinism"):
        r = sub.add_parser(name)
        r.add_argument("--device", default="auto")
        r.add_argument("--precision", default="fp32" if name == "resume-check" else "auto")
        r.add_argument("--out", type=Path, required=True)
    c = sub.add_parser("compare-bench")
    c.add_argument("cpu", type=Path)
    c.add_argument("gpu", type=Path)
    k = sub.add_parser("collect")
    k.add_argument("--work", type=Path, required=True)
    k.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    problems: list[str] = []
    if args.cmd == "make-data":
        print(json.dumps(make_data(args.out, n_train=args.n_train, n_benchmark=args.n_benchmark,
                                   context_words=args.context_words, seed=args.seed)))
    elif args.cmd == "summarize":
        line, problems = summarize(args.run, expect_verdict=args.expect_verdict, expect_audit=args.expect_audit)
        print(line)
    elif args.cmd == "resume-check":
        args.out.mkdir(parents=True, exist_ok=True)
        problems = resume_check(args.out, args.device, args.precision)
    elif args.cmd == "determinism":
        args.out.mkdir(parents=True, exist_ok=True)
        report, problems = determinism(args.out, args.device, args.precision)
        (args.out / "determinism.json").write_text(json.dumps(report, indent=2) + "\n")
    elif args.cmd == "collect":
        args.out.write_text(json.dumps(collect(args.work), indent=2, default=str) + "\n")
    else:
        print("\n".join(compare_bench(json.loads(args.cpu.read_text()), json.loads(args.gpu.read_text()))))
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
