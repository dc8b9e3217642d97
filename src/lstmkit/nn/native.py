"""Optional native kernels for the fused path: the plain LSTM's per-step elementwise work in C.

On CPU a step of a hand-written LSTM is a GEMM plus ~10 small elementwise ops, each paying a
dispatch and a pass over memory. `_kernels.c` does all of a step's elementwise work in one
vectorised loop each way. It is compiled at first use with the system C compiler (``$CC`` or
``cc``; a fraction of a second) into a cache folder (``$LSTMKIT_CACHE_DIR``, default
``~/.cache/lstmkit``) and loaded with ctypes, so there is no build step and nothing to install.

It also holds whole time loops (`Kernels.sequence_forward`/`sequence_backward`): the per-step
GEMMs go through the BLAS that torch's own library exports (MKL's ``sgemm_``/``dgemm_`` and, for
float32, its packed-matrix API in the x86-64 wheels), each binding checked against ``torch.mm``
when the kernels load. Where torch exports no BLAS, or with ``LSTMKIT_NATIVE_LOOP=0``, the loop
stays in Python (`Kernels.supports_sequence` is False).

Without a compiler, on a CPU other than x86-64/aarch64 Linux or macOS, or with
``LSTMKIT_NATIVE=0``, `kernels()` returns ``None`` and the fused path uses torch ops — the same
numbers (tested), slower.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("_kernels.c")


def _isa_flags() -> list[str]:
    """Vector ISA flags for this CPU, from what torch itself dispatches to."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return []
    capability = torch.backends.cpu.get_cpu_capability()
    if capability == "AVX512":
        return ["-mavx512f", "-mavx512dq", "-mavx2", "-mfma"]
    if capability == "AVX2":
        return ["-mavx2", "-mfma"]
    return []


def _compile(target: Path, flags: list[str]) -> None:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler found (set CC or install gcc/clang)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        obj, built = Path(tmp) / "kernels.o", Path(tmp) / target.name
        # Compile and link separately: -ffast-math on the link line would add crtfastmath.o,
        # which flushes denormals to zero for the whole process when the library loads.
        for cmd in (
            [compiler, *flags, "-c", str(SOURCE), "-o", str(obj)],
            [compiler, "-shared", str(obj), "-o", str(built), "-lm"],
        ):
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr.strip()}")
        os.replace(built, target)  # atomic: concurrent processes never load a half-written file


