"""Per-step recurrent GEMM: lstmkit's own GEMM and torch's BLAS (what the C time loop calls) vs
oneDNN's packed GEMM (what the Python step loop calls).

The C time loop (``lstmkit.nn.fastpath.fused``) saves the per-step Python and dispatch (~10 us a step each
way). Its per-step GEMM is lstmkit's own (``_kernels.c``, AVX-512/AVX2/NEON builds, float32) or else the
BLAS torch exports (MKL in the x86-64 wheels); ``NATIVE_LOOP_MAX_MACS`` bounds the BLAS case. For
each ``(batch, hidden)`` this times ``h (B, H) @ W_hh.T (H -> 4H)`` (forward) and
``d (B, 4H) @ W_hh (4H -> H)`` (backward), one thread each (the C loop splits rows over threads
itself), interleaved, medians, and prints ratios to oneDNN.

    python scripts/benchmark_gemm.py --threads 1
    python scripts/benchmark_gemm.py --threads 1 --shapes 32,128 64,256
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from lstmkit.nn.fastpath import fused, native

DEFAULT_SHAPES = ["16,128", "32,128", "64,128", "32,256", "64,256", "128,256"]


def _median_us(fn: Callable[[], object], calls: int, rounds: int) -> float:
    for _ in range(calls // 10 + 1):
        fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="+", default=DEFAULT_SHAPES, help="batch,hidden")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    kernels = native.kernels()
    if kernels is None or not kernels.supports_sequence(torch.empty(0)):
        raise SystemExit("no GEMM binding here: the C time loop is not used on this machine")
    gemms = {("own" if b.panel else "BLAS"): b for b in kernels.gemms(torch.float32)}
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, GEMMs: {', '.join(gemms)}"
    )
    columns = "".join(f"{name + ' us':>9} {name + '/oneDNN':>12}" for name in gemms)
    header = f"{'B':>5} {'H':>5} {'MACs':>7} {'dir':>4} {'oneDNN us':>10}{columns}"
    print(header)
    print("-" * len(header))
    for spec in args.shapes:
        batch, hidden = (int(v) for v in spec.split(","))
        weight = torch.randn(4 * hidden, hidden)  # W_hh (4H, H)
        for direction, a, w in (
            ("fwd", torch.randn(batch, hidden), weight),
            ("bwd", torch.randn(batch, 4 * hidden), weight.t().contiguous()),
        ):
            onednn = fused.StepMatmul(w, batch)
            t_dnn = _median_us(lambda a=a, m=onednn: m(a), args.calls, args.rounds)
            row = f"{batch:>5} {hidden:>5} {batch * w.numel() / 1e6:>6.1f}M {direction:>4} {t_dnn:>10.1f}"
            for blas in gemms.values():
                packed = blas.pack(w, transposed=True, rows=batch)
                torch.testing.assert_close(
                    kernels.blas_matmul(a, w, packed, blas), onednn(a), rtol=1e-4, atol=1e-4
                )
                t = _median_us(
                    lambda a=a, w=w, p=packed, b=blas: kernels.blas_matmul(a, w, p, b),
                    args.calls, args.rounds,
                )  # fmt: skip
                row += f"{t:>9.1f} {t / t_dnn:>11.2f}x"
            print(row)


if __name__ == "__main__":
    main()
