"""The fast path: one layer and direction of `lstmkit.nn.cell.lstm_step` with a hand-written backward.

Why it exists: on CPU at small shapes a hand-written LSTM is bound by per-step dispatch, not
arithmetic. Autograd records ~25 ops a step; this implementation runs 7 a step forward and 6 a
step backward for the plain LSTM, and moves everything that does not depend on the recurrence
out of the time loop:

* the input projection for all steps is one matmul (done by the caller, the result is ``xp``);
* the backward's local derivatives (``σ'``, ``tanh'`` and their products) are computed for all
  steps at once before the loop;
* weight gradients are one GEMM over all steps; the gradient of ``xp`` is returned as is, so the
  caller's autograd turns it into ``weight_ih``/bias/input gradients with one more GEMM.

Gates are kept internally in the order (o, i, f, g) so that one ``sigmoid_`` covers o, i, f and
one multiplication covers the three gates driven by the cell gradient. The caller permutes the
weight rows (`INTERNAL_GATE_ORDER`).

Variable lengths follow PackedSequence: the batch is sorted by decreasing length and step ``t``
touches only the first ``batch_sizes[t]`` rows, so finished sequences cost nothing.

Tested equal to `lstm_step` (outputs and every gradient, float64) for each variant.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .cell import LAYER_NORM_EPS
from .native import kernels as native_kernels


def internal_gate_order(hidden: int, device: torch.device | None = None) -> Tensor:
    """Row permutation from torch's gate order (i, f, g, o) to the internal one (o, i, f, g)."""
    blocks = [3, 0, 1, 2]
    return torch.cat([torch.arange(b * hidden, (b + 1) * hidden, device=device) for b in blocks])


# oneDNN's packed GEMM: the per-step matmuls reuse one weight T times, and on CPU packing it once
# per call measured ~1.5x faster than torch.mm (which repacks the weight on every step). Tests
# switch it off to check that both paths give the same numbers.
USE_ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


# The plain LSTM's per-step elementwise work runs in one C kernel each way when it compiles here
# (lstmkit.nn.native); tests switch it off to check both paths give the same numbers.
USE_NATIVE = True


def _native_for(xp: Tensor, plain: bool):
    if not (USE_NATIVE and plain):
        return None
    native = native_kernels()
    return native if native is not None and native.supports(xp) else None


class StepMatmul:
    """``x -> x @ weight.T`` for one weight used at every step. ``weight (N, K)``, ``x (n, K)``."""

    def __init__(self, weight: Tensor, rows: int) -> None:
        self.weight_t = weight.t()
        self.packed = None
        if USE_ONEDNN and weight.device.type == "cpu" and weight.dtype == torch.float32:
            self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), rows)

    def __call__(self, x: Tensor) -> Tensor:
        if self.packed is not None:
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, None, "none", [], "")
        return torch.mm(x, self.weight_t)


