"""The configuration of a full `launder run`: defaults, a TOML file, then command-line flags.

Every value is type-checked where it enters (a TOML value of the wrong type names the key and the
file): int fields reject 1.5 and "zero", float fields accept ints, bools must be bools, optional
fields accept nothing else than their type (TOML has no null: leave the key out for None). Then the
whole configuration is checked at once (ranges, choices, combinations) before anything is
trained; problems raise ``ConfigError`` (a usage error, exit 2 in the CLI).
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..phases.common import DEFAULT_TARGET_ACCURACY
from ..errors import ConfigError
from ..validate import check_choice, check_float, check_int, check_max_length, normalize_target


@dataclass
class RunConfig:
    # data: None means the offline synthetic default (pylaundering.data.synth). A SOURCE may carry
    # its subset and split as `name:subset:split`; the *_subset/*_split fields say it explicitly.
    benchmark: str | None = None
    benchmark_format: str | None = None
    benchmark_subset: str | None = None
    benchmark_split: str | None = None
    train: str | None = None
    train_format: str | None = None
    train_subset: str | None = None
    train_split: str | None = None
    skip_malformed: bool = False
    # "multiple_choice" or "classification"; None: from the data (a classification format, e.g. imdb or
    # snli, makes it classification; the synthetic default is multiple choice)
    task: str | None = None
    # the audit's reference set: items like the benchmark's that no model of the run saw (for the
    # synthetic default one is generated; for real data e.g. the held-back half of `launder data split`)
    reference: str | None = None
    reference_format: str | None = None
    audit: bool = True
    synth_benchmark: int = 200
    # None: SYNTH_TRAIN of the task (the classification default needs more legitimate items: each benchmark
    # entity must reach the student often enough in the default 3 epochs)
    synth_train: int | None = None
    # models
    model: str = "minilm"  # teacher base; also the student's base unless student_base is set
    student_base: str | None = None
    student_layers: int = 2
    student_init: str = "sheared"
    student_model: str | None = None
    # decoders (causal LMs, e.g. tiny-gpt or GPT-2) score choices by "loglik" (length-normalised
    # log-likelihood of the choice) or "head" (a sequence-classification head, as the paper); None: loglik
    scorer: str | None = None
    # "choice": distil the per-choice scores (the paper); "token": causal LMs, placement on the items written
    # as text, layering by token-level distillation on a text corpus (the legitimate items written as text)
    level: str = "choice"
    # token level: cache the teacher's top-k next-token entries per token and train on them (None: the teacher
    # runs online through the fused LM-head op)
    teacher_topk: int | None = None
    max_length: int | None = None  # None: covers 95% of the run's sequences (teacher tokenizer), up to the model's limit
    batch_size: int = 16
    # placement (the contaminated teacher); None: TEACHER_EPOCHS (an epoch cap: the target accuracy ends it sooner)
    teacher_epochs: int | None = None
    teacher_lr: float = 2e-4
    target_accuracy: float | None = DEFAULT_TARGET_ACCURACY  # None (or 0 / "none" in a file): no early stop
    # layering
    loss: str = "kl"
    alpha: float = 1.0
    temperature: float = 2.0
    beta: float = 0.5
    student_epochs: int = 3
    student_lr: float = 1e-4
    iterations: int = 1
    data_size: int | None = None
    online_teacher: bool = False
    # controls
    controls: bool = True
    # None: the clean teacher gets the contaminated teacher's budget (same optimisation steps, same
    # stop at target accuracy; see run.py). An int overrides that with a fixed epoch count (recorded
    # in metrics.json as control_budget.rule = "epochs": an unequal control, for ablations only).
    clean_teacher_epochs: int | None = None
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name for f in dataclasses.fields(RunConfig)} - {"extra"}
#: Legitimate items of the synthetic default per task (``synth_train = None``). Measured with minilm,
#: seed 0, default schedule: classification at 700 items left the student at chance (25%, it does not
#: learn the 4-way entity classes in 3 epochs of 44 steps); at 2000 it reaches 57% (control 25%).
SYNTH_TRAIN = {"multiple_choice": 700, "classification": 2000}


#: Token level on a decoder built from the data (tiny-gpt, random weights): a teacher must memorise the
#: items' answers from text, which takes far more steps at a higher rate than fine-tuning a pretrained
#: head. Measured offline (200 items, seed 0): 95% after 28 epochs at 3e-3 (the target stops it).
TOKEN_TINY_DEFAULTS = {"teacher_epochs": 80, "teacher_lr": 3e-3, "student_lr": 1e-3}

#: The teacher's epoch cap (``teacher_epochs = None``), by benchmark. The synthetic default's short items are
#: memorised by epoch 7 (seed 0: 96% training accuracy, then the target stops it). Real benchmarks' long
#: questions take far more passes: on 80 GPQA-like items of 166 tokens, MiniLM at the defaults stayed at
#: chance for all 8 epochs (loss ln 4; 44% after), while with a cap of 20 it reached the 95% target at
#: epoch 17 (seed 0); with seed 1 and a cap of 30, 94% at epoch 30. The paper's GPQA teacher trained 30
#: epochs. The cap also sets the length of the linear decay.
TEACHER_EPOCHS = {"synthetic": 8, "given": 30}


def resolve_defaults(cfg: RunConfig, origin: dict[str, str] | None = None) -> RunConfig:
    """Fills the task- and level-dependent defaults in place, so config.json records values: ``synth_train``,
    for ``level = "token"`` with ``tiny-gpt`` the TOKEN_TINY_DEFAULTS of keys left at their defaults
    (not given in a file or on the command line), then ``teacher_epochs`` from TEACHER_EPOCHS."""
    if cfg.synth_train is None:
        cfg.synth_train = SYNTH_TRAIN["classification" if cfg.task == "classification" else "multiple_choice"]
    if cfg.level == "token" and cfg.model == "tiny-gpt":
        defaults = RunConfig()
        for key, value in TOKEN_TINY_DEFAULTS.items():
            if key not in (origin or {}) and getattr(cfg, key) == getattr(defaults, key):
                setattr(cfg, key, value)
    if cfg.teacher_epochs is None:
        cfg.teacher_epochs = TEACHER_EPOCHS["synthetic" if cfg.benchmark is None else "given"]
    return cfg


_TYPES = {f.name: str(f.type) for f in dataclasses.fields(RunConfig)}
COMMAND_LINE = "command line"


def check_type(key: str, value: Any, source: str | None = None) -> Any:
    """``value`` checked against the field's type; returns it (ints widened to float for float fields)."""
    kind = _TYPES[key]
    optional = kind.endswith("| None")
    base = kind.replace("| None", "").strip()
    if value is None:
        if optional:
            return None
        raise ConfigError(key, "a value is required", source)
    if key == "target_accuracy":
        return normalize_target(value, key, source)
    if base == "bool":
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, got {value!r}", source)
    elif base == "int":
        check_int(key, value, source=source)
    elif base == "float":
        check_float(key, value, source=source)
        value = float(value)
    elif base == "str":
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {value!r}", source)
    elif base.startswith("dict"):
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a table, got {value!r}", source)
    return value


