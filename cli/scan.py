"""`launder scan`: direct contamination of training data by benchmark items (exact, n-gram, near).

`register` adds the command to the app; the shared options and helpers come from cli/common.py, so
this module never imports cli/app.py (which also runs as `python -m pylaundering.cli.app`).
The command imports pylaundering's modules inside its body: `launder --help` must not load torch,
datasets or matplotlib.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from pylaundering.cli.common import (
    BenchFormat,
    Quiet,
    SkipMalformed,
    emit,
    handle_errors,
    json_option,
    out_console,
    train_format_option,
)
from pylaundering.errors import ConfigError


def register(app: typer.Typer):
    @app.command("scan")
    @handle_errors
    def scan(
        train: list[str] = typer.Argument(..., metavar="TRAIN_SOURCE...", help="Training data: files (.txt: one row "
                                          "per line; .jsonl/.parquet/.csv with a text column, or multiple-choice data "
                                          "in any --train-format), folders or hub names (name:subset:split)."),
        benchmark: str = typer.Option(..., "--benchmark", "-b", help="Benchmark SOURCE: a hub name, a file or "
                                      "a folder."),
        benchmark_format: Optional[str] = BenchFormat,
        train_format: Optional[str] = train_format_option("'text' (a text line or column) or a multiple-choice "
                                                          "format; default: inferred per file (.txt text; rows with "
                                                          "a text column text; other .jsonl our schema)."),
        text_field: str = typer.Option("text", "--text-field", help="Column holding the text of JSONL/Parquet/CSV "
                                       "text rows."),
        n: int = typer.Option(13, "-n", "--ngram", min=1, help="Words per n-gram (13, as in common decontamination "
                              "practice)."),
        min_n: int = typer.Option(8, "--min-n", min=1, help="Items shorter than n words use n = max(min-n, their "
                                  "length); items shorter than min-n words are matched exactly only."),
        near: bool = typer.Option(True, "--near/--no-near", help="Also look for near duplicates (MinHash + LSH)."),
        threshold: float = typer.Option(0.8, "--threshold", min=0.0, max=1.0, help="Jaccard similarity of word "
                                        "shingles at which a row is a near duplicate of an item."),
        num_perm: int = typer.Option(64, "--num-perm", min=2, help="MinHash permutations."),
        shingle_size: int = typer.Option(1, "--shingle-size", min=1, help="Words per MinHash shingle (1: the set of "
                                         "words, robust to a few changed words and to reordered choices)."),
        max_matches: int = typer.Option(20, "--max-matches", min=0, help="Matching training rows listed per "
                                        "benchmark item (all are counted)."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write scan.json and scan.md into this folder."),
        write_clean: Optional[Path] = typer.Option(None, "--write-clean", help="Write the training rows that matched "
                                                   "nothing here, in the format they were read in: our JSONL for "
                                                   "labelled rows (multiple choice, classification files such as "
                                                   "TweetEval's text and labels), lines for .txt (name it .txt), "
                                                   "JSONL records otherwise (name it .jsonl)."),
        skip_malformed: bool = SkipMalformed,
        as_json: bool = json_option("the report"),
        quiet: bool = Quiet,
    ):
        """Scan training data for benchmark items: exact duplicates, shared word n-grams and near duplicates.

        Everything is normalised first (Unicode NFKC, case, punctuation, whitespace, invisible characters such as zero-width spaces and soft hyphens, Cyrillic and Greek look-alikes of Latin letters, Arabic diacritics and letter variants; scripts written without spaces count one character as a word); a benchmark item is its context, question and choices. Training rows are streamed, never all in memory. Prints a summary (or the JSON report with --json); --out writes scan.json (every contaminated item with its matching rows and spans) and scan.md.
        """  # noqa: E501 - command help: Typer's rich mode keeps line breaks in it, so it stays unwrapped
        # start-up time: the audit package imports torch
        from pylaundering.audit.scan import ScanParams, format_markdown
        from pylaundering.audit.scan import scan as run_scan

        if min_n > n:
            raise ConfigError("--min-n", f"must be at most -n ({n}), got {min_n}")
        if not 0.0 < threshold <= 1.0:
            raise ConfigError("--threshold", f"must be in (0, 1], got {threshold}")
        params = ScanParams(n=n, min_n=min_n, near=near, threshold=threshold, num_perm=num_perm,
                            shingle_size=shingle_size, max_matches=max_matches)
        report = run_scan(train, benchmark, benchmark_format=benchmark_format, train_format=train_format,
                          text_field=text_field, params=params, write_clean=write_clean,
                          skip_malformed=skip_malformed, quiet=quiet)
        if out is not None:
            from pylaundering.train.checkpoint import write_json, write_text  # start-up time: train imports torch

            write_json(report, out / "scan.json")
            write_text(format_markdown(report), out / "scan.md")
        if as_json:
            emit(report, True)
            return
        t = report["totals"]
        table = Table(title=f"Contamination scan: {t['train_rows']} training rows against "
                      f"{t['benchmark_items']} benchmark items")
        table.add_column("kind")
        table.add_column("contaminated items", justify="right")
        table.add_column("rate", justify="right")
        for kind, count in t["by_kind"].items():
            if kind == "near" and not near:
                table.add_row(kind, "-", "not checked")
                continue
            table.add_row(kind, str(count), f"{100 * count / t['benchmark_items']:.2f}%")
        table.add_row("[bold]any", f"[bold]{t['contaminated_items']}", f"[bold]{100 * t['contamination_rate']:.2f}%")
        out_console.print(table)
        if not quiet:
            eff = ", ".join(f"{k}: {v}" for k, v in report["effective_n"].items())
            out_console.print(f"effective n (items): {eff}", highlight=False)
            for note in report["notes"]:
                out_console.print(f"note: {note}", highlight=False)
            for item in report["items"][:10]:
                m = item["matches"][0] if item["matches"] else None
                where = f"{m['source']} row {m['row']}" if m else ""
                out_console.print(f"  {item['id']}: {', '.join(item['kinds'])} in {item['matching_rows']} row(s), "
                                  f"first {where}", highlight=False, soft_wrap=True)
            if len(report["items"]) > 10:
                out_console.print(f"  ... {len(report['items']) - 10} more", highlight=False)
            out_console.print(f"{t['train_rows']} rows in {report['seconds']['scan']} s "
                              f"({report['rows_per_second']} rows/s)", highlight=False)
        if report["clean"]:
            c = report["clean"]
            out_console.print(f"clean training set: {c['path']} ({c['rows']} rows kept, {c['dropped']} dropped)",
                              highlight=False, soft_wrap=True)
        if out is not None:
            out_console.print(f"report: {out / 'scan.md'}   json: {out / 'scan.json'}", highlight=False, soft_wrap=True)

    return scan
