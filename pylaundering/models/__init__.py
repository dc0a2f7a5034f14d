"""Model loading: any AutoModelForMultipleChoice checkpoint, truncated students, the tiny model."""

from ..errors import ModelError
from .loading import (
    DEFAULT_MODEL,
    load_model,
    load_student,
    load_tokenizer,
    model_fingerprint,
    model_task,
    resolve_model,
    save_model,
)

__all__ = [
    "DEFAULT_MODEL", "ModelError", "load_model", "load_student", "model_task", "load_tokenizer", "model_fingerprint",
    "resolve_model", "save_model",
]
