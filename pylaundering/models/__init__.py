"""Model loading: any AutoModelForMultipleChoice checkpoint, truncated students, the tiny model."""

from .loading import (
    DEFAULT_MODEL,
    ModelError,
    load_model,
    load_student,
    model_task,
    load_tokenizer,
    model_fingerprint,
    resolve_model,
    save_model,
)

__all__ = [
    "DEFAULT_MODEL", "ModelError", "load_model", "load_student", "model_task", "load_tokenizer", "model_fingerprint",
    "resolve_model", "save_model",
]
