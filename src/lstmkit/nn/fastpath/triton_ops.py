"""The fused layer on CUDA through Triton, as PyTorch operators: ``torch.ops.lstmkit.lstm_layer_triton``
and its backward.

`lstmkit.nn.fastpath.ops.run_layer` sends a layer here when it runs on CUDA, ``settings.triton`` is on and
`lstmkit.nn.fastpath.triton_lstm.supports` covers the call (float32/bfloat16/float16, no ``proj_size``);
otherwise the layer takes the general operator (`lstmkit.nn.fastpath.ops`), and the reason is logged once.
The kernels are `lstmkit.nn.fastpath.triton_lstm`'s: a fused pointwise kernel per step each way around the
recurrent GEMM. Same autograd scheme as the general operator: the backward operator, and the
differentiable composite layer when the backward itself runs with grad mode on.

The input layer norm (``layer_norm=True``) runs before the operator, as torch ops.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cell import LAYER_NORM_EPS
from ..settings import settings
from . import ops, triton_lstm  # ops: its autograd helpers, read at call time (it imports us)
from .fused import LayerInputs

log = logging.getLogger(__name__)

_SAVED = triton_lstm.SAVED_BUFFERS  # hbuf, cbuf, acts, tanh_cells, fresh, rec_pre_ln, stats x2
_GRADIENTS = ("xp", "h0", "c0", "weight_hh", "peephole", "ln_hh", "ln_cell_weight", "ln_cell_bias")
_INPUTS = (*_GRADIENTS, "recurrent_mask", "zoneout_h", "zoneout_c", "zoneout_h_rate",
           "zoneout_c_rate", "batch_sizes")  # fmt: skip
_LOGGED: set[str] = set()
_T = Tensor


def _zoneout(mask: Tensor | None, rate: float) -> Tensor | float | None:
    return mask if mask is not None else (rate or None)


def _specs(xp, ln_hh, ln_cell_weight, zoneout_c, zoneout_c_rate, keep):
    steps, batch, gates = xp.shape
    return triton_lstm.saved_specs(
        steps, batch, gates // 4, xp.dtype, layer_norm=ln_hh is not None,
        cell_layer_norm=ln_cell_weight is not None,
        zoneout_c=zoneout_c is not None or zoneout_c_rate != 0, keep=keep,
    )  # fmt: skip


@torch.library.custom_op("lstmkit::lstm_layer_triton", mutates_args=())
def lstm_layer_triton(
    xp: Tensor,
    h0: Tensor,
    c0: Tensor,
    weight_hh: Tensor,
    peephole: Tensor | None,
    ln_hh: Tensor | None,
    ln_cell_weight: Tensor | None,
    ln_cell_bias: Tensor | None,
    recurrent_mask: Tensor | None,
    zoneout_h: Tensor | None,
    zoneout_c: Tensor | None,
    zoneout_h_rate: float,
    zoneout_c_rate: float,
    batch_sizes: Tensor | None,
    keep: bool,
) -> tuple[_T, _T, _T, _T, _T, _T, _T, _T, _T, _T, _T]:
    """``output, h_n, c_n`` and the eight `triton_lstm.SAVED_BUFFERS` (empty where absent)."""
    result = triton_lstm.forward(
        xp, h0, c0, weight_hh, peephole=peephole, ln_hh=ln_hh, ln_cell_weight=ln_cell_weight,
        ln_cell_bias=ln_cell_bias, recurrent_mask=recurrent_mask,
        zoneout_h=_zoneout(zoneout_h, zoneout_h_rate),
        zoneout_c=_zoneout(zoneout_c, zoneout_c_rate), batch_sizes=batch_sizes, keep=keep,
    )  # fmt: skip
    saved = (getattr(result, name) for name in _SAVED)
    return (
        result.out.clone(),  # a view of hbuf: an operator's outputs never alias each other
        result.h_n,
        result.c_n,
        *(xp.new_empty(0) if t is None else t for t in saved),
    )


@lstm_layer_triton.register_fake
def _forward_fake(xp, h0, c0, weight_hh, peephole, ln_hh, ln_cell_weight, ln_cell_bias,
                  recurrent_mask, zoneout_h, zoneout_c, zoneout_h_rate, zoneout_c_rate,
                  batch_sizes, keep):  # fmt: skip
    specs = _specs(xp, ln_hh, ln_cell_weight, zoneout_c, zoneout_c_rate, keep)
    saved = (
        xp.new_empty(0) if spec is None else xp.new_empty(spec[0], dtype=spec[1])
        for spec in specs.values()
    )
    steps, batch, _ = xp.shape
    return (xp.new_empty(steps, batch, h0.shape[-1]), torch.empty_like(h0),
            torch.empty_like(c0), *saved)  # fmt: skip


@torch.library.custom_op("lstmkit::lstm_layer_triton_backward", mutates_args=())
def lstm_layer_triton_backward(
    grad_out: Tensor,
    grad_h_n: Tensor,
    grad_c_n: Tensor,
    xp: Tensor,
    h0: Tensor,
    c0: Tensor,
    weight_hh: Tensor,
    peephole: Tensor | None,
    ln_hh: Tensor | None,
    ln_cell_weight: Tensor | None,
    ln_cell_bias: Tensor | None,
    recurrent_mask: Tensor | None,
    zoneout_h: Tensor | None,
    zoneout_c: Tensor | None,
    zoneout_h_rate: float,
    zoneout_c_rate: float,
    batch_sizes: Tensor | None,
    hbuf: Tensor,
    cbuf: Tensor,
    acts: Tensor,
    tanh_cells: Tensor,
    fresh: Tensor,
    rec_pre_ln: Tensor,
    rec_stats: Tensor,
    cell_stats: Tensor,
    needs: list[bool],
) -> tuple[_T, _T, _T, _T, _T, _T, _T, _T]:
    """The gradients of ``xp, h0, c0, weight_hh, peephole, ln_hh, ln_cell_weight,
    ln_cell_bias`` (empty where not needed or absent)."""
    buffers = (hbuf, cbuf, acts, tanh_cells, fresh, rec_pre_ln, rec_stats, cell_stats)
    present = (None if t.numel() == 0 and t.dim() == 1 else t for t in buffers)
    named = dict(zip(_SAVED, present, strict=True))
    sizes = None if batch_sizes is None else batch_sizes.tolist()
    saved = triton_lstm.ForwardResult(
        out=hbuf[1:], h_n=None, c_n=None, **named, weight_hh=weight_hh.to(xp.dtype).contiguous(),
        peephole=peephole, ln_hh=ln_hh, ln_cell_weight=ln_cell_weight,
        ln_cell_bias=ln_cell_bias if ln_cell_bias is not None or ln_cell_weight is None
        else torch.zeros_like(ln_cell_weight),
        recurrent_mask=recurrent_mask, zoneout_h=_zoneout(zoneout_h, zoneout_h_rate),
        zoneout_c=_zoneout(zoneout_c, zoneout_c_rate), batch_sizes=sizes, last=None,
    )  # fmt: skip
    grads = triton_lstm.backward(saved, grad_out, grad_h_n, grad_c_n)
    sources = (xp, h0, c0, weight_hh, peephole, ln_hh, ln_cell_weight, ln_cell_bias)
    return tuple(
        getattr(grads, name).contiguous() if need and source is not None else xp.new_empty(0)
        for name, source, need in zip(_GRADIENTS, sources, needs, strict=True)
    )


@lstm_layer_triton_backward.register_fake
def _backward_fake(*args):
    sources, needs = args[3:11], args[-1]
    return tuple(
        torch.empty(s.shape, dtype=s.dtype, device=s.device) if need and s is not None
        else args[3].new_empty(0)
        for s, need in zip(sources, needs, strict=True)
    )  # fmt: skip


def _setup_context(ctx, inputs, output) -> None:
    ctx.mark_non_differentiable(*output[3:])
    ops.save_inputs(ctx, _INPUTS, inputs, output[3:])


def _backward(ctx, grad_out, grad_h_n, grad_c_n, *_buffers):
    named, tensors = ops.saved_inputs(ctx, _INPUTS)
    index = {name: i for i, name in enumerate(_INPUTS)}
    needs = [ctx.needs_input_grad[index[n]] for n in _GRADIENTS]
    result = [None] * (len(_INPUTS) + 1)
    if not any(needs) or (grad_out is None and grad_h_n is None and grad_c_n is None):
        return tuple(result)
    if torch.is_grad_enabled():  # double backward: through the differentiable composite layer
        inputs = LayerInputs(**named)
        wanted = [n in _GRADIENTS and needs[_GRADIENTS.index(n)] for n in LayerInputs._fields[:11]]
        grads = ops._differentiable_backward(inputs, (grad_out, grad_h_n, grad_c_n), wanted)
        by_name = dict(zip(LayerInputs._fields[:11], grads, strict=False))
    else:
        xp = named["xp"]
        steps, batch, _ = xp.shape
        hidden = named["c0"].shape[-1]
        grad_out = xp.new_zeros(steps, batch, hidden) if grad_out is None else grad_out
        raw = lstm_layer_triton_backward(
            grad_out.contiguous(),
            *(g.contiguous() if g is not None else xp.new_zeros(batch, hidden)
              for g in (grad_h_n, grad_c_n)),
            *(named[n] for n in _INPUTS), *tensors, needs,
        )  # fmt: skip
        by_name = {
            n: g if need else None for n, g, need in zip(_GRADIENTS, raw, needs, strict=True)
        }
    for name in _GRADIENTS:
        result[index[name]] = by_name.get(name)
    return tuple(result)


lstm_layer_triton.register_autograd(_backward, setup_context=_setup_context)


def covers(inputs: LayerInputs) -> bool:
    """Whether this layer runs on the Triton path; on CUDA, why not is logged once."""
    xp = inputs.xp
    if not (settings.triton and xp.device.type == "cuda"):
        return False
    layer_norm = inputs.ln_hh is not None or inputs.ln_cell_weight is not None
    reason = triton_lstm.supports(xp, proj=inputs.weight_hr is not None, layer_norm=layer_norm)
    if reason is not None and not torch.compiler.is_compiling() and reason not in _LOGGED:
        _LOGGED.add(reason)
        log.info("CustomLSTM on CUDA takes the torch-op path, not Triton: %s", reason)
    return reason is None


def run_layer(inputs: LayerInputs, keep: bool) -> tuple[Tensor, Tensor, Tensor]:
    """One layer and direction through the Triton operator (`covers` said it applies)."""
    xp = inputs.xp
    if inputs.ln_ih is not None:  # the input layer norm as torch ops, before the kernels
        xp = F.layer_norm(xp, (xp.shape[-1],), inputs.ln_ih, inputs.ln_ih_bias, LAYER_NORM_EPS)
    out, h_n, c_n, *_ = torch.ops.lstmkit.lstm_layer_triton(
        xp.contiguous(), inputs.h0, inputs.c0, inputs.weight_hh, inputs.peephole, inputs.ln_hh,
        inputs.ln_cell_weight, inputs.ln_cell_bias, inputs.recurrent_mask, inputs.zoneout_h,
        inputs.zoneout_c, inputs.zoneout_h_rate, inputs.zoneout_c_rate, inputs.batch_sizes, keep,
    )  # fmt: skip
    return out, h_n, c_n
