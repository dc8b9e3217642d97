"""The fast path: one layer and direction of `lstmkit.nn.cell.lstm_step` with a hand-written backward.

Why it exists: on CPU at small shapes a hand-written LSTM is bound by per-step overhead, not
arithmetic: autograd records ~25 small ops a step, each a dispatch and a pass over memory. Here a
step is one GEMM plus the elementwise work, and everything that does not depend on the
recurrence leaves the time loop:

* the input projection for all steps is one matmul (done by the caller; the result is ``xp``);
* weight gradients are one GEMM over all steps; the gradient of ``xp`` is returned as is, so the
  caller's autograd turns it into ``weight_ih``/bias/input gradients with one more GEMM;
* the per-step GEMMs reuse a weight packed once per call (oneDNN, `StepMatmul`, or the C loop's
  own packing).

The elementwise work of a step runs in one of two implementations of the same equations:

* **native** — one C loop each way (`lstmkit.nn.fastpath.native`), for the plain and the layer-norm LSTM
  on CPU when a C compiler is available; the whole time loop runs in C too, one call per layer
  and direction each way (no per-step Python or dispatch), with the per-step GEMMs through
  lstmkit's own GEMM (float32, AVX-512/AVX2/NEON builds; batch rows split over torch's OpenMP
  threads) or the BLAS
  torch's library exports (MKL in the x86-64 wheels), and the weight gradients through the same
  own GEMM (`t_matmul`);
* **torch ops** — ~7 ops a step forward and ~6 backward for the plain LSTM (more per variant),
  with the backward's local derivatives computed for all steps at once before the loop. It serves
  every variant, every device and dtype.

Gates are kept internally in the order (o, i, f, g) so that one ``sigmoid_`` covers o, i, f and
one multiplication covers the three gates driven by the cell gradient; the caller permutes the
weight rows (`internal_gate_order`).

Variable lengths follow PackedSequence: the batch is sorted by decreasing length and step ``t``
touches only the first ``batch_sizes[t]`` rows, so finished sequences cost nothing.

Tested equal to `lstm_step` (outputs and every gradient, float64, and ``gradcheck``) for each
variant, and native equal to torch ops.
"""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import NamedTuple

import torch
from torch import Tensor

from ..cell import LAYER_NORM_EPS
from ..settings import settings
from .native import Kernels
from .native import kernels as native_kernels

# oneDNN's packed GEMM: the per-step matmuls reuse one weight T times, and on CPU packing it once
# per call measured 1.5-2.3x faster than torch.mm (which repacks the weight on every step) from
# (32 x 128 x 512) up; below ``settings.onednn_min_macs`` its fixed cost loses to torch.mm.
ONEDNN_AVAILABLE = torch.backends.mkldnn.is_available() and hasattr(
    torch.ops.mkldnn, "_linear_pointwise"
)


def functorch_active() -> bool:
    """Whether a torch.func transform (grad, vmap, jacrev, ...) is tracing this call: then the
    layer runs as plain differentiable torch ops (`lstmkit.nn.fastpath.composite`), which every
    transform understands."""
    return torch._C._functorch.peek_interpreter_stack() is not None


def _use_onednn() -> bool:
    return settings.onednn and ONEDNN_AVAILABLE


def internal_gate_order(hidden: int, device: torch.device | None = None) -> Tensor:
    """Row permutation from torch's gate order (i, f, g, o) to the internal one (o, i, f, g)."""
    blocks = [3, 0, 1, 2]
    return torch.cat([torch.arange(b * hidden, (b + 1) * hidden, device=device) for b in blocks])


class StepMatmul:
    """``x -> x @ weight.T`` for one weight used at every step. ``weight (N, K)``, ``x (n, K)``."""

    def __init__(self, weight: Tensor, rows: int) -> None:
        self.weight_t = weight.t()
        self.packed = None
        big = rows * weight.numel() >= settings.onednn_min_macs
        if _use_onednn() and big and weight.device.type == "cpu" and weight.dtype == torch.float32:
            self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), rows)

    def __call__(self, x: Tensor) -> Tensor:
        if self.packed is not None:
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, None, "none", [], "")
        return torch.mm(x, self.weight_t)


def t_matmul(a: Tensor, b: Tensor, accumulate_into: Tensor | None = None) -> Tensor:
    """``a.T @ b`` (``a (K, M)``, ``b (K, N)``; K = steps x batch), added into
    ``accumulate_into`` when given: the weight gradients' reductions over all steps. Through
    lstmkit's own GEMM where it runs (`Kernels.weight_grad`), else torch."""
    native = native_kernels() if settings.native else None
    if native is not None and native.supports_weight_grad(a) and b.dtype == a.dtype:
        return native.weight_grad(a, b, accumulate_into)
    if accumulate_into is None:
        return a.t().mm(b)
    return accumulate_into.addmm_(a.t(), b)


