"""The teacher-logit cache: computed once, reused, never stale."""

from __future__ import annotations

import dataclasses

import torch

from pylaundering.phases.layering import teacher_logits
from pylaundering.train.evaluate import predict_logits
from pylaundering.phases.common import encode
from pylaundering.models import load_model


def test_miss_then_hit_with_identical_values(tiny_teacher, small_data, tmp_path):
    _, train = small_data
    first, info1 = teacher_logits(str(tiny_teacher), train, max_length=32, cache_dir=tmp_path, quiet=True)
    second, info2 = teacher_logits(str(tiny_teacher), train, max_length=32, cache_dir=tmp_path, quiet=True)
    assert info1["cache"] == "miss" and info2["cache"] == "hit"
    assert info1["cache_file"] == info2["cache_file"]
    assert torch.equal(first, second)
    # The cached values are the teacher's logits, not something else of the right shape.
    data = encode(str(tiny_teacher), train, 32)
    direct = predict_logits(load_model(str(tiny_teacher)), data.encoded, pad_token_id=data.pad_token_id, quiet=True)
    torch.testing.assert_close(first, direct)


def test_changed_data_is_a_miss(tiny_teacher, small_data, tmp_path):
    _, train = small_data
    teacher_logits(str(tiny_teacher), train, max_length=32, cache_dir=tmp_path, quiet=True)
    edited = list(train)
    edited[3] = dataclasses.replace(edited[3], question=edited[3].question + " Really?")
    _, info = teacher_logits(str(tiny_teacher), edited, max_length=32, cache_dir=tmp_path, quiet=True)
    assert info["cache"] == "miss"
    _, info = teacher_logits(str(tiny_teacher), train, max_length=24, cache_dir=tmp_path, quiet=True)
    assert info["cache"] == "miss", "tokenisation settings are part of the key"
    assert len(list(tmp_path.glob("teacher-logits-*.safetensors"))) == 3


def test_changed_teacher_is_a_miss(tiny_teacher, small_data, tmp_path):
    import shutil

    _, train = small_data
    teacher_logits(str(tiny_teacher), train, max_length=32, cache_dir=tmp_path / "c", quiet=True)
    other = tmp_path / "other"
    shutil.copytree(tiny_teacher, other)
    model = load_model(str(other))
    with torch.no_grad():
        model.classifier.weight.add_(1.0)
    model.save_pretrained(other)
    _, info = teacher_logits(str(other), train, max_length=32, cache_dir=tmp_path / "c", quiet=True)
    assert info["cache"] == "miss"


def test_corrupt_cache_file_is_recomputed(tiny_teacher, small_data, tmp_path):
    _, train = small_data
    values, info = teacher_logits(str(tiny_teacher), train, max_length=32, cache_dir=tmp_path, quiet=True)
    path = tmp_path / info["cache_file"].split("/")[-1]
    path.write_bytes(b"not a safetensors file")
    again, info2 = teacher_logits(str(tiny_teacher), train, max_length=32, cache_dir=tmp_path, quiet=True)
    assert info2["cache"] == "miss"
    assert torch.equal(values, again)
