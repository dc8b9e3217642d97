"""The fused layer as plain, out-of-place torch ops: differentiable to any order.

`lstmkit.nn.fused` computes a layer with buffers written in place and a hand-written backward;
this module computes the same `LayerInputs` -> ``(output, h_n, c_n)`` with nothing but
functional torch ops under autograd. It serves where the hand-written backward cannot:

* **torch.func transforms** (``grad``, ``vmap``, ``jacrev``, per-sample gradients): every op
  here has batching and forward-mode rules;
* **double backward**: when a backward runs with grad mode on (``create_graph=True``), the
  custom op's backward recomputes the layer through this module and differentiates it, so
  gradients of gradients are exact (`lstmkit.nn.ops`);
* **empty batches** (``B = 0``), which need no kernels at all.

Variable lengths are masks here (``torch.where`` per step) rather than shrinking row counts, so
no shape depends on data. Tested equal to the fused path (outputs and every gradient).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .cell import LAYER_NORM_EPS
from .fused import LayerInputs


def _lerp(new: Tensor, previous: Tensor, keep: Tensor | float) -> Tensor:
    """``new + keep * (previous - new)``: the zoneout update (``keep`` 1 keeps the old value)."""
    return new + keep * (previous - new)


def layer(inputs: LayerInputs) -> tuple[Tensor, Tensor, Tensor]:
    """One layer and direction: ``output (T, B, P)`` (zero at padded steps), ``h_n (B, P)``,
    ``c_n (B, H)``, the same numbers as `lstmkit.nn.fused.layer_forward`."""
    xp, h, c = inputs.xp, inputs.h0, inputs.c0
    steps, batch, gates = xp.shape
    hidden = gates // 4
    if inputs.ln_ih is not None:
        xp = F.layer_norm(xp, (gates,), inputs.ln_ih, inputs.ln_ih_bias, LAYER_NORM_EPS)
    active = None
    if inputs.batch_sizes is not None:  # (T, B, 1): row b runs at step t
        rows = torch.arange(batch, device=xp.device)
        active = (rows < inputs.batch_sizes.to(xp.device).unsqueeze(1)).unsqueeze(-1)
    zoneout_h = inputs.zoneout_h if inputs.zoneout_h is not None else inputs.zoneout_h_rate
    zoneout_c = inputs.zoneout_c if inputs.zoneout_c is not None else inputs.zoneout_c_rate
    peephole = inputs.peephole
    outputs = []
    for t in range(steps):
        h_in = h if inputs.recurrent_mask is None else h * inputs.recurrent_mask
        z = h_in @ inputs.weight_hh.t()
        if inputs.ln_hh is not None:
            z = F.layer_norm(z, (gates,), inputs.ln_hh, None, LAYER_NORM_EPS)
        pre_o, pre_i, pre_f, pre_g = (xp[t] + z).split(hidden, dim=-1)
        if peephole is not None:
            pre_i = pre_i + peephole[0] * c
            pre_f = pre_f + peephole[1] * c
        i, f, g = torch.sigmoid(pre_i), torch.sigmoid(pre_f), torch.tanh(pre_g)
        c_hat = f * c + i * g
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
            c_new = _lerp(c_hat, c, zoneout_c[t] if isinstance(zoneout_c, Tensor) else zoneout_c)
        if isinstance(zoneout_h, Tensor) or zoneout_h:
            h_new = _lerp(h_new, h, zoneout_h[t] if isinstance(zoneout_h, Tensor) else zoneout_h)
        if active is None:
            h, c = h_new, c_new
            outputs.append(h_new)
        else:
            h, c = torch.where(active[t], h_new, h), torch.where(active[t], c_new, c)
            outputs.append(torch.where(active[t], h_new, h_new.new_zeros(())))
    return torch.stack(outputs), h, c
