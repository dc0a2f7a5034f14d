"""Issue 33 item 3: advisory folder locks (pylaundering/lock.py) and save_model under concurrency."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pylaundering.errors import LockHeld
from pylaundering.lock import LOCK_NAME, check_free, holder, locked

HOLD = textwrap.dedent("""
    import sys, time
    from pylaundering.lock import locked
    with locked(sys.argv[1], what="test"):
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def _hold(folder: Path, seconds: float = 60.0) -> subprocess.Popen:
    """Another process holding ``folder``'s lock (until killed or ``seconds`` passed)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), str(seconds)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_process_is_refused_naming_the_holder(tmp_path):
    proc = _hold(tmp_path / "f")
    try:
        with pytest.raises(LockHeld) as err:
            with locked(tmp_path / "f", what="run"):
                pass
        text = str(err.value)
        assert f"pid {proc.pid}" in text and os.uname().nodename in text and "since" in text
        assert "\n" not in text
        with pytest.raises(LockHeld, match=f"pid {proc.pid}"):
            check_free(tmp_path / "f")
        assert holder(tmp_path / "f")["pid"] == proc.pid
    finally:
        proc.kill()
        proc.wait()
    # the holder died (SIGKILL): its lock file stays but the kernel released the lock
    assert (tmp_path / "f" / LOCK_NAME).exists()
    with locked(tmp_path / "f"):
        assert holder(tmp_path / "f")["pid"] == os.getpid()


def test_lock_is_released_after_an_exception(tmp_path):
    with pytest.raises(RuntimeError):
        with locked(tmp_path / "f"):
            raise RuntimeError("boom")
    check_free(tmp_path / "f")
    out = subprocess.run([sys.executable, "-c", HOLD, str(tmp_path / "f"), "0"], capture_output=True, text=True)
    assert out.returncode == 0 and "locked" in out.stdout, out.stderr


def test_waiting_lock_waits_for_the_holder(tmp_path):
    proc = _hold(tmp_path / "f", seconds=1.0)
    try:
        t0 = time.perf_counter()
        with locked(tmp_path / "f", wait=True, quiet=True):
            assert time.perf_counter() - t0 > 0.3
    finally:
        proc.wait()


def test_lock_is_reentrant_in_one_process(tmp_path):
    with locked(tmp_path / "f"):
        with locked(tmp_path / "f"):
            check_free(tmp_path / "f")
        assert holder(tmp_path / "f")["pid"] == os.getpid()


def test_place_in_a_folder_another_process_holds_is_refused(tmp_path):
    from pylaundering.data.synth import make_synthetic
    from pylaundering.phases import place

    bench, _ = make_synthetic(0, n_benchmark=8, n_train=16)
    proc = _hold(tmp_path / "t")
    try:
        with pytest.raises(LockHeld, match=f"pid {proc.pid}"):
            place(bench, tmp_path / "t", model="tiny", epochs=1, quiet=True)
    finally:
        proc.kill()
        proc.wait()
    assert not (tmp_path / "t" / "model").exists() and not (tmp_path / "t" / "phase.json").exists()


def test_second_sweep_on_one_folder_is_refused_naming_the_holder(tmp_path):
    from typer.testing import CliRunner

    from pylaundering.cli.app import app

    proc = _hold(tmp_path / "s")
    try:
        r = CliRunner().invoke(app, ["sweep", "--out", str(tmp_path / "s"), "--model", "tiny", "-p", "alpha=0,1",
                                     "-q"])
        assert r.exit_code == 1, r.output
        assert f"pid {proc.pid}" in r.output and "error:" in r.output
        assert not (tmp_path / "s" / "sweep.json").exists()
    finally:
        proc.kill()
        proc.wait()


def test_two_concurrent_save_model_calls_both_leave_a_loadable_model(tmp_path):
    """The second saver runs entirely inside the first one's save (the interleaving that made the fixed
    temporary name destroy the first saver's files): both calls succeed and the folder loads."""
    from pylaundering.models import load_tokenizer
    from pylaundering.models.loading import load_model
    from pylaundering.models.saving import save_model
    from pylaundering.models.tiny import build_tiny_model

    base = build_tiny_model(["a b c d", "e f g h"], tmp_path / "base")
    net, tok = load_model(str(base)), load_tokenizer(str(base))
    out = tmp_path / "out" / "model"
    out.parent.mkdir()

    class Interleaved:  # the first saver's model: the second saver runs while it writes
        def __init__(self):
            self.nested = False

        def save_pretrained(self, where):
            net.save_pretrained(where)
            if not self.nested:
                self.nested = True
                save_model(net, tok, out)

    save_model(Interleaved(), tok, out)
    assert (out / "config.json").exists() and (out / "tokenizer_config.json").exists()
    load_model(str(out))
    assert [p.name for p in out.parent.iterdir()] == ["model"]  # no temporary folder left


def test_a_sweep_point_waits_for_a_shared_phase_another_point_holds(tmp_path):
    """Inside lock.waiting() (how run_experiment runs a sweep point), a phase whose folder another process
    holds waits for it, then runs, instead of failing."""
    from pylaundering.data.synth import make_synthetic
    from pylaundering.lock import waiting
    from pylaundering.phases import place

    bench, _ = make_synthetic(0, n_benchmark=8, n_train=16)
    proc = _hold(tmp_path / "shared-teacher", seconds=1.5)
    try:
        t0 = time.perf_counter()
        with waiting():
            m = place(bench, tmp_path / "shared-teacher", model="tiny", epochs=1, resume=True, quiet=True)
        assert time.perf_counter() - t0 > 1.0 and m["phase"] == "placement"
    finally:
        proc.wait()
