"""One mechanism for every fused op family: fake (meta) implementation plus autograd.

A *row-fused* op takes row-major inputs and returns ``(row_values, grad_0, grad_1, ...)``: one
value per row, and the gradient of each row's value with respect to some inputs, computed in the
forward pass (as Liger-Kernel does). Backward is then a per-row scale of the saved gradients, the
same for every family, so a new family (fused-linear, top-k, ...) registers its schema in C++, a
fake function here, and says which inputs its saved gradients belong to; nothing is copied.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RowFusedOp:
    qualname: str  # "pylaundering::fused_distill"
    n_inputs: int
    grad_inputs: tuple[int, ...]  # input position of each saved gradient, in output order
    # Input position of the op's grad_scale (the factor its gradients were written with), or None.
    scale_input: int | None = None

    @property
    def op(self):
        ns, name = self.qualname.split("::")
        return getattr(getattr(torch.ops, ns), name)


REGISTRY: dict[str, RowFusedOp] = {}


def _keep_graph() -> bool:
    try:
        return bool(torch._C._autograd._get_current_graph_task_keep_graph())
    except (AttributeError, RuntimeError):  # private API: assume the graph is kept (always safe)
        return True


def first_order_only(name: str, grads):
    """``grads`` (a backward's results, None where no gradient) made to refuse a second derivative.

    These ops' gradients are computed by kernels (in the forward pass or a second walk), outside autograd:
    with ``create_graph=True`` they would carry no graph of their own, and a gradient of them would come
    out silently zero. Under ``create_graph=True`` (the only case in which backward runs with grad mode on)
    each gradient gets a node that raises a clear error when it is differentiated; a first-order backward
    is untouched."""
    grads = tuple(grads)
    pos = [i for i, g in enumerate(grads) if isinstance(g, torch.Tensor)]
    if not pos or not torch.is_grad_enabled():
        return grads
    msg = (f"{name}: double backward (differentiating its gradient, create_graph=True) is not supported; "
           "the plain-PyTorch formulas of pylaundering.ops.reference support it")
    err = torch._C._functions.DelayedError(msg.encode(), len(pos))
    wrapped = err(*(grads[i] if grads[i].requires_grad else grads[i].detach().requires_grad_() for i in pos))
    if isinstance(wrapped, torch.Tensor):
        wrapped = (wrapped,)
    out = list(grads)
    for i, g in zip(pos, wrapped):
        out[i] = g
    return tuple(out)


#: On a GPU, reading one number back (a sync) costs about what a pass over this many elements does; a
#: [rows, V] pass is saved by folding a mean's scale only when the gradient is at least this large.
SYNC_WORTH_NUMEL = 1 << 22


def may_read_back(device: torch.device, numel: int) -> bool:
    """Whether a value on ``device`` may be read on the host to save a pass over ``numel`` elements: always
    on the CPU; on a GPU for large tensors only, and never while a CUDA graph is being captured."""
    if device.type == "cpu":
        return True
    if device.type != "cuda" or numel < SYNC_WORTH_NUMEL:
        return False
    return not torch.cuda.is_current_stream_capturing()


def _uniform(grad_rows: torch.Tensor, value: float, numel: int) -> bool:
    """Whether every entry of ``grad_rows`` is ``value``: only for one value broadcast (what a sum or
    mean's backward hands each row), and only where reading it back is worth a ``numel`` pass."""
    # A subclass (fake or functional tensors while AOTAutograd traces backward, which torch 2.11 does
    # without is_compiling()) has no value to read.
    if type(grad_rows) is not torch.Tensor or torch.compiler.is_compiling():
        return False
    if grad_rows.numel() == 0 or any(st != 0 for st in grad_rows.stride()):
        return False
    if not may_read_back(grad_rows.device, numel):
        return False
    return float(grad_rows.reshape(-1)[0]) == value


def register_row_fused_op(qualname: str, *, n_inputs: int, grad_inputs: Sequence[int], fake: Callable,
                          scale_input: int | None = None) -> RowFusedOp:
    """Registers fake + autograd for a compiled row-fused op (call once, after loading _C).
    ``scale_input``: position of a float input the op multiplies its gradients by (a reduction's
    1/count, folded into the forward by the caller); backward then divides it out of the incoming
    per-row gradient, and skips the [rows, V] pass altogether when that leaves exactly 1."""
    spec = RowFusedOp(qualname, n_inputs, tuple(grad_inputs), scale_input)
    torch.library.register_fake(qualname)(fake)

    def setup_context(ctx, inputs, output):
        # The saved-gradient outputs never get a gradient of their own; without this autograd
        # would materialise a zero-filled [N, V] tensor for each of them in every backward
        # (doubling the op's peak memory and adding a full write pass).
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(*output[1 : 1 + len(spec.grad_inputs)])
        pos = spec.scale_input
        ctx.fwd_scale = float(inputs[pos]) if pos is not None and len(inputs) > pos else 1.0

    def backward(ctx, grad_rows, *_unused_grads):
        result: list[torch.Tensor | None] = [None] * spec.n_inputs
        if grad_rows is None:  # (grads are not materialised) the row values do not reach the loss
            return tuple(result)
        # Scale the saved gradient in place when this graph is freed after this backward: an
        # out-of-place product would hold a second [N, V] tensor at the peak. When the graph is
        # kept (retain_graph=True, gradcheck) or traced, use a fresh tensor so a second backward
        # sees the unscaled values.
        in_place = not (_keep_graph() or torch.compiler.is_compiling())
        fwd = ctx.fwd_scale
        # The usual case, loss.backward() of a mean: the forward already wrote the gradient times
        # exactly what arrives here, so the saved gradient is the answer as it stands (one read and
        # one write of [rows, V] saved). Only when it may be handed out as is (graph freed after).
        big = max((t.numel() for t in ctx.saved_tensors), default=0)
        done = in_place and _uniform(grad_rows, fwd, big)
        for pos, saved in zip(spec.grad_inputs, ctx.saved_tensors):
            if saved.numel() == 0 and grad_rows.numel() != 0:
                raise RuntimeError(
                    f"{qualname}: backward called but the forward ran with compute_grad=False; "
                    "call it with compute_grad=True (the pylaundering.ops functions do this for you)"
                )
            if done:
                result[pos] = saved
                continue
            factor = grad_rows if fwd == 1.0 else grad_rows / fwd
            scale = factor.to(saved.dtype).reshape(grad_rows.shape + (1,) * (saved.dim() - grad_rows.dim()))
            result[pos] = saved.mul_(scale) if in_place else saved * scale
        return first_order_only(qualname, result)

    torch.library.register_autograd(qualname, backward, setup_context=setup_context)
    REGISTRY[qualname] = spec
    return spec
