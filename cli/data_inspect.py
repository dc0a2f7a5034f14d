"""`launder data inspect SOURCE` and `launder data convert SOURCE`: load a data source as the pipeline would,
and say what was read or write it in the toolkit's own JSONL.

Format (and whether it was inferred), files, counts, task, the choice-count or class histogram, how
the answers are written (0-based ids, 1-based ids shifted, letters, names) and where the label set
came from, question lengths and two example rows: what a user checks before spending hours of
training on a file that loaded wrong.

`convert` is the remedy for a file the loader refuses to guess about (answer ids that look 1-based, a layout
given by --format): read once with the flags that say what the file is, written in the canonical schema that
every command reads without them.

`register` adds the commands to the `data` group; the shared options and helpers come from
cli/common.py, so this module never imports cli/app.py. pylaundering's modules are imported inside
the command: `launder --help` must not load datasets.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from pylaundering.cli.common import (
    Labels,
    Overwrite,
    SkipMalformed,
    SourceFormat,
    SourceSplit,
    SourceSubset,
    check_labels,
    emit,
    handle_errors,
    json_option,
    out_console,
)
from pylaundering.errors import ConfigError

#: Characters of a context shown per example row (the JSON report keeps every character).
SHOWN_CONTEXT = 200


Source = typer.Argument(..., metavar="SOURCE", help="A file, a folder (of split files: pick one with --split), a "
                        "dataset repository folder or a hub name (name:subset:split).")
LabelBase = typer.Option(None, "--label-base", min=0, max=1, help="What the file's integer answer indices / class "
                         "ids count from (default: the format's convention, checked from the whole column).")
Role = typer.Option("benchmark", "--role", help="benchmark or train: which split is read by default (the format's "
                    "evaluation or training split), as the pipeline reads it.")


def _load(source, fmt, subset, split, role, labels, label_base, limit, skip_malformed):
    from pylaundering.data.load import load_examples  # start-up time: the data layer imports datasets

    if role not in ("benchmark", "train"):
        raise ConfigError("--role", f"expected benchmark or train, got {role!r}")
    declared = check_labels(labels, "classification")  # the shared --labels, read as run and place read it
    return load_examples(source, fmt, subset=subset, split=split, role=role, skip_malformed=skip_malformed,
                         limit=limit, label_names=declared.names if declared else None,
                         label_base=label_base if label_base is not None else declared.base if declared else None)


def register(data_app: typer.Typer):
    @data_app.command("convert")
    @handle_errors
    def data_convert(
        source: str = Source,
        out: Path = typer.Option(..., "--out", "-o", help="The JSONL file to write (the pylaundering schema)."),
        fmt: Optional[str] = SourceFormat,
        subset: Optional[str] = SourceSubset,
        split: Optional[str] = SourceSplit,
        role: str = Role,
        labels: Optional[str] = Labels,
        label_base: Optional[int] = LabelBase,
        skip_malformed: bool = SkipMalformed,
        overwrite: bool = Overwrite,
        as_json: bool = json_option("what was read and written"),
    ):
        """Write SOURCE as the toolkit's own JSONL (one item per line: question, choices or class names, the 0-based answer, context, subject), read once with the flags that say what the file is (--format, --label-base 1 for answer ids counting from 1, --labels): every command then reads the written file without them. Prints what was read, as `launder data inspect` does."""  # noqa: E501 - command help: Typer's rich mode keeps line breaks in it, so it stays unwrapped
        from pylaundering.data.schema import write_jsonl
        from pylaundering.phases.common import check_outputs

        if out.suffix not in (".jsonl", ".json"):
            raise ConfigError("--out", f"{out} is not a .jsonl file: the written file is JSON Lines")
        check_outputs([out], overwrite=overwrite, inputs=[Path(source)] if Path(source).exists() else [])
        res = _load(source, fmt, subset, split, role, labels, label_base, None, skip_malformed)
        if not res.examples:
            raise ConfigError("SOURCE", f"{source} holds no items to write")
        write_jsonl(res.examples, out)
        report = {**inspect_report(res), "written": str(out)}
        if as_json:
            emit(report, True)
            return
        dropped = f", {res.skipped} malformed rows skipped" if res.skipped else ""
        out_console.print(f"wrote {escape(str(out))} ({len(res.examples)} items, {res.task}, format "
                          f"{res.format}{dropped}); label convention: {escape(str(res.label_convention))}",
                          highlight=False)

    @data_app.command("inspect")
    @handle_errors
    def data_inspect(
        source: str = Source,
        fmt: Optional[str] = SourceFormat,
        subset: Optional[str] = SourceSubset,
        split: Optional[str] = SourceSplit,
        role: str = Role,
        labels: Optional[str] = Labels,
        label_base: Optional[int] = LabelBase,
        limit: Optional[int] = typer.Option(None, "--limit", min=0, help="Load at most N examples."),
        skip_malformed: bool = SkipMalformed,
        as_json: bool = json_option("the report"),
    ):
        """Load SOURCE as the pipeline would and print what was read: format, files, counts, task, choice or class
        histogram, label convention and label-set source, question lengths and two example rows."""
        res = _load(source, fmt, subset, split, role, labels, label_base, limit, skip_malformed)
        report = inspect_report(res)
        if as_json:
            emit(report, True)
            return
        _print(report)

    return data_inspect, data_convert