def project_input(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """The input projection of all steps at once: ``x (T, B, C) @ weight.T + bias -> (T, B, 4H)``.

    On CPU float32 above the oneDNN threshold it runs as one packed oneDNN GEMM (measured 1.6x
    faster than torch's at (16384 x 256) @ (256 x 1024)); with one input feature as an outer
    product (`_OuterLinear`); elsewhere ``F.linear``.
    """
    rows = x.shape[0] * x.shape[1]
    eager = not torch.compiler.is_compiling() and not functorch_active()
    if x.shape[-1] == 1 and eager and torch.autograd.forward_ad._current_level < 0:
        return _OuterLinear.apply(x, weight, bias)
    if (
        _use_onednn()
        and x.device.type == "cpu"
        and x.dtype == weight.dtype == torch.float32
        and rows * weight.numel() >= settings.onednn_min_macs
        and eager
    ):
        return _PackedLinear.apply(x, weight, bias)
    return torch.nn.functional.linear(x, weight, bias)


class _OuterLinear(torch.autograd.Function):
    """``x @ weight.T + bias`` over ``(T, B, 1)``: one input feature makes the projection an
    outer product, elementwise forward (``addcmul``) and GEMVs backward, where a GEMM call (and
    oneDNN's weight packing) cost 2x more at (3200 x 1) @ (1 x 512)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        row = weight.reshape(-1)
        return torch.mul(x, row) if bias is None else torch.addcmul(bias, x, row)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        need = ctx.needs_input_grad
        flat_grad = grad.reshape(-1, grad.shape[-1])
        native = native_kernels() if settings.native else None
        if torch.is_grad_enabled():  # double backward: differentiable products
            grad_x = flat_grad.mm(weight).view(x.shape) if need[0] else None
            grad_w = flat_grad.t().mm(x.reshape(-1, 1)) if need[1] else None
        elif (
            native is not None
            and native.supports(flat_grad)
            and x.dtype == weight.dtype == grad.dtype
        ):
            # one C pass over the gradient instead of two GEMVs and a sum
            grad_x, grad_w, grad_b = native.outer_backward(
                flat_grad, weight.reshape(-1), x.reshape(-1)
            )
            return (
                grad_x.view(x.shape) if need[0] else None,
                grad_w.unsqueeze(1) if need[1] else None,
                grad_b if ctx.has_bias and need[2] else None,
            )
        else:
            grad_x = flat_grad.mv(weight.reshape(-1)).view(x.shape) if need[0] else None
            grad_w = flat_grad.t().mv(x.reshape(-1)).unsqueeze(1) if need[1] else None
        grad_b = flat_grad.sum(0) if ctx.has_bias and need[2] else None
        return grad_x, grad_w, grad_b


class _PackedLinear(torch.autograd.Function):
    """``x @ weight.T + bias`` over ``(T, B, C)`` with oneDNN's packed GEMM, both ways."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        flat = x.reshape(-1, x.shape[-1])
        packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), flat.shape[0])
        out = torch.ops.mkldnn._linear_pointwise(flat.contiguous(), packed, bias, "none", [], "")
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return out.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        need = ctx.needs_input_grad
        if torch.is_grad_enabled():  # double backward: the same products, differentiable
            grad_x = grad.matmul(weight) if need[0] else None
            grad_w = grad.flatten(0, -2).t().mm(x.flatten(0, -2)) if need[1] else None
            grad_b = grad.flatten(0, -2).sum(0) if ctx.has_bias and need[2] else None
            return grad_x, grad_w, grad_b
        flat_grad = grad.reshape(-1, grad.shape[-1]).contiguous()
        grad_x = grad_w = grad_b = None
        if need[0]:
            grad_x = StepMatmul(weight.t(), flat_grad.shape[0])(flat_grad).view(x.shape)
        if need[1]:
            grad_w = t_matmul(flat_grad, x.reshape(-1, x.shape[-1]))
        if ctx.has_bias and need[2]:
            grad_b = flat_grad.sum(0)
        return grad_x, grad_w, grad_b


class LayerInputs(NamedTuple):
    """What one layer and direction computes from (internal gate order o, i, f, g where it
    applies). The field order is the custom op's argument order (`lstmkit.nn.fastpath.ops`).

    xp: ``(T, B, 4H)`` input projection plus biases; with ``ln_ih``, the projection alone (no
        bias): the layer normalises it itself.
    h0: ``(B, P)``; c0: ``(B, H)``.
    weight_hh: ``(4H, P)``; weight_hr: ``(P, H)`` or None.
    peephole: ``(3, H)`` for (i, f, o) or None.
    ln_hh: ``(4H,)`` gain of the recurrent layer norm, or None (layer norm off).
    ln_cell_weight, ln_cell_bias: ``(H,)`` or None.
    ln_ih: ``(4H,)`` gain of the input layer norm (with ``ln_hh`` only), or None: then ``xp``
        becomes ``LN(xp) * ln_ih + ln_ih_bias`` (bias ``(4H,)`` or None). In the C time loop
        this runs per step, with no normalised copy of ``xp`` in memory.
    recurrent_mask: ``(B, P)`` or None.
    zoneout_h: ``(T, B, P)`` 0/1 keep-mask or None; zoneout_c likewise ``(T, B, H)``.
    zoneout_h_rate, zoneout_c_rate: the evaluation-mode rates used where the mask is None (0:
        no zoneout).
    batch_sizes: int64 ``(T,)`` rows active at each step (non-increasing: the batch is sorted
        by decreasing length), on the CPU, or None (all rows at every step).
    """

    xp: Tensor
    h0: Tensor
    c0: Tensor
    weight_hh: Tensor
    weight_hr: Tensor | None = None
    peephole: Tensor | None = None
    ln_hh: Tensor | None = None
    ln_cell_weight: Tensor | None = None
    ln_cell_bias: Tensor | None = None
    ln_ih: Tensor | None = None
    ln_ih_bias: Tensor | None = None
    recurrent_mask: Tensor | None = None
    zoneout_h: Tensor | None = None
    zoneout_c: Tensor | None = None
    zoneout_h_rate: float = 0.0
    zoneout_c_rate: float = 0.0
    batch_sizes: Tensor | None = None


# The tensor inputs a layer's backward returns a gradient for, in `LayerInputs` order.
GRADIENT_INPUTS = (
    "xp", "h0", "c0", "weight_hh", "weight_hr", "peephole", "ln_hh", "ln_cell_weight",
    "ln_cell_bias", "ln_ih", "ln_ih_bias",
)  # fmt: skip


