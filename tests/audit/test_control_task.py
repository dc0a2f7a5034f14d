"""`launder audit student --train` trains its control with the suspect's task: a classification suspect gets a
classification control (one sequence per text, the suspect's label count and tokenizer), not a multiple-choice
one that pairs every text with every label name. Tiny models, one epoch: a few seconds."""

from __future__ import annotations

import json

import pytest

from pylaundering.audit import audit_student, train_control
from pylaundering.audit.audits import check_control_data
from pylaundering.data.schema import MCExample
from pylaundering.data.synth_cls import generate_classification
from pylaundering.errors import DataError


@pytest.fixture(scope="module")
def suspect(tmp_path_factory):
    from pylaundering.phases.layering import layer

    bench, train, ref = generate_classification(0, n_benchmark=24, n_train=64)
    out = tmp_path_factory.mktemp("cls-suspect")
    metrics = layer(None, train, out / "suspect", base="tiny", alpha=0.0, epochs=1, lr=3e-3, batch_size=16,
                    task="classification", quiet=True, description="suspect")
    return {"model": metrics["model_dir"], "bench": bench, "train": train, "ref": ref, "dir": out}


def test_a_classification_suspect_gets_a_classification_control(suspect, tmp_path):
    from pylaundering.models.loading import model_task

    control, description = train_control(suspect["train"], suspect["model"], tmp_path / "control", epochs=1, lr=3e-3,
                                         quiet=True, benchmark=suspect["bench"])
    assert model_task(control) == "classification"
    config = json.loads((tmp_path / "control" / "model" / "config.json").read_text())
    suspect_config = json.loads((suspect["dir"] / "suspect" / "model" / "config.json").read_text())
    assert config["architectures"] == suspect_config["architectures"] == ["BertForSequenceClassification"]
    assert len(config["id2label"]) == len(suspect_config["id2label"]) == 4
    assert config["vocab_size"] == suspect_config["vocab_size"]  # the suspect's tokenizer
    assert "classification into 4 labels" in description and "random weights" in description
    metrics = json.loads((tmp_path / "control" / "metrics.json").read_text())
    assert metrics["params"]["task"] == "classification" and metrics["student_init"] == "random"
    report = audit_student(suspect["model"], suspect["bench"], suspect["ref"], control=control,
                           control_description=description, quiet=True)
    assert report["tests"]["control"]["control"] == description
    assert report["evidence"]["control"]["benchmark"]["n"] == 24


def test_a_control_with_other_label_names_is_refused_before_training(suspect, tmp_path):
    other = [MCExample(e.id, e.question, tuple(reversed(e.choices)), e.label) for e in suspect["train"]]
    with pytest.raises(DataError, match="label names"):
        train_control(other, suspect["model"], tmp_path / "control", epochs=1, quiet=True, benchmark=suspect["bench"])
    assert not (tmp_path / "control").exists()
    check_control_data(suspect["bench"], other, "multiple_choice")  # multiple choice: each item its own choices
