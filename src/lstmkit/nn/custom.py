"""`CustomLSTM`: layers of the gate-by-gate cell, torch.nn.LSTM's parameters, research variants."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lstmkit._lstm_args import check_lstm_args

from .base import (
    LSTMBase,
    LSTMInputError,
    State,
    apply_init_options,
    default_init_bound,
)
from .cell import LayerWeights, lstm_step
from .fastpath.fused import LayerInputs, internal_gate_order, project_input
from .fastpath.ops import run_layer
from .gates import GateTrace

IMPLEMENTATIONS = ("fused", "reference")

# (recurrent dropout mask, zoneout of h, zoneout of c) for one layer and direction
Noise = tuple[Tensor | None, Tensor | float | None, Tensor | float | None]


def _probability(name: str, value: float, *, allow_one: bool) -> float:
    upper_ok = value <= 1 if allow_one else value < 1
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0 or not upper_ok:
        bound = "[0, 1]" if allow_one else "[0, 1)"
        raise ValueError(f"{name} must be a probability in {bound}, got {value!r}")
    return float(value)


class CustomLSTM(LSTMBase):
    """An LSTM written out gate by gate, with torch.nn.LSTM's parameters and research variants.

    With every option off it computes what ``torch.nn.LSTM`` computes, and its ``state_dict`` is
    ``torch.nn.LSTM``'s: ``CustomLSTM.load_state_dict(torch_lstm.state_dict())`` and the reverse
    just work.

    Args:
        input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size, device, dtype: exactly ``torch.nn.LSTM``'s (``dropout`` acts between layers).
        layer_norm: layer normalisation (Ba et al. 2016) of the input and recurrent projections
            (gains ``layer_norm_ih_weight_l{k}``, ``layer_norm_hh_weight_l{k}``, ``(4H,)``) and
            of the cell before its ``tanh`` (``layer_norm_cell_weight_l{k}``,
            ``layer_norm_cell_bias_l{k}``, ``(H,)``).
        peephole: peephole connections (Gers & Schmidhuber 2000): i and f see ``c_{t-1}``,
            o sees ``c_t``; parameter ``weight_peephole_l{k}`` ``(3, H)`` for (i, f, o).
        recurrent_dropout: variational dropout on ``h`` before the recurrent matmul (Gal &
            Ghahramani 2016), one mask per sequence and layer, training only.
        zoneout: zoneout (Krueger et al. 2016): a rate for both states or a pair
            ``(rate_h, rate_c)``; in training each unit keeps its previous value with that
            probability, at evaluation the update is ``rate * previous + (1 - rate) * new``.
        forget_bias: added to the forget-gate slice of every ``bias_ih`` at initialisation.
        input_bias: added to the input-gate slice of every ``bias_ih`` at initialisation
            (negative: cells start closed to their input; see `apply_init_options`).
        recurrent_init: ``"default"`` (torch's uniform) or ``"orthogonal"``.
        implementation: ``"fused"`` (hand-written backward, the fast default) or ``"reference"``
            (`lstmkit.nn.cell.lstm_step` looped under autograd). Both give the same numbers,
            in training too: random masks are drawn once per call in the same order, per layer
            and direction — recurrent-dropout mask ``(B, P)``, zoneout masks of h ``(T, B, P)``
            then of c ``(T, B, H)``.

    ``forward(input, hx=None, *, lengths=None, return_gates=False)``: see `LSTMBase.forward`.
    With ``return_gates=True`` it returns ``(output, (h_n, c_n), GateTrace)``.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
        *,
        layer_norm: bool = False,
        peephole: bool = False,
        recurrent_dropout: float = 0.0,
        zoneout: float | Sequence[float] = 0.0,
        forget_bias: float = 0.0,
        input_bias: float = 0.0,
        recurrent_init: str = "default",
        implementation: str = "fused",
    ) -> None:
        super().__init__()
        check_lstm_args(
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
        )
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}"
            )
        if dropout > 0 and num_layers == 1:
            warnings.warn(  # torch.nn.LSTM's own warning, for the same reason
                "dropout option adds dropout after all but last recurrent layer, so non-zero "
                f"dropout expects num_layers greater than 1, but got dropout={dropout} and "
                f"num_layers={num_layers}",
                stacklevel=2,
            )
        if isinstance(zoneout, numbers.Real):
            zoneout = (zoneout, zoneout)
        if len(zoneout) != 2:
            raise ValueError(f"zoneout must be a rate or a pair (rate_h, rate_c), got {zoneout!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        self.layer_norm, self.peephole = bool(layer_norm), bool(peephole)
        self.recurrent_dropout = _probability(
            "recurrent_dropout", recurrent_dropout, allow_one=False
        )
        self.zoneout = tuple(_probability("zoneout", z, allow_one=True) for z in zoneout)
        self.forget_bias, self.recurrent_init = float(forget_bias), recurrent_init
        self.input_bias = float(input_bias)
        self.implementation = implementation
        self._recorder: list[GateTrace] | None = None

        factory = {"device": device, "dtype": dtype}
        gates, state = 4 * hidden_size, self.state_size
        self._all_weights: list[list[str]] = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else state * self.num_directions
            for direction in range(self.num_directions):
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = {
                    f"weight_ih{sfx}": (gates, layer_input),
                    f"weight_hh{sfx}": (gates, state),
                }
                if bias:
                    shapes |= {f"bias_ih{sfx}": (gates,), f"bias_hh{sfx}": (gates,)}
                if proj_size:
                    shapes[f"weight_hr{sfx}"] = (proj_size, hidden_size)
                if peephole:
                    shapes[f"weight_peephole{sfx}"] = (3, hidden_size)
                if layer_norm:
                    shapes |= {
                        f"layer_norm_ih_weight{sfx}": (gates,),
                        f"layer_norm_hh_weight{sfx}": (gates,),
                        f"layer_norm_cell_weight{sfx}": (hidden_size,),
                        f"layer_norm_cell_bias{sfx}": (hidden_size,),
                    }
                for name, shape in shapes.items():
                    self.register_parameter(name, nn.Parameter(torch.empty(shape, **factory)))
                self._all_weights.append(list(shapes))
        device = device if device is not None else self.weight_ih_l0.device
        self.register_buffer(
            "_gate_order", internal_gate_order(hidden_size, device), persistent=False
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch.nn.LSTM's U(-1/sqrt(H), 1/sqrt(H)); layer-norm gains 1 and biases 0."""
        bound = default_init_bound(self.hidden_size)
        with torch.no_grad():
            for name, param in self.named_parameters():
                if name.startswith("layer_norm_"):
                    param.fill_(1.0 if "_weight" in name else 0.0)
                else:
                    param.uniform_(-bound, bound)
        apply_init_options(self, self.forget_bias, self.recurrent_init, self.input_bias)

    # ------------------------------------------------------------------ parameters
    def layer_weights(self, layer: int, direction: int = 0) -> LayerWeights:
        """The parameters of one layer and direction, in torch's gate order."""
        sfx = f"_l{layer}" + ("_reverse" if direction else "")

        def get(name: str) -> Tensor | None:
            return getattr(self, name + sfx, None)

        return LayerWeights(
            weight_ih=get("weight_ih"),
            weight_hh=get("weight_hh"),
            bias_ih=get("bias_ih"),
            bias_hh=get("bias_hh"),
            weight_hr=get("weight_hr"),
            peephole=get("weight_peephole"),
            ln_ih=get("layer_norm_ih_weight"),
            ln_hh=get("layer_norm_hh_weight"),
            ln_cell_weight=get("layer_norm_cell_weight"),
            ln_cell_bias=get("layer_norm_cell_bias"),
        )

    # ------------------------------------------------------------ torch.nn.LSTM's surface
    # Code written for torch.nn.LSTM reaches for these; they mean what they mean there.
    mode = "LSTM"

    @property
    def _flat_weights_names(self) -> list[str]:
        """torch.nn.LSTM's parameters in its order (the research variants' own are not in it)."""
        names = []
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                kinds = ["weight_ih", "weight_hh"] + (["bias_ih", "bias_hh"] if self.bias else [])
                names += [kind + sfx for kind in kinds + (["weight_hr"] if self.proj_size else [])]
        return names

    @property
    def _flat_weights(self) -> list[Tensor]:
        return [getattr(self, name) for name in self._flat_weights_names]

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        """Each layer and direction's parameters (torch.nn.LSTM's, then the variants' own)."""
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    def _update_flat_weights(self) -> None:
        """torch.nn.LSTM re-reads its weights here; `_flat_weights` is always current."""

    def flatten_parameters(self) -> None:
        """A no-op: the custom core keeps no flat cuDNN weight buffer (torch.nn.LSTM's own is a
        no-op on CPU too). Kept so that code calling it on an ``nn.LSTM`` runs unchanged."""

    def check_input(self, input: Tensor, batch_sizes: Tensor | None) -> None:
        """torch.nn.LSTM's check of a time-major (or packed) ``input``: dtype, rank, features."""
        expected = 2 if batch_sizes is not None else 3
        if input.dim() != expected:
            raise LSTMInputError(f"input must have {expected} dimensions, got {input.dim()}")
        self._check_features(input, expected_dim=expected)

    def get_expected_hidden_size(
        self, input: Tensor, batch_sizes: Tensor | None
    ) -> tuple[int, int, int]:
        batch = self._batch_of(input, batch_sizes)
        return (self.num_layers * self.num_directions, batch, self.state_size)

    def get_expected_cell_size(
        self, input: Tensor, batch_sizes: Tensor | None
    ) -> tuple[int, int, int]:
        batch = self._batch_of(input, batch_sizes)
        return (self.num_layers * self.num_directions, batch, self.hidden_size)

    def _batch_of(self, input: Tensor, batch_sizes: Tensor | None) -> int:
        if batch_sizes is not None:
            return int(batch_sizes[0])
        return input.size(0) if self.batch_first else input.size(1)

    def check_hidden_size(
        self, hx: Tensor, expected_hidden_size: tuple[int, int, int],
        msg: str = "Expected hidden size {}, got {}",
    ) -> None:  # fmt: skip
        if hx.size() != expected_hidden_size:
            raise LSTMInputError(msg.format(expected_hidden_size, list(hx.size())))

    def check_forward_args(
        self, input: Tensor, hidden: tuple[Tensor, Tensor], batch_sizes: Tensor | None
    ) -> None:
        self.check_input(input, batch_sizes)
        self.check_hidden_size(
            hidden[0], self.get_expected_hidden_size(input, batch_sizes),
            "Expected hidden[0] size {}, got {}",
        )  # fmt: skip
        self.check_hidden_size(
            hidden[1], self.get_expected_cell_size(input, batch_sizes),
            "Expected hidden[1] size {}, got {}",
        )  # fmt: skip

    def permute_hidden(self, hx: State, permutation: Tensor | None) -> State:
        """``hx`` with its batch dimension reordered by ``permutation`` (packed-sequence order)."""
        if permutation is None:
            return hx
        return hx[0].index_select(1, permutation), hx[1].index_select(1, permutation)

    # ------------------------------------------------------------------ forward
    def forward(self, input, hx=None, *, lengths=None, return_gates: bool = False):
        if not return_gates:
            return super().forward(input, hx, lengths=lengths)
        outer, self._recorder = self._recorder, []
        try:
            output, state = super().forward(input, hx, lengths=lengths)
            trace = self._recorder[-1]
        finally:
            recorded, self._recorder = self._recorder, outer
        if outer is not None:
            outer.extend(recorded)
        if not isinstance(input, Tensor) or input.dim() == 3:
            return output, state, trace
        return output, state, trace.squeeze_batch()

    def _run(self, x: Tensor, hx: State, lengths: Tensor | None) -> tuple[Tensor, State]:
        device_type = x.device.type
        if torch.is_autocast_enabled(device_type):
            # Like torch.nn.LSTM under autocast: the whole recurrence in the autocast dtype.
            dtype = torch.get_autocast_dtype(device_type)
            with torch.autocast(device_type, enabled=False):
                h0, c0 = hx
                return self._run_cast(x.to(dtype), (h0.to(dtype), c0.to(dtype)), lengths, dtype)
        return self._run_cast(x, hx, lengths, None)

    def _run_cast(
        self, x: Tensor, hx: State, lengths: Tensor | None, dtype: torch.dtype | None
    ) -> tuple[Tensor, State]:
        record = self._recorder is not None
        fused = self.implementation == "fused" and not record
        steps, batch = x.shape[0], x.shape[1]
        h0, c0 = hx
        noise = self._draw_noise(steps, batch, x)

        order = batch_sizes = None
        if lengths is not None and fused:
            sorted_lengths, order = torch.sort(lengths, descending=True, stable=True)
            # (no data-dependent branch while compiling: the permutation is then always applied)
            if not torch.compiler.is_compiling() and bool((order == torch.arange(batch)).all()):
                order = None
            else:
                lengths = sorted_lengths
                index = order.to(x.device)
                x, h0, c0 = (
                    x.index_select(1, index),
                    h0.index_select(1, index),
                    c0.index_select(1, index),
                )
                noise = [_permute_noise(n, index) for n in noise]
            batch_sizes = (lengths.unsqueeze(0) > torch.arange(steps).unsqueeze(1)).sum(1)
        lengths_dev = None if lengths is None else lengths.to(x.device)
        reverse_index = None
        if self.bidirectional and lengths_dev is not None:
            reverse_index = _reverse_index(lengths_dev, steps)

        layer_input = x
        h_n, c_n, traces = [], [], []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                k = layer * self.num_directions + direction
                w = self.layer_weights(layer, direction)
                if dtype is not None:
                    w = w.to(dtype)
                reverse = reverse_index if direction else None
                inp = _reverse(layer_input, reverse) if direction else layer_input
                if fused:
                    out, h, c = self._fused_direction(inp, h0[k], c0[k], w, noise[k], batch_sizes)
                else:
                    out, h, c, trace = _reference_direction(
                        inp, h0[k], c0[k], w, noise[k], lengths_dev, record
                    )
                    if record:
                        traces.append([_reverse(t, reverse) if direction else t for t in trace])
                outputs.append(_reverse(out, reverse) if direction else out)
                h_n.append(h)
                c_n.append(c)
            layer_input = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=-1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, training=True)

        output, h_n, c_n = layer_input, torch.stack(h_n), torch.stack(c_n)
        if order is not None:
            restore = torch.argsort(order).to(x.device)
            output = output.index_select(1, restore)
            h_n, c_n = h_n.index_select(1, restore), c_n.index_select(1, restore)
        if record:
            self._recorder.append(GateTrace.from_steps(traces))
        return output, (h_n, c_n)

    def _fused_direction(
        self,
        inp: Tensor,
        h0: Tensor,
        c0: Tensor,
        w: LayerWeights,
        noise: Noise,
        batch_sizes: Tensor | None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        order = self._gate_order
        weight_ih = w.weight_ih.index_select(0, order)
        bias = None if w.bias_ih is None else (w.bias_ih + w.bias_hh).index_select(0, order)
        input_norm = ()
        if w.layer_norm:  # the layer normalises the projection itself (in its C loop if it can)
            xp = project_input(inp, weight_ih, None)
            input_norm = (w.ln_ih.index_select(0, order), bias)
        else:
            xp = project_input(inp, weight_ih, bias)
        mask, zoneout_h, zoneout_c = noise
        ln_ih, ln_ih_bias = input_norm or (None, None)
        return run_layer(
            LayerInputs(
                xp=xp.contiguous(),
                h0=h0,
                c0=c0,
                weight_hh=w.weight_hh.index_select(0, order),
                weight_hr=w.weight_hr,
                peephole=w.peephole,
                ln_hh=None if w.ln_hh is None else w.ln_hh.index_select(0, order),
                ln_cell_weight=w.ln_cell_weight,
                ln_cell_bias=w.ln_cell_bias,
                ln_ih=ln_ih,
                ln_ih_bias=ln_ih_bias,
                recurrent_mask=mask,
                zoneout_h=zoneout_h if isinstance(zoneout_h, Tensor) else None,
                zoneout_c=zoneout_c if isinstance(zoneout_c, Tensor) else None,
                zoneout_h_rate=0.0 if isinstance(zoneout_h, Tensor) else float(zoneout_h or 0),
                zoneout_c_rate=0.0 if isinstance(zoneout_c, Tensor) else float(zoneout_c or 0),
                batch_sizes=batch_sizes,
            )
        )

    def _draw_noise(self, steps: int, batch: int, like: Tensor) -> list[Noise]:
        """Random masks of every layer and direction, drawn in a fixed order (see class doc)."""
        rate_h, rate_c = self.zoneout
        noise = []
        for _ in range(self.num_layers * self.num_directions):
            if not self.training:
                noise.append((None, rate_h or None, rate_c or None))
                continue
            mask = None
            if self.recurrent_dropout:
                keep = 1.0 - self.recurrent_dropout
                mask = like.new_empty(batch, self.state_size).bernoulli_(keep).div_(keep)
            zh = (
                like.new_empty(steps, batch, self.state_size).bernoulli_(rate_h) if rate_h else None
            )
            zc = (
                like.new_empty(steps, batch, self.hidden_size).bernoulli_(rate_c)
                if rate_c
                else None
            )
            noise.append((mask, zh, zc))
        return noise

    def extra_repr(self) -> str:
        s = super().extra_repr()
        for name in ("layer_norm", "peephole"):
            if getattr(self, name):
                s += f", {name}=True"
        if self.recurrent_dropout:
            s += f", recurrent_dropout={self.recurrent_dropout}"
        if any(self.zoneout):
            s += f", zoneout={self.zoneout}"
        if self.forget_bias:
            s += f", forget_bias={self.forget_bias}"
        if self.input_bias:
            s += f", input_bias={self.input_bias}"
        if self.recurrent_init != "default":
            s += f", recurrent_init={self.recurrent_init!r}"
        if self.implementation != "fused":
            s += f", implementation={self.implementation!r}"
        return s


def _reference_direction(
    inp: Tensor,
    h: Tensor,
    c: Tensor,
    w: LayerWeights,
    noise: Noise,
    lengths: Tensor | None,
    record: bool,
) -> tuple[Tensor, Tensor, Tensor, list[Tensor] | None]:
    """`lstm_step` over time under autograd; padded steps leave the state alone and output 0.

    Returns ``(output (T, B, P), h_n, c_n, trace)``, trace = stacked (i, f, g, o, c, h) ``(T, B, ·)``.
    """
    mask, zoneout_h, zoneout_c = noise
    steps = inp.shape[0]
    valid = None
    if lengths is not None:
        valid = (torch.arange(steps, device=inp.device).unsqueeze(1) < lengths).unsqueeze(-1)
    outputs, recorded = [], []
    for t, x_t in enumerate(inp.unbind(0)):
        h_new, c_new, gates = lstm_step(
            x_t,
            h,
            c,
            w,
            recurrent_mask=mask,
            zoneout_h=zoneout_h[t] if isinstance(zoneout_h, Tensor) else zoneout_h,
            zoneout_c=zoneout_c[t] if isinstance(zoneout_c, Tensor) else zoneout_c,
        )
        if valid is None:
            h, c, h_out = h_new, c_new, h_new
        else:
            keep = valid[t]
            h, c = torch.where(keep, h_new, h), torch.where(keep, c_new, c)
            h_out = h_new * keep
        outputs.append(h_out)
        if record:
            step = [*gates, c_new, h_new]
            recorded.append(step if valid is None else [v * valid[t] for v in step])
    trace = [torch.stack(values) for values in zip(*recorded, strict=True)] if record else None
    return torch.stack(outputs), h, c, trace


def _reverse_index(lengths: Tensor, steps: int) -> Tensor:
    """``(T, B)`` index reversing each sequence within its length; padded steps map to themselves."""
    t = torch.arange(steps, device=lengths.device).unsqueeze(1)
    return torch.where(t < lengths, lengths - 1 - t, t)


def _reverse(x: Tensor, index: Tensor | None) -> Tensor:
    """Reverse time-major ``x (T, B, ...)``: all of it, or each sequence within its length."""
    if index is None:
        return x.flip(0)
    return x.gather(0, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x))


def _permute_noise(noise: Noise, index: Tensor) -> Noise:
    mask, zh, zc = noise
    return (
        None if mask is None else mask.index_select(0, index),
        zh.index_select(1, index) if isinstance(zh, Tensor) else zh,
        zc.index_select(1, index) if isinstance(zc, Tensor) else zc,
    )


torch.serialization.add_safe_globals([CustomLSTM])
