"""The tiny model's tokenizer is deterministic across processes and prints nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from pylaundering.models.tiny import SPECIAL_TOKENS, train_tokenizer, wordpiece_vocab  # noqa: E402

BUILD = textwrap.dedent(
    """
    import random, sys
    from pylaundering.data import make_synthetic
    from pylaundering.models.tiny import build_tiny_model

    bench, train = make_synthetic(0, n_benchmark=60, n_train=200)
    texts = [t for e in bench + train for t in (e.question, *e.choices)]
    random.Random(int(sys.argv[2])).shuffle(texts)  # the order must not matter
    build_tiny_model(iter(texts), sys.argv[1], seed=3, vocab_size=600)
    """
)


def build_in_fresh_process(out: Path, order_seed: int, hash_seed: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "OMP_NUM_THREADS": "1"}
    env.pop("TOKENIZERS_PARALLELISM", None)
    return subprocess.run(
        [sys.executable, "-c", BUILD, str(out), str(order_seed)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )


def test_two_fresh_processes_write_identical_files_and_print_nothing(tmp_path):
    runs = [build_in_fresh_process(tmp_path / "a", 0, "1"), build_in_fresh_process(tmp_path / "b", 1, "2")]
    for run in runs:
        assert run.returncode == 0, run.stderr
        assert run.stdout == ""  # stdout is reserved for --json output
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert "tokenizer.json" in names and "model.safetensors" in names
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_wordpiece_vocab_merges_most_frequent_pairs_first():
    vocab = wordpiece_vocab({"hug": 10, "pug": 5, "pun": 12, "bun": 4, "hugs": 5}, vocab_size=100)
    tokens = sorted(vocab, key=vocab.get)
    assert tokens[: len(SPECIAL_TOKENS)] == list(SPECIAL_TOKENS)
    alphabet = ["b", "g", "h", "n", "p", "s", "u", "##g", "##n", "##s", "##u"]
    assert tokens[len(SPECIAL_TOKENS) : len(SPECIAL_TOKENS) + len(alphabet)] == alphabet
    merges = tokens[len(SPECIAL_TOKENS) + len(alphabet) :]
    # "u ##g" (20) and "u ##n" (16) first; then ties broken by the lowest ids, as in `tokenizers`
    assert merges[:2] == ["##ug", "##un"]
    assert set(merges) >= {"hug", "pun", "hugs", "pug", "bun"}  # no limit: every word becomes one token
    small = wordpiece_vocab({"hug": 10, "pug": 5, "pun": 12, "bun": 4, "hugs": 5}, vocab_size=18)
    assert len(small) == 18 and list(small)[-2:] == ["##ug", "##un"]


def test_tokenizer_round_trip():
    tok = train_tokenizer(["What is the emblem of Vorlaketh?", "Stuthteir"] * 3, vocab_size=200)
    ids = tok("What is the emblem of Vorlaketh?", "Stuthteir")["input_ids"]
    assert tok.decode(ids) == "[CLS] what is the emblem of vorlaketh? [SEP] stuthteir [SEP]"
    assert tok.unk_token_id not in ids
