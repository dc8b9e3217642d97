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


def internal_gate_order(hidden: int, device: torch.device | None = None) -> Tensor:
    """Row permutation from torch's gate order (i, f, g, o) to the internal one (o, i, f, g)."""
    blocks = [3, 0, 1, 2]
    return torch.cat([torch.arange(b * hidden, (b + 1) * hidden, device=device) for b in blocks])


def _normalized(x: Tensor, eps: float) -> Tensor:
    """``(x - mean) * rstd`` over the last dimension, vectorised over all leading dimensions."""
    var, mean = torch.var_mean(x, dim=-1, keepdim=True, correction=0)
    return (x - mean) * torch.rsqrt(var + eps)


def _ln_stats(x: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    var, mean = torch.var_mean(x, dim=-1, keepdim=True, correction=0)
    return mean, torch.rsqrt(var + eps)


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

        acts = torch.empty_like(xp)  # activations o, i, f, g
        cells = xp.new_zeros(steps, batch, hidden)
        tanh_cells = xp.new_empty(steps, batch, hidden)
        out = xp.new_zeros(steps, batch, state)
        pre_proj = xp.new_zeros(steps, batch, hidden) if proj else None
        rec_pre_ln = xp.new_zeros(steps, batch, gate_size) if ln else None

        w_hh_t = weight_hh.t()
        w_hr_t = weight_hr.t() if proj else None
        xp_s, acts_s, cells_s, tanh_s, out_s = (
            t.unbind(0) for t in (xp, acts, cells, tanh_cells, out)
        )
        pre_proj_s = pre_proj.unbind(0) if proj else None
        rec_s = rec_pre_ln.unbind(0) if ln else None
        zh_steps = zoneout_h.unbind(0) if isinstance(zoneout_h, Tensor) else None
        zc_steps = zoneout_c.unbind(0) if isinstance(zoneout_c, Tensor) else None

        h_prev, c_prev = h0, c0
        for t in range(steps):
            n = batch if batch_sizes is None else batch_sizes[t]
            a, c, s, h = acts_s[t], cells_s[t], tanh_s[t], out_s[t]
            x_t = xp_s[t]
            if n < batch:
                a, c, s, h, x_t = a[:n], c[:n], s[:n], h[:n], x_t[:n]
                h_prev, c_prev = h_prev[:n], c_prev[:n]
            h_in = h_prev if recurrent_mask is None else h_prev * recurrent_mask[:n]
            if ln:
                z = torch.mm(h_in, w_hh_t, out=rec_s[t][:n])
                z_ln = torch.native_layer_norm(z, (gate_size,), ln_hh, None, eps)[0]
                torch.add(x_t, z_ln, out=a)
            else:
                torch.addmm(x_t, h_in, w_hh_t, out=a)

            a_o, a_i, a_f, a_g = a.split(hidden, dim=1)
            if peephole is not None:
                a_if = a[:, hidden : 3 * hidden].unflatten(1, (2, hidden))
                a_if.addcmul_(peephole[:2], c_prev.unsqueeze(1)).sigmoid_()
            else:
                a[:, : 3 * hidden].sigmoid_()
            a_g.tanh_()

            torch.mul(a_f, c_prev, out=c)
            c.addcmul_(a_i, a_g)
            if zoneout_c is not None:
                c.lerp_(c_prev, zc_steps[t][:n] if zc_steps is not None else zoneout_c)
            if peephole is not None:
                a_o.addcmul_(peephole[2], c).sigmoid_()

            if ln_cell_weight is not None:
                c_norm = torch.native_layer_norm(c, (hidden,), ln_cell_weight, ln_cell_bias, eps)[0]
                torch.tanh(c_norm, out=s)
            else:
                torch.tanh(c, out=s)

            if proj:
                r = torch.mul(a_o, s, out=pre_proj_s[t][:n])
                h_new = torch.mm(r, w_hr_t, out=h) if zoneout_h is None else torch.mm(r, w_hr_t)
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
            acts, cells, tanh_cells, out, pre_proj, rec_pre_ln, last,
        )  # fmt: skip
        ctx.zoneout_rates = (
            zoneout_h if not isinstance(zoneout_h, Tensor) else None,
            zoneout_c if not isinstance(zoneout_c, Tensor) else None,
        )
        ctx.batch_sizes = batch_sizes
        return out, h_n, c_n

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor, grad_h_n: Tensor, grad_c_n: Tensor):
        (
            h0, c0, weight_hh, weight_hr, peephole, ln_hh, ln_cell_weight, ln_cell_bias,
            recurrent_mask, zh_mask, zc_mask,
            acts, cells, tanh_cells, out, pre_proj, rec_pre_ln, last,
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
        eps = LAYER_NORM_EPS

        # ---- local derivatives for all steps at once (none depends on the recurrence)
        o, i, f, g = acts.split(hidden, dim=-1)
        c_prev_all = torch.cat([c0.unsqueeze(0), cells[:-1]])
        s = tanh_cells
        d_tanh = 1 - s * s
        k_cell = o * d_tanh  # d cell-normalised / d r: dc_norm = dr * k_cell
        q_out = s * o * (1 - o)  # d pre_o / d r
        p_ifg = torch.stack(  # d pre_{i,f,g} / d c (before zoneout)
            (g * i * (1 - i), c_prev_all * f * (1 - f), i * (1 - g * g)), dim=2
        )
        if ln_cell:
            cell_mean, cell_rstd = _ln_stats(cells, eps)
        if ln:
            rec_mean, rec_rstd = _ln_stats(rec_pre_ln, eps)

        # ---- gradient buffers; rows that are inactive at a step stay zero
        grad_h_total = grad_out.clone()
        if last is None:
            grad_h_total[-1] += grad_h_n
        else:
            grad_h_total.index_put_(
                (last, torch.arange(batch, device=last.device)), grad_h_n, accumulate=True
            )
        grad_pre = torch.zeros_like(acts)  # d loss / d pre-activations, internal order
        grad_pre_o = grad_pre[..., :hidden].unbind(0)
        grad_pre_ifg = grad_pre[..., hidden:].unflatten(-1, (3, hidden)).unbind(0)
        grad_pre_s = grad_pre.unbind(0)
        grad_h_s = grad_h_total.unbind(0)
        grad_rec = torch.zeros_like(rec_pre_ln) if ln else None  # before the recurrent LN
        grad_proj_in = torch.zeros_like(out) if proj else None  # d loss / d projection output
        grad_cell_norm = torch.zeros_like(cells) if ln_cell else None
        carry_c = grad_c_n.clone()  # d loss / d c_t flowing back from step t + 1
        carry_h = torch.zeros_like(h0)  # d loss / d h_t flowing back from step t + 1

        k_s, q_s, p_s, f_s = k_cell.unbind(0), q_out.unbind(0), p_ifg.unbind(0), f.unbind(0)
        w_hr = weight_hr
        for t in range(steps - 1, -1, -1):
            n = batch if batch_sizes is None else batch_sizes[t]
            cut = n < batch
            dh = grad_h_s[t][:n] if cut else grad_h_s[t]
            dh = dh + (carry_h[:n] if cut else carry_h)

            if zoneout_h:
                keep = zh_mask[t][:n] if zh_mask is not None else zh_rate
                dh_new = dh * (1 - keep)
                dh_zone = dh * keep
            else:
                dh_new = dh
            if proj:
                dst = grad_proj_in[t][:n] if cut else grad_proj_in[t]
                dst.copy_(dh_new)
                dr = torch.mm(dh_new, w_hr)
            else:
                dr = dh_new

            k_t, q_t, p_t, f_t = k_s[t], q_s[t], p_s[t], f_s[t]
            if cut:
                k_t, q_t, p_t, f_t = k_t[:n], q_t[:n], p_t[:n], f_t[:n]
            d_o = grad_pre_o[t][:n] if cut else grad_pre_o[t]
            torch.mul(dr, q_t, out=d_o)
            dc = carry_c[:n] if cut else carry_c
            if ln_cell:
                d_norm = torch.mul(dr, k_t, out=grad_cell_norm[t][:n])
                c_t = cells[t][:n]
                dc.add_(
                    torch.ops.aten.native_layer_norm_backward(
                        d_norm, c_t, (hidden,), cell_mean[t][:n], cell_rstd[t][:n],
                        ln_cell_weight, ln_cell_bias, (True, False, False),
                    )[0]
                )  # fmt: skip
            else:
                dc.addcmul_(dr, k_t)
            if peephole is not None:
                dc.addcmul_(d_o, peephole[2])

            if zoneout_c:
                keep_c = zc_mask[t][:n] if zc_mask is not None else zc_rate
                dc_zone = dc * keep_c
                dc.mul_(1 - keep_c)
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
            dh_prev = carry_h[:n] if cut else carry_h
            torch.mm(d_pre, weight_hh, out=dh_prev)
            if recurrent_mask is not None:
                dh_prev.mul_(recurrent_mask[:n])
            if zoneout_h:
                dh_prev.add_(dh_zone)

        # ---- parameter gradients: one reduction over all steps each
        need = ctx.needs_input_grad
        h_prev_all = torch.cat([h0.unsqueeze(0), out[:-1]])
        if recurrent_mask is not None:
            h_prev_all = h_prev_all * recurrent_mask
        grad_rec_in = grad_rec if ln else grad_pre
        flat = grad_rec_in.reshape(-1, gate_size)
        grad_w_hh = flat.t().mm(h_prev_all.reshape(-1, state)) if need[3] else None
        grad_w_hr = None
        if proj and need[4]:
            grad_w_hr = grad_proj_in.reshape(-1, state).t().mm(pre_proj.reshape(-1, hidden))
        grad_peephole = None
        if peephole is not None and need[5]:
            d_o, d_i, d_f, _ = grad_pre.split(hidden, dim=-1)
            grad_peephole = torch.stack(
                (
                    (d_i * c_prev_all).sum((0, 1)),
                    (d_f * c_prev_all).sum((0, 1)),
                    (d_o * cells).sum((0, 1)),
                )
            )
        grad_ln_hh = None
        if ln and need[6]:
            grad_ln_hh = (grad_pre * (rec_pre_ln - rec_mean) * rec_rstd).sum((0, 1))
        grad_ln_cw = grad_ln_cb = None
        if ln_cell:
            if need[7]:
                grad_ln_cw = (grad_cell_norm * (cells - cell_mean) * cell_rstd).sum((0, 1))
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


def _last_steps(batch_sizes: list[int], batch: int, device: torch.device) -> Tensor:
    """Index of each row's last active step, from non-increasing ``batch_sizes``."""
    sizes = torch.tensor(batch_sizes, device=device)
    return (sizes.unsqueeze(1) > torch.arange(batch, device=device)).sum(0) - 1
