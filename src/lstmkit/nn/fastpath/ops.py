"""The fused layer as PyTorch operators: ``torch.ops.lstmkit.lstm_layer`` and its backward.

`run_layer` is what `CustomLSTM` calls for each layer and direction. The forward and the
backward are ``torch.library`` custom ops, so the rest of PyTorch sees them as operators:

* **implementations**: one for every device, `lstmkit.nn.fastpath.fused` (the C time loop on CPU where it
  applies, else torch ops); a fake (shape-only) implementation for ``torch.compile``,
  ``torch.export`` and FakeTensor tracing, from the same shape rule (`fused.saved_shapes`);
* **autograd**: the backward op, with ``grad_output`` of unused outputs never materialised;
  when the backward itself runs with grad mode on (``create_graph=True``: gradient penalties,
  meta-learning, ``gradgradcheck``), the gradients are recomputed through the differentiable
  `lstmkit.nn.fastpath.composite` layer instead, so gradients of gradients are exact, never zero;
* **torch.func** transforms and empty batches take the composite layer directly (see
  `run_layer`); a ``vmap`` over the backward alone (``gradcheck(check_batched_grad=True)``)
  runs the op once per batch entry through PyTorch's fallback.

Optional results cross the operator boundary as empty tensors (an operator returns tensors
only); `run_layer` and the autograd formula turn them back into None.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import composite, triton_ops
from .fused import (
    GRADIENT_INPUTS,
    LayerInputs,
    SavedBuffers,
    functorch_active,
    layer_backward,
    layer_forward,
    saved_shapes,
)

_INPUT_NAMES = LayerInputs._fields
_SAVED_NAMES = SavedBuffers._fields
_T = Tensor
ForwardResult = tuple[_T, _T, _T, _T, _T, _T, _T, _T, _T, _T, _T, _T]
BackwardResult = tuple[_T, _T, _T, _T, _T, _T, _T, _T, _T, _T, _T]


def _empty(like: Tensor) -> Tensor:
    return like.new_empty(0)


def _or_empty(tensor: Tensor | None, like: Tensor) -> Tensor:
    return _empty(like) if tensor is None else tensor.contiguous()


def _or_none(tensor: Tensor) -> Tensor | None:
    return None if tensor.numel() == 0 and tensor.dim() == 1 else tensor


def _forward_impl(
    xp: Tensor,
    h0: Tensor,
    c0: Tensor,
    weight_hh: Tensor,
    weight_hr: Tensor | None,
    peephole: Tensor | None,
    ln_hh: Tensor | None,
    ln_cell_weight: Tensor | None,
    ln_cell_bias: Tensor | None,
    ln_ih: Tensor | None,
    ln_ih_bias: Tensor | None,
    recurrent_mask: Tensor | None,
    zoneout_h: Tensor | None,
    zoneout_c: Tensor | None,
    zoneout_h_rate: float,
    zoneout_c_rate: float,
    batch_sizes: Tensor | None,
    keep: bool,
) -> ForwardResult:
    """One layer and direction forward (`lstmkit.nn.fastpath.fused.LayerInputs` in argument order, then
    ``keep``). Returns ``output, h_n, c_n`` and the nine `SavedBuffers` (empty where absent)."""
    inputs = LayerInputs(
        xp, h0, c0, weight_hh, weight_hr, peephole, ln_hh, ln_cell_weight, ln_cell_bias, ln_ih,
        ln_ih_bias, recurrent_mask, zoneout_h, zoneout_c, zoneout_h_rate, zoneout_c_rate,
        batch_sizes,
    )  # fmt: skip
    out, h_n, c_n, saved = layer_forward(inputs, keep)
    return out, h_n, c_n, *(_or_empty(t, xp) for t in saved)


lstm_layer = torch.library.custom_op("lstmkit::lstm_layer", mutates_args=())(_forward_impl)


@lstm_layer.register_fake
def _lstm_layer_fake(xp, h0, c0, weight_hh, weight_hr, *args) -> ForwardResult:
    inputs = LayerInputs(xp, h0, c0, weight_hh, weight_hr, *args[:-1])
    steps, batch, _ = xp.shape
    shapes = saved_shapes(inputs, keep=args[-1])
    saved = (_empty(xp) if shape is None else xp.new_empty(shape) for shape in shapes)
    return (
        xp.new_empty(steps, batch, h0.shape[-1]),
        h0.new_empty(h0.shape),
        c0.new_empty(c0.shape),
        *saved,
    )


def _backward_impl(
    grad_out: Tensor,
    grad_h_n: Tensor,
    grad_c_n: Tensor,
    output: Tensor,
    xp: Tensor,
    h0: Tensor,
    c0: Tensor,
    weight_hh: Tensor,
    weight_hr: Tensor | None,
    peephole: Tensor | None,
    ln_hh: Tensor | None,
    ln_cell_weight: Tensor | None,
    ln_cell_bias: Tensor | None,
    ln_ih: Tensor | None,
    ln_ih_bias: Tensor | None,
    recurrent_mask: Tensor | None,
    zoneout_h: Tensor | None,
    zoneout_c: Tensor | None,
    zoneout_h_rate: float,
    zoneout_c_rate: float,
    batch_sizes: Tensor | None,
    acts: Tensor,
    cells: Tensor,
    fresh: Tensor,
    tanh_cells: Tensor,
    pre_proj: Tensor,
    rec_pre_ln: Tensor,
    rec_stats: Tensor,
    cell_stats: Tensor,
    in_stats: Tensor,
    needs: list[bool],
) -> BackwardResult:
    """The gradients of `fused.GRADIENT_INPUTS` (empty where ``needs`` is False or the input
    is absent), from the forward's ``output`` and saved buffers (empty where absent)."""
    inputs = LayerInputs(
        xp, h0, c0, weight_hh, weight_hr, peephole, ln_hh, ln_cell_weight, ln_cell_bias, ln_ih,
        ln_ih_bias, recurrent_mask, zoneout_h, zoneout_c, zoneout_h_rate, zoneout_c_rate,
        batch_sizes,
    )  # fmt: skip
    buffers = (acts, cells, fresh, tanh_cells, pre_proj, rec_pre_ln, rec_stats, cell_stats)
    saved = SavedBuffers(*(_or_none(t) for t in (*buffers, in_stats)))
    wanted = dict(zip(GRADIENT_INPUTS, needs, strict=True))
    grads = layer_backward(inputs, output, saved, grad_out, grad_h_n, grad_c_n, wanted)
    sources = (*inputs[: len(GRADIENT_INPUTS)],)
    result = []
    for name, source in zip(GRADIENT_INPUTS, sources, strict=True):
        grad = grads[name]
        if grad is None:
            result.append(_empty(xp))
        elif any(grad.untyped_storage().data_ptr() == t.untyped_storage().data_ptr()
                 for t in (grad_out, grad_h_n, grad_c_n, source) if t is not None):  # fmt: skip
            result.append(grad.clone(memory_format=torch.contiguous_format))
        else:
            result.append(grad.contiguous())
    return tuple(result)


