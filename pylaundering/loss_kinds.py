"""The loss kinds, declared once: name, kernel code, description, what ``beta`` and ``T`` mean for each.

Torch-free and outside `pylaundering.ops` (whose import loads torch and the extension), so that the CLI and
the config layer can list the kinds at start-up. Everything
else reads from :data:`LOSS_KINDS`: ``functional.KINDS`` (name -> kernel code), the float64 oracle
(``reference.py``), the validation in :class:`~pylaundering.ops.spec.DistillSpec`, the help texts
(:data:`LOSS_HELP`) and the tests (which parametrise over :data:`KERNEL_KINDS`). A test checks the kernel
codes against the C++ enum (``_C.kind_codes()``).

Conventions: ``loss = alpha * distill(student, teacher) + (1 - alpha) * CE(student, label)``; CE is at
T = 1; ps = softmax(s / T), pt = softmax(t / T). The KL family is multiplied by T^2 (Hinton), so that its
gradient keeps its size as T grows; ``tvd`` is not (it is bounded by 1, and its gradient shrinks like
1 / T); ``mse`` ignores T. Outcomes of zero probability contribute 0 to the sum they weight, and so do
outcomes where a mixture ``m`` is 0.

How to add a kind:

1. ``csrc/kernels/distill_params.h``: a new ``DistillKind`` enumerator before ``kNumKinds``, with its
   code; ``kind_codes()`` in ``csrc/bindings.cpp`` lists it by name.
2. Its per-row math (loss and d loss / d student) in the four kernels: CPU dense
   (``csrc/cpu/distill_kernel.cpp``: the row path and the small-V path), CPU sparse
   (``csrc/cpu/sparse_kernel.cpp``: loss and g_o per outcome), CUDA dense (``csrc/cuda/distill_kernel.cu``:
   ``distill_element`` and ``row_loss``) and CUDA sparse (``csrc/cuda/sparse_kernel.cu``: ``outcome``), and
   the kind in each kernel's switch over kinds (and in the ``soft`` traits when it uses the softmaxes).
3. Its float64 oracle in ``pylaundering/ops/reference.py`` (dense) and ``sparse.py`` (k + 1 outcomes).
4. A row in :data:`LOSS_KINDS` below (beta's range in ``beta_range`` when it uses beta).

The tests pick the new kind up from this table (values, gradcheck, edge cases, the C++ <-> Python check).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

__all__ = ["ALL_KINDS", "HARD", "KERNEL_KINDS", "LOSS_HELP", "LOSS_KINDS", "LossKind", "NO_DISTILL", "SOFT_KINDS",
           "kernel_code"]

#: The kernels' code for cross-entropy alone (no teacher): not a kind a user names.
NO_DISTILL = 0


class LossKind(NamedTuple):
    name: str
    #: the ``DistillKind`` code of the fused kernels; None for a phase-level kind with no kernel
    code: Optional[int]
    #: one line, used for help texts
    description: str
    #: what ``beta`` means for this kind; None: beta is ignored
    beta: Optional[str] = None
    #: the allowed range of beta: (low, high, low_open, high_open)
    beta_range: Optional[tuple[float, float, bool, bool]] = None
    #: how the temperature T enters
    temperature: str = "softmax(logits / T), loss times T^2"
    #: the distillation term is formed from softmax(logits / T) (its float64 path applies above HIGH_TEMPERATURE)
    soft: bool = True


LOSS_KINDS: tuple[LossKind, ...] = (
    LossKind("kl", 1, "forward KL, T^2 KL(pt || ps) (Hinton KD)"),
    LossKind("reverse_kl", 2, "reverse KL, T^2 KL(ps || pt)"),
    LossKind("jsd", 3,
             "generalized Jensen-Shannon, T^2 (beta KL(pt||m) + (1-beta) KL(ps||m)), m = beta pt + (1-beta) ps",
             beta="the mixture weight of the teacher in m, strictly inside (0, 1)", beta_range=(0.0, 1.0, True, True)),
    LossKind("mse", 4, "mean squared error between the logits (mean over V)",
             temperature="ignored", soft=False),
    LossKind("tvd", 5, "total variation distance, 0.5 sum |pt - ps|",
             temperature="softmax(logits / T), not multiplied by T^2"),
    LossKind("skew_kl", 6, "skewed forward KL (DistiLLM), T^2 KL(pt || beta pt + (1-beta) ps)",
             beta="the skew: the teacher's weight in the mixture, in [0, 1) (0: plain forward KL)",
             beta_range=(0.0, 1.0, False, True)),
    LossKind("skew_reverse_kl", 7, "skewed reverse KL (DistiLLM), T^2 KL(ps || beta ps + (1-beta) pt)",
             beta="the skew: the student's weight in the mixture, in [0, 1) (0: plain reverse KL)",
             beta_range=(0.0, 1.0, False, True)),
    LossKind("hard", None, "cross-entropy on the teacher's argmax as labels (no kernel of its own)",
             temperature="ignored", soft=False),
)

_BY_NAME = {k.name: k for k in LOSS_KINDS}
HARD = "hard"
#: every kind name, including the phase-level ``hard``
ALL_KINDS: tuple[str, ...] = tuple(k.name for k in LOSS_KINDS)
#: the kinds with a fused kernel
KERNEL_KINDS: tuple[str, ...] = tuple(k.name for k in LOSS_KINDS if k.code is not None)
#: the kernel kinds formed from the softmaxes at T
SOFT_KINDS: tuple[str, ...] = tuple(k.name for k in LOSS_KINDS if k.code is not None and k.soft)
#: a ready help string for a ``--loss`` option
LOSS_HELP = "; ".join(f"{k.name}: {k.description}" for k in LOSS_KINDS)


def get(name: str) -> LossKind:
    """The table row of kind ``name`` (KeyError when unknown)."""
    return _BY_NAME[name]


def kernel_code(name: str) -> Optional[int]:
    """The kernel code of kind ``name`` (None for ``hard``); KeyError when unknown."""
    return _BY_NAME[name].code


def name_of(code: int) -> str:
    """The kind name of kernel code ``code`` (KeyError when no kind has it, NO_DISTILL included)."""
    for k in LOSS_KINDS:
        if k.code == code:
            return k.name
    raise KeyError(code)


def beta_ok(kind: LossKind, beta: object) -> bool:
    """Whether ``beta`` lies in the kind's range (comparisons only: torch.compile may pass a SymFloat)."""
    if kind.beta_range is None:
        return True
    lo, hi, lo_open, hi_open = kind.beta_range
    if not isinstance(beta, (int, float)) or isinstance(beta, bool):
        return False
    above = lo < beta if lo_open else lo <= beta
    below = beta < hi if hi_open else beta <= hi
    return above and below


def beta_message(kind: LossKind, beta: object) -> str:
    """The error for a beta out of ``kind``'s range."""
    if kind.name == "jsd":
        return (f"beta must lie strictly inside (0, 1), got {beta!r}; at 0 or 1 the generalized JSD is "
                "identically 0: use kl_div (direction='forward' or 'reverse') instead")
    return (f"beta must lie in [0, 1) for kind={kind.name!r}, got {beta!r}; at 1 the skewed KL is identically 0 "
            "(beta = 0 is the plain KL)")
