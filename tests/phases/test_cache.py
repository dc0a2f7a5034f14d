"""The teacher-logit cache: computed once, reused, never stale."""

from __future__ import annotations

import dataclasses

import torch

from pylaundering.models import load_model
from pylaundering.phases.common import encode
from pylaundering.phases.layering import teacher_logits
from pylaundering.train.evaluate import predict_logits


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
    _, info = teacher_logits(str(tiny_teacher), train, max_length=8, cache_dir=tmp_path, quiet=True)
    assert info["cache"] == "miss", "a max_length that cuts sequences changes the token ids: a miss"
    assert len(list(tmp_path.glob("teacher-logits-*.safetensors"))) == 3
    # The key is what the teacher is fed, not the setting's value: a longer max_length that cuts
    # nothing feeds the same ids, so it is (correctly) a hit.
    _, info = teacher_logits(str(tiny_teacher), train, max_length=100, cache_dir=tmp_path, quiet=True)
    assert info["cache"] == "hit"


def test_key_follows_the_token_ids_not_the_tokenizer_class(tiny_teacher, small_data, tmp_path, monkeypatch):
    """Two tokenizers of the same class with different vocabularies feed different ids: never a
    stale hit, even when the teacher's fingerprint is the same (a hub name whose revision is
    unknown, say)."""
    import shutil

    from pylaundering.models.tiny import build_tiny_model
    from pylaundering.phases import layering

    bench, train = small_data
    other = tmp_path / "other"
    shutil.copytree(tiny_teacher, other)
    # Same class (PreTrainedTokenizerFast), different vocabulary: trained on the training texts only.
    retok = build_tiny_model([e.question for e in train] + [c for e in train for c in e.choices],
                             tmp_path / "retok", vocab_size=300)
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (retok / f).exists():
            shutil.copy(retok / f, other / f)
    monkeypatch.setattr(layering, "model_fingerprint", lambda path: "same-weights")
    _, first = teacher_logits(str(tiny_teacher), train, max_length=32, cache_dir=tmp_path / "c", quiet=True)
    values, second = teacher_logits(str(other), train, max_length=32, cache_dir=tmp_path / "c", quiet=True)
    assert first["cache"] == "miss" and second["cache"] == "miss"
    data = encode(str(other), train, 32)
    direct = predict_logits(load_model(str(other)), data.encoded, pad_token_id=data.pad_token_id, quiet=True)
    torch.testing.assert_close(values, direct)


def test_inputs_hash_covers_ids_types_choices_and_order(tiny_teacher, small_data):
    from pylaundering.train.cache import inputs_hash

    _, train = small_data
    enc = encode(str(tiny_teacher), train, 32).encoded
    base = inputs_hash(enc)
    assert inputs_hash(encode(str(tiny_teacher), train, 32).encoded) == base
    assert inputs_hash(encode(str(tiny_teacher), list(reversed(train)), 32).encoded) != base
    enc.input_ids[0][0] = enc.input_ids[0][0][:-1] + [enc.input_ids[0][0][-1] + 1]
    assert inputs_hash(enc) != base


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


def test_hub_teacher_fingerprint_follows_the_resolved_revision(tmp_path, monkeypatch):
    """A hub name is fingerprinted by the commit it resolved to, so a new revision pushed under the
    same name is a cache miss (it used to be the name alone: a stale hit)."""
    import huggingface_hub.constants

    from pylaundering.models.loading import hub_revision, model_fingerprint

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--org--teacher"

    def publish(commit):
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "snapshots" / commit / "config.json").write_text("{}")

    publish("1111111")
    first = model_fingerprint("org/teacher")
    assert hub_revision("org/teacher") == "1111111"
    publish("2222222")
    assert hub_revision("org/teacher") == "2222222"
    assert model_fingerprint("org/teacher") != first
    assert hub_revision("org/not-cached") is None
