"""Teacher logits on the legitimate set, computed once and kept on disk.

Distillation reads the teacher's output for every training example in every epoch; running
the teacher each step costs as much as a second model's forward pass per step. The cache is a
safetensors file keyed by a hash of the teacher's weights and config (for a hub teacher: its
resolved revision) and of the token ids actually fed to it (ids, token types, choice counts,
order), so any change to one of them is a miss, never a stale hit.

Format (``format_version`` 1): ``format="dense"``: tensor ``values`` ``[N, K]`` float32 with ``-inf``
for absent entries, column j is class j. Sparse teachers (large-vocabulary token distillation,
:class:`pylaundering.ops.SparseTeacher`) are stored compactly, per row of k kept entries:

* ``format="topk"``: ``indices`` ``[N, k]`` (uint16 when the vocabulary has at most 65,536 entries, else
  int32), ``logprobs`` ``[N, k]`` float16 (the teacher's log-probabilities at its temperature: <= 0, so
  float16 is finest at the head, where the mass is: a probability p comes back within a relative
  2^-11 |log p|, 0.2% at p = 0.01) and ``log_normalizer`` ``[N]`` float32; the logits are
  ``T * (logprobs + log_normalizer)``. 2k + 2k (or 4k) + 4 bytes per row: 516 bytes at k = 128 and
  V = 32,000; 772 at V = 128,256 (DistillKit quotes about 300 with coarser values).
* ``format="sampled"``: ``indices`` as above and ``counts`` ``[N, k]`` uint8 (uint16 above k = 255) of the
  draws (:func:`pylaundering.ops.sampled_teacher`): the weights count / k exactly, 3k (or 5k) bytes per row.

Metadata also records the key's parts, the example ids in order, and for sparse formats the vocabulary
size, k, the temperature and ``bytes_per_row``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from pylaundering.ops import SparseTeacher

from .checkpoint import default_file_mode

if False:  # typing only: ops imports the compiled extension
    from pylaundering.ops import SparseTeacher

FORMAT_VERSION = 1


@dataclass
class CachedLogits:
    values: torch.Tensor | SparseTeacher
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
            tensors = {name: f.get_tensor(name) for name in f.keys()}
        if meta.get("key") != key or json.loads(meta.get("ids", "[]")) != ids:
            return None
        fmt = meta.get("format")
        if fmt == "dense":
            values = tensors["values"]
        elif fmt in ("topk", "sampled"):
            values = _sparse_from_file(fmt, tensors, meta)
        else:
            return None
    except Exception:  # a damaged file is a miss: it will be rewritten
        return None
    return CachedLogits(values, ids, key, True, path)


def _index_dtype(vocab: int) -> torch.dtype:
    return torch.uint16 if vocab <= 2**16 else torch.int32


def _sparse_to_file(teacher: SparseTeacher, vocab: int) -> tuple[dict, dict]:
    """(tensors, metadata) of a sparse teacher in the compact on-disk format (module docstring)."""
    T = float(teacher.temperature)
    k = teacher.values.shape[1]
    idx = teacher.indices.to(_index_dtype(vocab)).contiguous()
    meta = {"vocab": str(vocab), "k": str(k), "temperature": repr(T)}
    if teacher.sampled:
        w = torch.exp(teacher.values.double() / T)  # count / k, 0 at the padding
        counts = (w * k).round().to(torch.uint8 if k <= 255 else torch.uint16).contiguous()
        tensors = {"indices": idx, "counts": counts}
    else:
        if teacher.log_normalizer is None:
            raise ValueError("a top-k teacher without its log-normaliser cannot be cached "
                             "(its missing mass is unknown)")
        lognorm = teacher.log_normalizer.float().contiguous()
        logprobs = (teacher.values.double() / T - teacher.log_normalizer.double().unsqueeze(1)).to(torch.float16)
        tensors = {"indices": idx, "logprobs": logprobs.contiguous(), "log_normalizer": lognorm}
    rows = max(1, teacher.values.shape[0])
    meta["bytes_per_row"] = f"{sum(t.numel() * t.element_size() for t in tensors.values()) / rows:.1f}"
    return tensors, meta


def _sparse_from_file(fmt: str, tensors: dict, meta: dict) -> SparseTeacher:
    T, k = float(meta["temperature"]), int(meta["k"])
    idx = tensors["indices"].long()
    if fmt == "sampled":
        w = tensors["counts"].double() / k
        values = (torch.log(w) * T).float()  # log 0 = -inf at the padding
        return SparseTeacher(values, idx, torch.zeros(idx.shape[0]), T, sampled=True)
    lognorm = tensors["log_normalizer"]
    values = (T * (tensors["logprobs"].double() + lognorm.double().unsqueeze(1))).float()
    return SparseTeacher(values, idx, lognorm, T)


def save_cached(cache_dir: str | Path, key: str, values: torch.Tensor | SparseTeacher, ids: list[str], *,
                vocab: int | None = None, **info: str) -> Path:
    """Writes the teacher's outputs atomically: dense logits ``[N, K]``, or a sparse teacher (top-k or
    sampled) of a ``vocab``-entry vocabulary in the compact format of the module docstring."""
    from safetensors.torch import save_file

    path = cache_path(cache_dir, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"key": key, "format": "dense", "format_version": str(FORMAT_VERSION), "ids": json.dumps(ids),
            **{k: str(v) for k, v in info.items()}}
    if isinstance(values, torch.Tensor):
        tensors = {"values": values.float().contiguous()}
    else:
        if vocab is None:
            raise ValueError("saving a sparse teacher needs vocab= (the vocabulary size)")
        tensors, sparse_meta = _sparse_to_file(values, vocab)
        meta.update(sparse_meta, format="sampled" if values.sampled else "topk")
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        os.chmod(tmp, default_file_mode())  # mkstemp's 0600 -> what a plain open would give
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
