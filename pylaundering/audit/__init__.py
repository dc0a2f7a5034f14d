"""Detection: the contamination scan (`launder scan`); laundering audits come next (issue 13)."""

from .scan import SCHEMA_VERSION, BenchmarkIndex, ScanParams, format_markdown, scan, scan_rows
from .sources import TEXT_FORMAT, TrainRow, iter_rows

__all__ = ["SCHEMA_VERSION", "BenchmarkIndex", "ScanParams", "TEXT_FORMAT", "TrainRow", "format_markdown", "iter_rows",
           "scan", "scan_rows"]
