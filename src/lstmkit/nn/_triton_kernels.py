"""The Triton kernels behind `lstmkit.nn.triton_lstm` (imported only when triton is installed).

One program handles one batch row and ``BLOCK_H`` hidden units of one time step; with a layer
norm the block covers the whole row (``BLOCK_H >= H``) so that the statistics reduce inside the
program. Everything is computed in float32 whatever the storage dtype. Gate order o, i, f, g.

Buffers are indexed with the step ``t`` inside the kernels (no per-step tensor views on the
host): ``hbuf``/``cbuf`` are ``(T + 1, B, H)`` with the initial state at index 0, so step ``t``
reads its previous state at ``t`` and writes its new one at ``t + 1``. Layer-norm statistics are
``(T, B, 2)`` float32: mean, rstd.

Zoneout modes (``ZH``, ``ZC``): 0 off, 1 a ``(T, B, H)`` keep mask, 2 a constant keep rate.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _tanh(x):
    # tl has no tanh that the interpreter and every backend share; exact in float32 to ~1e-7
    return 2.0 * tl.sigmoid(2.0 * x) - 1.0


@triton.jit
def _row_sum4(a, b, c, d):
    return tl.sum(a, axis=0) + tl.sum(b, axis=0) + tl.sum(c, axis=0) + tl.sum(d, axis=0)


@triton.jit
def _load(ptr, cols, cm):
    """Float32 values at ``ptr + cols``, zero in the masked-off lanes."""
    return tl.load(ptr + cols, mask=cm, other=0.0).to(tl.float32)


@triton.jit
def forward_step(
    xp_ptr,  # (T, B, 4H) input projection plus biases
    z_ptr,  # (B, 4H) this step's recurrent GEMM output, at z_ptr + z_offset
    z_offset,
    hbuf_ptr,  # (T + 1, B, H) storage dtype: h0, then h_t
    cbuf_ptr,  # (T + 1, B, H) float32: c0, then the carried c_t
    acts_ptr,  # (T, B, 4H) gate activations o, i, f, g
    tanh_ptr,  # (T, B, H) tanh of the (normalised) fresh cell
    fresh_ptr,  # (T, B, H) float32 fresh cell c_hat (with zoneout on c)
    rec_stats_ptr,  # (T, B, 2) float32
    cell_stats_ptr,  # (T, B, 2) float32
    ln_hh_ptr,  # (4H,)
    ln_cw_ptr,  # (H,)
    ln_cb_ptr,  # (H,)
    peep_ptr,  # (3, H) rows i, f, o
    mask_ptr,  # (B, H) recurrent mask
    h_masked_ptr,  # (B, H) next step's GEMM input h_t * mask
    zh_ptr,  # (T, B, H) keep mask of h
    zc_ptr,  # (T, B, H) keep mask of c
    zh_rate,
    zc_rate,
    t,
    B,
    eps,
    H: tl.constexpr,
    BLOCK_H: tl.constexpr,
    LN: tl.constexpr,
    CELL_LN: tl.constexpr,
    PEEPHOLE: tl.constexpr,
    MASK: tl.constexpr,
    ZH: tl.constexpr,
    ZC: tl.constexpr,
):
    row = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    cm = cols < H
    G: tl.constexpr = 4 * H
    step_row = t * B + row  # index of (t, row) in a (T, B, .) buffer
    x_row = xp_ptr + step_row * G
    z_row = z_ptr + z_offset + row * G
    z_o = _load(z_row, cols, cm).to(tl.float32)
    z_i = _load(z_row + H, cols, cm).to(tl.float32)
    z_f = _load(z_row + 2 * H, cols, cm).to(tl.float32)
    z_g = _load(z_row + 3 * H, cols, cm).to(tl.float32)
    if LN:  # layer norm of the recurrent projection over all 4H, gain only
        mean = _row_sum4(z_o, z_i, z_f, z_g) / G
        z_o = tl.where(cm, z_o - mean, 0.0)
        z_i = tl.where(cm, z_i - mean, 0.0)
        z_f = tl.where(cm, z_f - mean, 0.0)
        z_g = tl.where(cm, z_g - mean, 0.0)
        rstd = 1.0 / tl.sqrt(_row_sum4(z_o * z_o, z_i * z_i, z_f * z_f, z_g * z_g) / G + eps)
        z_o = z_o * rstd * tl.load(ln_hh_ptr + cols, mask=cm, other=0.0).to(tl.float32)
        z_i = z_i * rstd * tl.load(ln_hh_ptr + H + cols, mask=cm, other=0.0).to(tl.float32)
        z_f = z_f * rstd * tl.load(ln_hh_ptr + 2 * H + cols, mask=cm, other=0.0).to(tl.float32)
        z_g = z_g * rstd * tl.load(ln_hh_ptr + 3 * H + cols, mask=cm, other=0.0).to(tl.float32)
        tl.store(rec_stats_ptr + step_row * 2, mean)
        tl.store(rec_stats_ptr + step_row * 2 + 1, rstd)
    a_o = tl.load(x_row + cols, mask=cm, other=0.0).to(tl.float32) + z_o
    a_i = tl.load(x_row + H + cols, mask=cm, other=0.0).to(tl.float32) + z_i
    a_f = tl.load(x_row + 2 * H + cols, mask=cm, other=0.0).to(tl.float32) + z_f
    a_g = tl.load(x_row + 3 * H + cols, mask=cm, other=0.0).to(tl.float32) + z_g

    c_prev = tl.load(cbuf_ptr + step_row * H + cols, mask=cm, other=0.0)
    if PEEPHOLE:  # i and f see the previous cell, o the fresh one
        a_i += tl.load(peep_ptr + cols, mask=cm, other=0.0).to(tl.float32) * c_prev
        a_f += tl.load(peep_ptr + H + cols, mask=cm, other=0.0).to(tl.float32) * c_prev
    i = tl.sigmoid(a_i)
    f = tl.sigmoid(a_f)
    g = _tanh(a_g)
    c_hat = f * c_prev + i * g
    if PEEPHOLE:
        a_o += tl.load(peep_ptr + 2 * H + cols, mask=cm, other=0.0).to(tl.float32) * c_hat
    o = tl.sigmoid(a_o)
    c_new = c_hat
    if ZC == 1:
        keep_c = tl.load(zc_ptr + step_row * H + cols, mask=cm, other=0.0).to(tl.float32)
        c_new = c_hat + keep_c * (c_prev - c_hat)
    if ZC == 2:
        c_new = c_hat + zc_rate * (c_prev - c_hat)
    if ZC != 0:
        tl.store(fresh_ptr + step_row * H + cols, c_hat, mask=cm)

    c_norm = c_hat
    if CELL_LN:  # layer norm of the fresh cell over H, weight and bias
        c_mean = tl.sum(tl.where(cm, c_hat, 0.0), axis=0) / H
        centred = tl.where(cm, c_hat - c_mean, 0.0)
        c_rstd = 1.0 / tl.sqrt(tl.sum(centred * centred, axis=0) / H + eps)
        weight = tl.load(ln_cw_ptr + cols, mask=cm, other=0.0).to(tl.float32)
        bias = tl.load(ln_cb_ptr + cols, mask=cm, other=0.0).to(tl.float32)
        c_norm = centred * c_rstd * weight + bias
        tl.store(cell_stats_ptr + step_row * 2, c_mean)
        tl.store(cell_stats_ptr + step_row * 2 + 1, c_rstd)
    s = _tanh(c_norm)
    h_new = o * s
    if ZH != 0:
        h_prev = tl.load(hbuf_ptr + step_row * H + cols, mask=cm, other=0.0).to(tl.float32)
        if ZH == 1:
            keep_h = tl.load(zh_ptr + step_row * H + cols, mask=cm, other=0.0).to(tl.float32)
            h_new = h_new + keep_h * (h_prev - h_new)
        else:
            h_new = h_new + zh_rate * (h_prev - h_new)

    a_row = acts_ptr + step_row * G
    dtype = acts_ptr.dtype.element_ty
    tl.store(a_row + cols, o.to(dtype), mask=cm)
    tl.store(a_row + H + cols, i.to(dtype), mask=cm)
    tl.store(a_row + 2 * H + cols, f.to(dtype), mask=cm)
    tl.store(a_row + 3 * H + cols, g.to(dtype), mask=cm)
    tl.store(tanh_ptr + step_row * H + cols, s.to(dtype), mask=cm)
    next_row = (t + 1) * B + row
    tl.store(cbuf_ptr + next_row * H + cols, c_new, mask=cm)
    h_out = h_new.to(hbuf_ptr.dtype.element_ty)
    tl.store(hbuf_ptr + next_row * H + cols, h_out, mask=cm)
    if MASK:  # the next step's GEMM reads the stored (rounded) h times the mask
        keep = tl.load(mask_ptr + row * H + cols, mask=cm, other=0.0).to(tl.float32)
        masked = (h_out.to(tl.float32) * keep).to(h_masked_ptr.dtype.element_ty)
        tl.store(h_masked_ptr + row * H + cols, masked, mask=cm)


@triton.jit
def backward_step(
    gout_ptr,  # (T, B, H) float32 d loss / d h_t from above (d h_n added at each row's last step)
    gh_ptr,  # (B, H) the previous (later) step's recurrent GEMM d_rec_{t+1} @ W_hh, zero else
    extra_ptr,  # (B, H) float32: the part of d h_t that bypasses the mask (zoneout's), in/out
    carry_c_ptr,  # (B, H) float32: d loss / d c_t, in; d loss / d c_{t-1}, out
    acts_ptr,  # (T, B, 4H)
    tanh_ptr,  # (T, B, H)
    cbuf_ptr,  # (T + 1, B, H) float32
    fresh_ptr,  # (T, B, H) float32 (zoneout on c) - else the fresh cell is cbuf[t + 1]
    z_ptr,  # (T, B, 4H) recurrent projection before its layer norm
    rec_stats_ptr,  # (T, B, 2)
    cell_stats_ptr,  # (T, B, 2)
    ln_hh_ptr,
    ln_cw_ptr,
    peep_ptr,
    mask_ptr,  # (B, H)
    zh_ptr,
    zc_ptr,
    zh_rate,
    zc_rate,
    d_pre_ptr,  # (T, B, 4H) out: d loss / d pre-activations (= d xp)
    d_rec_ptr,  # (T, B, 4H) out (layer norm): d loss / d recurrent projection
    d_cn_ptr,  # (T, B, H) float32 out (cell layer norm): d loss / d normalised cell
    t,
    B,
    H: tl.constexpr,
    BLOCK_H: tl.constexpr,
    LN: tl.constexpr,
    CELL_LN: tl.constexpr,
    PEEPHOLE: tl.constexpr,
    MASK: tl.constexpr,
    ZH: tl.constexpr,
    ZC: tl.constexpr,
):
    row = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    cm = cols < H
    G: tl.constexpr = 4 * H
    step_row = t * B + row
    state = row * H + cols

    gh = tl.load(gh_ptr + state, mask=cm, other=0.0).to(tl.float32)
    if MASK:
        gh = gh * tl.load(mask_ptr + state, mask=cm, other=0.0).to(tl.float32)
    dh = tl.load(gout_ptr + step_row * H + cols, mask=cm, other=0.0) + gh
    dh += tl.load(extra_ptr + state, mask=cm, other=0.0)
    dh_zone = tl.zeros_like(dh)
    if ZH != 0:  # h_t = lerp(h_hat, h_{t-1}, keep)
        if ZH == 1:
            keep_h = tl.load(zh_ptr + step_row * H + cols, mask=cm, other=0.0).to(tl.float32)
        else:
            keep_h = zh_rate
        dh_zone = dh * keep_h
        dh = dh - dh_zone
    tl.store(extra_ptr + state, dh_zone, mask=cm)

    a_row = acts_ptr + step_row * G
    o = tl.load(a_row + cols, mask=cm, other=0.0).to(tl.float32)
    i = tl.load(a_row + H + cols, mask=cm, other=0.0).to(tl.float32)
    f = tl.load(a_row + 2 * H + cols, mask=cm, other=0.0).to(tl.float32)
    g = tl.load(a_row + 3 * H + cols, mask=cm, other=0.0).to(tl.float32)
    s = tl.load(tanh_ptr + step_row * H + cols, mask=cm, other=0.0).to(tl.float32)
    d_o = dh * s * o * (1.0 - o)
    d_norm = dh * o * (1.0 - s * s)  # d loss / d (normalised) fresh cell, before tanh

    dc = tl.load(carry_c_ptr + state, mask=cm, other=0.0)
    dc_zone = tl.zeros_like(dc)
    if ZC != 0:  # c_t = lerp(c_hat, c_{t-1}, keep)
        if ZC == 1:
            keep_c = tl.load(zc_ptr + step_row * H + cols, mask=cm, other=0.0).to(tl.float32)
        else:
            keep_c = zc_rate
        dc_zone = dc * keep_c
        dc = dc - dc_zone
    if CELL_LN:
        tl.store(d_cn_ptr + step_row * H + cols, d_norm, mask=cm)
        if ZC != 0:
            c_hat = tl.load(fresh_ptr + step_row * H + cols, mask=cm, other=0.0)
        else:
            c_hat = tl.load(cbuf_ptr + (t + 1) * B * H + state, mask=cm, other=0.0)
        c_mean = tl.load(cell_stats_ptr + step_row * 2)
        c_rstd = tl.load(cell_stats_ptr + step_row * 2 + 1)
        x_hat = tl.where(cm, (c_hat - c_mean) * c_rstd, 0.0)
        dx_hat = d_norm * tl.load(ln_cw_ptr + cols, mask=cm, other=0.0).to(tl.float32)
        mean_dx = tl.sum(dx_hat, axis=0) / H
        mean_dx_x = tl.sum(dx_hat * x_hat, axis=0) / H
        dc += c_rstd * (dx_hat - mean_dx - x_hat * mean_dx_x)
    else:
        dc += d_norm
    if PEEPHOLE:
        dc += d_o * tl.load(peep_ptr + 2 * H + cols, mask=cm, other=0.0).to(tl.float32)
    # dc is now d loss / d c_hat
    c_prev = tl.load(cbuf_ptr + step_row * H + cols, mask=cm, other=0.0)
    d_i = dc * g * i * (1.0 - i)
    d_f = dc * c_prev * f * (1.0 - f)
    d_g = dc * i * (1.0 - g * g)
    dc_prev = dc * f + dc_zone
    if PEEPHOLE:
        dc_prev += d_i * tl.load(peep_ptr + cols, mask=cm, other=0.0).to(tl.float32)
        dc_prev += d_f * tl.load(peep_ptr + H + cols, mask=cm, other=0.0).to(tl.float32)
    tl.store(carry_c_ptr + state, dc_prev, mask=cm)

    p_row = d_pre_ptr + step_row * G
    dtype = d_pre_ptr.dtype.element_ty
    tl.store(p_row + cols, d_o.to(dtype), mask=cm)
    tl.store(p_row + H + cols, d_i.to(dtype), mask=cm)
    tl.store(p_row + 2 * H + cols, d_f.to(dtype), mask=cm)
    tl.store(p_row + 3 * H + cols, d_g.to(dtype), mask=cm)
    if LN:  # back through the recurrent layer norm (gain only) over all 4H
        z_row = z_ptr + step_row * G
        mean = tl.load(rec_stats_ptr + step_row * 2)
        rstd = tl.load(rec_stats_ptr + step_row * 2 + 1)
        x_o = tl.where(cm, (_load(z_row, cols, cm) - mean) * rstd, 0.0)
        x_i = tl.where(cm, (_load(z_row + H, cols, cm) - mean) * rstd, 0.0)
        x_f = tl.where(cm, (_load(z_row + 2 * H, cols, cm) - mean) * rstd, 0.0)
        x_g = tl.where(cm, (_load(z_row + 3 * H, cols, cm) - mean) * rstd, 0.0)
        d_o = d_o * _load(ln_hh_ptr, cols, cm)
        d_i = d_i * _load(ln_hh_ptr + H, cols, cm)
        d_f = d_f * _load(ln_hh_ptr + 2 * H, cols, cm)
        d_g = d_g * _load(ln_hh_ptr + 3 * H, cols, cm)
        mean_d = _row_sum4(d_o, d_i, d_f, d_g) / G
        mean_dx = _row_sum4(d_o * x_o, d_i * x_i, d_f * x_f, d_g * x_g) / G
        r_row = d_rec_ptr + step_row * G
        dtype_r = d_rec_ptr.dtype.element_ty
        tl.store(r_row + cols, (rstd * (d_o - mean_d - x_o * mean_dx)).to(dtype_r), mask=cm)
        tl.store(r_row + H + cols, (rstd * (d_i - mean_d - x_i * mean_dx)).to(dtype_r), mask=cm)
        tl.store(r_row + 2 * H + cols, (rstd * (d_f - mean_d - x_f * mean_dx)).to(dtype_r), mask=cm)
        tl.store(r_row + 3 * H + cols, (rstd * (d_g - mean_d - x_g * mean_dx)).to(dtype_r), mask=cm)