class SavedBuffers(NamedTuple):
    """What the forward keeps for the backward, beside its inputs and ``output``. With
    ``keep=False`` (no backward to come) every field is None. Shapes: ``acts, rec_pre_ln
    (T, B, 4H)``; ``cells, fresh, tanh_cells, pre_proj (T, B, H)``; ``rec_stats, cell_stats,
    in_stats (2, T, B, 1)`` (mean, rstd). ``fresh`` (the cell before zoneout) is None where it
    equals ``cells``; the others are None where their option is off."""

    acts: Tensor | None = None
    cells: Tensor | None = None
    fresh: Tensor | None = None
    tanh_cells: Tensor | None = None
    pre_proj: Tensor | None = None
    rec_pre_ln: Tensor | None = None
    rec_stats: Tensor | None = None
    cell_stats: Tensor | None = None
    in_stats: Tensor | None = None


def saved_shapes(inputs: LayerInputs, keep: bool) -> SavedBuffers:
    """The shape of each `SavedBuffers` field (None where absent): one rule for the forward and
    for the custom op's fake (shape-only) implementation."""
    if not keep:
        return SavedBuffers()
    steps, batch, gates = inputs.xp.shape
    hidden = gates // 4
    ln = inputs.ln_hh is not None
    zoneout_c = inputs.zoneout_c is not None or inputs.zoneout_c_rate != 0
    stats = (2, steps, batch, 1)
    return SavedBuffers(
        acts=(steps, batch, gates),
        cells=(steps, batch, hidden),
        fresh=(steps, batch, hidden) if zoneout_c else None,
        tanh_cells=(steps, batch, hidden),
        pre_proj=(steps, batch, hidden) if inputs.weight_hr is not None else None,
        rec_pre_ln=(steps, batch, gates) if ln else None,
        rec_stats=stats if ln else None,
        cell_stats=stats if inputs.ln_cell_weight is not None else None,
        in_stats=stats if inputs.ln_ih is not None else None,
    )