lstm_layer_backward = torch.library.custom_op("lstmkit::lstm_layer_backward", mutates_args=())(
    _backward_impl
)


@lstm_layer_backward.register_fake
def _lstm_layer_backward_fake(*args) -> BackwardResult:
    needs = args[-1]
    sources = args[4 : 4 + len(GRADIENT_INPUTS)]
    return tuple(
        torch.empty(s.shape, dtype=s.dtype, device=s.device) if need and s is not None else
        _empty(args[4])
        for s, need in zip(sources, needs, strict=True)
    )  # fmt: skip


def save_inputs(ctx, names: tuple[str, ...], inputs, extra: tuple[Tensor, ...]) -> None:
    """``setup_context`` of an LSTM-layer operator whose arguments are ``names`` then ``keep``:
    unused outputs get no materialised gradient, the saved buffers (``output[3:]``) none at
    all; the present tensor inputs and ``extra`` are saved, the zoneout rates kept."""
    named = dict(zip((*names, "keep"), inputs, strict=True))
    ctx.set_materialize_grads(False)
    ctx.rates = (named["zoneout_h_rate"], named["zoneout_c_rate"])
    tensor_names = [n for n in names if n not in ("zoneout_h_rate", "zoneout_c_rate")]
    ctx.present = tuple(named[n] is not None for n in tensor_names)
    ctx.save_for_backward(*(named[n] for n in tensor_names if named[n] is not None), *extra)


def saved_inputs(ctx, names: tuple[str, ...]) -> tuple[dict, list[Tensor]]:
    """What `save_inputs` kept: ``({name: input}, [the extra tensors])``."""
    tensors = list(ctx.saved_tensors)
    tensor_names = [n for n in names if n not in ("zoneout_h_rate", "zoneout_c_rate")]
    named = {n: tensors.pop(0) if present else None
             for n, present in zip(tensor_names, ctx.present, strict=True)}  # fmt: skip
    named["zoneout_h_rate"], named["zoneout_c_rate"] = ctx.rates
    return named, tensors


def _setup_context(ctx, inputs, output) -> None:
    ctx.mark_non_differentiable(*output[3:])
    save_inputs(ctx, _INPUT_NAMES, inputs, (output[0], *output[3:]))


def _saved(ctx) -> tuple[LayerInputs, Tensor, tuple[Tensor, ...]]:
    named, (output, *saved) = saved_inputs(ctx, _INPUT_NAMES)
    return LayerInputs(**named), output, tuple(saved)


