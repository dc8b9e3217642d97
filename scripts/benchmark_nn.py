"""Time torch.nn.LSTM, CudnnLSTM and CustomLSTM side by side, interleaved in one process.

For each shape (batch, seq, input, hidden, layers) every candidate runs once per round, in turn,
so machine noise hits all of them alike; the table shows medians and the ratio of each median to
torch.nn.LSTM's. Results are also written as JSON.

    python scripts/benchmark_nn.py                       # CPU (and CUDA when available)
    python scripts/benchmark_nn.py --rounds 30 --json benchmarks/nn.json
    python scripts/benchmark_nn.py --shapes 32,100,1,128,1 --candidates torch,custom
    python scripts/benchmark_nn.py --lengths --json benchmarks/nn_lengths.json   # ragged batches
    python scripts/benchmark_nn.py --threads 1 --clock cpu   # a shared, loaded machine
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import torch

from lstmkit.nn import CudnnLSTM, CustomLSTM
from lstmkit.nn.fastpath import native
from lstmkit.nn.settings import flags

DEFAULT_SHAPES = ["32,100,1,128,1", "64,256,64,256,2", "16,1000,8,128,1"]
CANDIDATES: dict[str, Callable[..., torch.nn.Module]] = {
    "torch": lambda *a, **k: torch.nn.LSTM(*a, **k),
    "cudnn": lambda *a, **k: CudnnLSTM(*a, **k),
    "custom": lambda *a, **k: CustomLSTM(*a, **k),
    "custom-layernorm": lambda *a, **k: CustomLSTM(*a, layer_norm=True, **k),
    # the whole loop in C, but every GEMM through torch's BLAS (MKL) on one thread: lstmkit's
    # own GEMM and the row-parallel loops off (as before they existed)
    "custom-mkl": lambda *a, **k: CustomLSTM(*a, **k),
    "custom-layernorm-mkl": lambda *a, **k: CustomLSTM(*a, layer_norm=True, **k),
    # the C kernels for each step's elementwise work, but the time loop in Python (one GEMM
    # call and one kernel call per step) instead of the whole loop in C
    "custom-steploop": lambda *a, **k: CustomLSTM(*a, **k),
    "custom-layernorm-steploop": lambda *a, **k: CustomLSTM(*a, layer_norm=True, **k),
    # the fused path with its per-step elementwise work in torch ops instead of the C kernels
    "custom-torchops": lambda *a, **k: CustomLSTM(*a, **k),
    "custom-layernorm-torchops": lambda *a, **k: CustomLSTM(*a, layer_norm=True, **k),
    # the backward's temporaries in fresh memory every call (settings.reuse_workspace off)
    "custom-fresh": lambda *a, **k: CustomLSTM(*a, **k),
    "custom-layernorm-fresh": lambda *a, **k: CustomLSTM(*a, layer_norm=True, **k),
    # autograd through the readable cell: the baseline the fused path replaces
    "custom-reference": lambda *a, **k: CustomLSTM(*a, implementation="reference", **k),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# what _timed reads: wall time, or with --clock cpu this process's CPU time (all its threads)
CLOCK: Callable[[], float] = time.perf_counter


def _timed(fn: Callable[[], None], device: torch.device) -> float:
    _sync(device)
    start = CLOCK()
    fn()
    _sync(device)
    return CLOCK() - start


def bench_shape(
    shape: tuple[int, ...], names: list[str], device: torch.device, rounds: int, warmup: int,
    variable_lengths: bool = False,
):  # fmt: skip
    batch, seq, features, hidden, layers = shape
    torch.manual_seed(0)
    reference = torch.nn.LSTM(features, hidden, layers).to(device)
    models = {}
    for name in names:
        model = CANDIDATES[name](features, hidden, layers).to(device)
        model.load_state_dict(reference.state_dict(), strict=False)
        models[name] = model
    x = torch.randn(seq, batch, features, device=device)
    x_grad = x.clone().requires_grad_(True)
    lengths = None
    if variable_lengths:  # uniform in [T/2, T], one row of full length
        generator = torch.Generator().manual_seed(0)
        lengths = torch.randint(seq // 2, seq + 1, (batch,), generator=generator)
        lengths[0] = seq

    def run(model, inputs):
        if lengths is None:
            return model(inputs)
        if isinstance(model, torch.nn.LSTM):  # its way to variable lengths: a PackedSequence
            packed = torch.nn.utils.rnn.pack_padded_sequence(inputs, lengths, enforce_sorted=False)
            out, state = model(packed)
            return torch.nn.utils.rnn.pad_packed_sequence(out)[0], state
        return model(inputs, lengths=lengths)

    def forward(model):
        with torch.no_grad():
            run(model, x)

    def forward_backward(model):
        out, (h, c) = run(model, x_grad)
        (out.sum() + h.sum() + c.sum()).backward()

    times: dict[str, dict[str, list[float]]] = {n: {"fwd": [], "fwd+bwd": []} for n in names}
    for r in range(warmup + rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotate who goes first
        for name in order:
            model = models[name]
            with flags(
                native=not name.endswith("-torchops"),
                native_loop=not name.endswith(("-torchops", "-steploop")),
                own_gemm=not name.endswith("-mkl"),
                reuse_workspace=not name.endswith("-fresh"),
            ):
                t_fwd = _timed(lambda m=model: forward(m), device)
                model.zero_grad(set_to_none=True)
                t_both = _timed(lambda m=model: forward_backward(m), device)
            if r >= warmup:
                times[name]["fwd"].append(t_fwd)
                times[name]["fwd+bwd"].append(t_both)
    return times


def _native_status() -> str:
    kernels = native.kernels()
    if kernels is None:
        return "no (torch-op fallback)"
    build = kernels.origin.split(" (")[0]
    if not kernels.supports_sequence(torch.empty(0)):
        return "yes, time loop in Python (no BLAS binding)"
    own = kernels.blas(torch.float32).panel is not None
    gemm = "own row-parallel GEMM" if own else "BLAS GEMM"
    return f"yes ({build}), time loop in C, {gemm}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--shapes", nargs="+", default=DEFAULT_SHAPES, help="batch,seq,input,hidden,layers"
    )
    parser.add_argument(
        "--candidates",
        default="torch,cudnn,custom,custom-layernorm",
        help=f"comma list of {sorted(CANDIDATES)}",
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--device", action="append", help="cpu and/or cuda (default: cpu, plus cuda if available)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument(
        "--lengths",
        action="store_true",
        help="variable lengths, uniform in [T/2, T]: lengths= for lstmkit, a PackedSequence "
        "for torch.nn.LSTM",
    )
    parser.add_argument("--json", default="benchmarks/nn.json", help="where to write the results")
    parser.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="wall: elapsed time; cpu: the process's CPU time (time.process_time), which time "
        "spent waiting for a core on a shared, loaded machine does not count (CPU only; with "
        "several threads it sums theirs, so compare candidates at --threads 1)",
    )
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter

    names = args.candidates.split(",")
    unknown = sorted(set(names) - set(CANDIDATES))
    if unknown:
        parser.error(f"unknown candidate(s) {unknown}; choose from {sorted(CANDIDATES)}")
    if "torch" not in names:
        names.insert(0, "torch")
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])

    results = []
    header = f"{'device':6} {'shape (B,T,C,H,L)':22} {'candidate':26} {'fwd ms':>9} {'ratio':>6} {'fwd+bwd ms':>11} {'ratio':>6}"
    print(
        f"torch {torch.__version__}, CPU ISA {torch.backends.cpu.get_cpu_capability()}, "
        f"{torch.get_num_threads()} threads, native kernels: "
        f"{_native_status()}"
    )
    print(header)
    print("-" * len(header))
    for device_name in devices:
        device = torch.device(device_name)
        for spec in args.shapes:
            shape = tuple(int(v) for v in spec.split(","))
            times = bench_shape(shape, names, device, args.rounds, args.warmup, args.lengths)
            base = {k: statistics.median(v) for k, v in times["torch"].items()}
            for name in names:
                med = {k: statistics.median(v) for k, v in times[name].items()}
                ratio = {k: med[k] / base[k] for k in med}
                results.append(
                    {
                        "device": device_name,
                        "shape": shape,
                        "candidate": name,
                        "median_s": med,
                        "ratio_to_torch": ratio,
                    }
                )
                print(
                    f"{device_name:6} {spec:22} {name:26} {med['fwd'] * 1e3:9.2f} {ratio['fwd']:6.2f} "
                    f"{med['fwd+bwd'] * 1e3:11.2f} {ratio['fwd+bwd']:6.2f}",
                    flush=True,
                )
    meta = {
        "torch": torch.__version__,
        "cpu_isa": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "machine": platform.platform(),
        "processor": platform.processor(),
        "rounds": args.rounds,
        "variable_lengths": args.lengths,
        "native_kernels": _native_status(),
        "clock": args.clock,
    }
    if args.json:
        from pathlib import Path

        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"meta": meta, "results": results}, indent=2))
        print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
