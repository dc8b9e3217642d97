"""Per-step recurrent GEMM: the BLAS that lstmkit's C time loop calls vs oneDNN's packed GEMM.

The C time loop (``lstmkit.nn.fused``, ``NATIVE_LOOP_MAX_MACS``) saves the per-step Python and
dispatch (~10 us a step each way) but calls the BLAS torch exports (MKL in the x86-64 wheels),
while the Python loop calls oneDNN's packed GEMM. Which GEMM is faster decides where the C loop
pays. For each ``(batch, hidden)`` this times ``h (B, H) @ W_hh.T (H -> 4H)`` (forward) and
``d (B, 4H) @ W_hh (4H -> H)`` (backward), interleaved, medians, and prints ratios.

    python scripts/benchmark_gemm.py
    python scripts/benchmark_gemm.py --threads 1 --shapes 32,128 64,256
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from lstmkit.nn import fused, native

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
        raise SystemExit("no BLAS binding here: the C time loop is not used on this machine")
    blas = kernels.blas(torch.float32)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"BLAS packed API: {'yes' if blas.packed else 'no'}")  # fmt: skip
    header = f"{'B':>5} {'H':>5} {'MACs':>7} {'dir':>4} {'BLAS us':>9} {'oneDNN us':>10} {'BLAS/oneDNN':>12}"
    print(header)
    print("-" * len(header))
    for spec in args.shapes:
        batch, hidden = (int(v) for v in spec.split(","))
        weight = torch.randn(4 * hidden, hidden)  # W_hh (4H, H)
        for direction, a, w in (
            ("fwd", torch.randn(batch, hidden), weight),
            ("bwd", torch.randn(batch, 4 * hidden), weight.t().contiguous()),
        ):
            packed = blas.pack(w, transposed=True, rows=batch)
            onednn = fused.StepMatmul(w, batch)
            torch.testing.assert_close(
                kernels.blas_matmul(a, w, packed), onednn(a), rtol=1e-4, atol=1e-4
            )
            t_blas = _median_us(lambda a=a, w=w, p=packed: kernels.blas_matmul(a, w, p), args.calls, args.rounds)  # fmt: skip
            t_dnn = _median_us(lambda a=a, m=onednn: m(a), args.calls, args.rounds)
            macs = batch * w.numel() / 1e6
            print(
                f"{batch:>5} {hidden:>5} {macs:>6.1f}M {direction:>4} {t_blas:>9.1f} "
                f"{t_dnn:>10.1f} {t_blas / t_dnn:>11.2f}x"
            )


if __name__ == "__main__":
    main()
