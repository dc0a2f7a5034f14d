"""The configuration of a full `launder run`: defaults, a TOML file, then command-line flags.

Every value is type-checked where it enters (a TOML value of the wrong type names the key and the
file): int fields reject 1.5 and "zero", float fields accept ints, bools must be bools, optional
fields accept nothing else than their type (TOML has no null: leave the key out for None). Then the
whole configuration is checked at once (ranges, choices, combinations) before anything is
trained; problems raise ``ConfigError`` (a usage error, exit 2 in the CLI).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from ..device import PRECISIONS
from ..errors import ConfigError
from ..loss_kinds import KERNEL_KINDS
from ..train import DEFAULT_TARGET_ACCURACY
from ..validate import check_choice, check_float, check_int, check_max_length, normalize_target


def setting(default: Any = None, key: str | None = None, *, factory=None):
    """A field of a settings group; ``key`` is its flat name (TOML, flags, config.json) when the field's own
    name, read inside its group, would be ambiguous (``teacher.epochs`` is ``teacher_epochs``)."""
    metadata = {"key": key} if key else {}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class DataSettings:
    # None means the offline synthetic default (pylaundering.data.synth). A SOURCE may carry its subset and
    # split as `name:subset:split`; the *_subset/*_split fields say it explicitly.
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
    # classification: the dataset's label set in id order, comma-separated ("neg,pos") or a file with one name
    # per line; for a benchmark subset that lacks some classes. None: the dataset's declared set (ClassLabel, a
    # class file beside the data), else the union of the benchmark's, training set's and reference set's
    labels: str | None = None
    synth_benchmark: int = 200
    # None: SYNTH_TRAIN of the task
    synth_train: int | None = None


@dataclass
class AuditSettings:
    # the audit's reference set: items like the benchmark's that no model of the run saw (for the
    # synthetic default one is generated; for real data e.g. the held-back half of `launder data split`)
    reference: str | None = None
    reference_format: str | None = None
    audit: bool = True


@dataclass
class ModelSettings:
    model: str = "minilm"  # teacher base; also the student's base unless student_base is set
    # decoders (causal LMs, e.g. tiny-gpt or GPT-2) score choices by "loglik" (length-normalised
    # log-likelihood of the choice) or "head" (a sequence-classification head, as the paper); None: loglik
    scorer: str | None = None
    # "choice": distil the per-choice scores (the paper); "token": causal LMs, placement on the items written
    # as text, layering by token-level distillation on a text corpus (the legitimate items written as text)
    level: str = "choice"
    # None: covers 95% of the run's sequences (teacher tokenizer), up to the model's limit
    max_length: int | None = None
    batch_size: int = 16


@dataclass
class StudentSettings:
    base: str | None = setting(None, "student_base")
    layers: int = setting(2, "student_layers")
    init: str = setting("sheared", "student_init")
    model: str | None = setting(None, "student_model")


@dataclass
class TeacherSettings:
    # placement (the contaminated teacher); None: TEACHER_EPOCHS (an epoch cap: the target accuracy ends it sooner)
    epochs: int | None = setting(None, "teacher_epochs")
    lr: float = setting(2e-4, "teacher_lr")
    target_accuracy: float | None = DEFAULT_TARGET_ACCURACY  # None (or 0 / "none" in a file): no early stop


@dataclass
class LayeringSettings:
    loss: str = "kl"
    alpha: float = 1.0
    temperature: float = 2.0
    beta: float = 0.5
    epochs: int = setting(3, "student_epochs")
    lr: float = setting(1e-4, "student_lr")
    iterations: int = 1
    data_size: int | None = None
    online_teacher: bool = False
    # token level: cache the teacher's top-k next-token entries per token and train on them (None: the teacher
    # runs online through the fused LM-head op)
    teacher_topk: int | None = None


@dataclass
class ControlSettings:
    controls: bool = True
    # None: the clean teacher gets the contaminated teacher's budget (same optimisation steps, same
    # stop at target accuracy; see run.py). An int overrides that with a fixed epoch count (recorded
    # in metrics.json as control_budget.rule = "epochs": an unequal control, for ablations only).
    clean_teacher_epochs: int | None = None


@dataclass
class RuntimeSettings:
    # where and how the models run (pylaundering/device.py): auto is the first CUDA device torch sees, else the
    # CPU; precision auto is bf16 autocast on a GPU that has it, else fp32; deterministic: torch's deterministic
    # algorithms while training (RUNTIME_FIELDS: neither resume nor a sweep's sharing is split by device or
    # deterministic; precision changes what is computed, so it is part of both)
    device: str = "auto"
    precision: str = "auto"
    deterministic: bool = False


#: Settings that say where a run executes, not what it computes (equal up to float rounding): a run may resume
#: on another device, and sweep points on different devices share their teachers.
RUNTIME_FIELDS = frozenset({"device", "deterministic"})


@dataclass(frozen=True)
class Key:
    """Where a flat key lives: ``group`` (None: RunConfig itself), the field's name there, its type."""

    group: str | None
    name: str
    type: str


