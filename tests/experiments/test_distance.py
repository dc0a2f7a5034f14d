"""The train-benchmark distance's embeddings (experiments/distance.py): against a plain forward pass, and on
the run's device."""

from __future__ import annotations

import pytest
import torch

from pylaundering.experiments.distance import embed, mmd_test
from pylaundering.models.tiny import build_tiny_model

TEXTS = ["the cat sat on the mat", "a dog ran", "birds fly south in winter, mostly", "x"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(build_tiny_model(TEXTS * 5, tmp_path_factory.mktemp("tiny") / "model", seed=0))


def test_embed_is_the_mean_of_the_real_tokens_last_hidden_states(tiny):
    from transformers import AutoModel, AutoTokenizer

    got = embed(tiny, TEXTS, batch_size=3)  # two batches, padded differently
    tok, net = AutoTokenizer.from_pretrained(tiny), AutoModel.from_pretrained(tiny).eval()
    for i, text in enumerate(TEXTS):  # one text at a time: no padding at all
        with torch.no_grad():
            hidden = net(**tok(text, return_tensors="pt")).last_hidden_state[0]
        torch.testing.assert_close(got[i], hidden.mean(0), rtol=1e-4, atol=1e-5)
    assert got.device.type == "cpu" and got.shape == (len(TEXTS), hidden.shape[-1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_embed_on_the_gpu_gives_the_cpu_embeddings_on_the_cpu(tiny):
    cpu, gpu = embed(tiny, TEXTS), embed(tiny, TEXTS, device="cuda")
    assert gpu.device.type == "cpu"
    torch.testing.assert_close(gpu, cpu, rtol=1e-3, atol=1e-4)
    # the test on them: the same decision
    a, b = mmd_test(cpu[:2], cpu[2:], permutations=50), mmd_test(gpu[:2], gpu[2:], permutations=50)
    assert a["p_value"] == pytest.approx(b["p_value"], abs=0.05)
