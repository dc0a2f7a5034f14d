"""The settings of each phase as one small frozen object, validated once where it is built.

A phase takes its spec whole (``place(examples, out, PlacementSpec(...))``); the resume record
(``params``) and the phase's metrics.json are written from it. Each spec checks itself with
``pylaundering.validate``, so a bad value is a ``ConfigError`` naming the key, whether it came from the
CLI, a run config or a direct call. ``LayeringSpec.of`` builds the nested groups from the flat names the
CLI and the run config use (``loss``, ``student_layers``, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import loss_kinds
from ..data.schema import MCExample, examples_hash
from ..errors import ConfigError
from ..models.loading import STUDENT_INITS
from ..ops.spec import DistillSpec
from ..train import DEFAULT_TARGET_ACCURACY
from ..train.loop import TrainConfig
from ..validate import check_choice, check_float, check_int, check_max_length, normalize_target

#: the fused kernels' kinds and hard: cross-entropy on the teacher's argmax labels (hard-label distillation,
#: which the counter-study compares with the soft losses); declared in pylaundering/loss_kinds.py
LOSSES = loss_kinds.ALL_KINDS
#: choice: distil the per-choice scores; token: causal LMs on text (phases/token_level.py)
LEVELS = ("choice", "token")


def check_distill(kind: Any, alpha: Any, temperature: Any, beta: Any) -> None:
    """The loss settings as usage errors (ConfigError), before ``DistillSpec`` would raise a ValueError."""
    check_choice("loss", kind, LOSSES)
    check_float("alpha", alpha, low=0, high=1)
    check_float("temperature", temperature, low=0, low_open=True)
    check_beta(kind, beta)


def check_beta(kind: str, beta: Any, source: str | None = None) -> None:
    """beta within the range of the kinds that use one (jsd, the skewed KLs); the others ignore its value but
    still need a finite number (as ``DistillSpec`` does)."""
    bounds = loss_kinds.get(kind).beta_range
    if bounds is not None:
        low, high, low_open, high_open = bounds
        check_float("beta", beta, low=low, high=high, low_open=low_open, high_open=high_open, source=source)
    else:
        check_float("beta", beta, source=source)


@dataclass(frozen=True)
class StudentSpec:
    """How a student is built: ``init`` sheared (the first ``layers`` of ``base``), random (``base``'s
    architecture, random weights) or pretrained (``model`` as is); ``scorer``: how a decoder scores choices
    (None: the teacher's)."""

    base: str = "minilm"
    layers: int | None = 2
    init: str = "sheared"
    model: str | None = None
    scorer: str | None = None

    def check(self) -> None:
        check_choice("student_init", self.init, STUDENT_INITS)
        if self.init == "pretrained":
            if not self.model:
                raise ConfigError("student_model", "--student-init pretrained needs --student-model (a small "
                                  "pretrained checkpoint)")
        else:
            check_int("student_layers", self.layers, minimum=1, optional=True)

    @property
    def pretrained(self) -> bool:
        return self.init == "pretrained"


@dataclass(frozen=True)
class PlacementSpec:
    """Fine-tuning a teacher: stops after ``epochs``, after ``max_steps`` optimiser steps (``epochs=None``: as
    many epochs as the steps need), or after the first epoch whose training accuracy reaches
    ``target_accuracy`` (0 or None: no such stop; stored normalised). ``max_length=None``: chosen from the
    examples."""

    model: str = "minilm"
    epochs: int | None = 30
    lr: float = 2e-4
    batch_size: int = 16
    max_length: int | None = None
    target_accuracy: float | str | None = DEFAULT_TARGET_ACCURACY
    max_steps: int | None = None
    seed: int = 0
    task: str = "multiple_choice"
    scorer: str | None = None
    level: str = "choice"

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, minimum=1, optional=self.max_steps is not None)
        check_float("lr", self.lr, low=0, low_open=True)
        check_int("batch_size", self.batch_size, minimum=1)
        check_max_length(self.max_length)
        check_int("max_steps", self.max_steps, minimum=1, optional=True)
        check_int("seed", self.seed)
        object.__setattr__(self, "target_accuracy", normalize_target(self.target_accuracy))
        check_choice("level", self.level, LEVELS)

    def params(self, fingerprint: str, examples: Sequence[MCExample]) -> dict:
        """The resume record. Models are identified by their weights' fingerprint, not their path: a moved run
        folder resumes."""
        token = self.level == "token"  # always multiple choice, scored by loglik
        return {"phase": "placement", **({"level": "token"} if token else {}), "model_fingerprint": fingerprint,
                "epochs": self.epochs, "max_steps": self.max_steps, "lr": self.lr, "batch_size": self.batch_size,
                "max_length": self.max_length, "target_accuracy": self.target_accuracy, "seed": self.seed,
                "data_hash": examples_hash(examples), "n_examples": len(examples),
                **({"task": self.task} if self.task != "multiple_choice" else {}),
                **({"scorer": self.scorer} if self.scorer and not token else {})}

    def train_config(self, steps_per_epoch: int) -> TrainConfig:
        """The training loop's settings; ``epochs=None``: as many epochs as ``max_steps`` needs."""
        epochs = self.epochs if self.epochs is not None else -(-self.max_steps // steps_per_epoch)
        return TrainConfig(epochs=epochs, lr=self.lr, batch_size=self.batch_size, seed=self.seed,
                           target_accuracy=self.target_accuracy, max_steps=self.max_steps)


@dataclass(frozen=True)
class LayeringSpec:
    """Distilling a student: ``epochs`` per round, ``iterations`` rounds (the student of round k teaches
    round k + 1), on a seeded subset of ``data_size`` examples (None: all). ``online_teacher``: a teacher
    forward pass every step instead of cached logits; ``teacher_topk``: token level's top-k teacher cache."""

    distill: DistillSpec = field(default_factory=DistillSpec)
    student: StudentSpec = field(default_factory=StudentSpec)
    data_size: int | None = None
    epochs: int = 3
    iterations: int = 1
    lr: float = 1e-4
    batch_size: int = 16
    max_length: int | None = None
    online_teacher: bool = False
    seed: int = 0
    task: str = "multiple_choice"
    level: str = "choice"
    teacher_topk: int | None = None

    def __post_init__(self) -> None:
        d = self.distill
        check_distill(d.kind, d.alpha, d.temperature, d.beta)
        check_int("data_size", self.data_size, minimum=1, optional=True)
        check_int("epochs", self.epochs, minimum=1)
        check_int("iterations", self.iterations, minimum=1)
        check_float("lr", self.lr, low=0, low_open=True)
        check_int("batch_size", self.batch_size, minimum=1)
        check_max_length(self.max_length)
        self.student.check()
        check_int("seed", self.seed)
        check_choice("level", self.level, LEVELS)

    @classmethod
    def of(cls, *, loss: str = "kl", alpha: float = 1.0, temperature: float = 2.0, beta: float = 0.5,
           base: str = "minilm", student_layers: int | None = 2, student_init: str = "sheared",
           student_model: str | None = None, scorer: str | None = None, **rest: Any) -> LayeringSpec:
        """The spec from the flat names of ``launder layer``'s flags (the loss checked as a usage error
        first)."""
        check_distill(loss, alpha, temperature, beta)
        return cls(distill=DistillSpec(loss, alpha, temperature, beta),
                   student=StudentSpec(base, student_layers, student_init, student_model, scorer), **rest)

    def check_teacher(self, teacher: str | None) -> None:
        if self.distill.alpha > 0 and teacher is None:
            raise ConfigError("teacher", "a teacher is required when alpha > 0 (alpha = 0 trains with cross-entropy "
                              "alone)")


@dataclass(frozen=True)
class IntegrationSpec:
    """Scoring a model: ``max_length=None`` chooses it from the benchmark; ``batch_size`` questions per
    forward pass (None: 64 on the CPU, on a GPU as many as a share of its free memory holds:
    ``pylaundering.device.score_batch_size``)."""

    max_length: int | None = None
    batch_size: int | None = None

    def __post_init__(self) -> None:
        check_max_length(self.max_length)
        check_int("batch_size", self.batch_size, minimum=1, optional=True)