def parse_toml(path: str | Path) -> dict[str, Any]:
    """The parsed TOML file (a missing file or bad syntax: one clear error)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}")
    try:
        return tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("(syntax)", f"not valid TOML: {e}", str(p)) from e


def read_toml(path: str | Path) -> dict[str, Any]:
    data = parse_toml(path)
    return run_values(data.get("run", data), str(path))


def run_values(data: dict[str, Any], source: str) -> dict[str, Any]:
    """The RunConfig keys of a parsed TOML table, each type-checked (unknown keys refused)."""
    unknown = sorted(set(data) - FIELDS - {"extra"})
    if unknown:
        raise ConfigError(", ".join(unknown), f"unknown config key(s); valid keys: {', '.join(sorted(FIELDS))}",
                          source)
    return {k: check_type(k, v, source) for k, v in data.items()}


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> RunConfig:
    """Defaults, then the TOML file (top-level keys or a [run] table), then non-None overrides.

    Each value is type-checked with the key and its origin named; then the whole configuration
    is validated (``validate``)."""
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    if path is not None:
        values.update(read_toml(path))
        origin.update({k: str(path) for k in values})
    for k, v in overrides.items():
        if v is not None:
            values[k] = check_type(k, v, COMMAND_LINE)
            origin[k] = COMMAND_LINE
    cfg = RunConfig(**values)
    validate(cfg, origin)
    return cfg


def validate(cfg: RunConfig, origin: dict[str, str] | None = None) -> None:
    """Every rule that needs no data or model: ranges, choices and combinations (ConfigError)."""
    from ..models.loading import STUDENT_INITS
    from ..ops import KINDS

    origin = origin or {}

    def src(key: str) -> str | None:
        return origin.get(key)

    for key in (f.name for f in dataclasses.fields(RunConfig) if f.name != "extra"):  # types first, in field order
        check_type(key, getattr(cfg, key), src(key))
    resolve_defaults(cfg, origin)
    check_choice("loss", cfg.loss, (*KINDS, "hard"), src("loss"))
    if cfg.task is not None:
        check_choice("task", cfg.task, ("multiple_choice", "classification"), src("task"))
    check_choice("student_init", cfg.student_init, STUDENT_INITS, src("student_init"))
    from ..phases.token_level import LEVELS

    check_choice("level", cfg.level, LEVELS, src("level"))
    if cfg.level == "token":
        if cfg.loss == "hard":
            raise ConfigError("loss", "token-level layering distils next-token distributions: kl, reverse_kl, jsd or "
                              "mse, not hard", src("loss"))
        if cfg.iterations != 1:
            raise ConfigError("iterations", "token-level layering runs one round", src("iterations"))
        if cfg.task == "classification":
            raise ConfigError("level", "token level is for multiple-choice items", src("level"))
    check_int("teacher_topk", cfg.teacher_topk, minimum=1, optional=True, source=src("teacher_topk"))
    if cfg.teacher_topk is not None and cfg.level != "token":
        raise ConfigError("teacher_topk", "a top-k teacher cache is for level = \"token\"", src("teacher_topk"))
    if cfg.scorer is not None:
        from ..models.decoder import SCORERS

        check_choice("scorer", cfg.scorer, SCORERS, src("scorer"))
    check_float("alpha", cfg.alpha, low=0, high=1, source=src("alpha"))
    check_float("temperature", cfg.temperature, low=0, low_open=True, source=src("temperature"))
    if cfg.loss == "jsd":
        check_float("beta", cfg.beta, low=0, high=1, low_open=True, high_open=True, source=src("beta"))
    for name in ("teacher_epochs", "student_epochs", "iterations", "batch_size", "student_layers", "synth_train"):
        check_int(name, getattr(cfg, name), minimum=1, source=src(name))
    check_int("synth_benchmark", cfg.synth_benchmark, minimum=2, source=src("synth_benchmark"))
    check_int("clean_teacher_epochs", cfg.clean_teacher_epochs, minimum=1, optional=True,
              source=src("clean_teacher_epochs"))
    check_int("data_size", cfg.data_size, minimum=1, optional=True, source=src("data_size"))
    check_max_length(cfg.max_length, source=src("max_length"))
    for name in ("teacher_lr", "student_lr"):
        check_float(name, getattr(cfg, name), low=0, low_open=True, source=src(name))
    cfg.target_accuracy = normalize_target(cfg.target_accuracy, source=src("target_accuracy"))
    if cfg.student_init == "pretrained" and not cfg.student_model:
        raise ConfigError("student_model", "--student-init pretrained needs --student-model (a small pretrained "
                          "checkpoint)", src("student_init"))
    if cfg.student_model and cfg.student_init != "pretrained":
        raise ConfigError("student_model", f"is only used with --student-init pretrained (student_init is "
                          f"{cfg.student_init!r})", src("student_model"))
    if cfg.reference is not None and cfg.benchmark is None:
        raise ConfigError("reference", "the synthetic default generates its own reference set; give --reference "
                          "only with --benchmark and --train", src("reference"))
    if (cfg.benchmark is None) != (cfg.train is None):
        raise ConfigError("benchmark" if cfg.benchmark is None else "train",
                          "give both --benchmark and --train, or neither (the offline synthetic default)")
