"""place and layer under torchrun with 2 CPU processes (gloo): the final weights equal one process with
the same global batch (dropout off: each rank draws its own masks), rank 0 alone writes, and a
finished phase is reused by --resume under torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from pylaundering.data.schema import write_jsonl
from pylaundering.data.synth import make_synthetic
from pylaundering.models.tiny import build_tiny_model
from pylaundering.phases.common import example_texts


def _launder(*args, procs: int = 1, cwd=None):
    prefix = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={procs}"] \
        if procs > 1 else [sys.executable]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([*prefix, "-m", "pylaundering.cli.app", *args], capture_output=True, text=True, env=env,
                       cwd=cwd, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    bench, train = make_synthetic(seed=0, n_benchmark=20, n_train=27)  # 27: a last batch shorter than usual
    write_jsonl(bench, root / "bench.jsonl")
    write_jsonl(train, root / "train.jsonl")
    base = build_tiny_model(example_texts(bench + train), root / "base")
    config = json.loads((base / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (base / "config.json").write_text(json.dumps(config))
    return root, str(base)


def _same_weights(a, b):
    wa, wb = load_file(str(a / "model" / "model.safetensors")), load_file(str(b / "model" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    # The multiple-choice head's bias shifts every choice's score alike: its exact gradient is 0, so what
    # it gets is rounding noise, which Adam scales up to full-size steps. It is not compared.
    for k in sorted(set(wa) - {"classifier.bias"}):
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=2e-5, msg=lambda m, k=k: f"{k}: {m}")


def test_two_processes_train_the_same_weights_as_one(setup):
    root, base = setup
    common = ["--batch-size", "8", "--max-length", "32", "--seed", "3", "-q"]
    place = ["place", "--benchmark", str(root / "bench.jsonl"), "--model", base, "--epochs", "2",
             "--target-accuracy", "0", *common]
    _launder(*place, "--out", str(root / "t1"))
    r = _launder(*place, "--out", str(root / "t2"), procs=2)
    assert r.stdout.count("placement") == 1  # rank 0 alone prints its table
    _same_weights(root / "t1", root / "t2")
    m1, m2 = (json.loads((root / t / "metrics.json").read_text()) for t in ("t1", "t2"))
    assert m1["steps"] == m2["steps"] and m1["history"][-1]["loss"] == pytest.approx(m2["history"][-1]["loss"],
                                                                                     rel=1e-4)
    layer = ["layer", "--teacher", str(root / "t1" / "model"), "--train", str(root / "train.jsonl"), "--base", base,
             "--student-layers", "1", "--epochs", "2", "--loss", "kl", "--alpha", "0.7", *common]
    _launder(*layer, "--out", str(root / "s1"))
    _launder(*layer, "--out", str(root / "s2"), procs=2)
    _same_weights(root / "s1", root / "s2")
    assert not list((root / "s2").glob("checkpoint*"))  # rank 0 removed its checkpoint when done
    before = (root / "s2" / "metrics.json").read_text()
    _launder(*layer, "--out", str(root / "s2"), "--resume", procs=2)
    assert (root / "s2" / "metrics.json").read_text() == before  # the finished phase was reused