def layer_forward(
    inputs: LayerInputs, keep: bool = True
) -> tuple[Tensor, Tensor, Tensor, SavedBuffers]:
    """One layer, one direction, forward (see the module docstring and `LayerInputs`).

    ``keep``: False when no backward will follow (grad mode off): nothing is saved, and the C
    time loop keeps one step of the buffers only the backward reads, instead of every step.

    Returns ``output (T, B, P)`` (zero at padded steps), ``h_n (B, P)``, ``c_n (B, H)`` and the
    `SavedBuffers`.
    """
    xp, h0, c0, weight_hh, weight_hr, peephole, ln_hh = inputs[:7]
    ln_cell_weight, ln_cell_bias, ln_ih, ln_ih_bias, recurrent_mask = inputs[7:12]
    zoneout_h = inputs.zoneout_h if inputs.zoneout_h is not None else inputs.zoneout_h_rate
    zoneout_c = inputs.zoneout_c if inputs.zoneout_c is not None else inputs.zoneout_c_rate
    zoneout_h = None if isinstance(zoneout_h, float) and zoneout_h == 0 else zoneout_h
    zoneout_c = None if isinstance(zoneout_c, float) and zoneout_c == 0 else zoneout_c
    batch_sizes = inputs.batch_sizes
    steps, batch, gate_size = xp.shape
    hidden = gate_size // 4
    state = h0.shape[-1]
    proj = weight_hr is not None
    ln = ln_hh is not None
    eps = LAYER_NORM_EPS
    h0, c0 = h0.contiguous(), c0.contiguous()
    simple = peephole is None and recurrent_mask is None and zoneout_h is zoneout_c is None
    native = _native_for(xp, simple)
    loop_in_c = native is not None and _native_loop(native, xp, weight_hh)
    if ln_ih is not None and not ln:
        raise ValueError("the input layer norm (ln_ih) needs the recurrent one (ln_hh)")
    if batch_sizes is not None and not isinstance(batch_sizes, list):
        batch_sizes = batch_sizes.tolist()

    # With variable lengths, rows inactive at a step must read as zero (padded outputs, and
    # the backward reads whole buffers); with full batches every row is written.
    zero = batch_sizes is not None
    # what only the backward reads holds every step, or one (C loop, no backward to come)
    kept = steps if keep or not loop_in_c else 1
    # (every buffer an operator returns is defined everywhere: inactive rows read as zero)
    acts = _buffer(xp, kept, batch, gate_size, zero=zero)  # activations o, i, f, g
    cells = _buffer(xp, steps, batch, hidden, zero=zero)
    tanh_cells = _buffer(xp, kept, batch, hidden, zero=zero)
    out = _buffer(xp, steps, batch, state, zero=zero)
    pre_proj = _buffer(xp, kept, batch, hidden, zero=zero) if proj else None
    rec_pre_ln = _buffer(xp, kept, batch, gate_size, zero=zero) if ln else None
    # layer-norm statistics (mean, rstd) of the recurrent projection and of the cell
    rec_stats = _buffer(xp, 2, kept, batch, 1, zero=zero) if ln else None
    cell_stats = _buffer(xp, 2, kept, batch, 1, zero=zero) if ln_cell_weight is not None else None
    xp_raw = in_stats = None
    if ln_ih is not None:  # input layer norm: in the C loop, else here with torch's kernel
        xp_raw = xp.contiguous()
        if loop_in_c:
            in_stats = _buffer(xp, 2, kept, batch, 1, zero=zero)
        else:
            xp, mean, rstd = torch.native_layer_norm(
                _inactive_rows_zeroed(xp_raw, batch_sizes), (gate_size,), ln_ih, ln_ih_bias, eps
            )
            in_stats = torch.stack((mean, rstd))
            if zero:
                in_stats = _inactive_rows_zeroed(in_stats, batch_sizes)
    # With zoneout on c the carried cell differs from the fresh one that feeds h.
    fresh = _buffer(xp, steps, batch, hidden, zero=zero) if zoneout_c is not None else cells

    if loop_in_c:
        ln_buffers = None
        if ln:
            ln_buffers = SimpleNamespace(
                ln_hh=ln_hh, cell_weight=ln_cell_weight, cell_bias=ln_cell_bias,
                rec_pre_ln=rec_pre_ln, rec_stats=rec_stats, cell_stats=cell_stats, eps=eps,
                ln_ih=ln_ih, ln_ih_bias=ln_ih_bias, in_stats=in_stats,
            )  # fmt: skip
        native.sequence_forward(
            xp.contiguous(), h0, c0, weight_hh.contiguous(), _contiguous(weight_hr),
            _sizes_tensor(batch_sizes), acts, cells, tanh_cells, out, pre_proj, ln_buffers,
            keep=kept == steps,
        )  # fmt: skip
    else:
        recurrent = StepMatmul(weight_hh, batch)
        project = StepMatmul(weight_hr, batch) if proj else None
        # Per-step views, made once: slicing inside the loop costs a dispatch each.
        xp_s, acts_s, cells_s, tanh_s, out_s, fresh_s = (
            t.unbind(0) for t in (xp, acts, cells, tanh_cells, out, fresh)
        )
        o_s, i_s, f_s, g_s = (t.unbind(0) for t in acts.split(hidden, dim=-1))
        oif_s = acts[..., : 3 * hidden].unbind(0)
        if_s = acts[..., hidden : 3 * hidden].unflatten(-1, (2, hidden)).unbind(0)
        pre_proj_s = pre_proj.unbind(0) if proj else None
        rec_s = rec_pre_ln.unbind(0) if ln else None
        zh_steps = zoneout_h.unbind(0) if isinstance(zoneout_h, Tensor) else None
        zc_steps = zoneout_c.unbind(0) if isinstance(zoneout_c, Tensor) else None

        h_prev, c_prev = h0, c0
        for t in range(steps):
            a, c, s, h, x_t = acts_s[t], cells_s[t], tanh_s[t], out_s[t], xp_s[t]
            a_o, a_i, a_f, a_g = o_s[t], i_s[t], f_s[t], g_s[t]
            n = batch if batch_sizes is None else batch_sizes[t]
            if n < batch:
                a, c, s, h, x_t = a[:n], c[:n], s[:n], h[:n], x_t[:n]
                a_o, a_i, a_f, a_g = a_o[:n], a_i[:n], a_f[:n], a_g[:n]
                h_prev, c_prev = h_prev[:n], c_prev[:n]
            h_in = h_prev if recurrent_mask is None else h_prev * recurrent_mask[:n]
            z = recurrent(h_in)
            if ln:
                rec_s[t][:n].copy_(z)

            if native is not None:
                target = pre_proj_s[t][:n] if proj else h
                if ln:
                    native.ln_forward(
                        x_t, z, ln_hh, ln_cell_weight, ln_cell_bias, a, c_prev, c, s, target,
                        rec_stats[:, t, :n], cell_stats[:, t, :n], eps,
                    )  # fmt: skip
                else:
                    native.forward(x_t, z, a, c_prev, c, s, target)
                if proj:
                    h.copy_(project(target))
                h_prev, c_prev = out_s[t], cells_s[t]
                continue

            if ln:
                z, mean, rstd = torch.native_layer_norm(z, (gate_size,), ln_hh, None, eps)
                rec_stats[0, t, :n].copy_(mean)
                rec_stats[1, t, :n].copy_(rstd)
            torch.add(x_t, z, out=a)
            if peephole is not None:
                if_s[t][:n].addcmul_(peephole[:2], c_prev.unsqueeze(1)).sigmoid_()
            else:
                oif_s[t][:n].sigmoid_()
            a_g.tanh_()

            c_hat = fresh_s[t][:n] if n < batch else fresh_s[t]
            torch.mul(a_f, c_prev, out=c_hat)
            c_hat.addcmul_(a_i, a_g)
            if zoneout_c is not None:
                keep_c = zc_steps[t][:n] if zc_steps is not None else zoneout_c
                torch.lerp(c_hat, c_prev, keep_c, out=c)
            if peephole is not None:
                a_o.addcmul_(peephole[2], c_hat).sigmoid_()

            if ln_cell_weight is not None:
                c_norm, mean, rstd = torch.native_layer_norm(
                    c_hat, (hidden,), ln_cell_weight, ln_cell_bias, eps
                )
                cell_stats[0, t, :n].copy_(mean)
                cell_stats[1, t, :n].copy_(rstd)
                torch.tanh(c_norm, out=s)
            else:
                torch.tanh(c_hat, out=s)

            if proj:
                r = torch.mul(a_o, s, out=pre_proj_s[t][:n])
                h_new = project(r)
                if zoneout_h is None:
                    h.copy_(h_new)
            else:
                h_new = torch.mul(a_o, s, out=h) if zoneout_h is None else a_o * s
            if zoneout_h is not None:
                keep_h = zh_steps[t][:n] if zh_steps is not None else zoneout_h
                torch.lerp(h_new, h_prev, keep_h, out=h)
            h_prev, c_prev = out_s[t], cells_s[t]

    if batch_sizes is None:
        h_n, c_n = out[-1].clone(), cells[-1].clone()
        last = None
    else:
        last = _last_steps(batch_sizes, batch, xp.device)
        rows = torch.arange(batch, device=xp.device)
        h_n, c_n = out[last, rows], cells[last, rows]

    if batch_sizes is None:
        h_n, c_n = out[-1].clone(), cells[-1].clone()
    else:
        last = _last_steps(batch_sizes, batch, xp.device)
        rows = torch.arange(batch, device=xp.device)
        h_n, c_n = out[last, rows], cells[last, rows]
    if not keep:
        return out, h_n, c_n, SavedBuffers()
    saved = SavedBuffers(
        acts=acts, cells=cells, fresh=None if fresh is cells else fresh, tanh_cells=tanh_cells,
        pre_proj=pre_proj, rec_pre_ln=rec_pre_ln, rec_stats=rec_stats, cell_stats=cell_stats,
        in_stats=in_stats,
    )  # fmt: skip
    return out, h_n, c_n, saved


