"""`launder audit teacher|student|public` and `launder data split`: detect laundering without the training data.

`register` adds the commands; the shared options and helpers come from cli/common.py, so this module
never imports cli/app.py (which also runs as `python -m pylaundering.cli.app`).

Exit codes: 0 the audit ran (whatever its verdict, unless --fail-on; the withheld verdicts insufficient_data,
not_comparable and outside_calibration are below every --fail-on level); 1 bad input (one line on stderr); 2 usage
error (a --split record that B and R do not match included); 3 the verdict is at or above --fail-on (for CI
pipelines; `public`: any suspect's).

The commands import pylaundering's modules inside their bodies: `launder --help` must not load torch,
datasets or numpy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from pylaundering.cli.common import (
    AsJson,
    BenchFormat,
    Device,
    Overwrite,
    Precision,
    Quiet,
    ReferenceFormat,
    SkipMalformed,
    SourceFormat,
    SourceSplit,
    SourceSubset,
    TrainFormat,
    check_out_dir,
    emit,
    err_console,
    handle_errors,
    json_option,
    load,
    max_length_option,
    out_console,
    resolve_runtime,
    seed_option,
)
from pylaundering.errors import ConfigError

FAIL_EXIT = 3

_SETS_HELP = ("SOURCE: a file (.jsonl in our schema, .csv, .json, .parquet), a folder or a hub name "
              "(name:subset:split).")


def _default_out(model: str, kind: str) -> Path:
    """Next to the model: a run's <arm>/model gets <arm>/audit-<kind>; any other folder X gets X-audit-<kind>."""
    path = Path(model).expanduser()
    if path.name == "model":
        return path.parent / f"audit-{kind}"
    return path.parent / f"{path.name}-audit-{kind}"


