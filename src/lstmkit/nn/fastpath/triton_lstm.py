"""One layer and direction of the fused LSTM (`lstmkit.nn.fastpath.fused`) as Triton kernels, for CUDA.

A time step costs two launches each way instead of 8-15 torch ops:

* forward: the recurrent GEMM ``h_{t-1} @ W_hh.T`` (``torch.mm``, cuBLAS), then one fused
  pointwise kernel (`_triton_kernels.forward_step`) that does the recurrent layer norm, the
  gates, peepholes, the cell update, zoneout, the cell layer norm, ``h_t``, the recurrent mask
  for the next step's GEMM, and writes what the backward reads;
* backward: one fused kernel (`_triton_kernels.backward_step`) from ``d h_t``, ``d c_t`` to the
  pre-activation gradients (through both layer norms), then the GEMM ``d_rec @ W_hh``.

With ``persistent=True`` (hidden sizes up to `PERSISTENT_MAX_HIDDEN`) each way is one launch
for the whole sequence instead (`_triton_kernels.forward_sequence`, `backward_sequence`), with
the recurrent GEMM inside the kernel.

The weight gradient of ``W_hh`` is one GEMM over all steps after the loop; the peephole and
layer-norm parameter gradients are one reduction each; the gradient of ``xp`` is returned as is
(the caller turns it into ``weight_ih``/bias/input gradients with one more GEMM).

The equations are `fused.FusedLSTMLayer`'s (its torch-op branch and `_backward_torch`),
internal gate order o, i, f, g; the kernels compute in float32 whatever the storage dtype
(float32, bfloat16, float16), carry the cell state and its gradient in float32, and store gate
activations and outputs in the input dtype. Variable lengths follow PackedSequence: the batch is
sorted by decreasing length and step ``t`` touches only its first ``batch_sizes[t]`` rows.

Triton is an optional dependency (``pip install 'lstmkit[gpu]'``); this module imports without
it. With ``TRITON_INTERPRET=1`` the kernels run on CPU tensors in Triton's interpreter, which is
how the test suite checks them without a GPU.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..cell import LAYER_NORM_EPS

DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# With a layer norm one program holds a whole row of 4H gates; beyond this it would spill.
MAX_LN_HIDDEN = 2048
# Without one, a program covers at most this many hidden units (more programs per row).
BLOCK_PLAIN = 256
# The whole-sequence kernels hold 4 x SEQUENCE_ROWS x H gate values of a program in registers
# and stream the recurrent weight from L2 every step: meant for small hidden sizes.
PERSISTENT_MAX_HIDDEN = 256
SEQUENCE_ROWS = 16
INSTALL_HINT = "the Triton LSTM kernels need triton: pip install 'lstmkit[gpu]'"

Zoneout = Tensor | float | None


class ForwardResult(NamedTuple):
    """What `forward` returns: the outputs, then what `backward` reads (pass it back whole).

    Shapes: T steps, B rows, H hidden units; "dtype" is ``xp``'s dtype.

    Outputs:
        out: ``(T, B, H)`` dtype, ``h_t`` (zero at a row's padded steps); a view of ``hbuf[1:]``
            (an operator that returns both must return ``hbuf`` and slice outside, or clone).
        h_n: ``(B, H)`` dtype, each row's ``h`` at its last step.
        c_n: ``(B, H)`` dtype, each row's carried cell at its last step.
    Saved buffers (`SAVED_BUFFERS`; shapes and dtypes from `saved_specs`):
        hbuf: ``(T + 1, B, H)`` dtype, ``h0`` then ``h_1..h_T``.
        cbuf: ``(T + 1, B, H)`` float32, ``c0`` then the carried cells ``c_1..c_T``.
        acts: ``(T, B, 4H)`` dtype, gate activations o, i, f, g.
        tanh_cells: ``(T, B, H)`` dtype, tanh of the (cell-normalised) fresh cell.
        fresh: ``(T, B, H)`` float32, the fresh cell ``c_hat`` when zoneout acts on c, else
            None (then it equals the carried cell, ``cbuf[1:]``).
        rec_pre_ln: ``(T, B, 4H)`` dtype, the recurrent projection before its layer norm, or None.
        rec_stats, cell_stats: ``(T, B, 2)`` float32 (mean, rstd) of the recurrent and the cell
            layer norms, or None.
    The inputs the backward needs, as given: weight_hh, peephole, ln_hh, ln_cell_weight,
    ln_cell_bias, recurrent_mask, zoneout_h, zoneout_c; batch_sizes as a list of ints or None;
    last: ``(B,)`` int64 index of each row's last step with batch_sizes, else None.
    """

    out: Tensor
    h_n: Tensor
    c_n: Tensor
    hbuf: Tensor
    cbuf: Tensor
    acts: Tensor
    tanh_cells: Tensor
    fresh: Tensor | None
    rec_pre_ln: Tensor | None
    rec_stats: Tensor | None
    cell_stats: Tensor | None
    weight_hh: Tensor
    peephole: Tensor | None
    ln_hh: Tensor | None
    ln_cell_weight: Tensor | None
    ln_cell_bias: Tensor | None
    recurrent_mask: Tensor | None
    zoneout_h: Zoneout
    zoneout_c: Zoneout
    batch_sizes: list[int] | None
    last: Tensor | None


class BackwardResult(NamedTuple):
    """Gradients of `forward`'s tensor inputs (None for inputs that were None).

    xp ``(T, B, 4H)``, h0 ``(B, H)``, c0 ``(B, H)``, weight_hh ``(4H, H)``, peephole ``(3, H)``,
    ln_hh ``(4H,)``, ln_cell_weight and ln_cell_bias ``(H,)``; each in its input's dtype.
    """

    xp: Tensor
    h0: Tensor
    c0: Tensor
    weight_hh: Tensor
    peephole: Tensor | None
    ln_hh: Tensor | None
    ln_cell_weight: Tensor | None
    ln_cell_bias: Tensor | None


@functools.cache
def available() -> bool:
    """Whether triton is installed (the kernels can run: on CUDA, or on CPU when interpreted)."""
    return importlib.util.find_spec("triton") is not None


def interpreted() -> bool:
    """Whether Triton runs kernels in its interpreter (``TRITON_INTERPRET=1``), on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def supports(
    xp: Tensor,
    *,
    proj: bool = False,
    layer_norm: bool = False,
    batch_sizes: Tensor | Sequence[int] | None = None,
) -> str | None:
    """None if the Triton path covers this call, else why not (for the dispatcher's log line).

    Args:
        xp: ``(T, B, 4H)`` the layer's input projection.
        proj: whether the layer has ``proj_size`` (not covered).
        layer_norm: whether the recurrent or cell layer norm is on (limits the hidden size).
        batch_sizes: unused for now; every PackedSequence layout is covered.
    """
    del batch_sizes
    if not available():
        return INSTALL_HINT
    if xp.dtype not in DTYPES:
        return f"dtype {xp.dtype} (the Triton kernels take float32, bfloat16, float16)"
    if proj:
        return "proj_size (the Triton kernels have no projection)"
    if xp.device.type != "cuda" and not interpreted():
        return f"device {xp.device.type} (the Triton kernels run on CUDA)"
    hidden = xp.shape[-1] // 4
    if layer_norm and hidden > MAX_LN_HIDDEN:
        return f"hidden_size {hidden} > {MAX_LN_HIDDEN} with layer norm"
    if xp.numel() >= 2**31:
        return "more than 2**31 elements in the input projection (32-bit offsets)"
    return None


def saved_specs(
    steps: int,
    batch: int,
    hidden: int,
    dtype: torch.dtype,
    *,
    layer_norm: bool,
    cell_layer_norm: bool,
    zoneout_c: bool,
    keep: bool = True,
) -> dict[str, tuple[tuple[int, ...], torch.dtype] | None]:
    """Shape and dtype of each saved buffer of `ForwardResult` (None where absent), in
    `SAVED_BUFFERS` order: what `forward` allocates, and what a fake implementation returns.
    Without ``keep`` only the state buffers (``hbuf``, ``cbuf``) exist."""
    f32 = torch.float32
    return {
        "hbuf": ((steps + 1, batch, hidden), dtype),
        "cbuf": ((steps + 1, batch, hidden), f32),
        "acts": ((steps, batch, 4 * hidden), dtype) if keep else None,
        "tanh_cells": ((steps, batch, hidden), dtype) if keep else None,
        "fresh": ((steps, batch, hidden), f32) if zoneout_c and keep else None,
        "rec_pre_ln": ((steps, batch, 4 * hidden), dtype) if layer_norm and keep else None,
        "rec_stats": ((steps, batch, 2), f32) if layer_norm and keep else None,
        "cell_stats": ((steps, batch, 2), f32) if cell_layer_norm and keep else None,
    }


SAVED_BUFFERS = tuple(saved_specs(0, 0, 0, torch.float32, layer_norm=True,
                                  cell_layer_norm=True, zoneout_c=True))  # fmt: skip


@functools.cache
def _kernels() -> Any:
    if not available():
        raise ImportError(INSTALL_HINT)
    from . import _triton_kernels

    return _triton_kernels


def _zoneout_mode(z: Zoneout) -> int:
    if z is None:
        return 0
    return 1 if isinstance(z, Tensor) else 2


def _step_grid(hidden: int, whole_row: bool) -> dict[str, int]:
    """Tile and warps of the per-step kernels: BLOCK_H units (all of a row's with a layer norm)
    by BLOCK_B rows, about 1024 values a program."""
    import triton

    full = triton.next_power_of_2(hidden)
    block = full if whole_row else min(full, BLOCK_PLAIN)
    rows = max(1, min(16, 1024 // block))
    warps = max(1, min(8, rows * (4 * block if whole_row else block) // 256))
    return {"BLOCK_B": rows, "BLOCK_H": block, "num_warps": warps}


def _sequence_grid(hidden: int) -> dict[str, int]:
    """Tile and warps of the whole-sequence kernels: SEQUENCE_ROWS rows by all units (``tl.dot``
    needs 16 at least each way)."""
    import triton

    block = max(16, triton.next_power_of_2(hidden))
    return {
        "BLOCK_B": SEQUENCE_ROWS,
        "BLOCK_H": block,
        "BLOCK_K": 32 if block <= 128 else 16,
        "num_warps": 4 if block <= 128 else 8,
    }


def _device_sizes(sizes: list[int] | None, like: Tensor) -> Tensor:
    if sizes is None:
        return like  # not read
    return torch.tensor(sizes, dtype=torch.int64, device=like.device)


def _sizes_list(batch_sizes: Tensor | Sequence[int] | None, steps: int, batch: int):
    if batch_sizes is None:
        return None
    # one host copy (PackedSequence keeps batch_sizes on the CPU already)
    raw = batch_sizes.tolist() if isinstance(batch_sizes, Tensor) else batch_sizes
    sizes = [int(n) for n in raw]
    if (
        len(sizes) != steps
        or sizes[0] != batch
        or any(b < a for a, b in zip(sizes[1:], sizes, strict=False))
    ):
        raise ValueError(
            f"batch_sizes must hold {steps} non-increasing counts starting at the batch size "
            f"{batch} (PackedSequence layout); got {sizes}"
        )
    if sizes[-1] < 1:
        raise ValueError(f"batch_sizes must be >= 1 at every step; got {sizes}")
    return sizes


def _contiguous(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.contiguous()


@torch.no_grad()  # the caller's autograd (an operator's) differentiates; out= GEMMs need it off
def forward(
    xp: Tensor,
    h0: Tensor,
    c0: Tensor,
    weight_hh: Tensor,
    *,
    peephole: Tensor | None = None,
    ln_hh: Tensor | None = None,
    ln_cell_weight: Tensor | None = None,
    ln_cell_bias: Tensor | None = None,
    recurrent_mask: Tensor | None = None,
    zoneout_h: Zoneout = None,
    zoneout_c: Zoneout = None,
    batch_sizes: Tensor | Sequence[int] | None = None,
    persistent: bool = False,
    keep: bool = True,
) -> ForwardResult:
    """Run one layer and direction (internal gate order o, i, f, g).

    Args:
        xp: ``(T, B, 4H)`` input projection plus biases (input-layer-normed by the caller).
        h0, c0: ``(B, H)`` initial state.
        weight_hh: ``(4H, H)``.
        peephole: ``(3, H)`` rows (i, f, o): i and f see ``c_{t-1}``, o the fresh cell.
        ln_hh: ``(4H,)`` gain of the recurrent layer norm (no bias), or None.
        ln_cell_weight, ln_cell_bias: ``(H,)`` the layer norm of the fresh cell before tanh.
        recurrent_mask: ``(B, H)`` multiplies ``h_{t-1}`` before the recurrent GEMM.
        zoneout_h, zoneout_c: ``(T, B, H)`` 0/1 keep masks or float keep rates:
            ``h_t = lerp(h_hat, h_{t-1}, keep)``, ``c_t = lerp(c_hat, c_{t-1}, keep)``.
        batch_sizes: ``(T,)`` non-increasing rows active per step (PackedSequence), or None.
        persistent: one launch for all steps (`_triton_kernels.forward_sequence`) instead of
            a GEMM and a kernel per step; see `supports_persistent`.
        keep: False when no backward will follow: the buffers only the backward reads are
            neither written nor allocated (None in the result).

    Returns:
        `ForwardResult`; ``out`` is zero where a row is inactive.
    """
    kernels = _kernels()
    steps, batch, gate_size = xp.shape
    hidden = gate_size // 4
    dtype = xp.dtype
    sizes = _sizes_list(batch_sizes, steps, batch)
    xp = xp.contiguous()
    ln, cell_ln = ln_hh is not None, ln_cell_weight is not None
    if cell_ln and ln_cell_bias is None:
        ln_cell_bias = torch.zeros_like(ln_cell_weight)
    peephole, ln_hh = _contiguous(peephole), _contiguous(ln_hh)
    ln_cell_weight, ln_cell_bias = _contiguous(ln_cell_weight), _contiguous(ln_cell_bias)
    recurrent_mask = _contiguous(recurrent_mask)
    zoneout_h = _contiguous(zoneout_h) if isinstance(zoneout_h, Tensor) else zoneout_h
    zoneout_c = _contiguous(zoneout_c) if isinstance(zoneout_c, Tensor) else zoneout_c

    # Inactive rows must read as zero (padded outputs; the backward reduces whole buffers).
    new = xp.new_zeros if sizes is not None else xp.new_empty
    specs = saved_specs(
        steps, batch, hidden, dtype, layer_norm=ln, cell_layer_norm=cell_ln,
        zoneout_c=zoneout_c is not None, keep=keep,
    )  # fmt: skip
    hbuf, cbuf, acts, tanh_cells, fresh, rec_pre_ln, rec_stats, cell_stats = (
        None if spec is None else new(spec[0], dtype=spec[1]) for spec in specs.values()
    )
    hbuf[0] = h0
    cbuf[0] = c0
    h_masked = None
    if recurrent_mask is not None:
        h_masked = (h0 * recurrent_mask).to(dtype).contiguous()
    weight_hh = weight_hh.to(dtype).contiguous()

    dummy = xp  # for pointers a variant does not read (their code is compiled out)
    flags = {
        "H": hidden, "LN": ln, "CELL_LN": cell_ln, "PEEPHOLE": peephole is not None,
        "MASK": recurrent_mask is not None, "ZH": _zoneout_mode(zoneout_h),
        "ZC": _zoneout_mode(zoneout_c), "SAVE": keep,
    }  # fmt: skip
    buffers = (
        hbuf, cbuf, _or(acts, dummy), _or(tanh_cells, dummy), _or(fresh, dummy), _or(rec_stats, cbuf),
        _or(cell_stats, cbuf), _or(ln_hh, dummy), _or(ln_cell_weight, dummy),
        _or(ln_cell_bias, dummy), _or(peephole, dummy), _or(recurrent_mask, dummy),
        _or(h_masked, dummy), _tensor_or(zoneout_h, dummy), _tensor_or(zoneout_c, dummy),
        _rate(zoneout_h), _rate(zoneout_c),
    )  # fmt: skip
    if persistent:
        _check_persistent(xp, ln or cell_ln)
        grid = _sequence_grid(hidden)
        kernels.forward_sequence[(_cdiv(batch, grid["BLOCK_B"]),)](
            xp, *buffers[:5], _or(rec_pre_ln, dummy), *buffers[5:], weight_hh,
            _device_sizes(sizes, xp), steps, batch, LAYER_NORM_EPS, **flags, **grid,
            BATCH_SIZES=sizes is not None, PRECISION="ieee",
        )  # fmt: skip
    else:
        grid = _step_grid(hidden, ln or cell_ln)
        col_blocks = _cdiv(hidden, grid["BLOCK_H"])
        z_step = None if rec_pre_ln is not None else xp.new_empty(batch, gate_size)
        w_t = weight_hh.t()
        for t in range(steps):
            n = batch if sizes is None else sizes[t]
            h_in = h_masked if h_masked is not None else hbuf[t]
            if rec_pre_ln is not None:
                z, z_offset = rec_pre_ln, t * batch * gate_size
                torch.mm(h_in[:n], w_t, out=rec_pre_ln[t, :n])
            else:
                z, z_offset = z_step, 0
                torch.mm(h_in[:n], w_t, out=z_step[:n])
            kernels.forward_step[(_cdiv(n, grid["BLOCK_B"]), col_blocks)](
                xp, z, z_offset, *buffers, t, n, batch, LAYER_NORM_EPS, **flags, **grid
            )

    out = hbuf[1:]
    if sizes is None:
        last = None
        h_n, c_n = hbuf[steps].clone(), cbuf[steps].to(dtype, copy=True)
    else:
        last = _last_steps(sizes, batch, xp.device)
        rows = torch.arange(batch, device=xp.device)
        h_n, c_n = out[last, rows], cbuf[1:][last, rows].to(dtype)
    return ForwardResult(
        out, h_n, c_n, hbuf, cbuf, acts, tanh_cells, fresh, rec_pre_ln, rec_stats, cell_stats,
        weight_hh, peephole, ln_hh, ln_cell_weight, ln_cell_bias, recurrent_mask, zoneout_h,
        zoneout_c, sizes, last,
    )  # fmt: skip


@torch.no_grad()
def backward(
    saved: ForwardResult,
    grad_out: Tensor | None,
    grad_h_n: Tensor | None,
    grad_c_n: Tensor | None,
    *,
    persistent: bool = False,
) -> BackwardResult:
    """Gradients of `forward`'s inputs from those of its outputs (None reads as zeros).

    Args:
        saved: what `forward` returned.
        grad_out: ``(T, B, H)``; grad_h_n, grad_c_n: ``(B, H)``.
        persistent: one launch for all steps (`_triton_kernels.backward_sequence`) instead of
            a kernel and a GEMM per step (either way whichever way the forward ran).
    """
    kernels = _kernels()
    v = saved
    if v.acts is None:
        raise ValueError("this forward ran with keep=False: it saved nothing to differentiate")
    steps, batch, gate_size = v.acts.shape
    hidden = gate_size // 4
    ln, cell_ln = v.ln_hh is not None, v.ln_cell_weight is not None
    sizes = v.batch_sizes
    f32 = torch.float32

    # d loss / d h_t from above in float32, with d h_n at each row's last step
    if grad_out is None:
        gout = v.cbuf.new_zeros(steps, batch, hidden)
    else:
        gout = grad_out.to(f32, copy=True, memory_format=torch.contiguous_format)
    # The part of d h_t that bypasses the recurrent mask starts as d h_n: a row's extra is
    # read first at its last step (no later step writes it), and each step rewrites it.
    extra = v.cbuf.new_zeros(batch, hidden)
    if grad_h_n is not None:
        extra.copy_(grad_h_n)
    carry_c = v.cbuf.new_zeros(batch, hidden)
    if grad_c_n is not None:
        carry_c.copy_(grad_c_n)
    gh = v.acts.new_zeros(batch, hidden)  # rows a later step did not reach stay zero

    new = v.acts.new_zeros if sizes is not None else v.acts.new_empty
    d_pre = new(steps, batch, gate_size)
    d_rec = new(steps, batch, gate_size) if ln else None
    d_cn = new(steps, batch, hidden, dtype=f32) if cell_ln else None

    dummy = v.acts
    flags = {
        "H": hidden, "LN": ln, "CELL_LN": cell_ln, "PEEPHOLE": v.peephole is not None,
        "MASK": v.recurrent_mask is not None, "ZH": _zoneout_mode(v.zoneout_h),
        "ZC": _zoneout_mode(v.zoneout_c),
    }  # fmt: skip
    grad_rec = d_rec if ln else d_pre
    pointers = (
        gout, extra, carry_c, v.acts, v.tanh_cells, v.cbuf, _or(v.fresh, dummy),
        _or(v.rec_pre_ln, dummy), _or(v.rec_stats, v.cbuf), _or(v.cell_stats, v.cbuf),
        _or(v.ln_hh, dummy), _or(v.ln_cell_weight, dummy), _or(v.peephole, dummy),
        _or(v.recurrent_mask, dummy), _tensor_or(v.zoneout_h, dummy),
        _tensor_or(v.zoneout_c, dummy), _rate(v.zoneout_h), _rate(v.zoneout_c), d_pre,
        grad_rec, _or(d_cn, v.cbuf),
    )  # fmt: skip
    weight = v.weight_hh.to(v.acts.dtype).contiguous()
    if persistent:
        _check_persistent(v.acts, ln or cell_ln)
        grid = _sequence_grid(hidden)
        gh = v.cbuf.new_empty(batch, hidden)
        kernels.backward_sequence[(_cdiv(batch, grid["BLOCK_B"]),)](
            *pointers, weight, gh, _device_sizes(sizes, v.acts), steps, batch, **flags, **grid,
            BATCH_SIZES=sizes is not None, PRECISION="ieee",
        )  # fmt: skip
    else:
        grid = _step_grid(hidden, ln or cell_ln)
        col_blocks = _cdiv(hidden, grid["BLOCK_H"])
        for t in range(steps - 1, -1, -1):
            n = batch if sizes is None else sizes[t]
            kernels.backward_step[(_cdiv(n, grid["BLOCK_B"]), col_blocks)](
                pointers[0], gh, *pointers[1:], t, n, batch, **flags, **grid
            )
            torch.mm(grad_rec[t, :n], weight, out=gh[:n])

    mask = v.recurrent_mask
    grad_h0 = gh.float() if mask is None else gh.float() * mask
    grad_h0 = (grad_h0 + extra).to(v.hbuf.dtype)
    grad_c0 = carry_c.to(v.hbuf.dtype)

    # sum_t d_rec_t^T (h_{t-1} * mask): one GEMM over all steps
    h_in = v.hbuf[:-1] if mask is None else v.hbuf[:-1] * mask
    grad_w_hh = grad_rec.reshape(-1, gate_size).t().mm(h_in.reshape(-1, hidden))

    grad_peephole = grad_ln_hh = grad_ln_cw = grad_ln_cb = None
    if v.peephole is not None:
        d_o, d_i, d_f, _ = d_pre.float().split(hidden, dim=-1)
        c_prev, c_hat = v.cbuf[:-1], v.fresh if v.fresh is not None else v.cbuf[1:]
        grad_peephole = torch.stack(
            ((d_i * c_prev).sum((0, 1)), (d_f * c_prev).sum((0, 1)), (d_o * c_hat).sum((0, 1)))
        ).to(v.peephole.dtype)
    if ln:
        grad_ln_hh = _gain_grad(d_pre, v.rec_pre_ln, v.rec_stats).to(v.ln_hh.dtype)
    if cell_ln:
        c_hat = v.fresh if v.fresh is not None else v.cbuf[1:]
        grad_ln_cw = _gain_grad(d_cn, c_hat, v.cell_stats).to(v.ln_cell_weight.dtype)
        grad_ln_cb = d_cn.sum((0, 1)).to(v.ln_cell_bias.dtype)
    return BackwardResult(
        d_pre, grad_h0, grad_c0, grad_w_hh, grad_peephole, grad_ln_hh, grad_ln_cw, grad_ln_cb
    )


def supports_persistent(xp: Tensor, *, layer_norm: bool = False) -> str | None:
    """None if the whole-sequence kernels cover this call (beyond `supports`), else why not."""
    hidden = xp.shape[-1] // 4
    if hidden > PERSISTENT_MAX_HIDDEN:
        return f"hidden_size {hidden} > {PERSISTENT_MAX_HIDDEN} for the whole-sequence kernels"
    return None


def _check_persistent(xp: Tensor, layer_norm: bool) -> None:
    reason = supports_persistent(xp, layer_norm=layer_norm)
    if reason is not None:
        raise ValueError(f"persistent=True: {reason}; use persistent=False")


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _gain_grad(grad: Tensor, x: Tensor, stats: Tensor) -> Tensor:
    """``sum_{t,b} grad * (x - mean) * rstd`` over ``(T, B, F)`` in float32, with two GEMVs
    instead of a normalised copy of ``x``."""
    features = grad.shape[-1]
    grad, x = grad.reshape(-1, features).float(), x.reshape(-1, features).float()
    mean, rstd = stats.reshape(-1, 2).unbind(1)
    return (grad * x).t().mv(rstd) - grad.t().mv(mean * rstd)


def _or(t: Tensor | None, fallback: Tensor) -> Tensor:
    return fallback if t is None else t


def _tensor_or(z: Zoneout, fallback: Tensor) -> Tensor:
    return z if isinstance(z, Tensor) else fallback


def _rate(z: Zoneout) -> float:
    return float(z) if z is not None and not isinstance(z, Tensor) else 0.0


def _last_steps(sizes: list[int], batch: int, device: torch.device) -> Tensor:
    """Index of each row's last active step, from non-increasing ``sizes``."""
    counts = torch.tensor(sizes, device=device)
    return (counts.unsqueeze(1) > torch.arange(batch, device=device)).sum(0) - 1