def layer_backward(
    inputs: LayerInputs,
    output: Tensor,
    saved: SavedBuffers,
    grad_out: Tensor,
    grad_h_n: Tensor,
    grad_c_n: Tensor,
    needs: dict[str, bool],
) -> dict[str, Tensor | None]:
    """One layer, one direction, backward: the gradients of the `GRADIENT_INPUTS` that
    ``needs`` asks for (None for the others), from the forward's ``output`` and `SavedBuffers`.
    Runs the C time loop where the forward could have (same buffers either way)."""
    xp = inputs.xp
    v = SimpleNamespace(**inputs._asdict(), **saved._asdict())
    v.h0, v.c0 = inputs.h0.contiguous(), inputs.c0.contiguous()
    v.out = output
    if v.fresh is None:
        v.fresh = v.cells
    v.zoneout_h = inputs.zoneout_h if inputs.zoneout_h is not None else inputs.zoneout_h_rate
    v.zoneout_c = inputs.zoneout_c if inputs.zoneout_c is not None else inputs.zoneout_c_rate
    v.zoneout_h = None if isinstance(v.zoneout_h, float) and v.zoneout_h == 0 else v.zoneout_h
    v.zoneout_c = None if isinstance(v.zoneout_c, float) and v.zoneout_c == 0 else v.zoneout_c
    v.xp_raw = None
    if inputs.ln_ih is not None:  # padding never reaches a gradient, whatever it holds
        v.xp_raw = _inactive_rows_zeroed(xp, inputs.batch_sizes)
    batch_sizes = None if inputs.batch_sizes is None else inputs.batch_sizes.tolist()
    v.last = None
    grads = SimpleNamespace(h_n=grad_h_n, c_n=grad_c_n)
    if batch_sizes is None:
        grads.out = grad_out  # grad_h_n is added at the last step
    else:
        v.last = _last_steps(batch_sizes, xp.shape[1], xp.device)
        grads.out = grad_out.clone(memory_format=torch.contiguous_format)
        rows = torch.arange(grad_out.shape[1], device=xp.device)
        grads.out.index_put_((v.last, rows), grad_h_n, accumulate=True)

    simple = inputs.peephole is None and inputs.recurrent_mask is None
    simple = simple and v.zoneout_h is None and v.zoneout_c is None
    native = _native_for(xp, simple)
    if native is not None:
        loop_in_c = _native_loop(native, xp, inputs.weight_hh)
        buffers = _backward_native(native, v, grads, batch_sizes, loop_in_c)
    else:
        buffers = _backward_torch(v, grads, batch_sizes)
    result = dict.fromkeys(GRADIENT_INPUTS)
    result["xp"], result["ln_ih"], result["ln_ih_bias"] = _input_norm_grads(needs, v, buffers)
    result["h0"], result["c0"] = buffers.carry_h, buffers.carry_c
    result.update(_parameter_grads(needs, v, buffers))
    return {name: grad if needs[name] else None for name, grad in result.items()}


def _inactive_rows_zeroed(t: Tensor, batch_sizes: list[int] | Tensor | None) -> Tensor:
    """``t (..., T, B, F)`` with the rows each step does not run set to 0 (a copy; ``t`` itself
    without lengths). Padding may hold anything, NaN included: like a PackedSequence, it must
    never reach an output or a gradient, even as ``0 * NaN``."""
    if batch_sizes is None:
        return t
    sizes = torch.as_tensor(batch_sizes, device=t.device)
    active = torch.arange(t.shape[-2], device=t.device) < sizes.unsqueeze(1)  # (T, B)
    return torch.where(active.unsqueeze(-1), t, t.new_zeros(()))


def _buffer(like: Tensor, *shape: int, zero: bool = False) -> Tensor:
    return like.new_zeros(shape) if zero else like.new_empty(shape)


def _native_for(xp: Tensor, simple: bool) -> Kernels | None:
    if not (settings.native and simple):
        return None
    native = native_kernels()
    return native if native is not None and native.supports(xp) else None


def _native_loop(native: Kernels, x: Tensor, weight_hh: Tensor) -> bool:
    """Whether the whole time loop runs in C (see ``settings.native_loop_max_macs``)."""
    if not native.supports_sequence(x):
        return False
    own_gemm = native.blas(x.dtype).panel is not None
    return own_gemm or x.shape[1] * weight_hh.numel() <= settings.native_loop_max_macs


