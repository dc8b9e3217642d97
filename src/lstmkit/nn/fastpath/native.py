"""Native kernels for the fused path on CPU: the LSTM's per-step elementwise work and whole
time loops in C.

On CPU a step of a hand-written LSTM is a GEMM plus ~10 small elementwise ops, each paying a
dispatch and a pass over memory. `_kernels.c` does all of a step's elementwise work in one
vectorised loop each way. ``pip install`` compiles it into the package, one library per vector
ISA (AVX-512, AVX2, portable x86-64; NEON on aarch64: `lstmkit.nn.fastpath.kernel_build`), and
`kernels()` loads the best build this CPU runs through ctypes. A source tree without a build
compiles it at first use with the system C compiler (``$CC`` or ``cc``) into
``settings.cache_dir``. The log says which build loaded.

It also holds whole time loops (`Kernels.sequence_forward`/`sequence_backward`). Their per-step
GEMMs go through lstmkit's own float32 GEMM where the kernels are built for AVX-512, AVX2 or NEON
(weights packed once per call into panels; near the FMA peak at LSTM shapes, where MKL's GEMM
reaches under half of it on AMD CPUs), else through the BLAS that torch's own library exports
(MKL's ``sgemm_``/``dgemm_`` and, for float32, its packed-matrix API in the x86-64 wheels). Each
binding is checked against ``torch.mm`` when the kernels load. Batch rows never interact, so with
the own GEMM (no threads of its own) a loop runs disjoint row ranges on ``torch.get_num_threads()``
threads (`row_ranges`; ctypes releases the GIL). The weight gradients' long reductions over all
steps use the same GEMM (`Kernels.weight_grad`). Where torch exports no BLAS and the own GEMM is
not built, or with ``settings.native_loop`` off, the loop stays in Python
(`Kernels.supports_sequence` is False).

Without a build or a compiler, or on a system other than Linux or macOS, `kernels()` returns
``None`` and the fused path uses torch ops: the same numbers (tested), slower. The switches are in
`lstmkit.nn.settings`.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import platform
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor

from ..settings import settings
from . import kernel_build

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("_kernels.c")


class Kernels:
    """ctypes bindings of `_kernels.c` for float32 and float64 contiguous CPU tensors."""

    def __init__(
        self, library: ctypes.CDLL, blas: dict[torch.dtype, list[Blas]] | None = None
    ) -> None:
        self._forward, self._backward, self._ln_forward, self._ln_backward = {}, {}, {}, {}
        self._seq_forward, self._seq_backward, self._gemm_check = {}, {}, {}
        self._ln_gain_grad, self._outer_backward = {}, {}
        # Row ranges run in parallel only where the library is built with OpenMP and shares
        # torch's own OpenMP runtime (its threads, its thread count).
        self.parallel = bool(library.lstm_parallel()) and _one_openmp_runtime()
        self.origin = ""  # which build, from where (set by `kernels()`, for the log)
        pointer, size = ctypes.c_void_p, ctypes.c_long
        for dtype, suffix, real in (
            (torch.float32, "f32", ctypes.c_float),
            (torch.float64, "f64", ctypes.c_double),
        ):
            for table, name, argtypes in (
                (
                    self._seq_forward,
                    "lstm_sequence_forward",
                    [
                        *[pointer] * 3,
                        *[size] * 3,
                        pointer,
                        *[size] * 2,
                        *[pointer] * 14,
                        real,
                        *[pointer] * 9,
                        ctypes.c_int,
                    ],
                ),
                (
                    self._seq_backward,
                    "lstm_sequence_backward",
                    [*[pointer] * 3, *[size] * 3, pointer, *[size] * 2, *[pointer] * 27],
                ),
                (self._gemm_check, "gemm_check", [*[pointer] * 3, *[size] * 3, *[pointer] * 4]),
                (self._forward, "lstm_forward", [size, size, *[pointer] * 7]),
                (self._backward, "lstm_backward", [size, size, *[pointer] * 7]),
                (self._ln_forward, "lstm_ln_forward", [size, size, real, *[pointer] * 18]),
                (self._ln_backward, "lstm_ln_backward", [size, size, *[pointer] * 23]),
                (self._ln_gain_grad, "lstm_ln_gain_grad", [size, pointer, size, *[pointer] * 5]),
                (
                    self._outer_backward,
                    "lstm_outer_backward",
                    [size, pointer, size, *[pointer] * 6],
                ),
            ):
                function = getattr(library, f"{name}_{suffix}")
                function.argtypes, function.restype = argtypes, None
                table[dtype] = function

        # dtype -> the GEMM functions of the whole-sequence loops that pass a check against
        # torch.mm, in order of preference (MKL's packed GEMM is dropped alone if it fails).
        self._blas: dict[torch.dtype, list[Blas]] = {}
        for dtype, candidates in (blas or {}).items():
            for functions in candidates:
                mkl_packed = functions.panel is None and functions.packed is not None
                if mkl_packed and not self.gemm_works(dtype, functions, packed=True):
                    functions = Blas(functions.gemm)
                if self.gemm_works(dtype, functions, packed=functions.panel is not None):
                    self._blas.setdefault(dtype, []).append(functions)

        # lstmkit's own weight-gradient GEMM: built with, and trusted as far as, the own GEMM
        self._tn, self._panel_cols = None, 0
        own = [b for b in self._blas.get(torch.float32, []) if b.panel is not None]
        if own:
            self._panel_cols = own[0].panel[2]
            self._tn = library.lstm_panel_gemm_tn_f32
            self._tn.argtypes = [
                size, pointer, size, size, pointer, size, pointer, size, pointer, ctypes.c_int
            ]  # fmt: skip
            self._tn.restype = None

    def supports(self, t: Tensor) -> bool:
        return t.device.type == "cpu" and t.dtype in self._forward

    def supports_sequence(self, t: Tensor) -> bool:
        """Whether `sequence_forward`/`sequence_backward` run for ``t``'s device and dtype."""
        if not settings.native_loop:
            return False
        return t.device.type == "cpu" and self._choice(t.dtype) is not None

    def _choice(self, dtype: torch.dtype) -> Blas | None:
        for functions in self._blas.get(dtype, []):
            if settings.own_gemm or functions.panel is None:
                return functions
        return None

    def gemm_works(self, dtype: torch.dtype, blas: Blas, packed: bool) -> bool:
        """Whether ``blas`` (through the C loops' own GEMM dispatch) equals ``torch.mm``, over
        row counts that use every register-block size of the panel GEMM."""
        generator = torch.Generator().manual_seed(0)
        for rows, cols, k in ((3, 7, 5), (21, 45, 9)):
            a = torch.randn(rows, k, dtype=dtype, generator=generator)
            w = torch.randn(cols, k, dtype=dtype, generator=generator)
            if not torch.allclose(
                self.blas_matmul(a, w, blas.pack(w, True, rows) if packed else None, blas),
                a @ w.t(),
                atol=1e-5,
            ):
                return False
        return True

    def blas_matmul(
        self, a: Tensor, weight: Tensor, packed: Tensor | None = None, blas: Blas | None = None
    ) -> Tensor:
        """``a (n, k) @ weight.T`` (``weight (cols, k)``) through the GEMM the C time loop uses
        (or ``blas``); ``packed``: ``blas.pack(weight, transposed=True, rows=n)``, or None
        (plain GEMM; the panel GEMM packs here). For tests and
        ``scripts/benchmark_gemm.py``."""
        blas = blas or self.blas(a.dtype)
        a, weight = a.contiguous(), weight.contiguous()
        if packed is None and blas.panel is not None:
            packed = blas.pack(weight, transposed=True, rows=a.shape[0])
        out = a.new_empty(a.shape[0], weight.shape[0])
        self._gemm_check[a.dtype](
            *blas.functions, a.shape[0], weight.shape[0], a.shape[1],
            a.data_ptr(), weight.data_ptr(), _ptr(packed), out.data_ptr(),
        )  # fmt: skip
        return out

    def supports_weight_grad(self, t: Tensor) -> bool:
        """Whether `weight_grad` runs for ``t``'s device and dtype (float32, own GEMM)."""
        own = self._tn is not None and settings.own_gemm
        return own and t.device.type == "cpu" and t.dtype == torch.float32

    def weight_grad(self, a: Tensor, b: Tensor, accumulate_into: Tensor | None = None) -> Tensor:
        """``a.T @ b`` for ``a (K, M)`` and ``b (K, N)`` (K: all steps x batch), added into
        ``accumulate_into (M, N)`` when given; returns the ``(M, N)`` result.

        MKL's GEMM measured 3-7x slower than this on such long reductions with a transposed
        operand. Rows of the result are split over ``torch.get_num_threads()`` threads.
        """
        k, m = a.shape
        n = b.shape[1]
        if n < self._panel_cols <= m:  # narrow b (e.g. 8 input features): c.T = b.T @ a
            result = self.weight_grad(b, a).t().contiguous()
            return result if accumulate_into is None else accumulate_into.add_(result)
        a, b = a.contiguous(), b.contiguous()
        out = accumulate_into if accumulate_into is not None else a.new_empty(m, n)
        if not out.is_contiguous():
            raise ValueError("weight_grad accumulates into contiguous tensors only")
        parts = self._parts(m // 8, k * m * n)
        # rows of the result split at multiples of 8 (the register block)
        bounds = _bounds([8 * round(m / 8 * i / parts) for i in range(parts)] + [m])
        self._tn(
            len(bounds) - 1, bounds.data_ptr(), n, k, a.data_ptr(), m, b.data_ptr(), n,
            out.data_ptr(), int(accumulate_into is not None),
        )  # fmt: skip
        return out

    def ln_gain_grad(self, grad: Tensor, x: Tensor, stats: Tensor) -> Tensor:
        """``sum_rows grad * (x - mean) * rstd`` for ``grad, x (N, F)`` and ``stats (2, N)``
        (mean, rstd): a layer norm's gain gradient in one pass, rows split over threads."""
        rows, features = grad.shape
        grad, x, stats = grad.contiguous(), x.contiguous(), stats.contiguous()
        parts = self._parts(rows // settings.parallel_min_rows, rows * features)
        bounds = _bounds(row_ranges(rows, None, parts))
        partial_sums = grad.new_zeros(len(bounds) - 1, features)
        self._ln_gain_grad[grad.dtype](
            len(bounds) - 1, bounds.data_ptr(), features, grad.data_ptr(), x.data_ptr(),
            stats[0].data_ptr(), stats[1].data_ptr(), partial_sums.data_ptr(),
        )  # fmt: skip
        return partial_sums.sum(0)

    def outer_backward(self, grad: Tensor, w: Tensor, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Backward of ``out = x[:, None] * w + b`` (the input projection with one feature) in one
        pass over ``grad (N, F)``: returns the gradients of ``x (N,)``, ``w (F,)`` and ``b (F,)``;
        rows split over threads."""
        rows, features = grad.shape
        grad, w, x = grad.contiguous(), w.contiguous(), x.contiguous()
        parts = self._parts(rows // settings.parallel_min_rows, rows * features)
        bounds = _bounds(row_ranges(rows, None, parts))
        grad_x = grad.new_empty(rows)
        sums = grad.new_zeros(2, len(bounds) - 1, features)
        self._outer_backward[grad.dtype](
            len(bounds) - 1, bounds.data_ptr(), features, grad.data_ptr(), w.data_ptr(),
            x.data_ptr(), grad_x.data_ptr(), sums[0].data_ptr(), sums[1].data_ptr(),
        )  # fmt: skip
        grad_w, grad_b = (s.clone() for s in sums.sum(1))  # not views of one another
        return grad_x, grad_w, grad_b

    def _parts(self, most: int, macs: int) -> int:
        """How many row ranges to run in parallel: ``torch.get_num_threads()``, at most
        ``most``, and 1 without OpenMP or below ``settings.parallel_min_macs`` multiply-adds."""
        if not self.parallel or macs < settings.parallel_min_macs:
            return 1
        return max(1, min(torch.get_num_threads(), most))

    def gemms(self, dtype: torch.dtype) -> list[Blas]:
        """Every GEMM binding for ``dtype`` that passed its check, in order of preference."""
        return list(self._blas.get(dtype, []))

    def blas(self, dtype: torch.dtype) -> Blas:
        """The checked GEMM functions the C loops use for ``dtype`` (see `supports_sequence`):
        lstmkit's own GEMM where it is built and ``settings.own_gemm`` is on, else torch's BLAS."""
        choice = self._choice(dtype)
        if choice is None:
            raise KeyError(f"no checked GEMM for {dtype} (see supports_sequence)")
        return choice

    def sequence_forward(
        self, xp: Tensor, h0: Tensor, c0: Tensor, weight_hh: Tensor, weight_hr: Tensor | None,
        batch_sizes: Tensor | None, acts: Tensor, cells: Tensor, tanh_cells: Tensor, out: Tensor,
        pre_proj: Tensor | None, ln: SimpleNamespace | None, keep: bool = True,
    ) -> None:  # fmt: skip
        """A layer's whole forward time loop (see `lstmkit.nn.fastpath.fused`), in one call.

        ``xp, acts (T, B, 4H)``; ``h0 (B, P)``; ``c0 (B, H)``; ``weight_hh (4H, P)``;
        ``weight_hr (P, H)`` or None; ``batch_sizes``: int64 ``(T,)`` or None (all rows);
        outputs ``cells, tanh_cells (T, B, H)``, ``out (T, B, P)``, ``pre_proj (T, B, H)``
        (with ``weight_hr``). ``ln``: None, or the layer-norm tensors ``ln_hh (4H,)``,
        ``cell_weight, cell_bias (H,)``, outputs ``rec_pre_ln (T, B, 4H)``, ``rec_stats,
        cell_stats (2, T, B, 1)`` and ``eps``; optionally (input layer norm in the loop, ``xp``
        then being ``x @ W_ih.T``) ``ln_ih (4H,)``, ``ln_ih_bias (4H,)`` or None, and the output
        ``in_stats (2, T, B, 1)``. All contiguous. ``keep=False`` (no backward to come):
        ``acts``, ``tanh_cells``, ``pre_proj``, ``rec_pre_ln`` and the three stats hold one step,
        ``(B, ·)`` / ``(2, 1, B, 1)``, rewritten at every step.
        """
        steps, batch, gates = xp.shape
        z = xp.new_empty(batch, gates) if ln is None else None
        blas = self.blas(xp.dtype)
        # each weight packed once for all full-batch steps: B = weight.T
        hh_packed = blas.pack(weight_hh, transposed=True, rows=batch)
        hr_packed = None if weight_hr is None else blas.pack(weight_hr, transposed=True, rows=batch)
        bounds = self._row_bounds(blas, batch_sizes, steps, batch, gates * out.shape[-1])
        self._seq_forward[xp.dtype](
            *blas.functions, steps, batch, len(bounds) - 1, bounds.data_ptr(),
            gates // 4, out.shape[-1],
            _ptr(batch_sizes), xp.data_ptr(), h0.data_ptr(), c0.data_ptr(), weight_hh.data_ptr(),
            _ptr(hh_packed), _ptr(weight_hr), _ptr(hr_packed), acts.data_ptr(), cells.data_ptr(),
            tanh_cells.data_ptr(), out.data_ptr(), _ptr(pre_proj), _ptr(z),
            ln.eps if ln else 0.0, *(
                _ptr(getattr(ln, name, None))
                for name in ("ln_hh", "cell_weight", "cell_bias", "rec_pre_ln", "rec_stats",
                             "cell_stats", "ln_ih", "ln_ih_bias", "in_stats")
            ), int(keep),
        )  # fmt: skip

    def sequence_backward(
        self, grad_out: Tensor, carry_h: Tensor, carry_c: Tensor, acts: Tensor, cells: Tensor,
        tanh_cells: Tensor, c0: Tensor, weight_hh: Tensor, weight_hr: Tensor | None,
        batch_sizes: Tensor | None, proj_in: Tensor | None, d_pre: Tensor,
        ln: SimpleNamespace | None,
    ) -> None:  # fmt: skip
        """A layer's whole backward time loop, in one call; shapes as in `sequence_forward`.

        ``grad_out (T, B, P)`` includes ``h_n``'s gradient at each row's last step when lengths
        vary; ``carry_h (B, P)``: in, ``h_n``'s gradient (zeros when lengths vary), out,
        ``h0``'s; ``carry_c (B, H)``: in, ``c_n``'s, out, ``c0``'s. Outputs ``d_pre`` (= d xp)
        and, with ``weight_hr``, ``proj_in (T, B, P)``. ``ln`` as in `sequence_forward` plus the
        outputs ``d_rec (T, B, 4H)`` and ``d_cn (T, B, H)``; with ``ln_ih`` also ``xp`` (as the
        forward got it) and the output ``d_in (T, B, 4H)``, the gradient of ``xp``. With ``ln``
        this also sets ``ln.sums (14H,)``: the layer norms' parameter gradients, summed in the
        loop: the gains of the recurrent LN (4H) and of the cell LN (H), the cell LN's bias
        (H), then (with ``ln_ih``) the input LN's gain and bias (4H each; else zeros).
        """
        steps, batch, gates = acts.shape
        dh = acts.new_empty(batch, gates // 4) if weight_hr is not None else None
        blas = self.blas(acts.dtype)
        # B = weight as is: the gradients flow back through x @ weight.T
        hh_packed = blas.pack(weight_hh, transposed=False, rows=batch)
        hr_packed = (
            None if weight_hr is None else blas.pack(weight_hr, transposed=False, rows=batch)
        )
        bounds = self._row_bounds(blas, batch_sizes, steps, batch, gates * carry_h.shape[-1])
        sums = None if ln is None else acts.new_zeros(len(bounds) - 1, 14 * (gates // 4))
        self._seq_backward[acts.dtype](
            *blas.functions, steps, batch, len(bounds) - 1, bounds.data_ptr(),
            gates // 4, carry_h.shape[-1],
            _ptr(batch_sizes), grad_out.data_ptr(), carry_h.data_ptr(), carry_c.data_ptr(),
            acts.data_ptr(), cells.data_ptr(), tanh_cells.data_ptr(), c0.data_ptr(),
            weight_hh.data_ptr(), _ptr(hh_packed), _ptr(weight_hr), _ptr(hr_packed),
            _ptr(proj_in), _ptr(dh), d_pre.data_ptr(), *(
                _ptr(getattr(ln, name, None))
                for name in ("ln_hh", "cell_weight", "rec_pre_ln", "rec_stats", "cell_stats",
                             "d_rec", "d_cn", "xp", "ln_ih", "in_stats", "d_in")
            ), _ptr(sums),
        )  # fmt: skip
        if ln is not None:
            ln.sums = sums.sum(0) if sums.shape[0] > 1 else sums[0]

    def _row_bounds(
        self, blas: Blas, batch_sizes: Tensor | None, steps: int, batch: int, macs_per_row: int
    ) -> Tensor:
        """Where a time loop's batch splits into ranges that run in parallel: only with a GEMM
        that has no threads of its own, ranges of about equal work (see `row_ranges`)."""
        parts = 1
        if blas.thread_safe:
            parts = self._parts(batch // settings.parallel_min_rows, steps * batch * macs_per_row)
        return _bounds(row_ranges(batch, batch_sizes, parts))

    def forward(
        self, xp: Tensor, z: Tensor, acts: Tensor, c_prev: Tensor, c: Tensor, s: Tensor, h: Tensor
    ) -> None:
        """One step: ``acts = act(xp + z)`` (o, i, f, g), ``c``, ``s = tanh(c)``, ``h = o * s``.

        ``xp, z, acts``: ``(n, 4H)``; ``c_prev, c, s, h``: ``(n, H)``; all contiguous.
        """
        rows, hidden = c.shape
        self._forward[c.dtype](
            rows, hidden, xp.data_ptr(), z.data_ptr(), acts.data_ptr(), c_prev.data_ptr(),
            c.data_ptr(), s.data_ptr(), h.data_ptr(),
        )  # fmt: skip

    def backward(
        self, dh: Tensor, dh_extra: Tensor | None, carry: Tensor, acts: Tensor, s: Tensor,
        c_prev: Tensor, d_pre: Tensor,
    ) -> None:  # fmt: skip
        """One step back: ``d_pre (n, 4H)`` from ``dh (+ dh_extra)``; ``carry`` d/dc_t -> d/dc_{t-1}."""
        rows, hidden = carry.shape
        self._backward[carry.dtype](
            rows, hidden, dh.data_ptr(), None if dh_extra is None else dh_extra.data_ptr(),
            carry.data_ptr(), acts.data_ptr(), s.data_ptr(), c_prev.data_ptr(), d_pre.data_ptr(),
        )  # fmt: skip

    def ln_forward(
        self, xp: Tensor, z: Tensor, g_hh: Tensor, g_c: Tensor, b_c: Tensor, acts: Tensor,
        c_prev: Tensor, c: Tensor, s: Tensor, h: Tensor, z_stats: Tensor, c_stats: Tensor,
        eps: float,
    ) -> None:  # fmt: skip
        """Layer-norm step: like `forward` with ``LN(z) * g_hh`` and ``LN(c) * g_c + b_c``.

        ``z_stats``/``c_stats``: ``(2, n, 1)`` outputs, mean then rstd of each row.
        """
        rows, hidden = c.shape
        self._ln_forward[c.dtype](
            rows, hidden, eps, xp.data_ptr(), z.data_ptr(), g_hh.data_ptr(), g_c.data_ptr(),
            b_c.data_ptr(), acts.data_ptr(), c_prev.data_ptr(), c.data_ptr(), s.data_ptr(),
            h.data_ptr(), z_stats[0].data_ptr(), z_stats[1].data_ptr(), c_stats[0].data_ptr(),
            c_stats[1].data_ptr(), None, None, None, None,
        )  # fmt: skip

    def ln_backward(
        self, dh: Tensor, dh_extra: Tensor | None, carry: Tensor, acts: Tensor, s: Tensor,
        c_prev: Tensor, c: Tensor, c_stats: Tensor, g_c: Tensor, z: Tensor, z_stats: Tensor,
        g_hh: Tensor, d_pre: Tensor, d_z: Tensor, d_cn: Tensor,
    ) -> None:  # fmt: skip
        """Layer-norm step back: ``d_pre`` (= d xp), ``d_z`` (before the recurrent LN) and
        ``d_cn`` (after the cell LN), all ``(n, ·)``; ``carry`` as in `backward`."""
        rows, hidden = carry.shape
        self._ln_backward[carry.dtype](
            rows, hidden, dh.data_ptr(), None if dh_extra is None else dh_extra.data_ptr(),
            carry.data_ptr(), acts.data_ptr(), s.data_ptr(), c_prev.data_ptr(), c.data_ptr(),
            c_stats[0].data_ptr(), c_stats[1].data_ptr(), g_c.data_ptr(), z.data_ptr(),
            z_stats[0].data_ptr(), z_stats[1].data_ptr(), g_hh.data_ptr(), d_pre.data_ptr(),
            d_z.data_ptr(), d_cn.data_ptr(), None, None, None, None, None, None,
        )  # fmt: skip


def _one_openmp_runtime() -> bool:
    """Whether this process maps a single libgomp (torch's), so lstmkit's parallel loops run on
    torch's own OpenMP threads instead of a second pool competing with them (Linux; elsewhere
    the kernels are built without OpenMP)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return False
    runtimes = {line.split()[-1] for line in maps.splitlines() if "libgomp" in line}
    return len(runtimes) == 1


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def row_ranges(batch: int, batch_sizes: Tensor | None, parts: int) -> list[tuple[int, int]]:
    """Split rows ``0..batch`` into ``parts`` contiguous ranges of about equal work (row steps).

    ``batch_sizes``: int64 ``(T,)``, non-increasing rows active per step, or None (all rows at
    every step). Empty ranges are dropped.
    """
    if batch_sizes is None:
        bounds = [round(batch * i / parts) for i in range(parts + 1)]
    else:
        # steps each row is active for, then where the running total crosses each share
        steps_per_row = (batch_sizes.unsqueeze(1) > torch.arange(batch)).sum(0)
        cumulative = steps_per_row.cumsum(0)
        shares = cumulative[-1] * torch.arange(1, parts) / parts
        inner = (torch.searchsorted(cumulative, shares, right=False) + 1).tolist()
        bounds = [0, *inner, batch]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


def _bounds(ranges: list[tuple[int, int]] | list[int]) -> Tensor:
    """Range boundaries as the C functions take them: int64 ``(parts + 1,)``, empty ranges
    dropped."""
    if ranges and isinstance(ranges[0], tuple):
        ranges = [ranges[0][0], *(end for _, end in ranges)]
    bounds = [ranges[0], *(b for a, b in itertools.pairwise(ranges) if b > a)]
    return torch.tensor(bounds, dtype=torch.int64)


class Blas:
    """The GEMM functions the C time loop calls for one dtype.

    ``gemm``: the address of BLAS ``sgemm_``/``dgemm_``, or None. ``packed``: None, or the ctypes
    functions ``(get_size, pack, compute)`` of MKL's ``cblas_?gemm_pack_get_size/_pack/_compute``:
    a weight used at every step is packed once per call, as oneDNN does for ``torch.nn.LSTM``.
    ``panel``: None, or ``(pack, gemm, width)`` of lstmkit's own packed GEMM
    (``lstm_panel_*_f32`` in ``_kernels.c``, AVX-512/AVX2/NEON builds): ``pack`` a ctypes
    function, ``gemm`` an address, ``width`` the columns of a packed panel. When present it is
    used at every step (any row count) and, having no threads of its own, lets the loop run row
    ranges on several threads.
    """

    ROW_MAJOR, NO_TRANS, TRANS, B_MATRIX = 101, 111, 112, 162  # CBLAS enum values

    def __init__(
        self, gemm: int | None, packed: tuple[Any, Any, Any] | None = None,
        panel: tuple[Any, int, int] | None = None,
    ) -> None:  # fmt: skip
        self.gemm, self.packed, self.panel = gemm, packed, panel
        compute = None if packed is None else packed[2]
        self.compute_address = (
            None if compute is None else ctypes.cast(compute, ctypes.c_void_p).value
        )

    @property
    def functions(self) -> tuple[int | None, int | None, int | None]:
        """``(gemm, compute, panel)`` addresses as the C loops take them."""
        panel = None if self.panel is None else self.panel[1]
        return self.gemm, None if panel else self.compute_address, panel

    @property
    def thread_safe(self) -> bool:
        return self.panel is not None

    def pack(self, weight: Tensor, transposed: bool, rows: int) -> Tensor | None:
        """``weight.T`` (``transposed``, weight ``(cols, k)``) or ``weight`` (``(k, cols)``)
        packed as the B matrix of GEMMs with ``rows`` rows; None without a packed GEMM."""
        weight = weight.contiguous()
        cols, k = weight.shape if transposed else weight.shape[::-1]
        if self.panel is not None:
            width = self.panel[2]
            buffer = weight.new_empty(-(-cols // width) * k * width)
            self.panel[0](k, cols, weight.data_ptr(), int(transposed), buffer.data_ptr())
            return buffer
        if self.packed is None:
            return None
        get_size, pack, _ = self.packed
        trans = self.TRANS if transposed else self.NO_TRANS
        size = get_size(self.B_MATRIX, rows, cols, k)
        buffer = torch.empty(-(-size // weight.element_size()), dtype=weight.dtype)
        pack(self.ROW_MAJOR, self.B_MATRIX, trans, rows, cols, k, 1.0, weight.data_ptr(),
             weight.shape[1], buffer.data_ptr())  # fmt: skip
        return buffer


def _torch_blas() -> dict[torch.dtype, Blas]:
    """The BLAS that torch's CPU library exports (MKL in the x86-64 wheels): ``sgemm_``/
    ``dgemm_`` and, for float32, MKL's packed GEMM; empty where it exports none (then the
    loops stay in Python)."""
    library = Path(torch.__file__).parent / "lib" / f"libtorch_cpu{_shared_suffix()}"
    found = {}
    try:
        handle = ctypes.CDLL(str(library))
    except OSError:
        return found
    c_int, c_ptr = ctypes.c_int, ctypes.c_void_p
    for dtype, name in ((torch.float32, "sgemm_"), (torch.float64, "dgemm_")):
        function = getattr(handle, name, None)
        if function is None:
            continue
        packed = None
        names = ("cblas_sgemm_pack_get_size", "cblas_sgemm_pack", "cblas_sgemm_compute")
        if dtype == torch.float32 and all(hasattr(handle, n) for n in names):
            get_size = ctypes.CFUNCTYPE(ctypes.c_size_t, c_int, c_int, c_int, c_int)(
                ctypes.cast(getattr(handle, names[0]), c_ptr).value
            )
            pack = ctypes.CFUNCTYPE(
                None, c_int, c_int, c_int, c_int, c_int, c_int, ctypes.c_float, c_ptr, c_int, c_ptr
            )(ctypes.cast(getattr(handle, names[1]), c_ptr).value)
            packed = (get_size, pack, getattr(handle, names[2]))
        found[dtype] = Blas(ctypes.cast(function, c_ptr).value, packed)
    return found


def _panel_blas(library: ctypes.CDLL) -> Blas | None:
    """lstmkit's own float32 GEMM from the compiled kernels (vector ISA builds), or None."""
    if not hasattr(library, "lstm_panel_gemm_f32"):
        return None
    pack = library.lstm_panel_pack_f32
    pointer, size = ctypes.c_void_p, ctypes.c_long
    pack.argtypes, pack.restype = [size, size, pointer, ctypes.c_int, pointer], None
    gemm = ctypes.cast(library.lstm_panel_gemm_f32, pointer).value
    return Blas(None, panel=(pack, gemm, library.lstm_panel_cols()))


def _shared_suffix() -> str:
    return ".dylib" if platform.system() == "Darwin" else ".so"


INSTALLED_DIR = Path(__file__).with_name("_lib")


def runnable_variants() -> list[str]:
    """The ISA builds this CPU runs, best first (from what torch itself dispatches to)."""
    names = list(kernel_build.variants())
    if kernel_build.machine() != "x86_64":
        return names
    capability = torch.backends.cpu.get_cpu_capability()
    runnable = {"AVX512": names, "AVX2": names[1:]}.get(capability, names[2:])
    return [name for name in names if name in runnable]


def _load(candidates: list[str]) -> tuple[ctypes.CDLL, str]:
    """The best build that loads: installed with the package (``pip install`` built it) where
    its source hash matches, else compiled now into `settings.cache_dir` (a source tree without a
    build). Returns the library and where it came from, for the log."""
    for variant in candidates:
        installed = INSTALLED_DIR / kernel_build.library_name(
            variant, kernel_build.build_hash(variant)
        )
        if installed.exists():
            try:
                return ctypes.CDLL(str(installed)), f"{variant} build, installed ({installed})"
            except OSError as error:
                log.info("installed kernels %s do not load: %s", installed.name, error)
    variant = candidates[0]
    target = settings.cache_dir / kernel_build.library_name(
        variant, kernel_build.build_hash(variant)
    )
    if not target.exists():
        kernel_build.compile_library(target, kernel_build.variants()[variant])
    return ctypes.CDLL(str(target)), f"{variant} build, compiled at first use ({target})"


@cache
def kernels() -> Kernels | None:
    """The compiled kernels, or ``None`` when they cannot be had here (logged once, with the
    build that loaded or the reason)."""
    if platform.system() not in ("Linux", "Darwin"):
        log.info("lstmkit native kernels: none for %s, using torch ops", platform.system())
        return None
    try:
        library, origin = _load(runnable_variants())
        candidates: dict[torch.dtype, list[Blas]] = {}
        panel = _panel_blas(library)
        if panel is not None:
            candidates[torch.float32] = [panel]
        for dtype, blas in _torch_blas().items():
            candidates.setdefault(dtype, []).append(blas)
        loaded = Kernels(library, candidates)
    except (OSError, RuntimeError) as error:
        log.warning("lstmkit native kernels unavailable, using torch ops (slower): %s", error)
        return None
    loaded.origin = origin
    log.info("lstmkit native kernels: %s", origin)
    return loaded
