"""Optional native kernels for the fused path: the plain LSTM's per-step elementwise work in C.

On CPU a step of a hand-written LSTM is a GEMM plus ~10 small elementwise ops, each paying a
dispatch and a pass over memory. `_kernels.c` does all of a step's elementwise work in one
vectorised loop each way. It is compiled at first use with the system C compiler (``$CC`` or
``cc``; a fraction of a second) into a cache folder (``$LSTMKIT_CACHE_DIR``, default
``~/.cache/lstmkit``) and loaded with ctypes, so there is no build step and nothing to install.

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

    def __init__(self, library: ctypes.CDLL) -> None:
        self._forward, self._backward, self._ln_forward, self._ln_backward = {}, {}, {}, {}
        pointer, size = ctypes.c_void_p, ctypes.c_long
        for dtype, suffix, real in (
            (torch.float32, "f32", ctypes.c_float),
            (torch.float64, "f64", ctypes.c_double),
        ):
            for table, name, argtypes in (
                (self._forward, "lstm_forward", [size, size, *[pointer] * 7]),
                (self._backward, "lstm_backward", [size, size, *[pointer] * 7]),
                (self._ln_forward, "lstm_ln_forward", [size, size, real, *[pointer] * 14]),
                (self._ln_backward, "lstm_ln_backward", [size, size, *[pointer] * 17]),
            ):
                function = getattr(library, f"{name}_{suffix}")
                function.argtypes, function.restype = argtypes, None
                table[dtype] = function

    def supports(self, t: Tensor) -> bool:
        return t.device.type == "cpu" and t.dtype in self._forward

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
        return Kernels(ctypes.CDLL(str(target)))
    except (OSError, RuntimeError) as error:
        log.warning("lstmkit native kernels unavailable, using torch ops (slower): %s", error)
        return None