class Kernels:
    """ctypes bindings of `_kernels.c` for float32 and float64 contiguous CPU tensors."""

    def __init__(self, library: ctypes.CDLL, blas: dict[torch.dtype, Blas] | None = None) -> None:
        self._forward, self._backward, self._ln_forward, self._ln_backward = {}, {}, {}, {}
        self._seq_forward, self._seq_backward, self._gemm_check = {}, {}, {}
        pointer, size = ctypes.c_void_p, ctypes.c_long
        for dtype, suffix, real in (
            (torch.float32, "f32", ctypes.c_float),
            (torch.float64, "f64", ctypes.c_double),
        ):
            for table, name, argtypes in (
                (
                    self._seq_forward,
                    "lstm_sequence_forward",
                    [pointer, pointer, *[size] * 4, *[pointer] * 14, real, *[pointer] * 6],
                ),
                (
                    self._seq_backward,
                    "lstm_sequence_backward",
                    [pointer, pointer, *[size] * 4, *[pointer] * 22],
                ),
                (self._gemm_check, "gemm_check", [pointer, pointer, *[size] * 3, *[pointer] * 4]),
                (self._forward, "lstm_forward", [size, size, *[pointer] * 7]),
                (self._backward, "lstm_backward", [size, size, *[pointer] * 7]),
                (self._ln_forward, "lstm_ln_forward", [size, size, real, *[pointer] * 14]),
                (self._ln_backward, "lstm_ln_backward", [size, size, *[pointer] * 17]),
            ):
                function = getattr(library, f"{name}_{suffix}")
                function.argtypes, function.restype = argtypes, None
                table[dtype] = function

        # dtype -> BLAS functions for the whole-sequence loops; only bindings that pass a check
        # against torch.mm are kept (and packed GEMM only if it passes too).
        self._blas = {}
        for dtype, functions in (blas or {}).items():
            if functions.packed is not None and not self._gemm_works(dtype, functions, True):
                functions = Blas(functions.gemm)
            if self._gemm_works(dtype, functions, False):
                self._blas[dtype] = functions

    def supports(self, t: Tensor) -> bool:
        return t.device.type == "cpu" and t.dtype in self._forward

    def supports_sequence(self, t: Tensor) -> bool:
        """Whether `sequence_forward`/`sequence_backward` run for ``t``'s device and dtype."""
        return t.device.type == "cpu" and t.dtype in self._blas

    def _gemm_works(self, dtype: torch.dtype, blas: Blas, packed: bool) -> bool:
        generator = torch.Generator().manual_seed(0)
        a = torch.randn(3, 5, dtype=dtype, generator=generator)
        w = torch.randn(7, 5, dtype=dtype, generator=generator)
        out = torch.empty(3, 7, dtype=dtype)
        packed_w = blas.pack(w, transposed=True, rows=3) if packed else None
        self._gemm_check[dtype](
            blas.gemm, blas.compute_address, 3, 7, 5, a.data_ptr(), w.data_ptr(),
            _ptr(packed_w), out.data_ptr(),
        )  # fmt: skip
        return torch.allclose(out, a @ w.t())

    def blas_matmul(self, a: Tensor, weight: Tensor, packed: Tensor | None = None) -> Tensor:
        """``a (n, k) @ weight.T`` (``weight (cols, k)``) through the BLAS the C time loop uses;
        ``packed``: ``Blas.pack(weight, transposed=True, rows=n)``, or None (plain GEMM). For
        tests and ``scripts/benchmark_gemm.py``."""
        blas = self._blas[a.dtype]
        a, weight = a.contiguous(), weight.contiguous()
        out = a.new_empty(a.shape[0], weight.shape[0])
        self._gemm_check[a.dtype](
            blas.gemm, blas.compute_address, a.shape[0], weight.shape[0], a.shape[1],
            a.data_ptr(), weight.data_ptr(), _ptr(packed), out.data_ptr(),
        )  # fmt: skip
        return out

    def blas(self, dtype: torch.dtype) -> Blas:
        """The checked BLAS functions for ``dtype`` (see `supports_sequence`)."""
        return self._blas[dtype]

    def sequence_forward(
        self, xp: Tensor, h0: Tensor, c0: Tensor, weight_hh: Tensor, weight_hr: Tensor | None,
        batch_sizes: Tensor | None, acts: Tensor, cells: Tensor, tanh_cells: Tensor, out: Tensor,
        pre_proj: Tensor | None, ln: SimpleNamespace | None,
    ) -> None:  # fmt: skip
        """A layer's whole forward time loop (see `lstmkit.nn.fused`), in one call.

        ``xp, acts (T, B, 4H)``; ``h0 (B, P)``; ``c0 (B, H)``; ``weight_hh (4H, P)``;
        ``weight_hr (P, H)`` or None; ``batch_sizes``: int64 ``(T,)`` or None (all rows);
        outputs ``cells, tanh_cells (T, B, H)``, ``out (T, B, P)``, ``pre_proj (T, B, H)``
        (with ``weight_hr``). ``ln``: None, or the layer-norm tensors ``ln_hh (4H,)``,
        ``cell_weight, cell_bias (H,)``, outputs ``rec_pre_ln (T, B, 4H)``, ``rec_stats,
        cell_stats (2, T, B, 1)`` and ``eps``. All contiguous.
        """
        steps, batch, gates = xp.shape
        z = xp.new_empty(batch, gates) if ln is None else None
        blas = self._blas[xp.dtype]
        # each weight packed once for all full-batch steps: B = weight.T
        hh_packed = blas.pack(weight_hh, transposed=True, rows=batch)
        hr_packed = None if weight_hr is None else blas.pack(weight_hr, transposed=True, rows=batch)
        self._seq_forward[xp.dtype](
            blas.gemm, blas.compute_address, steps, batch, gates // 4, out.shape[-1],
            _ptr(batch_sizes), xp.data_ptr(), h0.data_ptr(), c0.data_ptr(), weight_hh.data_ptr(),
            _ptr(hh_packed), _ptr(weight_hr), _ptr(hr_packed), acts.data_ptr(), cells.data_ptr(), tanh_cells.data_ptr(), out.data_ptr(),
            _ptr(pre_proj), _ptr(z), ln.eps if ln else 0.0, *(
                _ptr(getattr(ln, name, None))
                for name in ("ln_hh", "cell_weight", "cell_bias", "rec_pre_ln", "rec_stats",
                             "cell_stats")
            ),
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
        outputs ``d_rec (T, B, 4H)`` and ``d_cn (T, B, H)``.
        """
        steps, batch, gates = acts.shape
        dh = acts.new_empty(batch, gates // 4) if weight_hr is not None else None
        blas = self._blas[acts.dtype]
        # B = weight as is: the gradients flow back through x @ weight.T
        hh_packed = blas.pack(weight_hh, transposed=False, rows=batch)
        hr_packed = (
            None if weight_hr is None else blas.pack(weight_hr, transposed=False, rows=batch)
        )
        self._seq_backward[acts.dtype](
            blas.gemm, blas.compute_address, steps, batch, gates // 4, carry_h.shape[-1],
            _ptr(batch_sizes), grad_out.data_ptr(), carry_h.data_ptr(), carry_c.data_ptr(),
            acts.data_ptr(), cells.data_ptr(), tanh_cells.data_ptr(), c0.data_ptr(),
            weight_hh.data_ptr(), _ptr(hh_packed), _ptr(weight_hr), _ptr(hr_packed),
            _ptr(proj_in), _ptr(dh), d_pre.data_ptr(), *(
                _ptr(getattr(ln, name, None))
                for name in ("ln_hh", "cell_weight", "rec_pre_ln", "rec_stats", "cell_stats",
                             "d_rec", "d_cn")
            ),
        )  # fmt: skip

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
            c_stats[1].data_ptr(),
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
            d_z.data_ptr(), d_cn.data_ptr(),
        )  # fmt: skip


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


class Blas:
    """The BLAS functions of one dtype: Fortran ``?gemm_`` and, with MKL, its packed-matrix API.

    ``gemm``: the address of ``sgemm_``/``dgemm_``. ``packed``: None, or the ctypes functions
    ``(get_size, pack, compute)`` of ``cblas_?gemm_pack_get_size/_pack/_compute``: a weight used
    at every step is packed once per call, as oneDNN does for ``torch.nn.LSTM``.
    """

    ROW_MAJOR, NO_TRANS, TRANS, B_MATRIX = 101, 111, 112, 162  # CBLAS enum values

    def __init__(self, gemm: int, packed: tuple[Any, Any, Any] | None = None) -> None:
        self.gemm, self.packed = gemm, packed
        compute = None if packed is None else packed[2]
        self.compute_address = (
            None if compute is None else ctypes.cast(compute, ctypes.c_void_p).value
        )

    def pack(self, weight: Tensor, transposed: bool, rows: int) -> Tensor | None:
        """``weight.T`` (``transposed``, weight ``(cols, k)``) or ``weight`` (``(k, cols)``)
        packed as the B matrix of GEMMs with ``rows`` rows; None without the packed API."""
        if self.packed is None:
            return None
        get_size, pack, _ = self.packed
        weight = weight.contiguous()
        cols, k = weight.shape if transposed else weight.shape[::-1]
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


def _shared_suffix() -> str:
    return ".dylib" if platform.system() == "Darwin" else ".so"


@cache
def kernels() -> Kernels | None:
    """The compiled kernels, or ``None`` when they cannot be had here (logged once)."""
    if os.environ.get("LSTMKIT_NATIVE", "1") == "0":
        return None
    if platform.system() not in ("Linux", "Darwin"):
        return None
    flags = ["-O3", "-ffast-math", "-fopenmp-simd", "-fPIC", *_isa_flags()]
    key = hashlib.sha256((SOURCE.read_text() + " ".join(flags)).encode()).hexdigest()[:16]
    cache_dir = Path(os.environ.get("LSTMKIT_CACHE_DIR", Path.home() / ".cache" / "lstmkit"))
    target = cache_dir / f"lstm_kernels-{key}.so"
    try:
        if not target.exists():
            _compile(target, flags)
        blas = {} if os.environ.get("LSTMKIT_NATIVE_LOOP", "1") == "0" else _torch_blas()
        return Kernels(ctypes.CDLL(str(target)), blas)
    except (OSError, RuntimeError) as error:
        log.warning("lstmkit native kernels unavailable, using torch ops (slower): %s", error)
        return None
