"""Every CPU kernel variant, the reference fallback, and a checkout without the extension.

The kernel variant is chosen once per process (PYLAUNDERING_CPU_CAPABILITY caps it) and the
extension is imported once, so those run in fresh subprocesses. PYLAUNDERING_BACKEND is read at
call time, so the reference fallback is also checked in-process over the whole op matrix.
"""

from __future__ import annotations

import os
import textwrap

import pytest
import torch
from ops_oracle import (
    CASES,
    KIND_NAMES,
    REDUCTIONS,
    TOL,
    assert_close_scaled,
    fused_and_oracle,
    make_inputs,
    requires_compiled,
)

import pylaundering.ops as O
from pylaundering.ops import _ext


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


FLAGS = _cpu_flags()
HAS_AVX2 = {"avx2", "fma"} <= FLAGS
HAS_AVX512 = {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= FLAGS
IS_X86 = bool(FLAGS & {"sse2"})

# Runs in the subprocess: every case x dtype at a few shapes against the oracle (max error
# relative to the tolerance, so <= 1 passes), plus the raw outputs for cross-variant comparison.
_CHECK_SCRIPT = textwrap.dedent(
    """
    import json, sys, torch
    sys.path.insert(0, "tests/ops")
    import pylaundering.ops as O
    from ops_oracle import CASES, TOL, fused_and_oracle, make_inputs
    worst = {}
    outs = {}
    for case in CASES:
        for dtype in (torch.float32, torch.bfloat16, torch.float16, torch.float64):
            for V, lead in ((37, (2, 3)), (2500, (2,))):  # vector tails; two statistics blocks
                s, t, y = make_inputs(case, lead, V, dtype, seed=V)
                for reduction in ("none",):  # reductions are Python-side, the same for every variant
                    out, g, e, eg = fused_and_oracle(case, s, t, y, reduction)
                    rtol, atol, gtol = TOL[dtype]
                    e, eg = e.detach(), eg
                    verr = float(((out.double() - e).abs() / (atol + rtol * e.abs().max())).max())
                    gerr = float(((g.double() - eg).abs() / (2.0 ** -23 + gtol * eg.abs().max())).max())
                    key = f"{case.id}/{dtype}/{V}/{reduction}"
                    worst[key] = max(verr, gerr)
                    outs[key] = [out.double().flatten().tolist()[:8], g.double().flatten().tolist()[:8]]
    from pylaundering import _C
    print(json.dumps({"variant": _C.cpu_kernel_variant(), "backend": str(O.backend()), "worst": worst, "outs": outs}))
    """
)


@pytest.fixture(scope="module")
def variant_results():
    """Outputs of each variant's subprocess, to compare the variants with each other."""
    return {}


@pytest.mark.parametrize(
    ("cap", "expected"),
    [
        ("default", "DEFAULT"),
        pytest.param("avx2", "AVX2", marks=pytest.mark.skipif(not HAS_AVX2, reason="CPU has no AVX2/FMA")),
        pytest.param("avx512", "AVX512", marks=pytest.mark.skipif(not HAS_AVX512, reason="CPU has no AVX-512")),
    ],
)
@requires_compiled
def test_cpu_kernel_variant_matches_oracle(run_py, variant_results, cap, expected):
    if not IS_X86 and cap != "default":
        pytest.skip("x86 variants only")
    res = run_py(_CHECK_SCRIPT, env={"PYLAUNDERING_CPU_CAPABILITY": cap})
    assert res["variant"] == expected, res["backend"]
    assert expected in res["backend"]
    bad = {k: v for k, v in res["worst"].items() if not v <= 1.0}
    assert not bad, f"{expected}: errors above tolerance (ratio to tolerance): {bad}"
    variant_results[expected] = res["outs"]
    # variants agree with each other (not bitwise: exp and reductions differ by vector width)
    for other, outs in variant_results.items():
        for key, (vals, grads) in outs.items():
            dtype = key.split("/")[1]
            tol = 2e-2 if ("bfloat16" in dtype or "float16" in dtype) else 1e-4
            a = torch.tensor(res["outs"][key][0] + res["outs"][key][1], dtype=torch.float64)
            b = torch.tensor(vals + grads, dtype=torch.float64)
            torch.testing.assert_close(a, b, rtol=tol, atol=tol * 1e-2, msg=f"{expected} vs {other}: {key}")


_VARIANT = "import json, torch, pylaundering._C as C; print(json.dumps({'v': C.cpu_kernel_variant()}))"
_WIDEST = "AVX512" if HAS_AVX512 else "AVX2" if HAS_AVX2 else "DEFAULT"


@requires_compiled
def test_unset_capability_picks_the_widest_supported_variant(run_py, monkeypatch):
    monkeypatch.delenv("PYLAUNDERING_CPU_CAPABILITY", raising=False)
    assert run_py(_VARIANT)["v"] == _WIDEST


@pytest.mark.parametrize("value", ["", "AVX512", "bogus"])
@requires_compiled
def test_unrecognised_capability_value_does_not_silently_select_default(run_py, value):
    expected = _WIDEST if value != "AVX512" else ("AVX512" if HAS_AVX512 else _WIDEST)
    assert run_py(_VARIANT, env={"PYLAUNDERING_CPU_CAPABILITY": value})["v"] == expected


# --------------------------------------------------------------------------- reference fallback
@pytest.fixture
def forced_reference(monkeypatch):
    monkeypatch.setenv("PYLAUNDERING_BACKEND", "reference")
    b = O.backend()
    assert b.name == "reference" and "PYLAUNDERING_BACKEND" in b.reason
    return b


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64], ids=str)
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_reference_backend_matches_oracle(forced_reference, case, dtype):
    for V, lead in ((4, (7,)), (1000, (2, 3))):
        for reduction in REDUCTIONS:
            s, t, y = make_inputs(case, lead, V, dtype, seed=V)
            out, g, e, eg = fused_and_oracle(case, s, t, y, reduction)
            rtol, atol, gtol = TOL[dtype]
            assert_close_scaled(out, e, rtol, atol, f"reference {case.id} {reduction} value")
            assert_close_scaled(g, eg, gtol, 1e-12, f"reference {case.id} {reduction} grad")


