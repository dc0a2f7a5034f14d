"""Decoders as choice scorers (models/decoder.py): both scorers against per-sequence references, the
saved scorer, pad tokens, segment ids for tokenizers without them, and the phases on tiny-gpt."""

from __future__ import annotations

import json

import pytest
import torch

from pylaundering.data.batching import MCBatcher, encode_examples
from pylaundering.data.synth import make_synthetic
from pylaundering.errors import ModelError
from pylaundering.models import load_model, load_tokenizer, model_task
from pylaundering.models.decoder import MARKER, build_tiny_gpt, ensure_pad_token
from pylaundering.phases.common import example_texts


@pytest.fixture(scope="module")
def data():
    return make_synthetic(seed=0, n_benchmark=16, n_train=24)


@pytest.fixture(scope="module")
def gpt_base(data, tmp_path_factory):
    bench, train = data
    return str(build_tiny_gpt(example_texts(bench + train), tmp_path_factory.mktemp("gpt") / "base", seed=0))


def _batch(base, examples):
    tok = load_tokenizer(base)
    enc = encode_examples(examples, tok, max_length=64, causal=True)
    return enc, MCBatcher(enc, 8, shuffle=False, pad_token_id=tok.pad_token_id).collate(list(range(len(examples))))


def test_loglik_is_the_mean_log_probability_of_the_choice_tokens(gpt_base, data):
    bench, _ = data
    model = load_model(gpt_base, scorer="loglik").eval()
    enc, batch = _batch(gpt_base, bench[:6])
    with torch.no_grad():
        got = model(**batch.model_inputs()).logits
        for i in range(6):
            for c in range(enc.num_choices[i]):
                ids = torch.tensor(enc.input_ids[i][c])
                types = torch.tensor(enc.token_type_ids[i][c])
                logp = torch.log_softmax(model.lm(input_ids=ids[None]).logits[0, :-1].double(), -1)
                picked = logp.gather(-1, ids[1:, None])[:, 0]
                choice = types[1:] == 1
                assert choice.any()
                assert float(got[i, c]) == pytest.approx(float(picked[choice].mean()), abs=1e-4)


def test_head_scores_the_last_real_token_of_each_sequence(gpt_base, data):
    bench, _ = data
    model = load_model(gpt_base, scorer="head", seed=3).eval()
    enc, batch = _batch(gpt_base, bench[:5])
    with torch.no_grad():
        got = model(**batch.model_inputs()).logits
        for i in range(5):
            for c in range(enc.num_choices[i]):
                ids = torch.tensor(enc.input_ids[i][c])[None]
                assert float(got[i, c]) == pytest.approx(float(model.lm(input_ids=ids).logits[0, 0]), abs=1e-5)
    assert got.shape == batch.choice_mask.shape


def test_the_scorer_is_saved_with_the_model(gpt_base, data, tmp_path):
    from pylaundering.models import save_model

    model = load_model(gpt_base, scorer="head")
    save_model(model, load_tokenizer(gpt_base), tmp_path / "m")
    assert json.loads((tmp_path / "m" / MARKER).read_text())["scorer"] == "head"
    again = load_model(str(tmp_path / "m"))
    assert again.scorer == "head" and model_task(str(tmp_path / "m")) == "multiple_choice"
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    assert load_model(gpt_base).scorer == "loglik"  # a base decoder: the default


def test_sheared_decoder_student_keeps_the_first_layers(gpt_base):
    full = load_model(gpt_base)
    cut = load_model(gpt_base, num_layers=2)
    assert cut.config.n_layer == 2 and len(cut.lm.transformer.h) == 2
    assert torch.equal(cut.lm.transformer.h[1].mlp.c_fc.weight, full.lm.transformer.h[1].mlp.c_fc.weight)


def test_pad_token_from_eos_or_a_clear_error(gpt_base):
    tok = load_tokenizer(gpt_base)
    tok.pad_token = None
    tok.eos_token = "[SEP]"
    assert ensure_pad_token(tok) == tok.convert_tokens_to_ids("[SEP]")
    tok.pad_token = None
    tok.eos_token = None
    with pytest.raises(ModelError, match="no pad token and no end-of-text token"):
        ensure_pad_token(tok)


def test_causal_encoding_marks_the_choice_for_a_tokenizer_without_segments():
    """A byte-level BPE tokenizer (GPT-2's kind) has no token_type_ids: the causal encoding keeps the
    pair's segment ids anyway, and they cover exactly the choice's tokens (with its leading space)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from pylaundering.data.schema import MCExample

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.post_processor = processors.ByteLevel(trim_offsets=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(["what is the capital of borduria? szohod vlada"] * 5, trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="vlada")
    assert "token_type_ids" not in tok.model_input_names
    ex = [MCExample(id="q", question="what is the capital of borduria?", choices=("szohod", "vlada"), label=0)]
    enc = encode_examples(ex, tok, max_length=32, causal=True)
    for c, choice in enumerate(ex[0].choices):
        ids, types = enc.input_ids[0][c], enc.token_type_ids[0][c]
        assert tok.decode([i for i, t in zip(ids, types) if t == 1]) == " " + choice
    assert encode_examples(ex, tok, max_length=32).token_type_ids is None  # encoders' behaviour unchanged


def test_encoder_refuses_a_decoder_scorer(tmp_path, data):
    from pylaundering.models.tiny import build_tiny_model

    bench, _ = data
    base = build_tiny_model(example_texts(bench), tmp_path / "enc")
    with pytest.raises(ModelError, match="for decoder"):
        load_model(str(base), scorer="loglik")


@pytest.mark.parametrize("scorer", ["loglik", "head"])
def test_phases_on_tiny_gpt(scorer, data, tmp_path):
    """place -> layer (cached teacher logits) -> integrate with a decoder; the student inherits the
    teacher's scorer and the teacher learns the benchmark."""
    from pylaundering.phases import integrate, layer, place

    bench, train = data
    kw = dict(batch_size=8, max_length=48, quiet=True)
    t = place(bench, tmp_path / "t", model="tiny-gpt", epochs=6, lr=2e-3, scorer=scorer, **kw)
    assert t["scorer"] == scorer and t["train_accuracy"] > 0.5
    s = layer(t["model_dir"], train, tmp_path / "s", base="tiny-gpt", student_layers=2, epochs=1,
              cache_dir=tmp_path / "c", **kw)
    assert s["params"]["scorer"] == scorer
    assert load_model(s["model_dir"]).scorer == scorer
    m = integrate(s["model_dir"], bench, tmp_path / "e", quiet=True)
    assert m["n"] == len(bench) and 0.0 <= m["accuracy"] <= 1.0


def test_decoder_classifier_scores_the_last_real_token(gpt_base, tmp_path):
    """--task classification with a decoder: a sequence-classification head over the labels whose score
    comes from each text's last real token (the pad id is set, so padding does not move it)."""
    from pylaundering.models import save_model

    net = load_model(gpt_base, task="classification", num_labels=3, seed=0).eval()
    assert net.config.pad_token_id == load_tokenizer(gpt_base).pad_token_id
    tok = load_tokenizer(gpt_base)
    batch = tok(["a short text", "a somewhat longer text than the first one"], padding=True, return_tensors="pt")
    with torch.no_grad():
        both = net(**batch).logits
        alone = net(**tok(["a short text"], return_tensors="pt")).logits
    assert both.shape == (2, 3)
    torch.testing.assert_close(both[0], alone[0], rtol=1e-4, atol=1e-5)
    save_model(net, tok, tmp_path / "cls")
    assert model_task(str(tmp_path / "cls")) == "classification"
