"""Per-item evidence of a model on a set: what the audits' tests compare between B and R.

One scoring path: the examples are encoded with the model's own tokenizer
(`phases.common.encode`) and scored by `train.evaluate.predict_logits`, the same forward passes
as `launder integrate`. Benchmark and reference are encoded *together*, so both get the same
max_length (the same truncation rule) and one batched pass.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.overlap import find_overlap, find_shared_contexts
from ..data.schema import MCExample, examples_hash

__all__ = ["ItemScores", "check_mc_model", "check_sets", "check_train", "score_sets"]


@dataclass
class ItemScores:
    """Per-item arrays for one model on one set (length N each)."""

    correct: np.ndarray  # bool: argmax is the label
    p_correct: np.ndarray  # softmax probability of the correct choice
    loss: np.ndarray  # cross-entropy of the correct choice, -log p_correct
    margin: np.ndarray  # logit (= log-prob) of the correct choice minus the best other choice
    prediction: np.ndarray  # int: argmax choice
    num_choices: np.ndarray  # int

    @classmethod
    def from_logits(cls, logits, labels, num_choices=None) -> ItemScores:
        """The scores of ``logits`` (``[N, C_max]``, padded choices at -inf, as `predict_logits` gives them)
        for the correct choices ``labels``; ``num_choices`` defaults to each row's finite entries. One
        path for real models and for simulated ones (`calibrate`), in float64."""
        x = np.asarray(logits, dtype=np.float64)
        labels = np.asarray(labels, dtype=np.int64)
        if x.ndim != 2 or labels.shape != (x.shape[0],):
            raise ValueError(f"logits must be [N, C] with one label per row (got logits {x.shape}, labels "
                             f"{labels.shape})")
        rows = np.arange(x.shape[0])
        top = x.max(axis=1, keepdims=True)
        logp = x - top - np.log(np.exp(x - top).sum(axis=1, keepdims=True))
        lp = logp[rows, labels]
        others = x.copy()
        others[rows, labels] = -np.inf
        pred = x.argmax(axis=1)
        counts = np.isfinite(x).sum(axis=1) if num_choices is None else np.asarray(num_choices)
        return cls(correct=pred == labels, p_correct=np.exp(lp), loss=-lp, margin=x[rows, labels] - others.max(axis=1),
                   prediction=pred, num_choices=counts.astype(np.int64))

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean())

    @property
    def chance(self) -> np.ndarray:
        """Per item, the accuracy of a guess: 1 / (number of choices)."""
        return 1.0 / self.num_choices

    def summary(self) -> dict:
        return {"n": int(self.correct.size), "accuracy": self.accuracy, "mean_p_correct": float(self.p_correct.mean()),
                "mean_loss": float(self.loss.mean()), "mean_margin": float(self.margin.mean()),
                "median_margin": float(np.median(self.margin))}


def check_mc_model(model: str) -> None:
    """A local save_pretrained folder of a multiple-choice model, or a clear error.

    `load_model` would silently give a bare encoder a freshly initialised (random) choice head,
    which makes every audit of it meaningless, so that is refused here. A causal LM is accepted: it
    scores choices by log-likelihood (or by the head it was saved with), with no new parameters.
    """
    path = Path(model).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"model {model}: no such folder")
    if not path.is_dir():
        raise ValueError(f"model {model}: not a folder (expected a save_pretrained model folder, e.g. a run's "
                         "student/model)")
    if not (path / "config.json").exists():
        inner = path / "model" / "config.json"
        hint = f" (did you mean {path / 'model'}?)" if inner.exists() else ""
        raise ValueError(f"model {model}: the folder has no config.json, not a save_pretrained model{hint}")
    try:
        archs = json.loads((path / "config.json").read_text()).get("architectures") or []
    except (OSError, ValueError) as e:
        raise ValueError(f"model {model}: unreadable config.json ({e})") from e
    from ..models.decoder import MARKER  # import time: torch, which `launder scan` (this package) never needs

    scorers = ("ForMultipleChoice", "ForSequenceClassification", "ForCausalLM", "LMHeadModel")
    if not (path / MARKER).exists() and not any(a.endswith(scorers) for a in archs):
        raise ValueError(f"model {model}: not a multiple-choice, classification or causal LM model (architectures: "
                         f"{', '.join(archs) or 'none'}); an audit needs a model that scores each (question, choice) "
                         "pair or each text's labels, e.g. a run's teacher/model or student/model")


def _chance(examples: Sequence[MCExample]) -> float:
    return sum(1 / len(e.choices) for e in examples) / len(examples)


def check_sets(benchmark: Sequence[MCExample], reference: Sequence[MCExample]) -> dict:
    """Refuse sets an audit cannot compare: empty, different numbers of choices, or overlapping.

    Returns the overlap check's summary (zero duplicates) for the report.
    """
    if not benchmark:
        raise ValueError("the benchmark set is empty")
    if not reference:
        raise ValueError("the reference set is empty")
    counts_b = sorted({len(e.choices) for e in benchmark})
    counts_r = sorted({len(e.choices) for e in reference})
    chance_b, chance_r = _chance(benchmark), _chance(reference)
    if counts_b != counts_r and abs(chance_b - chance_r) > 0.02:
        raise ValueError(f"the reference set's items have {'/'.join(map(str, counts_r))} choices, the benchmark's "
                         f"{'/'.join(map(str, counts_b))} (chance {chance_r:.3f} vs {chance_b:.3f}): accuracies "
                         "are not comparable; use a reference set of the same kind (launder data split)")
    method = check_disjoint(benchmark, reference, question_remedy="R must be disjoint from B (launder data split "
                            "makes such a pair)", passage_remedy="the questions on one passage must all be on the "
                            "same side (launder data split keeps them together)")
    return {"method": method, "question_duplicates": 0, "exact_duplicates": 0, "shared_contexts": 0,
            "chance": {"benchmark": chance_b, "reference": chance_r}}


def check_disjoint(benchmark: Sequence[MCExample], reference: Sequence[MCExample], *, question_remedy: str,
                   passage_remedy: str) -> str:
    """Refuse a B and an R that share a (context, question) or a passage, each message ending in its caller's
    remedy: a model that saw one saw the other. Returns the overlap check's method, for the report."""
    overlap = find_overlap(benchmark, reference, max_examples=3)
    if overlap["question_duplicates"]:
        first = overlap["examples"][0]
        raise ValueError(f"the reference set shares {overlap['question_duplicates']} question(s) with the benchmark "
                         f"(e.g. benchmark {first['benchmark_id']} = reference {first['train_id']}): {question_remedy}")
    # Questions on one passage are not independent: one read of it answers several, so a passage split
    # across B and R gives a model that saw it through B a head start on R and shrinks the gap.
    shared = find_shared_contexts(benchmark, reference, max_examples=1)
    if shared["items"]:
        first = shared["examples"][0]
        raise ValueError(f"benchmark item {first['benchmark_id']} and reference item {first['other_id']} share a "
                         f"passage (context; {shared['contexts']} passage(s), {shared['items']} benchmark item(s) in "
                         f"all): {passage_remedy}")
    return overlap["method"]