def register(app: typer.Typer, *, data_app: typer.Typer):
    audit_app = typer.Typer(
        help="Audit a model for benchmark knowledge without its training data: compare it on the benchmark with a "
             "reference set of the same kind that no teacher saw (make one with `launder data split` or `launder "
             "data synth`; `public`: another benchmark, calibrated on clean models). Exit codes: 0 done, 1 bad "
             "input, 2 usage error, 3 verdict at or above --fail-on.",
        no_args_is_help=True)
    app.add_typer(audit_app, name="audit")

    def check_fail_on(kind: str, level: Optional[str]):
        from pylaundering.audit.verdict import LEVELS  # start-up time: the audit package loads numpy and the data layer

        if level is not None and level not in LEVELS[kind][1:]:
            raise ConfigError("--fail-on", f"must be one of {', '.join(LEVELS[kind][1:])}, got {level!r}")

    def finish(kind: str, report: dict, as_json: bool, quiet: bool, fail_on: Optional[str]):
        # start-up time, as above
        from pylaundering.audit.verdict import INSUFFICIENT, NOT_COMPARABLE, WITHHELD, level_at_least

        if as_json:
            emit(report, True)
        elif not quiet:
            colour = {"clean": "green", "suspicious": "yellow", INSUFFICIENT: "magenta",
                      NOT_COMPARABLE: "magenta"}.get(report["verdict"], "red")
            out_console.print(f"verdict: [bold {colour}]{report['verdict']}[/]  score (z) {report['score']:.2f}  "
                              f"accuracy benchmark {report['evidence']['benchmark']['accuracy']:.3f} vs reference "
                              f"{report['evidence']['reference']['accuracy']:.3f}", highlight=False)
            for reason in report["reasons"]:
                out_console.print(f"  because {reason}", highlight=False)
            for name, t in report["tests"].items():
                p = "n/a (reported only)" if t["p_value"] is None else f"{t['p_value']:.4g}"
                out_console.print(f"  {name:<18} p = {p}", highlight=False)
            ex = report["exchangeability"]
            out_console.print(f"  exchangeability: {ex['status']} ({ex['detail']})", highlight=False)
            th = report["thresholds"]
            strong = [k for k in th["false_positive_rate"] if k not in ("suspicious_or_above", "assumes")][0]
            out_console.print(f"  thresholds: {strong}: {th[strong]}; suspicious: {th['suspicious']} "
                              f"(false-positive rate {th['false_positive_rate'][strong]} / "
                              f"{th['false_positive_rate']['suspicious_or_above']} if benchmark and reference "
                              "items are exchangeable)", highlight=False)
            out_console.print(f"report: {report['files']['markdown']}   json: {report['files']['json']}",
                              highlight=False)
        if fail_on is not None and report["verdict"] in WITHHELD and not as_json:
            todo = "give more items" if report["verdict"] == INSUFFICIENT else \
                "use a reference set of the same kind, e.g. a random split (launder data split)"
            err_console.print(f"verdict {report['verdict']} is withheld, below every level (no finding either way): "
                              f"--fail-on {fail_on} does not fire; {todo} (see the report)", highlight=False)
        if fail_on is not None and level_at_least(kind, report["verdict"], fail_on):
            if not as_json:
                err_console.print(f"verdict {report['verdict']} is at or above --fail-on {fail_on}: exit {FAIL_EXIT}",
                                  highlight=False)
            raise typer.Exit(FAIL_EXIT)

    Benchmark = typer.Option(..., "--benchmark", "-b", help="The benchmark " + _SETS_HELP)
    Reference = typer.Option(..., "--reference", "-r", help="The reference set: items of the same kind and "
                             "difficulty that no teacher saw, disjoint from the benchmark. " + _SETS_HELP)
    Out = typer.Option(None, "--out", "-o", help="Folder for audit.json and audit.md. Default: next to the model "
                       "(a run's <arm>/model -> <arm>/audit-<kind>; another folder X -> X-audit-<kind>).")
    Split = typer.Option(None, "--split", help="The split.json that `launder data split` wrote for this benchmark "
                         "and reference set: both must hash to it (else exit 2), and the report then states "
                         "exchangeability as certified (a recorded random split) instead of assumed.")
    MaxLength = max_length_option("chosen from benchmark + reference together (same truncation for both).")
    ReportJson = json_option("the report")

    @audit_app.command("teacher")
    @handle_errors
    def teacher(
        model: str = typer.Argument(..., metavar="MODEL", help="A multiple-choice model folder (save_pretrained), "
                                    "e.g. a run's teacher/model."),
        benchmark: str = Benchmark,
        reference: str = Reference,
        benchmark_format: Optional[str] = BenchFormat,
        reference_format: Optional[str] = ReferenceFormat,
        out: Optional[Path] = Out,
        split_record: Optional[Path] = Split,
        fail_on: Optional[str] = typer.Option(None, "--fail-on", metavar="suspicious|contaminated", help="Exit 3 "
                                              "when the verdict is at or above this level."),
        max_length: Optional[int] = MaxLength,
        skip_malformed: bool = SkipMalformed,
        device: Optional[str] = Device,
        precision: Optional[str] = Precision,
        as_json: bool = ReportJson,
        quiet: bool = Quiet,
    ):
        """Did this model memorise the benchmark? Compares the probability of the correct choice minus chance (core test), accuracy, margin and loss on the benchmark with the reference set (one-sided studentized permutation tests, effect sizes). Verdict: clean | suspicious | contaminated, or withheld: insufficient_data (sets too small to reach p < 0.01), not_comparable (a reference set unlike the benchmark in choice counts, lengths or subjects); thresholds and false-positive rates in the report (audit.json, audit.md)."""  # noqa: E501 - command help: Typer's rich mode keeps line breaks in it, so it stays unwrapped
        from pylaundering.audit import audit_teacher  # start-up time, as above

        check_fail_on("teacher", fail_on)
        rt = resolve_runtime(device, precision)
        bench = list(load(benchmark, benchmark_format, None, None, "benchmark", skip_malformed, quiet))
        ref = list(load(reference, reference_format, None, None, "benchmark", skip_malformed, quiet, key="reference"))
        report = audit_teacher(model, bench, ref, out_dir=out if out is not None else _default_out(model, "teacher"),
                               max_length=max_length, quiet=quiet or as_json, benchmark_source=benchmark,
                               reference_source=reference, split=split_record, device=rt)
        finish("teacher", report, as_json, quiet, fail_on)

    @audit_app.command("student")
    @handle_errors
    def student(
        model: str = typer.Argument(..., metavar="MODEL", help="The suspected student: a multiple-choice model "
                                    "folder, e.g. a run's student/model."),
        benchmark: str = Benchmark,
        reference: str = Reference,
        teacher_model: Optional[str] = typer.Option(None, "--teacher", "-t", help="A suspected teacher's model "
                                                    "folder: adds the agreement test (does the student pick the "
                                                    "teacher's answers more on the benchmark than on the reference?)."),
        control: Optional[str] = typer.Option(None, "--control", "-c", help="A control student's model folder (same "
                                              "kind, trained without the suspect teacher): adds the difference in "
                                              "differences test (model minus control, benchmark vs reference; "
                                              "bootstrap interval and exact McNemar per set reported)."),
        train: Optional[str] = typer.Option(None, "--train", help="Legitimate training SOURCE: train a control "
                                            "here (cross-entropy only, no teacher, the suspect's task, head, "
                                            "architecture and tokenizer from random weights) and compare with it, "
                                            "as --control."),
        train_format: Optional[str] = TrainFormat,
        train_epochs: int = typer.Option(3, "--train-epochs", min=1, help="Epochs of the --train control."),
        train_lr: float = typer.Option(1e-4, "--train-lr", help="Learning rate of the --train control."),
        benchmark_format: Optional[str] = BenchFormat,
        reference_format: Optional[str] = ReferenceFormat,
        out: Optional[Path] = Out,
        split_record: Optional[Path] = Split,
        fail_on: Optional[str] = typer.Option(None, "--fail-on", metavar="suspicious|laundered", help="Exit 3 when "
                                              "the verdict is at or above this level."),
        max_length: Optional[int] = MaxLength,
        seed: int = seed_option("Seed of the --train control."),
        skip_malformed: bool = SkipMalformed,
        device: Optional[str] = Device,
        precision: Optional[str] = Precision,
        as_json: bool = ReportJson,
        quiet: bool = Quiet,
    ):
        """Did this student inherit benchmark knowledge? Core evidence needs only the benchmark and the reference set: the probability of the correct choice minus chance (core test), accuracy and margin on the benchmark beyond the reference (one-sided studentized permutation tests, effect sizes). --teacher, --control or --train add secondary tests, each comparing the benchmark with the reference. Verdict: clean | suspicious | laundered, or withheld: insufficient_data, not_comparable; thresholds and false-positive rates in the report."""  # noqa: E501 - command help: Typer's rich mode keeps line breaks in it, so it stays unwrapped
        from pylaundering.audit import audit_student, train_control  # start-up time, as above

        check_fail_on("student", fail_on)
        if control is not None and train is not None:
            raise ConfigError("--train", "give --control or --train, not both")
        rt = resolve_runtime(device, precision)
        bench = list(load(benchmark, benchmark_format, None, None, "benchmark", skip_malformed, quiet))
        ref = list(load(reference, reference_format, None, None, "benchmark", skip_malformed, quiet, key="reference"))
        out_dir = out if out is not None else _default_out(model, "student")
        description = None
        if train is not None:
            # start-up time, as above
            from pylaundering.audit.evidence import check_mc_model, check_sets, check_train
            from pylaundering.audit.reference import verify_split

            check_mc_model(model)
            check_sets(bench, ref)  # fail before training
            if split_record is not None:
                verify_split(split_record, bench, ref)
            legit = list(load(train, train_format, None, None, "train", skip_malformed, quiet))
            check_train(bench, legit)
            if not quiet and not as_json:
                err_console.print(f"training a control on {len(legit)} legitimate items -> {out_dir / 'control'}")
            control, description = train_control(legit, model, out_dir / "control", epochs=train_epochs, lr=train_lr,
                                                 seed=seed, quiet=quiet or as_json, benchmark=bench,
                                                 device=rt)
        report = audit_student(model, bench, ref, teacher=teacher_model, control=control,
                               control_description=description, out_dir=out_dir, max_length=max_length,
                               quiet=quiet or as_json, benchmark_source=benchmark, reference_source=reference,
                               split=split_record, device=rt)
        finish("student", report, as_json, quiet, fail_on)

    @audit_app.command("public")
    @handle_errors
    def public(
        suspects: list[str] = typer.Argument(..., metavar="SUSPECT...", help="The suspected model folder(s), e.g. a "
                                             "leaderboard submission or a run's student/model."),
        benchmark: str = typer.Option(..., "--benchmark", "-b", help="The public benchmark. " + _SETS_HELP),
        reference: str = typer.Option(..., "--reference", "-r", help="Another benchmark of the same kind (e.g. "
                                      "ARC-Easy or OpenBookQA for ARC-Challenge), of any difficulty, sharing no item "
                                      "with the benchmark. " + _SETS_HELP),
        clean: list[str] = typer.Option([], "--clean", metavar="MODEL", help="A model folder known to be clean "
                                        "(trained on neither set); repeatable. At least 3 in all, of varied skill."),
        clean_from: list[Path] = typer.Option([], "--clean-from", metavar="FOLDER", help="A `launder run` or "
                                              "`launder sweep` folder: its clean arms (clean_teacher, control_student, "
                                              "ce_student; every point's, counted once per weights) as --clean; "
                                              "repeatable."),
        kind: str = typer.Option("student", "--kind", metavar="student|teacher", help="Word the strong verdict as "
                                 "laundered (student) or contaminated (teacher); the test is the same."),
        benchmark_format: Optional[str] = BenchFormat,
        reference_format: Optional[str] = ReferenceFormat,
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder for audit.json, audit.md and "
                                           "calibration.png. Default, for one suspect: next to it (a run's "
                                           "<arm>/model -> <arm>/audit-public; another folder X -> X-audit-public); "
                                           "required for several."),
        seed: int = seed_option("Seed of the bootstrap."),
        fail_on: Optional[str] = typer.Option(None, "--fail-on", metavar="suspicious|laundered|contaminated",
                                              help="Exit 3 when any suspect's verdict is at or above this level "
                                              "(laundered with --kind student, contaminated with --kind teacher)."),
        max_length: Optional[int] = MaxLength,
        skip_malformed: bool = SkipMalformed,
        device: Optional[str] = Device,
        precision: Optional[str] = Precision,
        as_json: bool = ReportJson,
        quiet: bool = Quiet,
    ):
        """A public benchmark, no secret holdout: is the suspect better on the benchmark than its performance on another benchmark of the same kind predicts? Known-clean models of varied skill (at least 3; 5 or more of spread-out skill give a usable interval) calibrate how benchmark performance (accuracy minus chance) follows reference performance: a least-squares line; the suspect's inflation is its benchmark performance minus the line's prediction, with a bootstrap over items and clean models for its 95% interval and p-value. Verdict: clean | suspicious | laundered (contaminated with --kind teacher), or withheld: insufficient_data, outside_calibration (the suspect's reference performance is beyond the clean models' range). Assumes the clean models are clean, both sets are of the same kind, and the suspect relates them as the clean models do. Writes audit.json, audit.md and calibration.png."""  # noqa: E501 - command help: Typer's rich mode keeps line breaks in it, so it stays unwrapped
        # start-up time, as above
        from pylaundering.audit.public import MIN_CLEAN, OUTSIDE, audit_public, clean_models_from, fails
        from pylaundering.audit.verdict import INSUFFICIENT

        if kind not in ("student", "teacher"):
            raise ConfigError("--kind", f"must be student or teacher, got {kind!r}")
        check_fail_on(kind, fail_on)
        if not clean and not clean_from:
            raise ConfigError("--clean", f"give at least {MIN_CLEAN} clean models (--clean MODEL, repeatable, or "
                              "--clean-from a run or sweep folder): the audit calibrates on them")
        if out is None and len(suspects) > 1:
            raise ConfigError("--out", "give --out when auditing several suspects")
        check_out_dir(out)
        rt = resolve_runtime(device, precision)
        bench = list(load(benchmark, benchmark_format, None, None, "benchmark", skip_malformed, quiet))
        ref = list(load(reference, reference_format, None, None, "benchmark", skip_malformed, quiet, key="reference"))
        models = list(clean)
        for folder in clean_from:
            models += clean_models_from(folder)
        report = audit_public(suspects, models, bench, ref, kind=kind,
                              out_dir=out if out is not None else _default_out(suspects[0], "public"),
                              max_length=max_length, quiet=quiet or as_json, benchmark_source=benchmark,
                              reference_source=reference, device=rt, seed=seed)
        verdicts = [s["verdict"] for s in report["suspects"]]
        if as_json:
            emit(report, True)
        elif not quiet:
            fit = report["fit"]
            if fit:
                out_console.print(f"calibration: {len(report['clean_models'])} clean models, benchmark = "
                                  f"{fit['intercept']:+.3f} + {fit['slope']:.3f} x reference (accuracy minus chance)",
                                  highlight=False)
            for s in report["suspects"]:
                colour = {"clean": "green", "suspicious": "yellow", INSUFFICIENT: "magenta",
                          OUTSIDE: "magenta"}.get(s["verdict"], "red")
                detail = ""
                if s["delta"] is not None and s["ci95"] is not None:
                    detail = (f"  inflation {s['delta']:+.3f} [{s['ci95'][0]:+.3f}, {s['ci95'][1]:+.3f}], p = "
                              f"{s['p_value']:.4g}; benchmark {s['benchmark']['performance']:+.3f} vs predicted "
                              f"{s['predicted_benchmark']:+.3f}")
                out_console.print(f"{s['model']}: [bold {colour}]{s['verdict']}[/]{detail}", highlight=False)
                for reason in s["reasons"]:
                    out_console.print(f"  because {reason}", highlight=False)
            for note in report["notes"]:
                out_console.print(f"  note: {note}", highlight=False)
            check = report.get("self_check")
            if check:
                out_console.print(f"self-check: {check['suspicious_or_above']} of {check['decided']} clean models "
                                  "flagged when each is audited against the others"
                                  + (f" ({check['withheld']} withheld)" if check["withheld"] else ""),
                                  highlight=False)
            files = report["files"]
            out_console.print(f"report: {files['markdown']}   json: {files['json']}   figure: {files['figure']}",
                              highlight=False)
        if fail_on is not None:
            withheld = [v for v in verdicts if v in (INSUFFICIENT, OUTSIDE)]
            if withheld and not as_json:
                err_console.print(f"verdict {withheld[0]} is withheld, below every level (no finding either way): "
                                  f"--fail-on {fail_on} does not fire for it (see the report)", highlight=False)
            hit = [v for v in verdicts if fails(kind, v, fail_on)]
            if hit:
                if not as_json:
                    err_console.print(f"verdict {hit[0]} is at or above --fail-on {fail_on}: exit {FAIL_EXIT}",
                                      highlight=False)
                raise typer.Exit(FAIL_EXIT)

    @data_app.command("split")
    @handle_errors
    def data_split(
        source: str = typer.Argument(..., metavar="SOURCE", help="The benchmark to split. " + _SETS_HELP),
        out: Path = typer.Option(..., "--out", "-o", help="Folder for benchmark.jsonl (kept), reference.jsonl "
                                 "(held back) and split.json."),
        reference_fraction: Optional[float] = typer.Option(None, "--reference-fraction", help="Share of items held "
                                                           "back as the reference set (default 0.3)."),
        reference_size: Optional[int] = typer.Option(None, "--reference-size", help="Number of items held back "
                                                     "(instead of --reference-fraction)."),
        seed: int = seed_option("Seed of the split."),
        fmt: Optional[str] = SourceFormat,
        subset: Optional[str] = SourceSubset,
        split: Optional[str] = SourceSplit,
        skip_malformed: bool = SkipMalformed,
        overwrite: bool = Overwrite,
        as_json: bool = AsJson,
    ):
        """Split a benchmark into a benchmark and a held-back reference set for `launder audit`, seeded and stratified by subject (each subject within one item of proportional; largest-remainder rounding), the questions on one passage (context) kept on one side. split.json records the seed, source and both sides' hashes: give it to `launder audit --split` to certify the split. Split BEFORE fine-tuning anything on the benchmark: the reference set must stay unseen."""  # noqa: E501 - command help: Typer's rich mode keeps line breaks in it, so it stays unwrapped
        # start-up time: these import torch (the audit and train packages) or the data layer
        from pylaundering.audit.reference import check_split_out, split_reference, write_split
        from pylaundering.data.overlap import find_overlap

        if reference_fraction is not None and reference_size is not None:
            raise ConfigError("--reference-size", "give --reference-fraction or --reference-size, not both")
        fraction = 0.3 if reference_fraction is None and reference_size is None else reference_fraction
        check_split_out(out, source, overwrite=overwrite)
        examples = list(load(source, fmt, subset, split, "benchmark", skip_malformed, as_json))
        bench, ref, info = split_reference(examples, fraction=fraction, size=reference_size, seed=seed)
        overlap = find_overlap(bench, ref, max_examples=3)
        info = {"source": source, "format": fmt, "subset": subset, "split": split, **info,
                "overlap": {"question_duplicates": overlap["question_duplicates"],
                            "exact_duplicates": overlap["exact_duplicates"]}}
        write_split(bench, ref, info, out)
        if as_json:
            emit(info, True)
            return
        passages = info["passages"]
        kept = f", {passages['items']} items on {passages['count']} passages kept together" if passages["count"] else ""
        out_console.print(f"wrote {out}/benchmark.jsonl ({len(bench)}), {out}/reference.jsonl ({len(ref)}), "
                          f"{out}/split.json ({len(info['per_subject'])} subjects{kept})", highlight=False)
        if overlap["question_duplicates"]:
            err_console.print(f"[yellow]warning:[/yellow] {overlap['question_duplicates']} benchmark item(s) share a "
                              "question with a reference item (duplicates in the source); `launder audit` will "
                              "refuse this pair until they are removed", highlight=False)