@dataclass(init=False)
class RunConfig:
    """The settings of `launder run`, in groups; the flat keys (``teacher_epochs``, ``loss``, ...) are the
    public names: ``RunConfig(**flat)``, ``cfg.loss``, ``to_dict()`` (config.json), TOML and flags."""

    data: DataSettings
    auditing: AuditSettings
    models: ModelSettings
    student: StudentSettings
    teacher: TeacherSettings
    layering: LayeringSettings
    control: ControlSettings
    runtime: RuntimeSettings
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __init__(self, **flat: Any):
        unknown = sorted(set(flat) - set(KEYS) - {"extra"})
        if unknown:
            raise TypeError(f"RunConfig got unexpected keyword argument(s) {', '.join(unknown)}")
        for f in dataclasses.fields(self):
            if f.name in GROUPS:
                values = {k.name: flat[key] for key, k in KEYS.items() if k.group == f.name and key in flat}
                object.__setattr__(self, f.name, GROUPS[f.name](**values))
        self.seed = flat.get("seed", 0)
        self.extra = flat.get("extra", {})
        # The keys given (flat key -> where from): a model default fills only the others, so a value given
        # equal to a declared default is still kept (not part of equality or config.json).
        self.origin: dict[str, str] = {key: GIVEN for key in flat if key != "extra"}

    def to_dict(self) -> dict[str, Any]:
        return {**{key: getattr(self, key) for key in KEYS}, "extra": dict(self.extra)}

    def replace(self, **flat: Any) -> RunConfig:
        """A copy with ``flat`` given; keys this one did not have given stay open to the (new) model's defaults."""
        new = RunConfig(**{**self.to_dict(), **flat})
        new.origin = {**self.origin, **{key: GIVEN for key in flat if key != "extra"}}
        return new


#: group attribute of RunConfig -> its settings class, in declaration order
GROUPS: dict[str, type] = {f.name: f.type for f in dataclasses.fields(RunConfig) if f.name not in ("seed", "extra")}
GROUPS = {name: globals()[kind] for name, kind in GROUPS.items()}  # the annotations are strings


def _keys() -> dict[str, Key]:
    keys = {}
    for group, cls in GROUPS.items():
        for f in dataclasses.fields(cls):
            keys[f.metadata.get("key", f.name)] = Key(group, f.name, str(f.type))
    keys["seed"] = Key(None, "seed", "int")
    return keys


#: flat key -> where it lives and its type: the one declaration everything else reads
KEYS: dict[str, Key] = _keys()


def _flat_property(key: str, k: Key) -> property:
    def get(self):
        return getattr(getattr(self, k.group), k.name)

    def set_(self, value):
        setattr(getattr(self, k.group), k.name, value)

    return property(get, set_)


for _key, _k in KEYS.items():
    if _k.group is not None:
        setattr(RunConfig, _key, _flat_property(_key, _k))

FIELDS = set(KEYS)
#: Legitimate items of the synthetic default per task (``synth_train = None``): the classification default
#: needs more, each benchmark entity must reach the student often enough (docs/defaults.md).
SYNTH_TRAIN = {"multiple_choice": 700, "classification": 2000}

#: The teacher's epoch cap (``teacher_epochs = None``), by benchmark: real benchmarks' long questions take far
#: more passes than the synthetic default's short items (docs/defaults.md). The cap also sets the length of the
#: linear decay.
TEACHER_EPOCHS = {"synthetic": 8, "given": 30}

#: Per built-in model (teacher base, level): the settings that differ from the declared defaults (which are
#: minilm's). A model built from the data has random weights: memorising the items takes more passes at a
#: higher rate than fine-tuning a pretrained encoder (docs/defaults.md has the measurements). Applied only to
#: keys not given (in a file, on the command line, as a sweep value or an argument).
MODEL_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    ("tiny", "choice"): {"teacher_epochs": 30, "teacher_lr": 1e-3, "student_epochs": 6, "student_lr": 1e-3},
    ("tiny-gpt", "token"): {"teacher_epochs": 80, "teacher_lr": 3e-3, "student_lr": 1e-3},
}
TOKEN_TINY_DEFAULTS = MODEL_DEFAULTS[("tiny-gpt", "token")]

#: Where a setting came from when nothing gave it (``describe``)
DEFAULT = "default"
#: A key given as an argument (``RunConfig(**flat)``, ``replace``, a sweep value)
GIVEN = "given"
COMMAND_LINE = "command line"


def model_defaults(cfg: RunConfig) -> dict[str, Any]:
    """The MODEL_DEFAULTS of the run's teacher base and level ({} for minilm and any other model)."""
    return MODEL_DEFAULTS.get((cfg.model, cfg.level), {})


def _given(cfg: RunConfig, key: str) -> bool:
    return key in cfg.origin and getattr(cfg, key) is not None  # None asks for the default


def _declared(key: str) -> Any:
    return getattr(RunConfig(), key)