def check_train(benchmark: Sequence[MCExample], train: Sequence[MCExample]) -> None:
    """Refuse a --train set holding benchmark items: a control trained on them is no control (it would hide the
    student's excess), so the audit would understate laundering. Same normaliser as `run` and `scan`."""
    overlap = find_overlap(benchmark, train, max_examples=3)
    n = overlap["question_duplicates"]
    if n:
        pairs = ", ".join(f"benchmark {e['benchmark_id']} = train {e['train_id']}" for e in overlap["examples"])
        raise ValueError(f"the --train set holds {n} benchmark item{'s' if n != 1 else ''} (same question; e.g. "
                         f"{pairs}{', ...' if n > len(overlap['examples']) else ''}): a control trained on "
                         "benchmark items is not a control; remove them (launder scan lists them)")


def _scores(logits, examples: Sequence[MCExample]) -> ItemScores:
    return ItemScores.from_logits(logits.double().numpy(), [e.label for e in examples],
                                  [len(e.choices) for e in examples])


def score_sets(model: str, benchmark: Sequence[MCExample], reference: Sequence[MCExample], *,
               max_length: int | None = None, batch_size: int | None = None, quiet: bool = False,
               description: str = "audit", device=None) -> tuple[ItemScores, ItemScores, dict]:
    """Per-item scores of ``model`` on benchmark and reference, and how they were encoded. ``device``: a
    ``pylaundering.device.Runtime``, a device name or None (where the model is: the CPU); ``batch_size`` None:
    the runtime's scoring batch (64 on the CPU, from free memory on a GPU)."""
    # import time: these import torch, which `launder scan` (this package) never needs
    from ..models import model_fingerprint
    from ..models.loading import load_model
    from ..phases.common import encode
    from ..train.evaluate import check_finite_scores, predict_logits

    check_mc_model(model)
    from ..models.labels import align_to_model  # import time, as above

    # a classifier's outputs are its saved label names: read each file's labels into that order, by name
    benchmark = align_to_model(benchmark, model, "the benchmark")
    reference = align_to_model(reference, model, "the reference set")
    # One model is often scored by several audits (a teacher as a suspect and as a student's
    # teacher; a sweep's shared teachers in every point): key on its weights, not its path.
    key = (model_fingerprint(model), examples_hash(benchmark), examples_hash(reference), max_length)
    if key in _SCORES:
        _SCORES.move_to_end(key)
        return _SCORES[key]
    both = list(benchmark) + list(reference)
    from ..models import model_task  # import time, as above

    net = load_model(model)
    if getattr(net, "level", "choice") == "token":  # trained on items written as text: it answers prompts
        from ..data.text import prompt_examples  # import time, as above

        both = prompt_examples(both)
    data = encode(model, both, max_length, model_task(model) or "multiple_choice")
    logits = predict_logits(net, data.encoded, pad_token_id=data.pad_token_id, batch_size=batch_size,
                            description=description, quiet=quiet, device=device)
    check_finite_scores(logits, data.encoded.num_choices, model)  # a NaN would pass every test as "no signal"
    nb = len(benchmark)
    info = {"max_length": data.max_length, "truncation": data.encoded.truncation.to_dict()}
    result = _scores(logits[:nb], benchmark), _scores(logits[nb:], reference), info
    _SCORES[key] = result
    while len(_SCORES) > _SCORES_KEPT:
        _SCORES.popitem(last=False)
    return result


_SCORES: OrderedDict = OrderedDict()
_SCORES_KEPT = 16
