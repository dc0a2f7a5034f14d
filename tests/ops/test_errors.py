"""Bad input raises ValueError/TypeError naming the problem; misuse of autograd raises RuntimeError."""

from __future__ import annotations

import pytest
import torch
from ops_oracle import KIND_NAMES, requires_compiled

import pylaundering.ops as O

S = torch.randn(3, 5)
T_ = torch.randn(3, 5)
Y = torch.tensor([0, 4, -100])

# every public entry point that takes (student, teacher)
PAIR_FNS = {
    "kl_div": lambda s, t: O.kl_div(s, t),
    "kl_div_reverse": lambda s, t: O.kl_div(s, t, direction="reverse"),
    "jsd": lambda s, t: O.jsd(s, t),
    "logit_mse": lambda s, t: O.logit_mse(s, t),
    "distill_loss": lambda s, t: O.distill_loss(s, t, Y[: s.shape[0]] if s.dim() == 2 else None,
                                                alpha=0.5 if s.dim() == 2 else 1.0),
    "DistillLoss": lambda s, t: O.DistillLoss(kind="jsd")(s, t),
}


@pytest.fixture(params=["compiled", "reference"])
def backend(request, monkeypatch):
    """Both implementations: the C++ kernels, and the reference forced by the environment variable."""
    if request.param == "reference":
        monkeypatch.setenv("PYLAUNDERING_BACKEND", "reference")
        assert O.backend().name == "reference"
    else:
        monkeypatch.delenv("PYLAUNDERING_BACKEND", raising=False)
        if O.backend().name != "cpp":
            pytest.skip("compiled CPU kernels not available")
    return request.param


@pytest.mark.parametrize("fn", PAIR_FNS.values(), ids=PAIR_FNS.keys())
def test_shape_mismatch(fn):
    with pytest.raises(ValueError, match=r"shape mismatch: student \(3, 5\) vs teacher \(3, 6\)"):
        fn(S, torch.randn(3, 6))
    with pytest.raises(ValueError, match="shape mismatch"):
        fn(S, torch.randn(5))


@pytest.mark.parametrize("fn", PAIR_FNS.values(), ids=PAIR_FNS.keys())
def test_dtype_mismatch(fn):
    with pytest.raises(TypeError, match="dtype mismatch: student torch.float32 vs teacher torch.float64"):
        fn(S, T_.double())


@pytest.mark.parametrize("fn", PAIR_FNS.values(), ids=PAIR_FNS.keys())
def test_device_mismatch(fn):
    with pytest.raises(ValueError, match="device mismatch: student on cpu, teacher on meta"):
        fn(S, T_.to("meta"))


def test_labels_device_mismatch():
    with pytest.raises(ValueError, match="device mismatch: student on cpu, labels on meta"):
        O.cross_entropy(S, Y.to("meta"))
    with pytest.raises(ValueError, match="device mismatch"):
        O.distill_loss(S, T_, Y.to("meta"), alpha=0.5)


@pytest.mark.parametrize("bad", [torch.tensor([1, 2, 3]), torch.ones(3, 5, dtype=torch.bool),
                                 torch.randn(3, 5).to(torch.complex64)],
                         ids=["int", "bool", "complex"])
def test_non_float_logits(bad):
    with pytest.raises(TypeError, match="student logits must be float32, float64, bfloat16 or float16"):
        O.kl_div(bad, bad)


def test_not_a_tensor():
    with pytest.raises(TypeError, match="student must be a torch.Tensor of logits, got list"):
        O.kl_div([[1.0, 2.0]], T_)
    with pytest.raises(TypeError, match="teacher must be a torch.Tensor of logits, got ndarray"):
        import numpy as np

        O.jsd(S, np.zeros((3, 5)))
    with pytest.raises(TypeError, match="labels must be a torch.Tensor of class indices, got list"):
        O.cross_entropy(S, [0, 1, 2])


def test_scalar_and_empty_class_dim():
    with pytest.raises(ValueError, match="at least one dimension"):
        O.kl_div(torch.tensor(1.0), torch.tensor(1.0))
    with pytest.raises(ValueError, match=r"empty class dimension \(V = 0\)"):
        O.kl_div(torch.randn(3, 0), torch.randn(3, 0))


@pytest.mark.parametrize("T", [0.0, -1.0, float("nan"), float("inf"), "2"])
def test_bad_temperature(T):
    for call in (lambda: O.kl_div(S, T_, temperature=T), lambda: O.jsd(S, T_, temperature=T),
                 lambda: O.distill_loss(S, T_, temperature=T)):
        with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
            call()


@pytest.mark.parametrize("alpha", [-0.1, 1.01, float("nan"), None])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\]"):
        O.distill_loss(S, T_, Y, alpha=alpha)


