"""Detection: the contamination scan (`launder scan`) and the laundering audits (`launder audit`)."""

from .audits import audit_student, audit_teacher, train_control
from .reference import split_reference
from .scan import SCHEMA_VERSION, BenchmarkIndex, ScanParams, format_markdown, scan, scan_rows
from .sources import TEXT_FORMAT, TrainRow, iter_rows

__all__ = ["SCHEMA_VERSION", "BenchmarkIndex", "ScanParams", "TEXT_FORMAT", "TrainRow", "audit_student",
           "audit_teacher", "format_markdown", "iter_rows", "scan", "scan_rows", "split_reference", "train_control"]