def _backward(ctx, grad_out, grad_h_n, grad_c_n, *_buffers, through_op: bool = True):
    inputs, output, saved = _saved(ctx)
    index = {name: i for i, name in enumerate(_INPUT_NAMES)}
    needs = [ctx.needs_input_grad[index[name]] for name in GRADIENT_INPUTS]
    nothing = [None] * (len(_INPUT_NAMES) + 1)
    if not any(needs) or (grad_out is None and grad_h_n is None and grad_c_n is None):
        return tuple(nothing)
    if torch.is_grad_enabled():
        grads = _differentiable_backward(inputs, (grad_out, grad_h_n, grad_c_n), needs)
    else:
        grad_out = torch.zeros_like(output) if grad_out is None else grad_out
        grad_h_n = inputs.h0.new_zeros(inputs.h0.shape) if grad_h_n is None else grad_h_n
        grad_c_n = inputs.c0.new_zeros(inputs.c0.shape) if grad_c_n is None else grad_c_n
        grad_args = (grad_out.contiguous(), grad_h_n.contiguous(), grad_c_n.contiguous(), output)
        # vmap over the backward (check_batched_grad: tensors with no storage of their own)
        # needs the operator, which PyTorch batches
        batched = not all(torch._C._has_storage(g) for g in grad_args[:3])
        backward = lstm_layer_backward if through_op or batched else _backward_impl
        result = backward(*grad_args, *inputs, *saved, needs)
        grads = [_or_none(g) if need else None for g, need in zip(result, needs, strict=True)]
    for name, grad in zip(GRADIENT_INPUTS, grads, strict=True):
        nothing[index[name]] = grad
    return tuple(nothing)


class _EagerLayer(torch.autograd.Function):
    """The operator's implementation and autograd formula, called straight from eager code.

    The custom op is what tracing sees (``torch.compile``, ``torch.export``, FakeTensors); in
    eager mode its Python dispatch layers around the same functions measured 0.5 ms a layer
    and call (forward and backward), a few percent of a small LSTM's training step. This
    Function calls `lstm_layer` / `lstm_layer_backward`'s implementations directly, with the
    same ``setup_context`` and backward, so the two entries cannot compute differently.
    """

    @staticmethod
    def forward(ctx, *args):  # the operator's arguments: LayerInputs, then keep
        outputs = _forward_impl(*args)
        _setup_context(ctx, args, outputs)
        return outputs

    @staticmethod
    def backward(ctx, *grads):
        return _backward(ctx, *grads, through_op=False)


def _differentiable_backward(
    inputs: LayerInputs, grads: tuple[Tensor | None, ...], needs: list[bool]
) -> list[Tensor | None]:
    """The gradients as a graph of their own: recompute the layer through `composite.layer`
    and differentiate it with ``create_graph=True`` (double backward)."""
    wanted = [
        getattr(inputs, name) for name, need in zip(GRADIENT_INPUTS, needs, strict=True) if need
    ]
    with torch.enable_grad():
        outputs = composite.layer(inputs)
        pairs = [(o, g) for o, g in zip(outputs, grads, strict=True) if g is not None]
        found = iter(
            torch.autograd.grad(
                [o for o, _ in pairs], wanted, [g for _, g in pairs],
                create_graph=True, allow_unused=True,
            )
        )  # fmt: skip
    return [next(found) if need else None for need in needs]


lstm_layer.register_autograd(_backward, setup_context=_setup_context)


def _needs_composite() -> bool:
    """A torch.func transform, or forward-mode AD (``torch.autograd.forward_ad.dual_level``):
    the composite layer has their rules, the hand-written backward has none."""
    return functorch_active() or torch.autograd.forward_ad._current_level >= 0


def run_layer(inputs: LayerInputs) -> tuple[Tensor, Tensor, Tensor]:
    """One layer and direction: ``output (T, B, P)``, ``h_n (B, P)``, ``c_n (B, H)``.

    Through the custom op when traced (on CUDA the Triton one where it covers the call:
    `lstmkit.nn.fastpath.triton_ops`), through its implementation and autograd formula directly in
    eager mode (`_EagerLayer`), and through the composite layer under a torch.func transform,
    in forward-mode AD or for an empty batch, where it gives the same numbers with every
    transform's rules.
    """
    if inputs.xp.shape[1] == 0 or (not torch.compiler.is_compiling() and _needs_composite()):
        return composite.layer(inputs)
    tensors = [t for t in inputs if isinstance(t, Tensor)]
    keep = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    if triton_ops.covers(inputs):  # CUDA: the Triton kernels' operator
        return triton_ops.run_layer(inputs, keep)
    if torch.compiler.is_compiling():
        out, h_n, c_n, *_ = torch.ops.lstmkit.lstm_layer(*inputs, keep)
    elif keep:  # the same implementation and formula without the dispatcher's Python layers
        out, h_n, c_n, *_ = _EagerLayer.apply(*inputs, keep)
    else:  # nothing to differentiate
        out, h_n, c_n, *_ = _forward_impl(*inputs, keep)
    return out, h_n, c_n