@pytest.mark.parametrize("beta", [0.0, 1.0, -0.5, 1.5, float("nan")])
def test_bad_beta(beta):
    with pytest.raises(ValueError, match=r"beta must lie strictly inside \(0, 1\).*use kl_div"):
        O.jsd(S, T_, beta=beta)
    with pytest.raises(ValueError, match=r"beta must lie strictly inside \(0, 1\)"):
        O.distill_loss(S, T_, kind="jsd", beta=beta)
    with pytest.raises(ValueError, match="beta"):
        O.JSDLoss(beta=beta)(S, T_)


def test_beta_is_ignored_unless_jsd():
    """beta only means something for kind='jsd'; other kinds do not reject it."""
    assert torch.isfinite(O.distill_loss(S, T_, kind="kl", beta=0.0))


@pytest.mark.parametrize("label", [5, 17, -1, -101])
def test_label_out_of_range(backend, label):
    y = torch.tensor([0, label, 1])
    with pytest.raises(ValueError, match=rf"label {label} .*out of range \[0, 5\).*ignore_index \(-100\)"):
        O.cross_entropy(S, y)
    with pytest.raises(ValueError, match=rf"label {label} .*out of range"):
        O.distill_loss(S, T_, y, alpha=0.5)
    with pytest.raises(ValueError, match="out of range"):
        O.distill_loss(S, T_, y, kind="jsd", alpha=0.0)


def test_label_equal_to_custom_ignore_index_is_not_out_of_range(backend):
    y = torch.tensor([0, 7, 1])
    assert torch.isfinite(O.cross_entropy(S, y, ignore_index=7))


@pytest.mark.parametrize(
    ("labels", "exc", "msg"),
    [
        (torch.tensor([0, 1]), ValueError,
         r"shape mismatch: labels \(2,\) must equal the student's leading shape \(3,\)"),
        (torch.tensor([[0, 1, 2]]), ValueError, "shape mismatch: labels"),
        (torch.tensor([0.0, 1.0, 2.0]), TypeError,
         "labels must be an integer tensor of class indices, got torch.float32"),
        (torch.tensor([True, False, True]), TypeError, "labels must be an integer tensor"),
    ],
    ids=["short", "extra_dim", "float", "bool"],
)
def test_bad_labels(labels, exc, msg):
    with pytest.raises(exc, match=msg):
        O.cross_entropy(S, labels)
    with pytest.raises(exc, match=msg):
        O.distill_loss(S, T_, labels, alpha=0.5)


def test_unknown_kind_reduction_direction():
    with pytest.raises(ValueError, match="unknown kind 'kld'; expected one of "
                                         "kl, reverse_kl, jsd, mse, tvd, skew_kl, skew_reverse_kl"):
        O.distill_loss(S, T_, kind="kld")
    for fn in (lambda r: O.kl_div(S, T_, reduction=r), lambda r: O.jsd(S, T_, reduction=r),
               lambda r: O.logit_mse(S, T_, reduction=r), lambda r: O.cross_entropy(S, Y, reduction=r),
               lambda r: O.distill_loss(S, T_, reduction=r)):
        with pytest.raises(ValueError, match="unknown reduction 'avg'; expected one of none, sum, mean, batchmean"):
            fn("avg")
    with pytest.raises(ValueError, match="unknown direction 'backward'; expected 'forward' or 'reverse'"):
        O.kl_div(S, T_, direction="backward")


def test_missing_teacher_or_labels():
    with pytest.raises(ValueError, match="teacher logits are required when alpha > 0"):
        O.distill_loss(S, None, Y, alpha=0.5)
    with pytest.raises(ValueError, match=r"alpha=0.5 < 1 mixes in cross-entropy, which needs labels"):
        O.distill_loss(S, T_, None, alpha=0.5)


def test_teacher_shape_checked_even_when_alpha_is_zero():
    with pytest.raises(ValueError, match="shape mismatch"):
        O.distill_loss(S, torch.randn(3, 4), Y, alpha=0.0)


# --------------------------------------------------------------------------- autograd misuse
@pytest.mark.parametrize("kind", KIND_NAMES)
@requires_compiled
def test_second_backward_with_retain_graph_gives_the_same_gradient(kind):
    # The saved gradient is scaled out of place while the graph is retained, so a second
    # backward sees unscaled values (an in-place scale would double-apply it).
    s = torch.randn(4, 7, requires_grad=True)
    loss = O.distill_loss(s, torch.randn(4, 7), kind=kind)
    loss.backward(retain_graph=True)
    first = s.grad.clone()
    loss.backward()
    torch.testing.assert_close(s.grad, 2 * first)


def test_second_backward_after_recompute_is_fine():
    s, t = torch.randn(4, 7, requires_grad=True), torch.randn(4, 7)
    O.kl_div(s, t).backward()
    g1 = s.grad.clone()
    O.kl_div(s, t).backward()
    torch.testing.assert_close(s.grad, 2 * g1)


@requires_compiled
def test_autograd_grad_twice_is_consistent():
    s = torch.randn(2, 3, requires_grad=True)
    loss = O.jsd(s, torch.randn(2, 3))
    (g1,) = torch.autograd.grad(loss, s, retain_graph=True)
    (g2,) = torch.autograd.grad(loss, s)
    torch.testing.assert_close(g1, g2)