class FusedLSTMLayer(torch.autograd.Function):
    """One layer, one direction. See the module docstring.

    Forward inputs (internal gate order o, i, f, g where it applies):
        xp: ``(T, B, 4H)`` input projection plus biases (and input layer norm).
        h0: ``(B, P)``; c0: ``(B, H)``.
        weight_hh: ``(4H, P)``; weight_hr: ``(P, H)`` or None.
        peephole: ``(3, H)`` for (i, f, o) or None.
        ln_hh: ``(4H,)`` gain of the recurrent layer norm or None (layer norm on).
        ln_cell_weight, ln_cell_bias: ``(H,)`` or None.
        recurrent_mask: ``(B, P)`` or None.
        zoneout_h: ``(T, B, P)`` 0/1 mask, a float rate, or None; zoneout_c likewise ``(T, B, H)``.
        batch_sizes: list of ints (rows active at each step, non-increasing) or None (all).

    Returns:
        ``output (T, B, P)`` (zero at padded steps), ``h_n (B, P)``, ``c_n (B, H)``.
    """

    @staticmethod
    def forward(
        ctx,
        xp: Tensor,
        h0: Tensor,
        c0: Tensor,
        weight_hh: Tensor,
        weight_hr: Tensor | None,
        peephole: Tensor | None,
        ln_hh: Tensor | None,
        ln_cell_weight: Tensor | None,
        ln_cell_bias: Tensor | None,
        recurrent_mask: Tensor | None,
        zoneout_h: Tensor | float | None,
        zoneout_c: Tensor | float | None,
        batch_sizes: list[int] | None,
    ):
        steps, batch, gate_size = xp.shape
        hidden = gate_size // 4
        state = h0.shape[-1]
        proj = weight_hr is not None
        ln = ln_hh is not None
        eps = LAYER_NORM_EPS

        h0, c0 = h0.contiguous(), c0.contiguous()
        plain = not ln and peephole is None and recurrent_mask is None
        native = _native_for(xp, plain and zoneout_h is None and zoneout_c is None)

        acts = torch.empty_like(xp)  # activations o, i, f, g
        cells = xp.new_zeros(steps, batch, hidden)
        tanh_cells = xp.new_empty(steps, batch, hidden)
        out = xp.new_zeros(steps, batch, state)
        pre_proj = xp.new_zeros(steps, batch, hidden) if proj else None
        rec_pre_ln = xp.new_zeros(steps, batch, gate_size) if ln else None
        # layer-norm statistics (mean, rstd) of the recurrent projection and of the cell
        rec_stats = xp.new_zeros(2, steps, batch, 1) if ln else None
        cell_stats = xp.new_zeros(2, steps, batch, 1) if ln_cell_weight is not None else None
        # With zoneout on c the carried cell differs from the fresh one that feeds h.
        fresh = xp.new_zeros(steps, batch, hidden) if zoneout_c is not None else cells

        recurrent = StepMatmul(weight_hh, batch)
        project = StepMatmul(weight_hr, batch) if proj else None
        # Per-step views, made once: slicing inside the loop costs a dispatch each.
        xp_s, acts_s, cells_s, tanh_s, out_s = (
            t.unbind(0) for t in (xp, acts, cells, tanh_cells, out)
        )
        o_s, i_s, f_s, g_s = (t.unbind(0) for t in acts.split(hidden, dim=-1))
        ifo_s = acts[..., : 3 * hidden].unbind(0)
        if_s = acts[..., hidden : 3 * hidden].unflatten(-1, (2, hidden)).unbind(0)
        pre_proj_s = pre_proj.unbind(0) if proj else None
        rec_s = rec_pre_ln.unbind(0) if ln else None
        fresh_s = fresh.unbind(0)
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
                z, mean, rstd = torch.native_layer_norm(z, (gate_size,), ln_hh, None, eps)
                rec_stats[0, t, :n].copy_(mean)
                rec_stats[1, t, :n].copy_(rstd)
            if native is not None:
                target = pre_proj_s[t][:n] if proj else h
                native.forward(x_t, z, a, c_prev, c, s, target)
                if proj:
                    h.copy_(project(target))
                h_prev, c_prev = out_s[t], cells_s[t]
                continue
            torch.add(x_t, z, out=a)

            if peephole is not None:
                a_if = if_s[t][:n]
                a_if.addcmul_(peephole[:2], c_prev.unsqueeze(1)).sigmoid_()
            else:
                ifo_s[t][:n].sigmoid_()
            a_g.tanh_()

            c_hat = fresh_s[t][:n] if n < batch else fresh_s[t]
            torch.mul(a_f, c_prev, out=c_hat)
            c_hat.addcmul_(a_i, a_g)
            if zoneout_c is not None:
                torch.lerp(
                    c_hat, c_prev, zc_steps[t][:n] if zc_steps is not None else zoneout_c, out=c
                )
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
                torch.lerp(
                    h_new, h_prev, zh_steps[t][:n] if zh_steps is not None else zoneout_h, out=h
                )
            h_prev, c_prev = out_s[t], cells_s[t]

        if batch_sizes is None:
            h_n, c_n = out[-1].clone(), cells[-1].clone()
            last = None
        else:
            last = _last_steps(batch_sizes, batch, xp.device)
            rows = torch.arange(batch, device=xp.device)
            h_n, c_n = out[last, rows], cells[last, rows]

        ctx.save_for_backward(
            h0, c0, weight_hh, weight_hr, peephole, ln_hh, ln_cell_weight, ln_cell_bias,
            recurrent_mask, zoneout_h if isinstance(zoneout_h, Tensor) else None,
            zoneout_c if isinstance(zoneout_c, Tensor) else None,
            acts, cells, fresh, tanh_cells, out, pre_proj, rec_pre_ln, rec_stats, cell_stats, last,
        )  # fmt: skip
        ctx.zoneout_rates = (
            zoneout_h if not isinstance(zoneout_h, Tensor) else None,
            zoneout_c if not isinstance(zoneout_c, Tensor) else None,
        )
        ctx.batch_sizes = batch_sizes
        ctx.native = native
        return out, h_n, c_n

    @staticmethod
    def _backward_native(ctx, native, grad_out: Tensor, grad_h_n: Tensor, grad_c_n: Tensor):
        """Backward of the plain LSTM with the per-step elementwise work in one C kernel."""
        (h0, c0, weight_hh, weight_hr, *_, acts, cells, _, tanh_cells, out, pre_proj) = (
            ctx.saved_tensors[:17]
        )
        last = ctx.saved_tensors[-1]
        batch_sizes = ctx.batch_sizes
        steps, batch, _ = acts.shape
        proj = weight_hr is not None
        grad_out = grad_out.contiguous()
        grad_h_n = grad_h_n.contiguous()
        if last is not None:
            grad_out = grad_out.clone()
            rows = torch.arange(batch, device=last.device)
            grad_out.index_put_((last, rows), grad_h_n, accumulate=True)
        new_buffer = torch.empty_like if batch_sizes is None else torch.zeros_like
        grad_pre = new_buffer(acts)
        grad_proj_in = new_buffer(out) if proj else None
        carry_c = grad_c_n.clone(memory_format=torch.contiguous_format)
        carry_h = grad_h_n if last is None else None  # flows into the last step
        recurrent_t = StepMatmul(weight_hh.t(), batch)
        project_t = StepMatmul(weight_hr.t(), batch) if proj else None

        for t in range(steps - 1, -1, -1):
            n = batch if batch_sizes is None else batch_sizes[t]
            grad_t = grad_out[t][:n]
            if carry_h is not None and carry_h.shape[0] != n:
                grad_t = grad_t.clone()  # rows n_{t+1}..n_t end here: nothing flows into them
                grad_t[: carry_h.shape[0]] += carry_h
                carry_h = None
            c_prev = (c0 if t == 0 else cells[t - 1])[:n]
            d_pre = grad_pre[t][:n]
            if proj:
                dh = grad_proj_in[t][:n]
                torch.add(grad_t, carry_h, out=dh) if carry_h is not None else dh.copy_(grad_t)
                native.backward(
                    project_t(dh), None, carry_c[:n], acts[t][:n], tanh_cells[t][:n], c_prev, d_pre
                )
            else:
                native.backward(
                    grad_t, carry_h, carry_c[:n], acts[t][:n], tanh_cells[t][:n], c_prev, d_pre
                )
            carry_h = recurrent_t(d_pre)

        grad_w_hh, grad_w_hr = _parameter_grads_plain(
            ctx, grad_pre, grad_proj_in, h0, out, pre_proj
        )
        return (grad_pre, carry_h, carry_c, grad_w_hh, grad_w_hr, *[None] * 8)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor, grad_h_n: Tensor, grad_c_n: Tensor):
        (
            h0, c0, weight_hh, weight_hr, peephole, ln_hh, ln_cell_weight, ln_cell_bias,
            recurrent_mask, zh_mask, zc_mask,
            acts, cells, fresh, tanh_cells, out, pre_proj, rec_pre_ln, rec_stats, cell_stats, last,
        ) = ctx.saved_tensors  # fmt: skip
        zh_rate, zc_rate = ctx.zoneout_rates
        batch_sizes = ctx.batch_sizes
        steps, batch, gate_size = acts.shape
        hidden = gate_size // 4
        state = h0.shape[-1]
        proj = weight_hr is not None
        ln = ln_hh is not None
        ln_cell = ln_cell_weight is not None
        zoneout_h = zh_mask is not None or zh_rate is not None
        zoneout_c = zc_mask is not None or zc_rate is not None

        native = ctx.native
        if native is not None:
            return FusedLSTMLayer._backward_native(ctx, native, grad_out, grad_h_n, grad_c_n)

        # ---- local derivatives for all steps at once (none depends on the recurrence)
        o, i, f, g = acts.split(hidden, dim=-1)
        s = tanh_cells
        k_cell = (s * s).neg_().add_(1).mul_(o)  # o * tanh'(c_norm): dc_norm = dr * k_cell
        q_out = (1 - o).mul_(o).mul_(s)  # d pre_o / d r
        p_ifg = acts.new_empty(steps, batch, 3, hidden)  # d pre_{i,f,g} / d c (before zoneout)
        torch.mul(1 - i, i, out=p_ifg[:, :, 0]).mul_(g)
        torch.mul(1 - f, f, out=p_ifg[:, :, 1])
        p_ifg[1:, :, 1].mul_(cells[:-1])
        p_ifg[0, :, 1].mul_(c0)
        torch.mul(g, g, out=p_ifg[:, :, 2]).neg_().add_(1).mul_(i)
        if ln_cell:
            cell_mean, cell_rstd = cell_stats
        if ln:
            rec_mean, rec_rstd = rec_stats

        # ---- gradient buffers. With variable lengths, rows inactive at a step must stay zero;
        # with full batches every row is written, so no zero fill is needed.
        new_buffer = torch.empty_like if batch_sizes is None else torch.zeros_like
        if last is None:
            grad_h_total = grad_out  # grad_h_n is added at the last step
        else:
            grad_h_total = grad_out.clone()
            grad_h_total.index_put_(
                (last, torch.arange(batch, device=last.device)), grad_h_n, accumulate=True
            )
        grad_pre = new_buffer(acts)  # d loss / d pre-activations, internal order
        grad_pre_o = grad_pre[..., :hidden].unbind(0)
        grad_pre_ifg = grad_pre[..., hidden:].unflatten(-1, (3, hidden)).unbind(0)
        grad_pre_s = grad_pre.unbind(0)
        grad_h_s = grad_h_total.unbind(0)
        grad_rec = new_buffer(rec_pre_ln) if ln else None  # before the recurrent LN
        grad_proj_in = new_buffer(out) if proj else None  # d loss / d projection output
        grad_cell_norm = new_buffer(cells) if ln_cell else None
        carry_c = grad_c_n.clone()  # d loss / d c_t flowing back from step t + 1
        carry_h = None  # d loss / d h_t flowing back from step t + 1 (rows active at t + 1)
        recurrent_t = StepMatmul(weight_hh.t(), batch)
        project_t = StepMatmul(weight_hr.t(), batch) if proj else None

        k_s, q_s, p_s, f_s = k_cell.unbind(0), q_out.unbind(0), p_ifg.unbind(0), f.unbind(0)
        for t in range(steps - 1, -1, -1):
            n = batch if batch_sizes is None else batch_sizes[t]
            cut = n < batch
            dh = grad_h_s[t][:n] if cut else grad_h_s[t]
            if t == steps - 1 and last is None:
                dh = dh + grad_h_n
            if carry_h is not None:
                if carry_h.shape[0] == n:
                    dh = dh + carry_h
                else:  # the rows n_{t+1}..n_t end at step t: nothing flows back into them
                    dh = dh.clone()
                    dh[: carry_h.shape[0]] += carry_h

            if zoneout_h:
                keep = zh_mask[t][:n] if zh_mask is not None else zh_rate
                dh_new = dh * (1 - keep)
                dh_zone = dh * keep
            else:
                dh_new = dh
            if proj:
                dst = grad_proj_in[t][:n] if cut else grad_proj_in[t]
                dst.copy_(dh_new)
                dr = project_t(dh_new)
            else:
                dr = dh_new

            k_t, q_t, p_t, f_t = k_s[t], q_s[t], p_s[t], f_s[t]
            if cut:
                k_t, q_t, p_t, f_t = k_t[:n], q_t[:n], p_t[:n], f_t[:n]
            d_o = grad_pre_o[t][:n] if cut else grad_pre_o[t]
            torch.mul(dr, q_t, out=d_o)
            dc = carry_c[:n] if cut else carry_c  # d loss / d c_t (the carried cell)
            if zoneout_c:  # c_t = lerp(c_hat, c_{t-1}, keep)
                keep_c = zc_mask[t][:n] if zc_mask is not None else zc_rate
                dc_zone = dc * keep_c
                dc.mul_(1 - keep_c)
            if ln_cell:
                d_norm = torch.mul(dr, k_t, out=grad_cell_norm[t][:n])
                dc.add_(
                    torch.ops.aten.native_layer_norm_backward(
                        d_norm, fresh[t][:n], (hidden,), cell_mean[t][:n], cell_rstd[t][:n],
                        ln_cell_weight, ln_cell_bias, (True, False, False),
                    )[0]
                )  # fmt: skip
            else:
                dc.addcmul_(dr, k_t)
            if peephole is not None:
                dc.addcmul_(d_o, peephole[2])
            # dc is now d loss / d c_hat
            d_ifg = grad_pre_ifg[t][:n] if cut else grad_pre_ifg[t]
            torch.mul(dc.unsqueeze(1), p_t, out=d_ifg)
            dc.mul_(f_t)  # now d loss / d c_{t-1}
            if peephole is not None:
                dc.addcmul_(d_ifg[:, 0], peephole[0]).addcmul_(d_ifg[:, 1], peephole[1])
            if zoneout_c:
                dc.add_(dc_zone)

            d_pre = grad_pre_s[t][:n] if cut else grad_pre_s[t]
            if ln:
                d_pre = torch.ops.aten.native_layer_norm_backward(
                    d_pre, rec_pre_ln[t][:n], (gate_size,), rec_mean[t][:n], rec_rstd[t][:n],
                    ln_hh, None, (True, False, False),
                )[0]  # fmt: skip
                grad_rec[t][:n].copy_(d_pre)
            carry_h = recurrent_t(d_pre)
            if recurrent_mask is not None:
                carry_h.mul_(recurrent_mask[:n])
            if zoneout_h:
                carry_h.add_(dh_zone)

        # ---- parameter gradients: one reduction over all steps each
        need = ctx.needs_input_grad
        grad_rec_in = grad_rec if ln else grad_pre
        grad_w_hh = None
        if need[3]:  # sum_t dz_t^T (h_{t-1} * mask), with h_{-1} = h0
            h_first = h0 if recurrent_mask is None else h0 * recurrent_mask
            grad_w_hh = grad_rec_in[0].t().mm(h_first)
            if steps > 1:
                h_rest = out[:-1] if recurrent_mask is None else out[:-1] * recurrent_mask
                grad_w_hh.addmm_(
                    grad_rec_in[1:].reshape(-1, gate_size).t(), h_rest.reshape(-1, state)
                )
        grad_w_hr = None
        if proj and need[4]:
            grad_w_hr = grad_proj_in.reshape(-1, state).t().mm(pre_proj.reshape(-1, hidden))
        grad_peephole = None
        if peephole is not None and need[5]:
            d_o, d_i, d_f, _ = grad_pre.split(hidden, dim=-1)
            d_if = torch.stack((d_i, d_f), dim=2)  # (T, B, 2, H)
            grad_if = (d_if[0] * c0.unsqueeze(1)).sum(0)
            if steps > 1:
                grad_if += (d_if[1:] * cells[:-1].unsqueeze(2)).sum((0, 1))
            grad_peephole = torch.cat((grad_if, (d_o * fresh).sum((0, 1)).unsqueeze(0)))
        grad_ln_hh = None
        if ln and need[6]:
            grad_ln_hh = (grad_pre * (rec_pre_ln - rec_mean) * rec_rstd).sum((0, 1))
        grad_ln_cw = grad_ln_cb = None
        if ln_cell:
            if need[7]:
                grad_ln_cw = (grad_cell_norm * (fresh - cell_mean) * cell_rstd).sum((0, 1))
            if need[8]:
                grad_ln_cb = grad_cell_norm.sum((0, 1))
        return (
            grad_pre,
            carry_h,
            carry_c,
            grad_w_hh,
            grad_w_hr,
            grad_peephole,
            grad_ln_hh,
            grad_ln_cw,
            grad_ln_cb,
            None,
            None,
            None,
            None,
        )


def _parameter_grads_plain(ctx, grad_pre, grad_proj_in, h0, out, pre_proj):
    """Gradients of ``weight_hh`` and ``weight_hr``: one GEMM over all steps each."""
    need = ctx.needs_input_grad
    steps, _, gate_size = grad_pre.shape
    state = h0.shape[-1]
    grad_w_hh = grad_w_hr = None
    if need[3]:  # sum_t dz_t^T h_{t-1}, with h_{-1} = h0
        grad_w_hh = grad_pre[0].t().mm(h0)
        if steps > 1:
            grad_w_hh.addmm_(grad_pre[1:].reshape(-1, gate_size).t(), out[:-1].reshape(-1, state))
    if grad_proj_in is not None and need[4]:
        grad_w_hr = grad_proj_in.reshape(-1, state).t().mm(pre_proj.reshape(-1, pre_proj.shape[-1]))
    return grad_w_hh, grad_w_hr


def _last_steps(batch_sizes: list[int], batch: int, device: torch.device) -> Tensor:
    """Index of each row's last active step, from non-increasing ``batch_sizes``."""
    sizes = torch.tensor(batch_sizes, device=device)
    return (sizes.unsqueeze(1) > torch.arange(batch, device=device)).sum(0) - 1
