"""Teacher logits on the legitimate set, computed once and kept on disk.

Distillation reads the teacher's output for every training example in every epoch; running
the teacher each step costs as much as a second model's forward pass per step. The cache is a
safetensors file keyed by a hash of the teacher's weights and config (for a hub teacher: its
resolved revision) and of the token ids actually fed to it (ids, token types, choice counts,
order), so any change to one of them is a miss, never a stale hit.

Format (``format_version`` 1): tensor ``values`` ``[N, K]`` float32 with ``-inf`` for absent
entries; ``format="dense"`` means column j is class j. ``format="topk"`` (for large-vocabulary
token distillation) adds ``indices`` ``[N, K]`` int64 naming the class of each value. Metadata
also records the key's parts and the example ids in order.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import default_file_mode

FORMAT_VERSION = 1


@dataclass
class CachedLogits:
    values: torch.Tensor
    ids: list[str]
    key: str
    hit: bool
    path: Path | None


def inputs_hash(encoded) -> str:
    """A hash of exactly what the teacher is fed: per example (in order) its id, choice count,
    token ids and token types. Two tokenizers of the same class with different vocabularies,
    a changed max_length that truncates, a reordered data set: all change it; a setting that
    changes nothing the model sees does not."""
    h = hashlib.sha256()
    types = encoded.token_type_ids
    for i in range(len(encoded)):
        row = [encoded.ids[i], encoded.num_choices[i], encoded.input_ids[i], None if types is None else types[i]]
        h.update(json.dumps(row, separators=(",", ":")).encode())
        h.update(b"\n")
    return h.hexdigest()


def cache_key(*, model_fingerprint: str, inputs: str) -> str:
    """The key of a teacher's logits: the teacher's weights (or hub revision) and the inputs'
    hash (``inputs_hash``). Nothing else determines the logits."""
    blob = json.dumps({"v": FORMAT_VERSION, "model": model_fingerprint, "inputs": inputs}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def cache_path(cache_dir: str | Path, key: str) -> Path:
    return Path(cache_dir) / f"teacher-logits-{key[:20]}.safetensors"


def load_cached(cache_dir: str | Path, key: str, ids: list[str]) -> CachedLogits | None:
    from safetensors import safe_open

    path = cache_path(cache_dir, key)
    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            values = f.get_tensor("values")
    except Exception:  # a damaged file is a miss: it will be rewritten
        return None
    if meta.get("key") != key or json.loads(meta.get("ids", "[]")) != ids or meta.get("format") != "dense":
        return None
    return CachedLogits(values, ids, key, True, path)


def save_cached(cache_dir: str | Path, key: str, values: torch.Tensor, ids: list[str], **info: str) -> Path:
    from safetensors.torch import save_file

    path = cache_path(cache_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"key": key, "format": "dense", "format_version": str(FORMAT_VERSION), "ids": json.dumps(ids),
            **{k: str(v) for k, v in info.items()}}
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file({"values": values.float().contiguous()}, tmp, metadata=meta)
        os.chmod(tmp, default_file_mode())  # mkstemp's 0600 -> what a plain open would give
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