@requires_compiled
def test_reference_and_compiled_agree(monkeypatch):
    s, t = torch.randn(2, 3, 300, dtype=torch.float64), torch.randn(2, 3, 300, dtype=torch.float64)
    y = torch.randint(0, 300, (2, 3))
    y[1, 1] = -100
    results = {}
    for mode in ("", "reference"):
        monkeypatch.setenv("PYLAUNDERING_BACKEND", mode)
        res = []
        for kind in KIND_NAMES:
            a = s.clone().requires_grad_(True)
            loss = O.distill_loss(a, t, y, kind=kind, alpha=0.25, temperature=2.0, reduction="none")
            loss.sum().backward()
            res += [loss.detach(), a.grad]
        results[mode] = res
    for a, b in zip(results[""], results["reference"]):
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-13)


@requires_compiled
def test_reference_backend_in_fresh_process(run_py):
    code = textwrap.dedent(
        """
        import json, warnings, torch
        warnings.simplefilter("error")  # a forced reference must not warn
        import pylaundering.ops as O
        g = torch.Generator().manual_seed(0)
        s, t = torch.randn(4, 6, 50, generator=g), torch.randn(4, 6, 50, generator=g)
        y = torch.randint(0, 50, (4, 6), generator=g)
        out = {}
        for kind in O.KINDS:
            a = s.clone().requires_grad_(True)
            l = O.distill_loss(a, t, y, kind=kind, alpha=0.5, temperature=2.0)
            l.backward()
            out[kind] = [l.item(), a.grad.flatten()[:20].tolist()]
        print(json.dumps({"backend": O.backend().name, "out": out}))
        """
    )
    ref = run_py(code, env={"PYLAUNDERING_BACKEND": "reference"})
    comp = run_py(code, env={"PYLAUNDERING_BACKEND": ""})
    assert ref["backend"] == "reference" and comp["backend"] == "cpp"
    for kind in ref["out"]:
        torch.testing.assert_close(torch.tensor(comp["out"][kind][0]), torch.tensor(ref["out"][kind][0]),
                                   rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(torch.tensor(comp["out"][kind][1]), torch.tensor(ref["out"][kind][1]),
                                   rtol=1e-4, atol=1e-7)


def test_missing_extension_falls_back_with_one_warning(run_py):
    """A checkout whose extension is not importable still works, on the reference, warning once."""
    code = textwrap.dedent(
        """
        import json, sys, warnings
        sys.modules["pylaundering._C"] = None  # import of the extension fails
        import torch
        import torch.nn.functional as F
        import pylaundering.ops as O
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            s, t = torch.randn(3, 10), torch.randn(3, 10)
            a = O.kl_div(s, t, temperature=2.0)
            b = O.kl_div(s, t, temperature=2.0)
        exp = F.kl_div(F.log_softmax(s / 2, -1), F.log_softmax(t / 2, -1), log_target=True, reduction="batchmean") * 4
        msgs = [str(x.message) for x in w]
        try:
            O.cross_entropy(s, torch.tensor([0, 10, 1]))
            err = None
        except ValueError as e:
            err = str(e)
        print(json.dumps({"backend": O.backend().name, "reason": O.backend().reason, "msgs": msgs,
                          "err": abs(a.item() - exp.item()), "same": a.item() == b.item(), "label_err": err}))
        """
    )
    res = run_py(code, env={"PYLAUNDERING_BACKEND": ""})
    assert res["backend"] == "reference"
    assert "not importable" in res["reason"]
    assert len(res["msgs"]) == 1 and "slow PyTorch reference" in res["msgs"][0], res["msgs"]
    assert res["err"] < 1e-5 and res["same"]
    assert res["label_err"] and "out of range" in res["label_err"]


def test_compiled_extension_is_loaded():
    """A broken or missing build fails the suite instead of quietly skipping every kernel test.

    Users who run the tests without building on purpose opt out explicitly: with
    PYLAUNDERING_BACKEND=reference (the reference is then what the suite tests) or
    PYLAUNDERING_TEST_WITHOUT_EXTENSION=1.
    """
    if _ext.forced_reference() or os.environ.get("PYLAUNDERING_TEST_WITHOUT_EXTENSION") == "1":
        pytest.skip("running without the compiled extension on purpose")
    assert _ext._C is not None, (
        f"pylaundering._C did not load ({_ext._LOAD_ERROR}); build it with `make install`, or set "
        "PYLAUNDERING_TEST_WITHOUT_EXTENSION=1 to test the reference fallback only"
    )
    assert _ext.compiled_available("cpu") and O.backend("cpu").name == "cpp"