def _contiguous(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.contiguous()


def _sizes_tensor(batch_sizes: list[int] | None) -> Tensor | None:
    return None if batch_sizes is None else torch.tensor(batch_sizes, dtype=torch.int64)


def _gradient_buffers(
    v: SimpleNamespace, grads: SimpleNamespace, batch_sizes, loop_sums: bool = False
) -> SimpleNamespace:
    """Buffers the loop fills. With variable lengths, rows inactive at a step must stay zero;
    with full batches every row is written, so no zero fill is needed. The ones the backward
    only reduces (never returns) are workspace (``settings.reuse_workspace``); ``pre`` is returned as
    ``xp``'s gradient unless an input layer norm stands between them. ``loop_sums``: the C loop
    sums the layer norms' parameter gradients itself, so ``cell_norm`` (and ``pre`` with the
    input layer norm) is scratch of one step, ``(B, ·)``, that nothing reads after the loop."""
    zero = batch_sizes is not None

    def new(t: Tensor) -> Tensor:
        return torch.zeros_like(t) if zero else torch.empty_like(t)

    def scratch(t: Tensor, name: str) -> Tensor:
        keep = settings.reuse_workspace and t.device.type == "cpu"
        return _workspace(t, name, zero) if keep else new(t)

    # d loss / d pre-activations (= d xp), internal order
    if loop_sums:
        pre = new(v.acts) if v.ln_ih is None else v.acts.new_empty(v.acts.shape[1:])
        cell_norm = v.cells.new_empty(v.cells.shape[1:])
    else:
        pre = new(v.acts) if v.ln_ih is None else scratch(v.acts, "pre")
        # after the cell LN
        cell_norm = scratch(v.cells, "cell_norm") if v.ln_cell_weight is not None else None
    return SimpleNamespace(
        pre=pre,
        # before the recurrent LN
        rec=scratch(v.rec_pre_ln, "rec") if v.ln_hh is not None else None,
        proj_in=scratch(v.out, "proj_in") if v.weight_hr is not None else None,  # d / d r_t
        cell_norm=cell_norm,
        carry_c=grads.c_n.clone(memory_format=torch.contiguous_format),
        carry_h=grads.h_n if v.last is None else None,  # flows into the last step
        input=None,  # d loss / d xp before the input layer norm, where the C loop computes it
        ln_sums=None,  # layer-norm parameter gradients by name, where the C loop summed them
    )


_WORKSPACE = threading.local()


def _workspace(like: Tensor, name: str, zero: bool) -> Tensor:
    """A buffer shaped like ``like`` that is kept for the next call: one per ``name``, thread,
    device and dtype, grown to the largest size asked for. Valid until the next call asks for
    the same name (a backward takes and drops its own before it returns)."""
    buffers = _WORKSPACE.__dict__.setdefault("buffers", {})
    key = (name, like.device, like.dtype)
    count = like.numel()
    flat = buffers.get(key)
    if flat is None or flat.numel() < count:
        buffers.pop(key, None)
        flat = like.new_empty(count)
        kept = sum(b.numel() * b.element_size() for b in buffers.values())
        if kept + flat.numel() * flat.element_size() <= settings.workspace_limit_mb << 20:
            buffers[key] = flat  # else used once and freed: the bound holds
    out = flat[:count].view(like.shape)
    return out.zero_() if zero else out


def release_workspace() -> None:
    """Free this thread's kept backward buffers (``settings.reuse_workspace``), e.g. after training
    a large model in a process that goes on to other work."""
    _WORKSPACE.__dict__.pop("buffers", None)


def _step_grad_h(grad_t: Tensor, carry_h: Tensor | None, n: int) -> tuple[Tensor, Tensor | None]:
    """``d loss / d h_t = grad_out[t] + carry``; the carry has fewer rows where sequences end."""
    if carry_h is not None and carry_h.shape[0] != n:
        grad_t = grad_t.clone()  # rows n_{t+1}..n_t end at step t: nothing flows back into them
        grad_t[: carry_h.shape[0]] += carry_h
        carry_h = None
    return grad_t, carry_h


def _backward_native(native: Kernels, v, grads, batch_sizes, loop_in_c: bool) -> SimpleNamespace:
    """Backward time loop with each step's elementwise work in one C call (the whole loop in C
    when ``loop_in_c``, as the forward ran)."""
    steps, batch, _ = v.acts.shape
    ln = v.ln_hh is not None
    b = _gradient_buffers(v, grads, batch_sizes, loop_sums=ln and loop_in_c)
    grad_out = grads.out.contiguous()
    if b.carry_h is not None:
        b.carry_h = b.carry_h.contiguous()
    if loop_in_c:
        # the loop writes the carry in place: never into the gradient autograd handed over
        if b.carry_h is not None:
            carry_h = b.carry_h.clone(memory_format=torch.contiguous_format)
        else:
            carry_h = grad_out.new_zeros(batch, v.h0.shape[-1])
        ln_buffers = None
        if ln:
            if v.ln_ih is not None:  # the input layer norm ran in the loop: so does its backward
                b.input = (
                    torch.zeros_like(v.acts)
                    if batch_sizes is not None
                    else torch.empty_like(v.acts)
                )
            ln_buffers = SimpleNamespace(
                ln_hh=v.ln_hh, cell_weight=v.ln_cell_weight, rec_pre_ln=v.rec_pre_ln,
                rec_stats=v.rec_stats, cell_stats=v.cell_stats, d_rec=b.rec, d_cn=b.cell_norm,
                xp=v.xp_raw, ln_ih=v.ln_ih, in_stats=v.in_stats, d_in=b.input,
            )  # fmt: skip
        native.sequence_backward(
            grad_out, carry_h, b.carry_c, v.acts, v.cells, v.tanh_cells, v.c0,
            v.weight_hh.contiguous(), _contiguous(v.weight_hr), _sizes_tensor(batch_sizes),
            b.proj_in, b.pre, ln_buffers,
        )  # fmt: skip
        b.carry_h = carry_h
        if ln:  # the layer norms' parameter gradients, summed in the loop (each its own
            # tensor: an operator's outputs never alias one another)
            hidden = v.acts.shape[-1] // 4
            sizes = (4 * hidden, hidden, hidden, 4 * hidden, 4 * hidden)
            names = ("ln_hh", "ln_cell_weight", "ln_cell_bias", "ln_ih", "ln_ih_bias")
            parts = ln_buffers.sums.split(sizes)
            b.ln_sums = {name: part.clone() for name, part in zip(names, parts, strict=True)}
        return b

    recurrent_t = StepMatmul(v.weight_hh.t(), batch)
    project_t = StepMatmul(v.weight_hr.t(), batch) if b.proj_in is not None else None

    for t in range(steps - 1, -1, -1):
        n = batch if batch_sizes is None else batch_sizes[t]
        grad_t, b.carry_h = _step_grad_h(grad_out[t][:n], b.carry_h, n)
        dh, dh_extra = grad_t, b.carry_h
        if project_t is not None:
            dh_proj = b.proj_in[t][:n]
            torch.add(grad_t, dh_extra, out=dh_proj) if dh_extra is not None else dh_proj.copy_(
                grad_t
            )
            dh, dh_extra = project_t(dh_proj), None
        c_prev = (v.c0 if t == 0 else v.cells[t - 1])[:n]
        d_pre, acts, tanh_c = b.pre[t][:n], v.acts[t][:n], v.tanh_cells[t][:n]
        if ln:
            d_rec = b.rec[t][:n]
            native.ln_backward(
                dh, dh_extra, b.carry_c[:n], acts, tanh_c, c_prev, v.cells[t][:n],
                v.cell_stats[:, t, :n], v.ln_cell_weight, v.rec_pre_ln[t][:n],
                v.rec_stats[:, t, :n], v.ln_hh, d_pre, d_rec, b.cell_norm[t][:n],
            )  # fmt: skip
            b.carry_h = recurrent_t(d_rec)
        else:
            native.backward(dh, dh_extra, b.carry_c[:n], acts, tanh_c, c_prev, d_pre)
            b.carry_h = recurrent_t(d_pre)
    return b


def _backward_torch(v, grads, batch_sizes) -> SimpleNamespace:
    """Backward time loop in torch ops: serves every variant, device and dtype."""
    steps, batch, gate_size = v.acts.shape
    hidden = gate_size // 4
    ln, ln_cell = v.ln_hh is not None, v.ln_cell_weight is not None
    zoneout_h, zoneout_c = v.zoneout_h is not None, v.zoneout_c is not None
    zh_mask = v.zoneout_h if isinstance(v.zoneout_h, Tensor) else None
    zc_mask = v.zoneout_c if isinstance(v.zoneout_c, Tensor) else None
    peephole, mask = v.peephole, v.recurrent_mask

    # ---- local derivatives for all steps at once (none depends on the recurrence)
    o, i, f, g = v.acts.split(hidden, dim=-1)
    s = v.tanh_cells
    k_cell = (s * s).neg_().add_(1).mul_(o)  # o * tanh'(c_norm): dc_norm = dr * k_cell
    q_out = (1 - o).mul_(o).mul_(s)  # d pre_o / d r
    p_ifg = v.acts.new_empty(steps, batch, 3, hidden)  # d pre_{i,f,g} / d c_hat
    torch.mul(1 - i, i, out=p_ifg[:, :, 0]).mul_(g)
    torch.mul(1 - f, f, out=p_ifg[:, :, 1])
    p_ifg[1:, :, 1].mul_(v.cells[:-1])
    p_ifg[0, :, 1].mul_(v.c0)
    torch.mul(g, g, out=p_ifg[:, :, 2]).neg_().add_(1).mul_(i)

    b = _gradient_buffers(v, grads, batch_sizes)
    grad_pre_o = b.pre[..., :hidden].unbind(0)
    grad_pre_ifg = b.pre[..., hidden:].unflatten(-1, (3, hidden)).unbind(0)
    recurrent_t = StepMatmul(v.weight_hh.t(), batch)
    project_t = StepMatmul(v.weight_hr.t(), batch) if b.proj_in is not None else None
    k_s, q_s, p_s, f_s = k_cell.unbind(0), q_out.unbind(0), p_ifg.unbind(0), f.unbind(0)

    for t in range(steps - 1, -1, -1):
        n = batch if batch_sizes is None else batch_sizes[t]
        dh, b.carry_h = _step_grad_h(grads.out[t][:n], b.carry_h, n)
        if b.carry_h is not None:
            dh = dh + b.carry_h

        if zoneout_h:  # h_t = lerp(h_hat, h_{t-1}, keep)
            keep = zh_mask[t][:n] if zh_mask is not None else v.zoneout_h
            dh_zone = dh * keep
            dh = dh * (1 - keep)
        if project_t is not None:
            b.proj_in[t][:n].copy_(dh)
            dh = project_t(dh)

        k_t, q_t, p_t, f_t = k_s[t][:n], q_s[t][:n], p_s[t][:n], f_s[t][:n]
        d_o = grad_pre_o[t][:n]
        torch.mul(dh, q_t, out=d_o)
        dc = b.carry_c[:n]  # d loss / d c_t (the carried cell)
        if zoneout_c:  # c_t = lerp(c_hat, c_{t-1}, keep)
            keep_c = zc_mask[t][:n] if zc_mask is not None else v.zoneout_c
            dc_zone = dc * keep_c
            dc.mul_(1 - keep_c)
        if ln_cell:
            d_norm = torch.mul(dh, k_t, out=b.cell_norm[t][:n])
            mean, rstd = v.cell_stats[:, t, :n]
            dc.add_(
                torch.ops.aten.native_layer_norm_backward(
                    d_norm, v.fresh[t][:n], (hidden,), mean, rstd, v.ln_cell_weight,
                    v.ln_cell_bias, (True, False, False),
                )[0]
            )  # fmt: skip
        else:
            dc.addcmul_(dh, k_t)
        if peephole is not None:
            dc.addcmul_(d_o, peephole[2])
        # dc is now d loss / d c_hat
        d_ifg = grad_pre_ifg[t][:n]
        torch.mul(dc.unsqueeze(1), p_t, out=d_ifg)
        dc.mul_(f_t)  # now d loss / d c_{t-1}
        if peephole is not None:
            dc.addcmul_(d_ifg[:, 0], peephole[0]).addcmul_(d_ifg[:, 1], peephole[1])
        if zoneout_c:
            dc.add_(dc_zone)

        d_pre = b.pre[t][:n]
        if ln:
            mean, rstd = v.rec_stats[:, t, :n]
            d_pre = torch.ops.aten.native_layer_norm_backward(
                d_pre, v.rec_pre_ln[t][:n], (gate_size,), mean, rstd, v.ln_hh, None,
                (True, False, False),
            )[0]  # fmt: skip
            b.rec[t][:n].copy_(d_pre)
        b.carry_h = recurrent_t(d_pre)
        if mask is not None:
            b.carry_h.mul_(mask[:n])
        if zoneout_h:
            b.carry_h.add_(dh_zone)
    return b


def _input_norm_grads(need: dict[str, bool], v, b) -> tuple[Tensor | None, ...]:
    """Gradients of ``xp``, ``ln_ih`` and ``ln_ih_bias``. ``b.pre`` is the gradient of the
    pre-activations; without the input layer norm that is ``xp``'s."""
    if v.ln_ih is None:
        return b.pre, None, None
    need_bias = v.ln_ih_bias is not None and need["ln_ih_bias"]
    if b.input is not None:  # the C loop did the layer norm's backward for xp
        if b.ln_sums is not None:  # ... and summed its parameters' gradients
            grad_gain = b.ln_sums["ln_ih"] if need["ln_ih"] else None
            return b.input, grad_gain, b.ln_sums["ln_ih_bias"] if need_bias else None
        grad_gain = _layer_norm_gain_grad(b.pre, v.xp_raw, v.in_stats) if need["ln_ih"] else None
        grad_bias = b.pre.sum((0, 1)) if need_bias else None
        return b.input, grad_gain, grad_bias
    grad_xp, grad_gain, grad_bias = torch.ops.aten.native_layer_norm_backward(
        b.pre, v.xp_raw, [v.xp_raw.shape[-1]], v.in_stats[0], v.in_stats[1], v.ln_ih,
        v.ln_ih_bias, [need["xp"], need["ln_ih"], need_bias],
    )  # fmt: skip
    return grad_xp, grad_gain, grad_bias


def _parameter_grads(need: dict[str, bool], v, b) -> dict[str, Tensor | None]:
    """Gradients of weight_hh, weight_hr, peephole and the layer-norm parameters: one reduction
    over all steps each, by name."""
    steps, _, gate_size = v.acts.shape
    hidden, state = gate_size // 4, v.h0.shape[-1]
    grad_rec = b.rec if b.rec is not None else b.pre
    grad_w_hh = grad_w_hr = grad_peephole = grad_ln_hh = grad_ln_cw = grad_ln_cb = None
    if need["weight_hh"]:  # sum_t dz_t^T (h_{t-1} * mask), with h_{-1} = h0
        mask = v.recurrent_mask
        h_first = v.h0 if mask is None else v.h0 * mask
        grad_w_hh = grad_rec[0].t().mm(h_first)
        if steps > 1:
            h_rest = v.out[:-1] if mask is None else v.out[:-1] * mask
            grad_w_hh = t_matmul(
                grad_rec[1:].reshape(-1, gate_size), h_rest.reshape(-1, state), grad_w_hh
            )
    if b.proj_in is not None and need["weight_hr"]:
        grad_w_hr = t_matmul(b.proj_in.reshape(-1, state), v.pre_proj.reshape(-1, hidden))
    if v.peephole is not None and need["peephole"]:
        d_o, d_i, d_f, _ = b.pre.split(hidden, dim=-1)
        d_if = torch.stack((d_i, d_f), dim=2)  # (T, B, 2, H)
        grad_if = (d_if[0] * v.c0.unsqueeze(1)).sum(0)
        if steps > 1:
            grad_if += (d_if[1:] * v.cells[:-1].unsqueeze(2)).sum((0, 1))
        grad_peephole = torch.cat((grad_if, (d_o * v.fresh).sum((0, 1)).unsqueeze(0)))
    if b.ln_sums is not None:  # summed in the C loop
        sums = {name: grad if need[name] else None for name, grad in b.ln_sums.items()}
        grad_ln_hh, grad_ln_cw = sums["ln_hh"], sums["ln_cell_weight"]
        grad_ln_cb = sums["ln_cell_bias"]
    elif v.ln_hh is not None and need["ln_hh"]:
        grad_ln_hh = _layer_norm_gain_grad(b.pre, v.rec_pre_ln, v.rec_stats)
    if v.ln_cell_weight is not None and b.ln_sums is None:
        if need["ln_cell_weight"]:
            grad_ln_cw = _layer_norm_gain_grad(b.cell_norm, v.fresh, v.cell_stats)
        if need["ln_cell_bias"]:
            grad_ln_cb = b.cell_norm.sum((0, 1))
    return {
        "weight_hh": grad_w_hh, "weight_hr": grad_w_hr, "peephole": grad_peephole,
        "ln_hh": grad_ln_hh, "ln_cell_weight": grad_ln_cw, "ln_cell_bias": grad_ln_cb,
    }  # fmt: skip


def _layer_norm_gain_grad(grad: Tensor, x: Tensor, stats: Tensor) -> Tensor:
    """``sum_{t,b} grad * (x - mean) * rstd`` over ``(T, B, F)``: one C pass where the native
    kernels run, else one product and two GEMVs (``sum grad * x * rstd - sum grad * mean *
    rstd``) instead of three full-size temporaries."""
    mean, rstd = (s.reshape(-1) for s in stats)
    features = grad.shape[-1]
    grad, x = grad.reshape(-1, features), x.reshape(-1, features)
    native = native_kernels() if settings.native else None
    if native is not None and native.supports(grad):  # one pass, no temporary
        return native.ln_gain_grad(grad, x, torch.stack((mean, rstd)))
    return (grad * x).t().mv(rstd) - grad.t().mv(mean * rstd)


def _last_steps(batch_sizes: list[int], batch: int, device: torch.device) -> Tensor:
    """Index of each row's last active step, from non-increasing ``batch_sizes``."""
    sizes = torch.tensor(batch_sizes, device=device)
    return (sizes.unsqueeze(1) > torch.arange(batch, device=device)).sum(0) - 1
