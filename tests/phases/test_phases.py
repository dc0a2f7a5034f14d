"""Placement, layering and integration on the tiny model: outputs, options and errors."""

from __future__ import annotations

import json

import pytest
import torch

from pylaundering.phases import integrate, layer, place
from pylaundering.phases.layering import subsample
from pylaundering.stats import chance_level, mcnemar_exact, wilson_interval


def test_integrate_scores_the_predictions_file_consistently(tiny_teacher, small_data, tmp_path):
    bench, _ = small_data
    m = integrate(str(tiny_teacher), bench, tmp_path, quiet=True)
    preds = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == len(bench)
    assert m["correct"] == sum(p["correct"] for p in preds)
    assert all(p["probs"][p["prediction"]] == max(p["probs"]) for p in preds)  # rounded probs may tie
    assert all(p["label"] == e.label for p, e in zip(preds, bench))
    assert m["chance"] == pytest.approx(0.25)
    assert m["ci95"] == list(wilson_interval(m["correct"], m["n"]))
    assert sum(v["n"] for v in m["per_subject"].values()) == len(bench)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["accuracy"] == m["accuracy"]


def test_layer_iterations_alpha_zero_and_online_teacher(tiny_teacher, small_data, tmp_path):
    _, train = small_data
    kw = dict(base=str(tiny_teacher), student_layers=1, epochs=1, batch_size=8, max_length=32, quiet=True)
    it = layer(str(tiny_teacher), train, tmp_path / "iter", iterations=2, loss="mse", cache_dir=tmp_path / "c", **kw)
    assert len(it["rounds"]) == 2 and it["rounds"][1]["teacher"].endswith("round-1/model")
    assert (tmp_path / "iter" / "round-2" / "model" / "config.json").exists()
    assert (tmp_path / "iter" / "model" / "config.json").exists()

    ce = layer(None, train, tmp_path / "ce", alpha=0.0, **kw)
    assert ce["rounds"][0]["teacher_logits"]["cache"] == "unused"

    cached = layer(str(tiny_teacher), train, tmp_path / "cached", cache_dir=tmp_path / "c2", seed=5, **kw)
    online = layer(str(tiny_teacher), train, tmp_path / "online", online_teacher=True, seed=5, **kw)
    assert online["rounds"][0]["teacher_logits"]["cache"] == "online"
    # Same teacher signal either way, so the same training trajectory.
    assert cached["rounds"][0]["history"][0]["loss"] == pytest.approx(online["rounds"][0]["history"][0]["loss"],
                                                                     rel=1e-4)


def test_student_layers_and_inits(tiny_teacher):
    from pylaundering.models import load_model, load_student

    teacher = load_model(str(tiny_teacher))
    sheared = load_student(str(tiny_teacher), init="sheared", num_layers=2, seed=0)
    random_ = load_student(str(tiny_teacher), init="random", num_layers=2, seed=0)
    assert sheared.config.num_hidden_layers == 2 == len(sheared.bert.encoder.layer)
    t0 = teacher.bert.encoder.layer[0].attention.self.query.weight
    assert torch.equal(sheared.bert.encoder.layer[0].attention.self.query.weight, t0)
    assert not torch.equal(random_.bert.encoder.layer[0].attention.self.query.weight, t0)
    pretrained = load_student(str(tiny_teacher), init="pretrained", num_layers=None, seed=0,
                              student_model=str(tiny_teacher))
    assert pretrained.config.num_hidden_layers == teacher.config.num_hidden_layers
    with pytest.raises(ValueError, match="student-model"):
        load_student(str(tiny_teacher), init="pretrained", num_layers=2, seed=0)
    with pytest.raises(ValueError, match="cannot take 9 layers"):
        load_student(str(tiny_teacher), init="sheared", num_layers=9, seed=0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(loss="kld"), "unknown loss"),
    (dict(alpha=1.5), "alpha"),
    (dict(temperature=0.0), "temperature"),
    (dict(iterations=0), "iterations"),
])
def test_layer_rejects_bad_options(tiny_teacher, small_data, tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        layer(str(tiny_teacher), small_data[1], tmp_path, base=str(tiny_teacher), quiet=True, **kwargs)


def test_layer_without_teacher_needs_alpha_zero(small_data, tmp_path):
    with pytest.raises(ValueError, match="teacher is required"):
        layer(None, small_data[1], tmp_path, alpha=0.5, quiet=True)


def test_place_resume_reuses_a_finished_phase(small_data, tmp_path):
    bench, _ = small_data
    first = place(bench, tmp_path, model="tiny", epochs=1, quiet=True)
    again = place(bench, tmp_path, model="tiny", epochs=1, resume=True, quiet=True)
    assert again == first


def test_subsample_is_seeded_and_sized(small_data):
    _, train = small_data
    a, b = subsample(train, 10, 1), subsample(train, 10, 1)
    assert a == b and len(a) == 10 and subsample(train, 10, 2) != a
    assert subsample(train, None, 0) == list(train)


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(140, 200)  # 70%: textbook Wilson interval [0.6332, 0.7593]
    assert lo == pytest.approx(0.6332, abs=1e-4) and hi == pytest.approx(0.7593, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0


def test_mcnemar_exact_against_binomial():
    a = [True] * 9 + [False] * 1 + [True] * 5
    b = [False] * 9 + [True] * 1 + [True] * 5
    r = mcnemar_exact(a, b)
    # discordant 9 vs 1: two-sided exact binomial p = 2 * P(X <= 1 | n=10, 1/2) = 22/1024
    assert (r["a_only"], r["b_only"]) == (9, 1) and r["p_value"] == pytest.approx(22 / 1024)
    assert chance_level([4, 4, 2]) == pytest.approx((0.25 + 0.25 + 0.5) / 3)


def test_specs_validate_once_as_usage_errors_and_are_frozen():
    import dataclasses

    from pylaundering.errors import ConfigError
    from pylaundering.phases import LayeringSpec, PlacementSpec

    with pytest.raises(ConfigError, match="unknown loss") as exc:
        LayeringSpec.of(loss="kld")  # a usage error, not DistillSpec's ValueError
    assert exc.value.key == "loss"
    with pytest.raises(ConfigError) as exc:
        LayeringSpec.of(student_init="pretrained")
    assert exc.value.key == "student_model"
    assert PlacementSpec(target_accuracy="none").target_accuracy is None
    spec = LayeringSpec.of(loss="jsd", alpha=0.5, student_layers=1)
    assert (spec.distill.kind, spec.distill.alpha, spec.student.layers) == ("jsd", 0.5, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.epochs = 2
