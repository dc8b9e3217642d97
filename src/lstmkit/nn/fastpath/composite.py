"""The fused layer as plain, out-of-place torch ops: differentiable to any order.

`lstmkit.nn.fastpath.fused` computes a layer with buffers written in place and a hand-written backward;
this module computes the same `LayerInputs` -> ``(output, h_n, c_n)`` with nothing but
functional torch ops under autograd. It serves where the hand-written backward cannot:

* **torch.func transforms** (``grad``, ``vmap``, ``jacrev``, per-sample gradients): every op
  here has batching and forward-mode rules;
* **double backward**: when a backward runs with grad mode on (``create_graph=True``), the
  custom op's backward recomputes the layer through this module and differentiates it, so
  gradients of gradients are exact (`lstmkit.nn.fastpath.ops`);
* **empty batches** (``B = 0``), which need no kernels at all.

Variable lengths shrink the rows a step computes, as in the fused path. Tested equal to the fused
path (outputs, every gradient, and where NaN and Inf go).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cell import LAYER_NORM_EPS
from .fused import LayerInputs


def _lerp(new: Tensor, previous: Tensor, keep: Tensor | float) -> Tensor:
    """``new + keep * (previous - new)``: the zoneout update (``keep`` 1 keeps the old value)."""
    return new + keep * (previous - new)


def layer(inputs: LayerInputs) -> tuple[Tensor, Tensor, Tensor]:
    """One layer and direction: ``output (T, B, P)`` (zero at padded steps), ``h_n (B, P)``,
    ``c_n (B, H)``, the same numbers as `lstmkit.nn.fastpath.fused.layer_forward`.

    With ``batch_sizes`` step ``t`` computes only its first ``batch_sizes[t]`` rows (the batch is
    sorted by decreasing length), as a PackedSequence does: padding, whatever it holds (NaN
    included), never enters a computation, so not even ``0 * NaN`` reaches a gradient.
    """
    xp, h, c = inputs.xp, inputs.h0, inputs.c0
    steps, batch, gates = xp.shape
    hidden = gates // 4
    sizes = [batch] * steps if inputs.batch_sizes is None else inputs.batch_sizes.tolist()
    zoneout_h = inputs.zoneout_h if inputs.zoneout_h is not None else inputs.zoneout_h_rate
    zoneout_c = inputs.zoneout_c if inputs.zoneout_c is not None else inputs.zoneout_c_rate
    peephole = inputs.peephole
    outputs = []
    for t in range(steps):
        n = sizes[t]
        h_prev, c_prev = h[:n], c[:n]
        x_t = xp[t, :n]
        if inputs.ln_ih is not None:
            x_t = F.layer_norm(x_t, (gates,), inputs.ln_ih, inputs.ln_ih_bias, LAYER_NORM_EPS)
        h_in = h_prev if inputs.recurrent_mask is None else h_prev * inputs.recurrent_mask[:n]
        z = h_in @ inputs.weight_hh.t()
        if inputs.ln_hh is not None:
            z = F.layer_norm(z, (gates,), inputs.ln_hh, None, LAYER_NORM_EPS)
        pre_o, pre_i, pre_f, pre_g = (x_t + z).split(hidden, dim=-1)
        if peephole is not None:
            pre_i = pre_i + peephole[0] * c_prev
            pre_f = pre_f + peephole[1] * c_prev
        i, f, g = torch.sigmoid(pre_i), torch.sigmoid(pre_f), torch.tanh(pre_g)
        c_hat = f * c_prev + i * g
        if peephole is not None:
            pre_o = pre_o + peephole[2] * c_hat
        o = torch.sigmoid(pre_o)
        cell_in = c_hat
        if inputs.ln_cell_weight is not None:
            cell_in = F.layer_norm(
                c_hat, (hidden,), inputs.ln_cell_weight, inputs.ln_cell_bias, LAYER_NORM_EPS
            )
        h_new = o * torch.tanh(cell_in)
        if inputs.weight_hr is not None:
            h_new = h_new @ inputs.weight_hr.t()
        c_new = c_hat
        if isinstance(zoneout_c, Tensor) or zoneout_c:
            keep_c = zoneout_c[t, :n] if isinstance(zoneout_c, Tensor) else zoneout_c
            c_new = _lerp(c_hat, c_prev, keep_c)
        if isinstance(zoneout_h, Tensor) or zoneout_h:
            keep_h = zoneout_h[t, :n] if isinstance(zoneout_h, Tensor) else zoneout_h
            h_new = _lerp(h_new, h_prev, keep_h)
        if n == batch:
            h, c = h_new, c_new
            outputs.append(h_new)
        else:  # rows n.. have ended: their state stays, their output is zero
            h, c = torch.cat((h_new, h[n:])), torch.cat((c_new, c[n:]))
            outputs.append(torch.cat((h_new, h_new.new_zeros(batch - n, h_new.shape[-1]))))
    return torch.stack(outputs), h, c