#: Keys resolve_defaults fills (the others keep their declared default)
RESOLVED = sorted({k for table in MODEL_DEFAULTS.values() for k in table} | {"teacher_epochs", "synth_train"})


def resolve_defaults(cfg: RunConfig, origin: dict[str, str] | None = None) -> RunConfig:
    """Fills, in place, every resolved key (RESOLVED) that was not given, so config.json records values:
    the model's MODEL_DEFAULTS, else the declared default; then ``synth_train`` by task and ``teacher_epochs``
    by benchmark where still None. ``origin`` (key -> where from) adds to the keys given. Idempotent: a key
    given is never replaced, one not given is recomputed from the current model, level, task and benchmark."""
    cfg.origin.update(origin or {})
    table = model_defaults(cfg)
    for key in RESOLVED:
        if not _given(cfg, key):
            setattr(cfg, key, table.get(key, _declared(key)))
    if cfg.synth_train is None:
        cfg.synth_train = SYNTH_TRAIN["classification" if cfg.task == "classification" else "multiple_choice"]
    if cfg.teacher_epochs is None:
        cfg.teacher_epochs = TEACHER_EPOCHS["synthetic" if cfg.benchmark is None else "given"]
    return cfg


def describe(cfg: RunConfig) -> dict[str, dict[str, Any]]:
    """Every setting of a resolved configuration with where it came from: the file or the command line it was
    given in, ``model default (MODEL, LEVEL)``, or ``default`` (with what it depends on, where it does)."""
    table = model_defaults(cfg)
    rows = {}
    for key in KEYS:
        if _given(cfg, key) or (key in cfg.origin and key not in RESOLVED):
            where = cfg.origin[key]
        elif key in table:
            where = f"model default ({cfg.model}, {cfg.level})"
        elif key == "teacher_epochs":
            where = f"{DEFAULT} ({'synthetic' if cfg.benchmark is None else 'given'} benchmark)"
        elif key == "synth_train":
            where = f"{DEFAULT} ({'classification' if cfg.task == 'classification' else 'multiple_choice'})"
        else:
            where = DEFAULT
        rows[key] = {"value": getattr(cfg, key), "origin": where}
    return rows


COMMAND_LINE = "command line"


def check_type(key: str, value: Any, source: str | None = None) -> Any:
    """``value`` checked against the field's type; returns it (ints widened to float for float fields)."""
    kind = "dict[str, Any]" if key == "extra" else KEYS[key].type
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
    cfg.origin = origin
    validate(cfg)
    return cfg


def check_device_name(value: str, source: str | None = None) -> None:
    """``device`` names a device (auto, cpu, cuda, cuda:N); whether this machine has it is checked when the run
    starts (``pylaundering.device.resolve_device``), so a config written for a GPU machine validates anywhere."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value.strip().lower()):
        raise ConfigError("device", f"expected cpu or cuda (cuda:N), or auto, got {value!r}", source)


def declared_labels(cfg: RunConfig, source: str | None = None):
    """``cfg.labels`` read (``models.labels.parse_labels``: a ``DeclaredLabels``, None when not given); a label set
    in a run that is multiple choice by its ``task`` is refused (ConfigError)."""
    from ..models.labels import parse_labels  # reads a class file; imported when a config is validated

    declared = parse_labels(cfg.labels, "labels", source)
    if declared is not None and (cfg.task == "multiple_choice" or (cfg.task is None and cfg.benchmark is None)):
        raise ConfigError("labels", "a label set is for classification runs (task = \"classification\", or a "
                          "classification benchmark); this run is multiple choice", source)
    return declared


def validate(cfg: RunConfig, origin: dict[str, str] | None = None) -> None:
    """Every rule that needs no data or model: ranges, choices and combinations (ConfigError)."""
    # the phases' names (torch-heavy modules): imported when a config is validated, not when it is read
    from ..models.loading import STUDENT_INITS
    from ..phases.specs import LEVELS, LOSSES, check_beta

    cfg.origin.update(origin or {})

    def src(key: str) -> str | None:
        where = cfg.origin.get(key)
        return None if where == GIVEN else where

    for key in KEYS:  # types first, in declaration order
        check_type(key, getattr(cfg, key), src(key))
    resolve_defaults(cfg)
    check_choice("loss", cfg.loss, LOSSES, src("loss"))
    if cfg.task is not None:
        check_choice("task", cfg.task, ("multiple_choice", "classification"), src("task"))
    declared_labels(cfg, src("labels"))
    check_choice("student_init", cfg.student_init, STUDENT_INITS, src("student_init"))
    check_choice("level", cfg.level, LEVELS, src("level"))
    check_device_name(cfg.device, src("device"))
    check_choice("precision", cfg.precision, PRECISIONS, src("precision"))
    if cfg.level == "token":
        if cfg.loss == "hard":
            raise ConfigError("loss", "token-level layering distils next-token distributions: "
                              f"{', '.join(KERNEL_KINDS)}, not hard", src("loss"))
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
    check_beta(cfg.loss, cfg.beta, src("beta"))
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
