"""The LSTM equations, written out gate by gate.

This is the readable definition every lstmkit core is tested against. `lstm_step` is one time
step of one layer and direction, with the research variants as plain ``if`` branches; `LSTMCell`
is a drop-in for ``torch.nn.LSTMCell`` built on it. The fast path (`lstmkit.nn.fastpath.fused`) is a
second implementation of exactly these equations.

Gate order is torch's: input ``i``, forget ``f``, cell candidate ``g``, output ``o``::

    i = σ(W_ii x + b_ii + W_hi h + b_hi)
    f = σ(W_if x + b_if + W_hf h + b_hf)
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)
    o = σ(W_io x + b_io + W_ho h + b_ho)
    c' = f ⊙ c + i ⊙ g
    h' = o ⊙ tanh(c')                (then h' = W_hr h' with a projection)
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import default_init_bound

LAYER_NORM_EPS = 1e-5


@dataclass
class LayerWeights:
    """Parameters of one layer and direction, in torch's gate order (i, f, g, o).

    Shapes: ``weight_ih (4H, C)``, ``weight_hh (4H, P)``, ``bias_ih``/``bias_hh (4H,)``,
    ``weight_hr (P, H)``, ``peephole (3, H)`` for (i, f, o), ``ln_ih``/``ln_hh (4H,)``,
    ``ln_cell_weight``/``ln_cell_bias (H,)``; ``P`` is proj_size or H. Absent ones are ``None``.
    """

    weight_ih: Tensor
    weight_hh: Tensor
    bias_ih: Tensor | None = None
    bias_hh: Tensor | None = None
    weight_hr: Tensor | None = None
    peephole: Tensor | None = None
    ln_ih: Tensor | None = None
    ln_hh: Tensor | None = None
    ln_cell_weight: Tensor | None = None
    ln_cell_bias: Tensor | None = None

    @property
    def layer_norm(self) -> bool:
        return self.ln_hh is not None

    def to(self, dtype: torch.dtype) -> LayerWeights:
        """The same weights cast to ``dtype`` (differentiably), e.g. for autocast."""
        cast = {f.name: getattr(self, f.name) for f in fields(self)}
        return LayerWeights(**{k: None if v is None else v.to(dtype) for k, v in cast.items()})


class Gates(NamedTuple):
    """Activations of one step, each ``(B, H)``: i, f, o in (0, 1); g in (-1, 1)."""

    input_gate: Tensor
    forget_gate: Tensor
    cell_gate: Tensor
    output_gate: Tensor


def lstm_step(
    x: Tensor,
    h: Tensor,
    c: Tensor,
    w: LayerWeights,
    *,
    recurrent_mask: Tensor | None = None,
    zoneout_h: Tensor | float | None = None,
    zoneout_c: Tensor | float | None = None,
) -> tuple[Tensor, Tensor, Gates]:
    """One LSTM step.

    Args:
        x: input ``(B, C)``.
        h: previous hidden state ``(B, P)``; c: previous cell state ``(B, H)``.
        w: the layer's parameters.
        recurrent_mask: variational recurrent dropout (Gal & Ghahramani 2016): ``(B, P)``, one
            mask per sequence, applied to ``h`` before the recurrent matmul.
        zoneout_h, zoneout_c: zoneout (Krueger et al. 2016): the weight of the previous state,
            a 0/1 mask ``(B, ·)`` in training or the rate itself at evaluation. The new ``h`` is
            computed from the fresh (un-zoned) cell, as in the paper.

    Returns:
        ``(h', c', gates)``.
    """
    hidden = c.shape[-1]
    x_part = F.linear(x, w.weight_ih)
    h_in = h if recurrent_mask is None else h * recurrent_mask
    h_part = F.linear(h_in, w.weight_hh)
    if w.layer_norm:  # Ba et al. 2016: normalise each projection separately
        x_part = F.layer_norm(x_part, (4 * hidden,), w.ln_ih, None, LAYER_NORM_EPS)
        h_part = F.layer_norm(h_part, (4 * hidden,), w.ln_hh, None, LAYER_NORM_EPS)
    pre = x_part + h_part
    if w.bias_ih is not None:
        pre = pre + w.bias_ih + w.bias_hh
    pre_i, pre_f, pre_g, pre_o = pre.chunk(4, dim=-1)

    if w.peephole is not None:  # Gers & Schmidhuber 2000: gates look at the cell
        pre_i = pre_i + w.peephole[0] * c
        pre_f = pre_f + w.peephole[1] * c
    i = torch.sigmoid(pre_i)
    f = torch.sigmoid(pre_f)
    g = torch.tanh(pre_g)
    c_new = f * c + i * g
    if w.peephole is not None:
        pre_o = pre_o + w.peephole[2] * c_new
    o = torch.sigmoid(pre_o)

    c_out = c_new
    if w.layer_norm:
        c_out = F.layer_norm(c_new, (hidden,), w.ln_cell_weight, w.ln_cell_bias, LAYER_NORM_EPS)
    h_new = o * torch.tanh(c_out)
    if w.weight_hr is not None:
        h_new = F.linear(h_new, w.weight_hr)
    # Zoneout keeps part of the previous states; h is computed from the fresh cell (Krueger et al.).
    if zoneout_c is not None:
        c_new = torch.lerp(c_new, c, zoneout_c)
    if zoneout_h is not None:
        h_new = torch.lerp(h_new, h, zoneout_h)
    return h_new, c_new, Gates(i, f, g, o)


class LSTMCell(nn.Module):
    """A drop-in for ``torch.nn.LSTMCell`` with the gate equations written out (`lstm_step`).

    Same parameters (``weight_ih (4H, C)``, ``weight_hh (4H, H)``, ``bias_ih``, ``bias_hh``),
    same initialisation, same ``forward(input, hx=None) -> (h, c)``; ``input`` is ``(B, C)`` or
    unbatched ``(C,)``. ``layer_norm`` and ``peephole`` add the variants' parameters
    (``layer_norm_ih_weight``, ``layer_norm_hh_weight``, ``layer_norm_cell_weight``,
    ``layer_norm_cell_bias``, ``weight_peephole``).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        bias: bool = True,
        device=None,
        dtype=None,
        *,
        layer_norm: bool = False,
        peephole: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        factory = {"device": device, "dtype": dtype}
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.layer_norm, self.peephole = layer_norm, peephole
        gates = 4 * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(gates, input_size, **factory))
        self.weight_hh = nn.Parameter(torch.empty(gates, hidden_size, **factory))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(gates, **factory))
            self.bias_hh = nn.Parameter(torch.empty(gates, **factory))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        if peephole:
            self.weight_peephole = nn.Parameter(torch.empty(3, hidden_size, **factory))
        if layer_norm:
            self.layer_norm_ih_weight = nn.Parameter(torch.empty(gates, **factory))
            self.layer_norm_hh_weight = nn.Parameter(torch.empty(gates, **factory))
            self.layer_norm_cell_weight = nn.Parameter(torch.empty(hidden_size, **factory))
            self.layer_norm_cell_bias = nn.Parameter(torch.empty(hidden_size, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = default_init_bound(self.hidden_size)
        for name, param in self.named_parameters():
            if name.startswith("layer_norm_"):
                nn.init.ones_(param) if "weight" in name else nn.init.zeros_(param)
            else:
                nn.init.uniform_(param, -bound, bound)

    def weights(self) -> LayerWeights:
        return LayerWeights(
            self.weight_ih,
            self.weight_hh,
            self.bias_ih,
            self.bias_hh,
            peephole=getattr(self, "weight_peephole", None),
            ln_ih=getattr(self, "layer_norm_ih_weight", None),
            ln_hh=getattr(self, "layer_norm_hh_weight", None),
            ln_cell_weight=getattr(self, "layer_norm_cell_weight", None),
            ln_cell_bias=getattr(self, "layer_norm_cell_bias", None),
        )

    def forward(
        self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor]:
        """``input (B, C)`` or ``(C,)``; ``hx`` ``((B, H), (B, H))`` or unbatched -> ``(h', c')``."""
        if input.dim() not in (1, 2):
            raise ValueError(f"LSTMCell expects 1-D or 2-D input, got shape {tuple(input.shape)}")
        if input.size(-1) != self.input_size:
            raise ValueError(
                f"input has {input.size(-1)} features but this cell was built with "
                f"input_size={self.input_size}"
            )
        batched = input.dim() == 2
        x = input if batched else input.unsqueeze(0)
        expected = (x.shape[0], self.hidden_size)
        if hx is None:
            h = c = x.new_zeros(expected)
        else:
            h, c = hx
            if not batched:
                h, c = h.unsqueeze(0), c.unsqueeze(0)
            for name, t in (("h", h), ("c", c)):
                if tuple(t.shape) != expected:
                    raise ValueError(
                        f"{name} has shape {tuple(t.shape) if batched else tuple(t.shape[1:])} "
                        f"but expected {expected if batched else expected[1:]} = "
                        f"({'batch, ' if batched else ''}hidden_size)"
                    )
        h, c, _ = lstm_step(x, h, c, self.weights())
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if self.layer_norm:
            s += ", layer_norm=True"
        if self.peephole:
            s += ", peephole=True"
        return s


torch.serialization.add_safe_globals([LSTMCell])
