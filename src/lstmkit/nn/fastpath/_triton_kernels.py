"""The Triton kernels behind `lstmkit.nn.fastpath.triton_lstm` (imported only when triton is installed).

Two kinds of kernel share one implementation of a step's pointwise work (`_forward_pointwise`,
`_backward_pointwise`), on a tile of ``BLOCK_B`` batch rows by ``BLOCK_H`` hidden units:

* per-step kernels (`forward_step`, `backward_step`): one launch per step around the caller's
  recurrent GEMM (cuBLAS); with a layer norm a tile covers the whole row (``BLOCK_H >= H``) so
  that the statistics reduce inside the program, without one a row may span several programs;
* whole-sequence kernels (`forward_sequence`, `backward_sequence`): one launch per call; each
  program owns ``BLOCK_B`` rows for all steps and does their recurrent GEMM itself (``tl.dot``
  over the recurrent weight, read from L2 each step), so a step costs no launch at all. The
  state of step ``t`` goes through global memory to step ``t + 1`` (only the program's own rows),
  behind a barrier.

Everything is computed in float32 whatever the storage dtype. Gate order o, i, f, g. Buffers are
indexed with the step ``t`` inside the kernels: ``hbuf``/``cbuf`` are ``(T + 1, B, H)`` with the
initial state at index 0, so step ``t`` reads its previous state at ``t`` and writes its new one
at ``t + 1``. Layer-norm statistics are ``(T, B, 2)`` float32: mean, rstd.

Zoneout modes (``ZH``, ``ZC``): 0 off, 1 a ``(T, B, H)`` keep mask, 2 a constant keep rate.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _tanh(x):
    """tanh in float32 to ~2 ulp (tl has no tanh that the interpreter and every backend
    share; ``2 sigmoid(2x) - 1`` loses the relative precision of small values)."""
    ax = tl.abs(x)
    e = tl.exp(-2.0 * ax)
    big = (1.0 - e) / (1.0 + e)
    x2 = x * x
    p = -1382.0 / 155925.0  # Taylor series to x^11 below 0.3 (next term < 1e-8 relative)
    p = p * x2 + 62.0 / 2835.0
    p = p * x2 - 17.0 / 315.0
    p = p * x2 + 2.0 / 15.0
    p = p * x2 - 1.0 / 3.0
    return tl.where(ax < 0.3, x + x * x2 * p, tl.where(x < 0, -big, big))


@triton.jit
def _sum4(a, b, c, d):
    """Row sums of four (rows, cols) tiles together: (rows, 1)."""
    total = tl.sum(a, axis=1) + tl.sum(b, axis=1) + tl.sum(c, axis=1) + tl.sum(d, axis=1)
    return total[:, None]


@triton.jit
def _vec(ptr, cols, cm):
    """A (1, cols) float32 row of a per-unit parameter, zero in the masked-off lanes."""
    return tl.load(ptr + cols, mask=cm, other=0.0).to(tl.float32)[None, :]


@triton.jit
def _tile(ptr, offsets, m):
    """A float32 tile at ``ptr + offsets``, zero where ``m`` is off."""
    return tl.load(ptr + offsets, mask=m, other=0.0).to(tl.float32)


@triton.jit
def _forward_pointwise(
    z_o, z_i, z_f, z_g,  # (R, C) float32 recurrent projection, zero in masked-off lanes
    xp_ptr, hbuf_ptr, cbuf_ptr, acts_ptr, tanh_ptr, fresh_ptr, rec_stats_ptr, cell_stats_ptr,
    ln_hh_ptr, ln_cw_ptr, ln_cb_ptr, peep_ptr, mask_ptr, h_masked_ptr, zh_ptr, zc_ptr,
    zh_rate, zc_rate, rows, cols, rmask, t, B, eps,
    H: tl.constexpr, LN: tl.constexpr, CELL_LN: tl.constexpr, PEEPHOLE: tl.constexpr,
    MASK: tl.constexpr, ZH: tl.constexpr, ZC: tl.constexpr, SAVE: tl.constexpr,
):  # fmt: skip
    """One step's work after the recurrent GEMM, for rows ``rows`` (R,) and units ``cols`` (C,):
    layer norms, gates, cell, zoneout, ``h_t``; writes the state and (``SAVE``) the buffers
    only the backward reads."""
    G: tl.constexpr = 4 * H
    cm = cols < H
    m = rmask[:, None] & cm[None, :]
    c2 = cols[None, :]
    step_rows = t * B + rows  # (R,) index of (t, row) in a (T, B, .) buffer
    gate = step_rows[:, None] * G + c2  # gate o of (t, row) in a (T, B, 4H) buffer
    unit = step_rows[:, None] * H + c2  # (t, row) in a (T, B, H) buffer
    if LN:  # layer norm of the recurrent projection over all 4H, gain only
        mean = _sum4(z_o, z_i, z_f, z_g) / G
        z_o = tl.where(m, z_o - mean, 0.0)
        z_i = tl.where(m, z_i - mean, 0.0)
        z_f = tl.where(m, z_f - mean, 0.0)
        z_g = tl.where(m, z_g - mean, 0.0)
        rstd = 1.0 / tl.sqrt(_sum4(z_o * z_o, z_i * z_i, z_f * z_f, z_g * z_g) / G + eps)
        z_o = z_o * rstd * _vec(ln_hh_ptr, cols, cm)
        z_i = z_i * rstd * _vec(ln_hh_ptr + H, cols, cm)
        z_f = z_f * rstd * _vec(ln_hh_ptr + 2 * H, cols, cm)
        z_g = z_g * rstd * _vec(ln_hh_ptr + 3 * H, cols, cm)
        if SAVE:
            tl.store(rec_stats_ptr + step_rows[:, None] * 2, mean, mask=rmask[:, None])
            tl.store(rec_stats_ptr + step_rows[:, None] * 2 + 1, rstd, mask=rmask[:, None])
    a_o = _tile(xp_ptr, gate, m) + z_o
    a_i = _tile(xp_ptr + H, gate, m) + z_i
    a_f = _tile(xp_ptr + 2 * H, gate, m) + z_f
    a_g = _tile(xp_ptr + 3 * H, gate, m) + z_g

    c_prev = _tile(cbuf_ptr, unit, m)
    if PEEPHOLE:  # i and f see the previous cell, o the fresh one
        a_i += _vec(peep_ptr, cols, cm) * c_prev
        a_f += _vec(peep_ptr + H, cols, cm) * c_prev
    i = tl.sigmoid(a_i)
    f = tl.sigmoid(a_f)
    g = _tanh(a_g)
    c_hat = f * c_prev + i * g
    if PEEPHOLE:
        a_o += _vec(peep_ptr + 2 * H, cols, cm) * c_hat
    o = tl.sigmoid(a_o)
    c_new = c_hat
    if ZC == 1:
        c_new = c_hat + _tile(zc_ptr, unit, m) * (c_prev - c_hat)
    if ZC == 2:
        c_new = c_hat + zc_rate * (c_prev - c_hat)
    if ZC != 0 and SAVE:
        tl.store(fresh_ptr + unit, c_hat, mask=m)

    c_norm = c_hat
    if CELL_LN:  # layer norm of the fresh cell over H, weight and bias
        c_mean = tl.sum(tl.where(m, c_hat, 0.0), axis=1)[:, None] / H
        centred = tl.where(m, c_hat - c_mean, 0.0)
        c_rstd = 1.0 / tl.sqrt(tl.sum(centred * centred, axis=1)[:, None] / H + eps)
        c_norm = centred * c_rstd * _vec(ln_cw_ptr, cols, cm) + _vec(ln_cb_ptr, cols, cm)
        if SAVE:
            tl.store(cell_stats_ptr + step_rows[:, None] * 2, c_mean, mask=rmask[:, None])
            tl.store(cell_stats_ptr + step_rows[:, None] * 2 + 1, c_rstd, mask=rmask[:, None])
    s = _tanh(c_norm)
    h_new = o * s
    if ZH != 0:
        h_prev = _tile(hbuf_ptr, unit, m)
        if ZH == 1:
            h_new = h_new + _tile(zh_ptr, unit, m) * (h_prev - h_new)
        else:
            h_new = h_new + zh_rate * (h_prev - h_new)

    if SAVE:
        dtype = acts_ptr.dtype.element_ty
        tl.store(acts_ptr + gate, o.to(dtype), mask=m)
        tl.store(acts_ptr + H + gate, i.to(dtype), mask=m)
        tl.store(acts_ptr + 2 * H + gate, f.to(dtype), mask=m)
        tl.store(acts_ptr + 3 * H + gate, g.to(dtype), mask=m)
        tl.store(tanh_ptr + unit, s.to(dtype), mask=m)
    tl.store(cbuf_ptr + B * H + unit, c_new, mask=m)  # (t + 1, row)
    h_out = h_new.to(hbuf_ptr.dtype.element_ty)
    tl.store(hbuf_ptr + B * H + unit, h_out, mask=m)
    if MASK:  # the next step's GEMM reads the stored (rounded) h times the mask
        state = rows[:, None] * H + c2
        masked = h_out.to(tl.float32) * _tile(mask_ptr, state, m)
        tl.store(h_masked_ptr + state, masked.to(h_masked_ptr.dtype.element_ty), mask=m)


@triton.jit
def _backward_pointwise(
    gh,  # (R, C) float32: the later step's recurrent GEMM d_rec_{t+1} @ W_hh (zero if none)
    gout_ptr, extra_ptr, carry_c_ptr, acts_ptr, tanh_ptr, cbuf_ptr, fresh_ptr, z_ptr,
    rec_stats_ptr, cell_stats_ptr, ln_hh_ptr, ln_cw_ptr, peep_ptr, mask_ptr, zh_ptr, zc_ptr,
    zh_rate, zc_rate, d_pre_ptr, d_rec_ptr, d_cn_ptr, rows, cols, rmask, t, B,
    H: tl.constexpr, LN: tl.constexpr, CELL_LN: tl.constexpr, PEEPHOLE: tl.constexpr,
    MASK: tl.constexpr, ZH: tl.constexpr, ZC: tl.constexpr,
):  # fmt: skip
    """One step's backward up to the recurrent GEMM: from ``d h_t`` (upstream + ``gh`` through
    the mask + the bypass in ``extra``) and ``d c_t`` (``carry_c``) to the pre-activation
    gradients (and through the recurrent layer norm); updates ``extra`` and ``carry_c``."""
    G: tl.constexpr = 4 * H
    cm = cols < H
    m = rmask[:, None] & cm[None, :]
    c2 = cols[None, :]
    step_rows = t * B + rows
    gate = step_rows[:, None] * G + c2
    unit = step_rows[:, None] * H + c2
    state = rows[:, None] * H + c2

    if MASK:
        gh = gh * _tile(mask_ptr, state, m)
    dh = _tile(gout_ptr, unit, m) + gh + _tile(extra_ptr, state, m)
    dh_zone = tl.zeros_like(dh)
    if ZH == 1:  # h_t = lerp(h_hat, h_{t-1}, keep)
        dh_zone = dh * _tile(zh_ptr, unit, m)
    if ZH == 2:
        dh_zone = dh * zh_rate
    dh = dh - dh_zone
    tl.store(extra_ptr + state, dh_zone, mask=m)

    o = _tile(acts_ptr, gate, m)
    i = _tile(acts_ptr + H, gate, m)
    f = _tile(acts_ptr + 2 * H, gate, m)
    g = _tile(acts_ptr + 3 * H, gate, m)
    s = _tile(tanh_ptr, unit, m)
    d_o = dh * s * o * (1.0 - o)
    d_norm = dh * o * (1.0 - s * s)  # d loss / d (normalised) fresh cell, before tanh

    dc = _tile(carry_c_ptr, state, m)
    dc_zone = tl.zeros_like(dc)
    if ZC == 1:  # c_t = lerp(c_hat, c_{t-1}, keep)
        dc_zone = dc * _tile(zc_ptr, unit, m)
    if ZC == 2:
        dc_zone = dc * zc_rate
    dc = dc - dc_zone
    if CELL_LN:
        tl.store(d_cn_ptr + unit, d_norm, mask=m)
        # the fresh cell: saved apart with zoneout on c, else the carried one
        c_hat = _tile(fresh_ptr, unit, m) if ZC != 0 else _tile(cbuf_ptr + B * H, unit, m)
        c_mean = tl.load(cell_stats_ptr + step_rows * 2, mask=rmask, other=0.0)[:, None]
        c_rstd = tl.load(cell_stats_ptr + step_rows * 2 + 1, mask=rmask, other=0.0)[:, None]
        x_hat = tl.where(m, (c_hat - c_mean) * c_rstd, 0.0)
        dx_hat = d_norm * _vec(ln_cw_ptr, cols, cm)
        mean_dx = tl.sum(dx_hat, axis=1)[:, None] / H
        mean_dx_x = tl.sum(dx_hat * x_hat, axis=1)[:, None] / H
        dc += c_rstd * (dx_hat - mean_dx - x_hat * mean_dx_x)
    else:
        dc += d_norm
    if PEEPHOLE:
        dc += d_o * _vec(peep_ptr + 2 * H, cols, cm)
    # dc is now d loss / d c_hat
    c_prev = _tile(cbuf_ptr, unit, m)
    d_i = dc * g * i * (1.0 - i)
    d_f = dc * c_prev * f * (1.0 - f)
    d_g = dc * i * (1.0 - g * g)
    dc_prev = dc * f + dc_zone
    if PEEPHOLE:
        dc_prev += d_i * _vec(peep_ptr, cols, cm) + d_f * _vec(peep_ptr + H, cols, cm)
    tl.store(carry_c_ptr + state, dc_prev, mask=m)

    dtype = d_pre_ptr.dtype.element_ty
    tl.store(d_pre_ptr + gate, d_o.to(dtype), mask=m)
    tl.store(d_pre_ptr + H + gate, d_i.to(dtype), mask=m)
    tl.store(d_pre_ptr + 2 * H + gate, d_f.to(dtype), mask=m)
    tl.store(d_pre_ptr + 3 * H + gate, d_g.to(dtype), mask=m)
    if LN:  # back through the recurrent layer norm (gain only) over all 4H
        mean = tl.load(rec_stats_ptr + step_rows * 2, mask=rmask, other=0.0)[:, None]
        rstd = tl.load(rec_stats_ptr + step_rows * 2 + 1, mask=rmask, other=0.0)[:, None]
        x_o = tl.where(m, (_tile(z_ptr, gate, m) - mean) * rstd, 0.0)
        x_i = tl.where(m, (_tile(z_ptr + H, gate, m) - mean) * rstd, 0.0)
        x_f = tl.where(m, (_tile(z_ptr + 2 * H, gate, m) - mean) * rstd, 0.0)
        x_g = tl.where(m, (_tile(z_ptr + 3 * H, gate, m) - mean) * rstd, 0.0)
        d_o = d_o * _vec(ln_hh_ptr, cols, cm)
        d_i = d_i * _vec(ln_hh_ptr + H, cols, cm)
        d_f = d_f * _vec(ln_hh_ptr + 2 * H, cols, cm)
        d_g = d_g * _vec(ln_hh_ptr + 3 * H, cols, cm)
        mean_d = _sum4(d_o, d_i, d_f, d_g) / G
        mean_dx = _sum4(d_o * x_o, d_i * x_i, d_f * x_f, d_g * x_g) / G
        dtype_r = d_rec_ptr.dtype.element_ty
        tl.store(d_rec_ptr + gate, (rstd * (d_o - mean_d - x_o * mean_dx)).to(dtype_r), mask=m)
        d_rec_i = rstd * (d_i - mean_d - x_i * mean_dx)
        tl.store(d_rec_ptr + H + gate, d_rec_i.to(dtype_r), mask=m)
        d_rec_f = rstd * (d_f - mean_d - x_f * mean_dx)
        tl.store(d_rec_ptr + 2 * H + gate, d_rec_f.to(dtype_r), mask=m)
        d_rec_g = rstd * (d_g - mean_d - x_g * mean_dx)
        tl.store(d_rec_ptr + 3 * H + gate, d_rec_g.to(dtype_r), mask=m)


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
    n,  # rows active at this step
    B,
    eps,
    H: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_H: tl.constexpr,
    LN: tl.constexpr,
    CELL_LN: tl.constexpr,
    PEEPHOLE: tl.constexpr,
    MASK: tl.constexpr,
    ZH: tl.constexpr,
    ZC: tl.constexpr,
    SAVE: tl.constexpr,
):
    G: tl.constexpr = 4 * H
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    rmask = rows < n
    m = rmask[:, None] & (cols < H)[None, :]
    z = z_offset + rows[:, None] * G + cols[None, :]
    _forward_pointwise(
        _tile(z_ptr, z, m), _tile(z_ptr + H, z, m), _tile(z_ptr + 2 * H, z, m),
        _tile(z_ptr + 3 * H, z, m), xp_ptr, hbuf_ptr, cbuf_ptr,
        acts_ptr, tanh_ptr, fresh_ptr, rec_stats_ptr, cell_stats_ptr, ln_hh_ptr, ln_cw_ptr,
        ln_cb_ptr, peep_ptr, mask_ptr, h_masked_ptr, zh_ptr, zc_ptr, zh_rate, zc_rate, rows,
        cols, rmask, t, B, eps, H, LN, CELL_LN, PEEPHOLE, MASK, ZH, ZC, SAVE,
    )  # fmt: skip


@triton.jit
def backward_step(
    gout_ptr,  # (T, B, H) float32 d loss / d h_t from above
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
    n,
    B,
    H: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_H: tl.constexpr,
    LN: tl.constexpr,
    CELL_LN: tl.constexpr,
    PEEPHOLE: tl.constexpr,
    MASK: tl.constexpr,
    ZH: tl.constexpr,
    ZC: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    rmask = rows < n
    m = rmask[:, None] & (cols < H)[None, :]
    gh = _tile(gh_ptr, rows[:, None] * H + cols[None, :], m)
    _backward_pointwise(
        gh, gout_ptr, extra_ptr, carry_c_ptr, acts_ptr, tanh_ptr, cbuf_ptr,
        fresh_ptr, z_ptr, rec_stats_ptr, cell_stats_ptr, ln_hh_ptr, ln_cw_ptr, peep_ptr,
        mask_ptr, zh_ptr, zc_ptr, zh_rate, zc_rate, d_pre_ptr, d_rec_ptr, d_cn_ptr, rows, cols,
        rmask, t, B, H, LN, CELL_LN, PEEPHOLE, MASK, ZH, ZC,
    )  # fmt: skip


@triton.jit
def _recurrent_dot(a_ptr, a_offsets, a_stride_k, w_ptr, rows_m, cols, cm,
                   K: tl.constexpr, W_ROW: tl.constexpr, W_COL: tl.constexpr,
                   BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr,
                   PRECISION: tl.constexpr):  # fmt: skip
    """``sum_k a[row, k] * w[k * W_ROW + col * W_COL]`` for k < K: a (BLOCK_B, BLOCK_H) float32
    tile. ``a`` is read at ``a_ptr + a_offsets + k * a_stride_k`` (rows masked by ``rows_m``).
    The operands are multiplied in float32 whatever their dtype (Triton's interpreter gets
    bfloat16 products wrong, and the GEMM is small next to the step's other work)."""
    acc = tl.zeros((BLOCK_B, BLOCK_H), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        km = ks < K
        a = tl.load(  # written by this program's previous step: read past L1 (".cg")
            a_ptr + a_offsets[:, None] + ks[None, :] * a_stride_k,
            mask=rows_m[:, None] & km[None, :],
            other=0.0,
            cache_modifier=".cg",
        )
        w = tl.load(
            w_ptr + ks[:, None] * W_ROW + cols[None, :] * W_COL,
            mask=km[:, None] & cm[None, :],
            other=0.0,
        )
        acc = tl.dot(a.to(tl.float32), w.to(tl.float32), acc, input_precision=PRECISION)
    return acc


@triton.jit
def forward_sequence(
    xp_ptr, hbuf_ptr, cbuf_ptr, acts_ptr, tanh_ptr, fresh_ptr, rec_pre_ln_ptr, rec_stats_ptr,
    cell_stats_ptr, ln_hh_ptr, ln_cw_ptr, ln_cb_ptr, peep_ptr, mask_ptr, h_masked_ptr, zh_ptr,
    zc_ptr, zh_rate, zc_rate,
    w_ptr,  # (4H, H) recurrent weight
    sizes_ptr,  # (T,) int64 rows active per step (with BATCH_SIZES)
    T, B, eps,
    H: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr,
    LN: tl.constexpr, CELL_LN: tl.constexpr, PEEPHOLE: tl.constexpr, MASK: tl.constexpr,
    ZH: tl.constexpr, ZC: tl.constexpr, BATCH_SIZES: tl.constexpr, PRECISION: tl.constexpr,
    SAVE: tl.constexpr,
):  # fmt: skip
    """All steps of `forward_step` plus their recurrent GEMMs, for BLOCK_B rows a program."""
    G: tl.constexpr = 4 * H
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.arange(0, BLOCK_H)
    cm = cols < H
    for t in range(T):
        n = B
        if BATCH_SIZES:
            n = tl.load(sizes_ptr + t).to(tl.int32)
        rmask = rows < n
        m = rmask[:, None] & cm[None, :]
        # h_{t-1} (times the mask) @ W_hh.T, gate by gate: W_hh[g H + col, k] at (g H + col) H + k
        if MASK:
            a_ptr, a_offsets = h_masked_ptr, rows * H
        else:
            a_ptr, a_offsets = hbuf_ptr, (t * B + rows) * H
        z_o = _recurrent_dot(a_ptr, a_offsets, 1, w_ptr, rmask, cols, cm, H, 1, H,
                             BLOCK_B, BLOCK_H, BLOCK_K, PRECISION)  # fmt: skip
        z_i = _recurrent_dot(a_ptr, a_offsets, 1, w_ptr + H * H, rmask, cols, cm, H, 1, H,
                             BLOCK_B, BLOCK_H, BLOCK_K, PRECISION)  # fmt: skip
        z_f = _recurrent_dot(a_ptr, a_offsets, 1, w_ptr + 2 * H * H, rmask, cols, cm, H, 1, H,
                             BLOCK_B, BLOCK_H, BLOCK_K, PRECISION)  # fmt: skip
        z_g = _recurrent_dot(a_ptr, a_offsets, 1, w_ptr + 3 * H * H, rmask, cols, cm, H, 1, H,
                             BLOCK_B, BLOCK_H, BLOCK_K, PRECISION)  # fmt: skip
        if LN:  # saved for the backward; normalised as saved (rounded to the storage dtype)
            dtype = rec_pre_ln_ptr.dtype.element_ty
            gate = (t * B + rows)[:, None] * G + cols[None, :]
            z_o = z_o.to(dtype)
            z_i = z_i.to(dtype)
            z_f = z_f.to(dtype)
            z_g = z_g.to(dtype)
            if SAVE:
                tl.store(rec_pre_ln_ptr + gate, z_o, mask=m)
                tl.store(rec_pre_ln_ptr + H + gate, z_i, mask=m)
                tl.store(rec_pre_ln_ptr + 2 * H + gate, z_f, mask=m)
                tl.store(rec_pre_ln_ptr + 3 * H + gate, z_g, mask=m)
        _forward_pointwise(
            tl.where(m, z_o.to(tl.float32), 0.0), tl.where(m, z_i.to(tl.float32), 0.0),
            tl.where(m, z_f.to(tl.float32), 0.0), tl.where(m, z_g.to(tl.float32), 0.0),
            xp_ptr, hbuf_ptr, cbuf_ptr, acts_ptr, tanh_ptr, fresh_ptr,
            rec_stats_ptr, cell_stats_ptr, ln_hh_ptr, ln_cw_ptr, ln_cb_ptr, peep_ptr, mask_ptr,
            h_masked_ptr, zh_ptr, zc_ptr, zh_rate, zc_rate, rows, cols, rmask, t, B, eps, H, LN,
            CELL_LN, PEEPHOLE, MASK, ZH, ZC, SAVE,
        )  # fmt: skip
        tl.debug_barrier()  # h_t reaches every thread of the program before the next GEMM


@triton.jit
def backward_sequence(
    gout_ptr, extra_ptr, carry_c_ptr, acts_ptr, tanh_ptr, cbuf_ptr, fresh_ptr, z_ptr,
    rec_stats_ptr, cell_stats_ptr, ln_hh_ptr, ln_cw_ptr, peep_ptr, mask_ptr, zh_ptr, zc_ptr,
    zh_rate, zc_rate, d_pre_ptr, d_rec_ptr, d_cn_ptr,
    w_ptr,  # (4H, H) recurrent weight
    gh_ptr,  # (B, H) out: d_rec_0 @ W_hh (for d h0)
    sizes_ptr, T, B,
    H: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr,
    LN: tl.constexpr, CELL_LN: tl.constexpr, PEEPHOLE: tl.constexpr, MASK: tl.constexpr,
    ZH: tl.constexpr, ZC: tl.constexpr, BATCH_SIZES: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    """All steps of `backward_step` plus their recurrent GEMMs, for BLOCK_B rows a program.
    ``d_rec`` is ``d_pre`` without the layer norm (the same buffer)."""
    G: tl.constexpr = 4 * H
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.arange(0, BLOCK_H)
    cm = cols < H
    gh = tl.zeros((BLOCK_B, BLOCK_H), dtype=tl.float32)
    for step in range(T):
        t = T - 1 - step
        n = B
        if BATCH_SIZES:
            n = tl.load(sizes_ptr + t).to(tl.int32)
        rmask = rows < n
        _backward_pointwise(
            gh, gout_ptr, extra_ptr, carry_c_ptr, acts_ptr, tanh_ptr, cbuf_ptr,
            fresh_ptr, z_ptr, rec_stats_ptr, cell_stats_ptr, ln_hh_ptr, ln_cw_ptr, peep_ptr,
            mask_ptr, zh_ptr, zc_ptr, zh_rate, zc_rate, d_pre_ptr, d_rec_ptr, d_cn_ptr, rows,
            cols, rmask, t, B, H, LN, CELL_LN, PEEPHOLE, MASK, ZH, ZC,
        )  # fmt: skip
        tl.debug_barrier()  # d_rec_t reaches every thread of the program before its GEMM
        # d_rec_t @ W_hh: W_hh[j, col] at j H + col, j over all 4H
        gh = _recurrent_dot(d_rec_ptr, (t * B + rows) * G, 1, w_ptr, rmask, cols, cm, G, H, 1,
                            BLOCK_B, BLOCK_H, BLOCK_K, PRECISION)  # fmt: skip
    m = (rows < B)[:, None] & cm[None, :]
    tl.store(gh_ptr + rows[:, None] * H + cols[None, :], gh, mask=m)
