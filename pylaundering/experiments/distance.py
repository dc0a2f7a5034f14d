"""How far the legitimate set lies from the benchmark: an embedding two-sample distance.

The counter-study (Knowledge Distillation as Decontamination?, ICLR 2026) finds the laundering
effect growing with the train-test distribution gap, so every run measures that gap the same way:

  method  MMD^2 (unbiased estimate) with a Gaussian kernel between mean-pooled last-layer
          embeddings of the teacher's base model, one embedding per item (context, question and
          choices, up to ``max_length`` tokens); bandwidth by the median heuristic on the pooled
          sample; at most ``max_items`` items per set, drawn with the run's seed.
  p_value permutation test of the set labels (``permutations`` shuffles, +1 corrected): small
          means the two sets are distinguishable in that embedding space.

MMD^2 is 0 for identical distributions and at most 2 (the unbiased estimate can dip slightly below
0 when the sets are alike); the values are comparable across runs that
use the same base model (a different model is a different ruler). With the ``tiny`` offline base
the embedding comes from a randomly initialised network: a consistent ruler, not a semantic one.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from pathlib import Path

import torch

from ..data.schema import MCExample, examples_hash
from ..models import load_tokenizer, model_fingerprint
from ..models.loading import resolve_model
from ..train.checkpoint import read_json, write_json

METHOD = "mmd2_rbf_mean_pooled_embeddings"


def item_text(e: MCExample) -> str:
    return " ".join(filter(None, [e.context, e.question, " | ".join(e.choices)]))


@torch.no_grad()
def embed(model_path: str, texts: Sequence[str], *, max_length: int = 128, batch_size: int = 64,
          device: str = "cpu") -> torch.Tensor:
    """``[n, H]`` mean-pooled (over real tokens) last hidden states of ``model_path``'s encoder, computed on
    ``device`` (fp32) and returned on the CPU."""
    from transformers import AutoModel

    tok = load_tokenizer(model_path)
    net = AutoModel.from_pretrained(resolve_model(model_path)).to(device)
    net.eval()
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tok(list(texts[i:i + batch_size]), padding=True, truncation=True, max_length=max_length,
                  return_tensors="pt").to(device)
        hidden = net(**enc).last_hidden_state.float()
        mask = enc["attention_mask"].unsqueeze(-1).float()
        out.append((hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0))
    return torch.cat(out).cpu() if out else torch.empty(0, 0)


def mmd_test(x: torch.Tensor, y: torch.Tensor, *, permutations: int = 200, seed: int = 0) -> dict:
    """Unbiased MMD^2 between samples ``x [n, d]`` and ``y [m, d]`` (Gaussian kernel, median-heuristic
    bandwidth) and its permutation p-value."""
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError(f"the distance needs at least 2 items per set (got {n} and {m})")
    z = torch.cat([x, y]).double()
    d2 = torch.cdist(z, z).pow(2)
    off = d2[~torch.eye(n + m, dtype=torch.bool)]
    bandwidth2 = float(off.median()) or 1.0
    k = torch.exp(-d2 / bandwidth2)
    k.fill_diagonal_(0.0)

    def stat(labels: torch.Tensor) -> torch.Tensor:  # labels [P, n+m] bool: True = first set
        a = labels.double()
        b = 1.0 - a
        kxx = torch.einsum("pi,ij,pj->p", a, k, a) / (n * (n - 1))
        kyy = torch.einsum("pi,ij,pj->p", b, k, b) / (m * (m - 1))
        kxy = torch.einsum("pi,ij,pj->p", a, k, b) / (n * m)
        return kxx + kyy - 2 * kxy

    base = torch.zeros(n + m, dtype=torch.bool)
    base[:n] = True
    observed = float(stat(base[None])[0])
    g = torch.Generator().manual_seed(seed)
    perms = torch.stack([base[torch.randperm(n + m, generator=g)] for _ in range(permutations)])
    null = torch.cat([stat(chunk) for chunk in perms.split(50)])
    count = int((null >= observed - 1e-12).sum())
    return {"value": observed, "p_value": (count + 1) / (permutations + 1), "permutations": permutations,
            "bandwidth": bandwidth2 ** 0.5}


def dataset_distance(model_path: str, benchmark: Sequence[MCExample], train: Sequence[MCExample], *, seed: int = 0,
                     max_items: int = 500, max_length: int = 128, permutations: int = 200,
                     cache_dir: str | Path | None = None, device: str = "cpu") -> dict:
    """The legitimate set's distance from the benchmark (module docstring); cached in ``cache_dir``
    under a key of the model's fingerprint, both data hashes and the settings. The embeddings are computed
    on ``device`` (the run's); the test runs on the CPU (the key leaves the device out: fp32 either way)."""
    settings = {"method": METHOD, "model_fingerprint": model_fingerprint(model_path),
                "benchmark_hash": examples_hash(benchmark), "train_hash": examples_hash(train), "seed": seed,
                "max_items": max_items, "max_length": max_length, "permutations": permutations}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    path = Path(cache_dir) / f"distance-{key}.json" if cache_dir is not None else None
    if path is not None and path.exists():
        return read_json(path)
    rng = random.Random(seed)
    b = rng.sample(list(benchmark), min(max_items, len(benchmark)))
    t = rng.sample(list(train), min(max_items, len(train)))
    emb = embed(model_path, [item_text(e) for e in b + t], max_length=max_length, device=device)
    result = {**mmd_test(emb[:len(b)], emb[len(b):], permutations=permutations, seed=seed),
              "method": METHOD, "model": model_path, "n_benchmark": len(b), "n_train": len(t),
              "max_length": max_length, "seed": seed}
    if path is not None:
        write_json(result, path)
    return result
