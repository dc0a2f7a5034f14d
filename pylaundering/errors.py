"""The toolkit's error types: the bottom layer, imported by every other (no torch, no other module of ours).

How the CLI maps them to exit codes (``cli/app.py``):
  ConfigError     a parameter value that is wrong in itself or with the others (wrong type, out of
                  range, unknown choice, inconsistent combination): a usage error, exit 2, whichever
                  command or config file it came from.
  ResumeMismatch  ``--resume`` asked for a phase whose recorded parameters or data differ: exit 1.
  DataError       bad input data, located by source, row and field: exit 1.
  ModelError      a model that cannot be found, loaded or truncated as asked: exit 1.
  LockHeld        a run, sweep or phase folder another process is working in (``lock.py``): exit 1,
                  naming the holder (pid, host, since when).
  NonFiniteLoss   a training loss that turned NaN or inf (a learning rate too high, most often): exit 1;
                  the phase stops before anything non-finite is saved or scored.
  NonFiniteScores a model whose scores (logits) are NaN or inf: exit 1, before they are scored or written.
"""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "LockHeld", "ModelError", "NonFiniteLoss", "NonFiniteScores", "ResumeMismatch"]


class ConfigError(ValueError):
    """A parameter value that cannot be used; names the key (and the file it came from)."""

    def __init__(self, key: str, message: str, source: str | None = None):
        self.key, self.message, self.source = key, message, source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key}: {message}")


class ResumeMismatch(ValueError):
    """--resume of a phase whose recorded parameters or data differ from the request."""


class LockHeld(OSError):
    """A folder locked by another process (``pylaundering.lock``); the message names the holder."""


class ModelError(ValueError):
    """A model that cannot be found, loaded or truncated as asked."""


class NonFiniteLoss(ValueError):
    """Training stopped at a NaN or inf loss; the checkpoint of the last finished epoch (if any) is kept."""

    def __init__(self, phase: str, step: int, epoch: int, value: float, checkpoint_kept: bool, *,
                 what: str = "the training loss"):
        self.phase, self.step, self.epoch, self.value = phase, step, epoch, value
        kept = "the last checkpoint is kept" if checkpoint_kept else "no epoch had finished, no checkpoint"
        super().__init__(f"{phase}: {what} became {value} at step {step} (epoch {epoch}); nothing was saved "
                         f"({kept}): lower the learning rate (--lr; teacher_lr or student_lr in a run)")


class NonFiniteScores(ValueError):
    """A model whose logits are NaN or inf on some items: they cannot be scored, compared or written."""

    def __init__(self, model: str, items: int, total: int):
        self.model, self.items, self.total = model, items, total
        super().__init__(f"model {model}: its scores are not finite (NaN or inf) on {items} of {total} items; the "
                         "model is broken (e.g. trained with too high a learning rate) and cannot be scored")


class DataError(ValueError):
    """Bad input data, located as precisely as we know: source, row and field.

    Validation code deep down (e.g. `MCExample.__post_init__`) only knows the field;
    the reader that owns the file adds the rest with `located`, so the user sees
    ``data/x.csv, row 17, field 'answer': expected one of A-D, got 'E'``.
    Rows are 1-based record numbers (the CSV header is not a row; in JSONL the row is
    the line number).
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.source = source
        self.row = row
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = []
        if self.source is not None:
            where.append(self.source)
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message

    def located(self, *, source: str | None = None, row: int | None = None) -> DataError:
        """A copy with source and row filled in where they were unknown."""
        return DataError(
            self.message,
            source=self.source if self.source is not None else source,
            row=self.row if self.row is not None else row,
            field=self.field,
        )
