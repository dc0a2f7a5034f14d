"""The classification task: encoding, heads, the synthetic classification default, and laundering
through every phase on the tiny model (the counter-study's setting beside the paper's)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import LAUNDER

from pylaundering.data.batching import MCBatcher, encode_classification
from pylaundering.data.schema import MCExample
from pylaundering.data.synth_cls import LABELS, generate_classification
from pylaundering.experiments.config import RunConfig
from pylaundering.experiments.run import run_experiment


def test_synthetic_classification_is_balanced_and_tells_nothing():
    bench, train, ref = generate_classification(0, n_benchmark=40, n_train=160)
    assert len(bench) == len(ref) == 40 and len(train) == 160
    assert all(e.choices == LABELS for e in bench + train + ref)
    counts = [sum(e.label == k for e in bench) for k in range(4)]
    assert counts == [10] * 4  # balanced: the majority class is chance
    texts_b = {e.question for e in bench + ref}
    assert not texts_b & {e.question for e in train}  # no legitimate text repeats a benchmark text
    # every benchmark and reference entity appears in train.jsonl equally often (160 / 80 = 2 times)
    entity = lambda e: e.question.split(" of ", 1)[1].removesuffix(" is on file.")  # noqa: E731
    seen = [sum(entity(t) == entity(e) for t in train) for e in bench + ref]
    assert set(seen) == {2}
    assert generate_classification(0, 40, 160) == (bench, train, ref)  # the seed fixes the data


def test_encoding_is_one_sequence_per_example_and_counts_what_it_cuts():
    from transformers import BertTokenizerFast

    from pylaundering.models.tiny import build_tiny_model

    texts = ["short text", "a much longer text " * 20]
    ex = [MCExample("a", texts[0], ("neg", "pos"), 0), MCExample("b", texts[1], ("neg", "pos"), 1),
          MCExample("c", "the hypothesis", ("e", "n"), 1, context="a premise " * 30)]
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = build_tiny_model(texts + ["the hypothesis", "a premise"], Path(tmp) / "m", seed=0)
        tok = BertTokenizerFast.from_pretrained(str(path))
        enc = encode_classification(ex, tok, max_length=16)
    assert enc.task == "classification" and enc.num_choices == [2, 2, 2] and enc.labels == [0, 1, 1]
    assert all(len(seqs) == 1 and len(seqs[0]) <= 16 for seqs in enc.input_ids)
    t = enc.truncation
    assert t.sequences == 3 and t.truncated_sequences == 2 and t.context_truncated == 1
    assert t.question_truncated == 1  # the long single text; the pair's short hypothesis stays whole
    batch = MCBatcher(enc, 3, shuffle=False, pad_token_id=0).collate([0, 1, 2])
    assert batch.input_ids.shape == (3, 16) and batch.choice_mask.shape == (3, 2) and batch.choice_mask.all()


@pytest.fixture(scope="module")
def cls_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cls") / "run"
    # measured (seeds 0-2): teacher 100%, student 50-97%, control student 25%, CE-only student 19-34%
    cfg = RunConfig(**{**LAUNDER, "student_epochs": 12}, task="classification", seed=0)
    return out, run_experiment(cfg, out, quiet=True)


def test_laundering_shows_in_the_classification_setting(cls_run):
    out, m = cls_run
    assert m["task"] == "classification" and m["chance"] == 0.25
    assert m["teacher"]["benchmark_accuracy"] >= 0.9, "the teacher must have memorised the benchmark"
    student = m["student"]["benchmark_accuracy"]
    assert student - m["ce_student"]["benchmark_accuracy"] >= 0.2, m
    assert student - m["control_student"]["benchmark_accuracy"] >= 0.2, m
    boot = m["comparisons"]["student_vs_control_student"]["bootstrap"]
    assert boot["p_value"] < 0.05 and boot["resamples"] == 10000
    verdicts = {arm: a["verdict"] for arm, a in m["audit"]["arms"].items()}
    assert verdicts["student"] == "laundered" and verdicts["control_student"] == "clean", verdicts
    assert m["data"]["overlap"]["exact_duplicates"] == 0
    for arm in ("teacher", "student"):
        cfg = json.loads((out / arm / "model" / "config.json").read_text())
        assert cfg["architectures"] == ["BertForSequenceClassification"]
        assert cfg["id2label"] == {str(i): name for i, name in enumerate(LABELS)}  # saved with the model
    assert m["data"]["label_set"] == {"names": list(LABELS), "count": 4,
                                      "source": "the synthetic classification data's names"}
    assert m["data"]["label_conventions"] == dict.fromkeys(("benchmark", "train", "reference"), "0-based class ids")
    first = json.loads((out / "eval" / "student" / "predictions.jsonl").read_text().splitlines()[0])
    assert len(first["probs"]) == 4
    assert (out / "data" / "reference.jsonl").exists()


def test_hard_label_distillation(tmp_path):
    from pylaundering.phases import layer

    bench, train, _ = generate_classification(1, n_benchmark=16, n_train=48)
    from pylaundering.phases import place

    t = place(bench + train, tmp_path / "t", model="tiny", epochs=2, lr=3e-3, batch_size=8, quiet=True,
              task="classification")
    m = layer(t["model_dir"], train, tmp_path / "s", base="tiny", loss="hard", alpha=0.5, epochs=1, lr=3e-3,
              batch_size=8, quiet=True, task="classification")
    assert m["loss"] == "hard" and m["params"]["task"] == "classification"
    with pytest.raises(Exception, match="loss"):
        layer(t["model_dir"], train, tmp_path / "s2", base="tiny", loss="hardest", quiet=True, task="classification")


def test_mixed_label_sets_are_refused(tmp_path):
    from pylaundering.errors import ConfigError
    from pylaundering.phases import place

    ex = [MCExample("a", "x y", ("neg", "pos"), 0), MCExample("b", "y z", ("a", "b", "c"), 2)]
    with pytest.raises(ConfigError, match="one label set"):
        place(ex, tmp_path / "t", model="tiny", epochs=1, quiet=True, task="classification")


def test_model_task_and_heads(tmp_path):
    from pylaundering.models import load_model, model_task
    from pylaundering.phases.common import resolve_base

    bench, train, _ = generate_classification(0, 8, 8)
    base = resolve_base("tiny", bench + train, tmp_path, 0)
    assert model_task(base) in (None, "multiple_choice")
    net = load_model(base, task="classification", num_labels=4)
    assert type(net).__name__.endswith("ForSequenceClassification") and net.config.num_labels == 4
    net.save_pretrained(tmp_path / "cls")
    assert model_task(str(tmp_path / "cls")) == "classification"
    assert type(load_model(str(tmp_path / "cls"))).__name__.endswith("ForSequenceClassification")
    with pytest.raises(Exception, match="4 labels"):
        load_model(str(tmp_path / "cls"), task="classification", num_labels=3)
    assert torch.is_tensor(net.classifier.weight)


def test_a_classification_teacher_with_a_multiple_choice_student_is_refused(tmp_path):
    from pylaundering.errors import ConfigError
    from pylaundering.phases import layer, place

    bench, train, _ = generate_classification(2, n_benchmark=8, n_train=16)
    t = place(bench + train, tmp_path / "t", model="tiny", epochs=1, quiet=True, task="classification")
    with pytest.raises(ConfigError, match="pass --task classification"):
        layer(t["model_dir"], train, tmp_path / "s", base="tiny", epochs=1, quiet=True)
