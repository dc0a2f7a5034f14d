"""The data of a `launder run`: the benchmark, the legitimate set and the reference set, loaded (or, for the
synthetic default, generated) with what the report says about them, and, for a classification run, put into
one label set.

One label set: every model of a classification run has one output per class, and the benchmark, the training
split and the reference set must mean the same class by the same label. A benchmark subset holds the classes
its rows happen to have (a 300-item subset of a 77-class dataset held 73), so the run's label set is the
declared one (config key ``labels``, or what the dataset declares: a ClassLabel feature, a class file beside
the data) or else the union of the three sets', and every example is remapped into it by class NAME
(``data.labelset.shared_label_set``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..data.synth import make_synthetic, write_synthetic
from ..errors import ConfigError, DataError
from .config import RunConfig, declared_labels

__all__ = ["Loaded", "in_label_set", "label_set", "load_data", "load_reference", "load_source", "overlap",
           "run_task", "with_labels"]

#: How the synthetic data writes its labels (it is generated in memory, not read)
SYNTHETIC_CONVENTION = {"multiple_choice": "0-based answer indices", "classification": "0-based class ids"}


@dataclass
class Loaded:
    examples: list
    source: str
    format: str
    skipped: int = 0
    subset: str | None = None
    split: str | None = None
    # classification: the label set (the examples' choices), where it came from; every task: how the source
    # wrote its answers ("0-based class ids", "answer letters", ...), for the report
    label_names: tuple[str, ...] | None = None
    label_source: str | None = None
    label_convention: str | None = None


def _split_spec(spec: str, subset: str | None, split: str | None, key: str) -> tuple[str, str | None, str | None]:
    """A SOURCE with an optional ``name:subset:split`` shorthand, merged with the explicit fields
    (which must not contradict it)."""
    from ..data import parse_source

    source, s_subset, s_split = parse_source(spec)
    for name, explicit, short in (("subset", subset, s_subset), ("split", split, s_split)):
        if explicit is not None and short is not None and explicit != short:
            raise ConfigError(f"{key}_{name}", f"{explicit!r} contradicts {short!r} in {key} {spec!r}")
    return source, subset if subset is not None else s_subset, split if split is not None else s_split


def load_source(spec: str, fmt: str | None, *, subset: str | None, split: str | None, role: str, key: str,
                skip_malformed: bool, labels=None) -> Loaded:
    """Examples from a SOURCE (``name:subset:split`` shorthand accepted); ``role`` ("benchmark" or
    "train") picks the default split of a hub dataset. ``labels`` (a ``models.labels.DeclaredLabels``): the
    dataset's label set, naming a classification source's class ids; a multiple-choice format (our own schema,
    whose rows carry their class names) is read without it, and put into it by name by ``with_labels``."""
    from ..data.load import load_examples
    from ..data.registry import FORMATS

    if fmt is not None and fmt not in FORMATS:  # a usage error, like any unknown choice
        raise ConfigError(f"{key}_format", f"unknown format {fmt!r}; known: {', '.join(sorted(FORMATS))}")
    source, subset, split = _split_spec(spec, subset, split, key)

    def read(declared):
        return load_examples(source, fmt, subset=subset, split=split, role=role, skip_malformed=skip_malformed,
                             label_names=declared.names if declared else None,
                             label_base=declared.base if declared else None)

    if labels is not None and fmt is not None and FORMATS[fmt].task != "classification":
        labels = None
    try:
        res = read(labels)
    except DataError as err:
        if labels is None:
            raise
        res = read(None)  # the format inferred may take no label names (it is multiple choice) ...
        if res.task == "classification":  # ... but this one does: the error was about the data
            raise err from None
    return Loaded(list(res.examples), res.source, res.format, res.skipped, res.subset, res.split,
                  res.label_names, res.label_source, res.label_convention)


def run_task(cfg: RunConfig, bench: Loaded | None = None) -> str:
    """The run's task: ``cfg.task`` when set, else classification for data in a classification format,
    else multiple choice (the synthetic default too)."""
    fmt = bench.format if bench is not None else None
    inferred = "classification" if fmt in _classification_formats() else "multiple_choice"
    if cfg.task is None:
        return inferred if cfg.benchmark is not None else "multiple_choice"
    if cfg.benchmark is not None and fmt in _classification_formats() and cfg.task != "classification":
        raise ConfigError("task", f"{cfg.task!r}, but the benchmark's format {fmt!r} is a classification format")
    return cfg.task


def _classification_formats() -> frozenset:
    try:
        from ..data.formats_cls import CLASSIFICATION_FORMATS
    except ImportError:  # pragma: no cover - the formats module is optional
        return frozenset()
    return CLASSIFICATION_FORMATS


def _synthetic_classification(cfg: RunConfig, out: Path | None) -> tuple[Loaded, Loaded, Loaded]:
    from ..data.schema import write_jsonl
    from ..data.synth_cls import LABELS, generate_classification

    bench, train, ref = generate_classification(cfg.seed, n_benchmark=cfg.synth_benchmark, n_train=cfg.synth_train)
    where = (out / "data") if out is not None else Path("<synthetic>")
    if out is not None:
        for name, examples in (("benchmark", bench), ("train", train), ("reference", ref)):
            write_jsonl(examples, where / f"{name}.jsonl")
    return tuple(Loaded(x, str(where / f"{name}.jsonl"), "pylaundering",  # type: ignore[return-value]
                        label_names=LABELS, label_source="the synthetic classification data's names",
                        label_convention=SYNTHETIC_CONVENTION["classification"])
                 for name, x in (("benchmark", bench), ("train", train), ("reference", ref)))


def _synthetic(examples: list, where: Path, name: str) -> Loaded:
    return Loaded(examples, str(where / f"{name}.jsonl"), "pylaundering",
                  label_convention=SYNTHETIC_CONVENTION["multiple_choice"])


def load_data(cfg: RunConfig, out: Path | None = None) -> tuple[Loaded, Loaded]:
    """Benchmark and legitimate examples. The synthetic default is generated in memory; its files
    are written into ``out/data`` when ``out`` is given (and the sources point there)."""
    if (cfg.benchmark is None or cfg.train is None) and cfg.task == "classification":
        bench, train, _ = _synthetic_classification(cfg, out)
        return bench, train
    if cfg.benchmark is None or cfg.train is None:
        bench, train = make_synthetic(cfg.seed, n_benchmark=cfg.synth_benchmark, n_train=cfg.synth_train)
        where = (out / "data") if out is not None else Path("<synthetic>")
        if out is not None:
            write_synthetic(out / "data", seed=cfg.seed, n_benchmark=cfg.synth_benchmark, n_train=cfg.synth_train)
        return _synthetic(bench, where, "benchmark"), _synthetic(train, where, "train")
    labels = declared_labels(cfg)
    bench = load_source(cfg.benchmark, cfg.benchmark_format, subset=cfg.benchmark_subset, split=cfg.benchmark_split,
                        role="benchmark", key="benchmark", skip_malformed=cfg.skip_malformed, labels=labels)
    train = load_source(cfg.train, cfg.train_format, subset=cfg.train_subset, split=cfg.train_split,
                        role="train", key="train", skip_malformed=cfg.skip_malformed, labels=labels)
    return bench, train


def load_reference(cfg: RunConfig, out: Path | None) -> Loaded | None:
    """The audit's reference set: generated for the synthetic default (``make_reference``, written
    as ``out/data/reference.jsonl``), loaded from ``cfg.reference`` otherwise; None when there is
    none or the audit is off."""
    if not cfg.audit:
        return None
    if cfg.benchmark is None and cfg.task == "classification":
        return _synthetic_classification(cfg, out)[2]
    if cfg.benchmark is None:
        from ..data.synth import make_reference

        where = (out / "data") if out is not None else Path("<synthetic>")
        examples = make_reference(cfg.seed, n_benchmark=cfg.synth_benchmark, n_train=cfg.synth_train)
        return _synthetic(examples, where, "reference")
    if cfg.reference is None:
        return None
    return load_source(cfg.reference, cfg.reference_format, subset=None, split=None, role="benchmark",
                       key="reference", skip_malformed=cfg.skip_malformed, labels=declared_labels(cfg))


def with_labels(cfg: RunConfig, task: str, bench: Loaded, train: Loaded,
                reference: Loaded | None = None) -> tuple[Loaded, Loaded, Loaded | None]:
    """For a classification run, the three sets in one label set (see the module's docstring), each Loaded's
    ``label_names`` and ``label_source`` saying which; the sets unchanged for multiple choice. DataError (one line
    naming the load) for sets that cannot be matched by name, or a class outside the declared set."""
    if task != "classification":
        if cfg.labels is not None:
            raise ConfigError("labels", f"a label set is for classification runs; the benchmark {bench.source} is "
                              "multiple choice (task = \"classification\" reads it as classification)")
        return bench, train, reference
    from ..data.labelset import label_set_of, shared_label_set

    loads = [x for x in (bench, train, reference) if x is not None]
    declared = declared_labels(cfg)
    sets = {label_set_of(x) for x in loads}
    if declared is None and len(sets) == 1:  # one set already: say where it came from, not "the union of"
        names = sets.pop()
        source = "; ".join(dict.fromkeys(x.label_source or f"the choices of the {x.format} rows" for x in loads))
        loads = [replace(x, label_names=names, label_source=source) for x in loads]
    else:
        shared = shared_label_set(loads, names=declared.names if declared else None)
        source = declared.source if declared else shared.source
        loads = [replace(x, label_source=source) for x in shared.results]
    out = iter(loads)
    return next(out), next(out), next(out) if reference is not None else None


def in_label_set(load: Loaded | None, names: tuple[str, ...] | None) -> Loaded | None:
    """``load`` remapped by class name into the run's label set ``names`` (None: multiple choice, unchanged)."""
    if load is None or names is None:
        return load
    from ..data.labelset import remap_examples

    if {e.choices for e in load.examples} == {tuple(names)}:
        return load
    return replace(load, examples=remap_examples(load.examples, names, load.source), label_names=tuple(names))


def label_set(load: Loaded) -> dict | None:
    """metrics.json's ``data.label_set``: the run's label set (names, count, source); None for multiple choice."""
    if load.label_names is None:
        return None
    return {"names": list(load.label_names), "count": len(load.label_names), "source": load.label_source}


def overlap(bench, train) -> dict:
    """``pylaundering.data.overlap.find_overlap``: exact and question duplicates between the sets."""
    from ..data.overlap import find_overlap

    return find_overlap(bench, train)