def inspect_report(res) -> dict[str, Any]:
    """What `launder data inspect` shows of a LoadResult, as a JSON-ready dict."""
    examples = res.examples
    words = [len(((e.context or "") + " " + e.question).split()) for e in examples]
    report: dict[str, Any] = {
        "source": res.source,
        "format": res.format,
        "format_inferred": res.format_inferred,
        "files": res.files,
        "subset": res.subset,
        "split": res.split,
        "splits": res.splits,
        "counts": {"loaded": len(examples), "skipped_malformed": res.skipped, "dropped": res.dropped},
        "task": res.task,
        "label_convention": res.label_convention,
        "label_source": res.label_source,
        "length_words": {"mean": round(sum(words) / len(words), 1) if words else 0, "max": max(words, default=0)},
        "examples": [e.to_dict() for e in examples[:2]],
        "hints": _hints(res),
    }
    if res.task == "classification":
        counts = Counter(e.label for e in examples)
        names = res.label_names or ()
        report["classes"] = [{"id": i, "name": n, "count": counts.get(i, 0)} for i, n in enumerate(names)]
    else:
        report["choice_counts"] = {str(k): v for k, v in sorted(Counter(len(e.choices) for e in examples).items())}
        report["answer_positions"] = {str(k): v for k, v in sorted(Counter(e.label for e in examples).items())}
    return report


def _hints(res) -> list[str]:
    """A generic load whose label names are bare ids, from a file named after a dataset we know by name."""
    from pylaundering.data.labels_cls import FIXED_LABELS

    hints = []
    if res.format_inferred and res.format == "classification" and (res.label_source or "").startswith(
            "the source's own ids") and res.files:
        named = Path(res.files[0]).stem.lower() + " " + Path(res.files[0]).parent.name.lower()
        for fmt, names in FIXED_LABELS.items():
            if fmt in named and len(names) == len(res.label_names or ()):
                hints.append(f"the file's name suggests {fmt}: --format {fmt} reads its label names "
                             f"({', '.join(names)}); only the columns choose the format")
    return hints


def _print(report: dict[str, Any]) -> None:
    p = lambda text: out_console.print(text, highlight=False, soft_wrap=True)  # noqa: E731
    how = "inferred" if report["format_inferred"] else "given"
    p(f"[bold]{escape(report['source'])}[/bold]")
    p(f"format: {report['format']} ({how}); task: {report['task'].replace('_', ' ')}")
    where = ", ".join(f"{k} {report[k]}" for k in ("subset", "split") if report[k])
    if report["splits"]:
        where += f"{'; ' if where else ''}splits here: {', '.join(report['splits'])}"
    p(f"files: {escape(', '.join(report['files']) or '-')}" + (f" ({where})" if where else ""))
    c = report["counts"]
    p(f"examples: {c['loaded']} loaded, {c['skipped_malformed']} malformed skipped, {c['dropped']} dropped")
    p(f"labels: {report['label_convention']}" + (f"; label set from {report['label_source']}"
                                                  if report["label_source"] else ""))
    if "classes" in report:
        p(f"classes ({len(report['classes'])}):")
        for cls in report["classes"]:
            p(f"  {cls['id']:>3}  {escape(cls['name'])}: {cls['count']}")
    else:
        p("choices per question: " + ", ".join(f"{k}: {v}" for k, v in report["choice_counts"].items()))
        p("answer positions: " + ", ".join(f"{k}: {v}" for k, v in report["answer_positions"].items()))
    length = report["length_words"]
    p(f"question + context length: mean {length['mean']} words, max {length['max']}")
    for e in report["examples"]:
        context = e["context"] or ""
        if len(context) > SHOWN_CONTEXT:
            context = context[:SHOWN_CONTEXT] + f"... ({len(e['context'])} characters)"
        p(f"- {escape(e['id'])}: {escape(e['question'])}" + (f"  [context: {escape(context)}]" if context else ""))
        shown = "" if "classes" in report else f"   choices: {escape(repr(e['choices']))}"
        p(f"    answer {e['label']}: {escape(e['choices'][e['label']])}{shown}")
    for hint in report["hints"]:
        p(f"[yellow]hint:[/yellow] {escape(hint)}")
