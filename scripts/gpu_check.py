"""The GPU check of the custom LSTM (issue 14): speed, accuracy, repeatability, memory, compile,
the cuda-marked tests and training runs, on one CUDA device. Run it through
``scripts/gpu_check.sh`` after ``make install TORCH=torch``; about 5-10 minutes on one GPU.

For each shape (B, T, C, H, layers) and a ``lengths=`` case it prints one row per candidate:
torch.nn.LSTM (cuDNN), lstmkit's CudnnLSTM, CustomLSTM on the torch-op path and on the Triton
path, plain and ``layer_norm=True``:

* fwd and fwd+bwd milliseconds (medians, candidates interleaved) and their ratio to cuDNN's;
* GPU operations per time step and layer, forward and fwd+bwd (torch profiler);
* peak memory of a fwd+bwd beyond the model and inputs;
* max |diff| against the same model in float64 on the CPU: outputs and final states, and all
  gradients (input and every parameter), each relative to the reference's largest entry;
* whether 10 repeated fwd+bwd runs give bit-identical outputs and gradients (else the spread).

Then a ``torch.compile(fullgraph=True)`` of a model holding CustomLSTM (no graph break allowed),
``pytest -m cuda``, and ``lstmkit-train trainer=gpu`` with both backends at 32-true, 16-mixed
and bf16-mixed. Exits 1 on any failure, 2 when there is no CUDA device.

    python scripts/gpu_check.py                    # everything
    python scripts/gpu_check.py --only table       # the table alone
    python scripts/gpu_check.py --cpu-dry-run      # this script's own plumbing, tiny, on CPU
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]
SHAPES = [(32, 100, 1, 128, 1), (64, 256, 64, 256, 2), (16, 1000, 8, 128, 1)]
LENGTHS_SHAPE = (64, 256, 64, 256, 1)  # lengths uniform in [T/4, T], one full row
DRY_SHAPES = [(3, 5, 2, 4, 1)]
DRY_LENGTHS_SHAPE = (3, 5, 2, 4, 1)
# max |diff| / max |reference| beyond which a float32 candidate fails (TF32 in cuDNN's RNNs is
# allowed by default and stays below ~1e-3 here; a wrong kernel is off by O(1))
ACCURACY_LIMIT = 5e-3
PRECISIONS = ["32-true", "16-mixed", "bf16-mixed"]
ENCODERS = ["cudnn", "custom"]
SECTIONS = ["table", "kernels", "compile", "pytest", "train"]
# the layer alone (B, T, H), for `kernel_table`; the last one with lengths
KERNEL_SHAPES = [(32, 100, 128), (64, 256, 256), (16, 1000, 128), (64, 256, 256)]
DRY_KERNEL_SHAPES = [(3, 4, 6)]  # the last shape of a list runs with lengths


@dataclass
class Candidate:
    name: str
    build: Callable[..., nn.Module]
    triton: bool | None = None  # for CustomLSTM: which path (settings.triton)


@dataclass
class Row:
    case: str
    name: str
    fwd_ms: float = float("nan")
    both_ms: float = float("nan")
    ops_fwd: float = float("nan")
    ops_both: float = float("nan")
    peak_mib: float = float("nan")
    out_diff: float = float("nan")
    grad_diff: float = float("nan")
    grad_worst: str = ""
    repeat: str = ""
    failures: list[str] = field(default_factory=list)


def candidates() -> list[Candidate]:
    from lstmkit.nn import CudnnLSTM, CustomLSTM

    return [
        Candidate("torch.nn.LSTM", lambda *a, **k: nn.LSTM(*a, **k)),
        Candidate("CudnnLSTM", lambda *a, **k: CudnnLSTM(*a, **k)),
        Candidate("Custom torch-ops", lambda *a, **k: CustomLSTM(*a, **k), triton=False),
        Candidate("Custom Triton", lambda *a, **k: CustomLSTM(*a, **k), triton=True),
        Candidate(
            "Custom LN torch-ops",
            lambda *a, **k: CustomLSTM(*a, layer_norm=True, **k),
            triton=False,
        ),
        Candidate(
            "Custom LN Triton", lambda *a, **k: CustomLSTM(*a, layer_norm=True, **k), triton=True
        ),
    ]


class Case:
    """One shape's inputs, upstream gradients and (optionally) lengths."""

    def __init__(self, shape, device: torch.device, lengths: bool) -> None:
        batch, steps, features, hidden, layers = shape
        self.shape, self.device, self.layers, self.hidden = shape, device, layers, hidden
        self.steps = steps
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(steps, batch, features, generator=gen)
        self.grads = (
            torch.randn(steps, batch, hidden, generator=gen),
            torch.randn(layers, batch, hidden, generator=gen),
            torch.randn(layers, batch, hidden, generator=gen),
        )
        self.lengths = None
        if lengths:
            self.lengths = torch.randint(steps // 4, steps + 1, (batch,), generator=gen)
            self.lengths[0] = steps
            mask = torch.arange(steps).unsqueeze(1) < self.lengths  # (T, B)
            self.grads[0].mul_(mask.unsqueeze(-1))  # padded outputs get no gradient
        self.name = ",".join(map(str, shape)) + (" lengths" if lengths else "")

    def inputs(self, device, dtype=torch.float32):
        x = self.x.to(device, dtype, copy=True).requires_grad_(True)
        return x, [g.to(device, dtype) for g in self.grads]

    def run(self, model: nn.Module, x: Tensor):
        if self.lengths is None:
            return model(x)
        if isinstance(model, nn.LSTM):  # its way to variable lengths: a PackedSequence
            packed = nn.utils.rnn.pack_padded_sequence(x, self.lengths, enforce_sorted=False)
            out, state = model(packed)
            return nn.utils.rnn.pad_packed_sequence(out, total_length=self.steps)[0], state
        return model(x, lengths=self.lengths)

    def forward_backward(self, model: nn.Module, x: Tensor, grads: list[Tensor]):
        out, (h, c) = self.run(model, x)
        torch.autograd.backward((out, h, c), grads)
        return out, h, c


def _path(candidate: Candidate):
    from lstmkit.nn.settings import flags

    if candidate.triton is None:
        return flags()
    return flags(triton=candidate.triton)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _gpu_ops(fn: Callable[[], object], device: torch.device) -> int:
    """GPU operations (kernels, copies, fills) one call of ``fn`` issues, or CPU ops on a CPU."""
    from torch.profiler import ProfilerActivity, profile

    activity = ProfilerActivity.CUDA if device.type == "cuda" else ProfilerActivity.CPU
    with profile(activities=[activity]) as prof:
        fn()
        _sync(device)
    kind = torch.autograd.DeviceType.CUDA if device.type == "cuda" else None
    return sum(1 for e in prof.events() if kind is None or e.device_type == kind)


def _kernel_names(fn: Callable[[], object]) -> set[str]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return {e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA}


def _grads(model: nn.Module, x: Tensor) -> dict[str, Tensor]:
    """The gradients of the input and of every parameter, by name."""
    return {"input": x.grad, **{n: p.grad for n, p in model.named_parameters()}}


def _max_rel(actual: Tensor, expected: Tensor) -> float:
    scale = expected.abs().max().item() or 1.0
    return (actual.double().cpu() - expected).abs().max().item() / scale


def check_case(case: Case, cands: list[Candidate], rounds: int, warmup: int) -> list[Row]:
    device = case.device
    _, steps, features, hidden, layers = case.shape
    torch.manual_seed(0)
    plain = nn.LSTM(features, hidden, layers)
    models = {}
    for cand in cands:
        model = cand.build(features, hidden, layers)
        model.load_state_dict(plain.state_dict(), strict=False)  # same weights where they match
        models[cand.name] = model.to(device)
    rows = {c.name: Row(case.name, c.name) for c in cands}

    # accuracy against the same weights in float64 on the CPU (one reference per kind of model:
    # torch.nn.LSTM for the plain ones, CustomLSTM for layer norm), and the Triton path running
    references: dict[str, tuple] = {}
    for cand in cands:
        row, model = rows[cand.name], models[cand.name]
        kind = "layer_norm" if getattr(model, "layer_norm", False) else "plain"
        if kind not in references:
            ref = copy.deepcopy(plain if kind == "plain" else model).to("cpu", torch.float64)
            x64, g64 = case.inputs("cpu", torch.float64)
            ref_out = [t.detach() for t in case.forward_backward(ref, x64, g64)]
            references[kind] = ref_out, _grads(ref, x64)
        ref_out, ref_grads = references[kind]
        x, g = case.inputs(device)
        with _path(cand):
            out = case.forward_backward(model, x, g)
            if cand.triton and device.type == "cuda":
                names = " ".join(
                    _kernel_names(partial(case.forward_backward, model, *case.inputs(device)))
                )
                if "forward_step" not in names or "backward_step" not in names:
                    row.failures.append("the Triton kernels did not run (see the log for why)")
        row.out_diff = max(_max_rel(a, b) for a, b in zip(out, ref_out, strict=True))
        grads = _grads(model, x)
        if grads.keys() != ref_grads.keys():
            row.failures.append(f"parameters {sorted(grads)} != reference's {sorted(ref_grads)}")
            continue
        row.grad_diff, row.grad_worst = max((_max_rel(grads[n], ref_grads[n]), n) for n in grads)
        worst = max(row.out_diff, row.grad_diff)
        if not worst <= ACCURACY_LIMIT:  # NaN fails too
            row.failures.append(f"max |diff| / max |ref| {worst:.1e} > {ACCURACY_LIMIT}")

    # repeatability: 10 fwd+bwd runs against the first
    for cand in cands:
        row, model = rows[cand.name], models[cand.name]
        first, spread = None, 0.0
        with _path(cand):
            for _ in range(10):
                model.zero_grad(set_to_none=True)
                x, g = case.inputs(device)
                out = case.forward_backward(model, x, g)
                values = [t.detach().clone() for t in out] + list(_grads(model, x).values())
                if first is None:
                    first = values
                    continue
                for a, b in zip(values, first, strict=True):
                    spread = max(spread, (a - b).abs().max().item())
        row.repeat = "bit-identical" if spread == 0 else f"spread {spread:.1e}"

    # GPU operations per step and layer, peak memory
    per_step = steps * layers
    for cand in cands:
        row, model = rows[cand.name], models[cand.name]
        x, g = case.inputs(device)
        with _path(cand):

            def fwd(m=model, x=x):
                with torch.no_grad():
                    case.run(m, x)

            row.ops_fwd = _gpu_ops(fwd, device) / per_step
            both = partial(case.forward_backward, model, x, g)
            row.ops_both = _gpu_ops(both, device) / per_step
            if device.type == "cuda":
                model.zero_grad(set_to_none=True)
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                case.forward_backward(model, *case.inputs(device))
                torch.cuda.synchronize()
                row.peak_mib = (torch.cuda.max_memory_allocated() - base) / 2**20

    # speed, candidates interleaved (rotating who goes first)
    times: dict[str, dict[str, list[float]]] = {c.name: {"fwd": [], "both": []} for c in cands}
    x, g = case.inputs(device)
    for r in range(warmup + rounds):
        order = cands[r % len(cands) :] + cands[: r % len(cands)]
        for cand in order:
            model = models[cand.name]
            with _path(cand):

                def fwd(m=model):
                    with torch.no_grad():
                        case.run(m, x)

                t_fwd = _timed(fwd, device)
                model.zero_grad(set_to_none=True)
                t_both = _timed(lambda m=model: case.forward_backward(m, x, g), device)
            if r >= warmup:
                times[cand.name]["fwd"].append(t_fwd)
                times[cand.name]["both"].append(t_both)
    for cand in cands:
        rows[cand.name].fwd_ms = statistics.median(times[cand.name]["fwd"]) * 1e3
        rows[cand.name].both_ms = statistics.median(times[cand.name]["both"]) * 1e3
    return list(rows.values())


def print_table(rows: list[Row]) -> None:
    header = (
        f"{'case (B,T,C,H,L)':24} {'candidate':20} {'fwd ms':>8} {'x cuDNN':>7} "
        f"{'f+b ms':>8} {'x cuDNN':>7} {'ops/step f':>10} {'f+b':>6} {'peak MiB':>8} "
        f"{'out diff':>8} {'grad diff':>9} {'worst grad':18} repeats"
    )
    print(header)
    print("-" * len(header))
    base = {r.case: r for r in rows if r.name == "torch.nn.LSTM"}
    for r in rows:
        b = base[r.case]
        print(
            f"{r.case:24} {r.name:20} {r.fwd_ms:8.2f} {r.fwd_ms / b.fwd_ms:7.2f} "
            f"{r.both_ms:8.2f} {r.both_ms / b.both_ms:7.2f} {r.ops_fwd:10.1f} {r.ops_both:6.1f} "
            f"{r.peak_mib:8.1f} {r.out_diff:8.1e} {r.grad_diff:9.1e} {r.grad_worst[:18]:18} "
            f"{r.repeat}"
        )
        for failure in r.failures:
            print(f"  FAIL {r.case} {r.name}: {failure}")


def _layer_calls(xp, state, weight, kwargs, upstream, persistent):
    """(forward without saving, forward+backward) of `triton_lstm` on these inputs."""
    from lstmkit.nn.fastpath import triton_lstm

    def fwd(keep=False):  # inference: nothing saved for a backward
        return triton_lstm.forward(xp, *state, weight, **kwargs, persistent=persistent, keep=keep)

    def both():
        saved = fwd(keep=True)
        return saved, triton_lstm.backward(saved, *upstream, persistent=persistent)

    return fwd, both


def kernel_table(device: torch.device, shapes, rounds: int, warmup: int) -> list[str]:
    """`triton_lstm` called directly, one layer and direction: the per-step kernels against the
    whole-sequence ones (where they apply), plain and layer norm. Milliseconds of forward and
    forward+backward, GPU operations per step, and max |diff| between the two kinds."""
    from lstmkit.nn.fastpath import triton_lstm

    failures = []
    header = (
        f"{'layer (B,T,H)':22} {'kernels':18} {'fwd ms':>8} {'f+b ms':>8} {'ops/step f':>10} "
        f"{'f+b':>6} {'max |diff| vs per-step':>22}"
    )
    print(header)
    print("-" * len(header))
    for index, (batch, steps, hidden) in enumerate(shapes):
        lengths = index == len(shapes) - 1
        gen = torch.Generator().manual_seed(0)
        sizes = None
        if lengths:  # uniform in [T/4, T], sorted as PackedSequence has them
            per_row = torch.randint(steps // 4, steps + 1, (batch,), generator=gen)
            per_row[0] = steps
            per_row = per_row.sort(descending=True).values
            sizes = (per_row.unsqueeze(0) > torch.arange(steps).unsqueeze(1)).sum(1)
        for layer_norm in (False, True):
            xp = torch.randn(steps, batch, 4 * hidden, generator=gen).to(device)
            state = [torch.randn(batch, hidden, generator=gen).to(device) * 0.5 for _ in "hc"]
            weight = (torch.randn(4 * hidden, hidden, generator=gen) * hidden**-0.5).to(device)
            kwargs = {"batch_sizes": sizes}
            if layer_norm:
                kwargs.update(
                    ln_hh=torch.ones(4 * hidden, device=device),
                    ln_cell_weight=torch.ones(hidden, device=device),
                    ln_cell_bias=torch.zeros(hidden, device=device),
                )
            upstream = [torch.randn_like(xp[..., :hidden]), *(torch.randn_like(h) for h in state)]
            kinds = [False]
            if triton_lstm.supports_persistent(xp, layer_norm=layer_norm) is None:
                kinds.append(True)
            results = {}
            for persistent in kinds:
                fwd, both = _layer_calls(xp, state, weight, kwargs, upstream, persistent)
                results[persistent] = both()
                times = {"fwd": [], "both": []}
                for r in range(warmup + rounds):
                    t_fwd, t_both = _timed(fwd, device), _timed(both, device)
                    if r >= warmup:
                        times["fwd"].append(t_fwd)
                        times["both"].append(t_both)
                diff = float("nan")
                if persistent:
                    (s0, g0), (s1, g1) = results[False], results[True]
                    pairs = [*zip(s0[:3], s1[:3], strict=True)]
                    pairs += [(a, b) for a, b in zip(g0, g1, strict=True) if a is not None]
                    diff = max(_max_rel(b, a.double().cpu()) for a, b in pairs)
                    if not diff <= ACCURACY_LIMIT:
                        failures.append(f"kernels {batch},{steps},{hidden}: {diff:.1e}")
                name = ("persistent" if persistent else "per-step") + (" LN" if layer_norm else "")
                case = f"{batch},{steps},{hidden}" + (" lengths" if lengths else "")
                print(
                    f"{case:22} {name:18} {statistics.median(times['fwd']) * 1e3:8.2f} "
                    f"{statistics.median(times['both']) * 1e3:8.2f} "
                    f"{_gpu_ops(fwd, device) / steps:10.1f} {_gpu_ops(both, device) / steps:6.1f} "
                    f"{diff:22.1e}"
                )
    return failures


def check_compile(device: torch.device) -> list[str]:
    """A model holding CustomLSTM compiles with fullgraph=True (no graph break), both paths,
    and gives eager's outputs and gradients."""
    from lstmkit.nn import CustomLSTM

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = CustomLSTM(8, 32, num_layers=2, layer_norm=True, batch_first=True)
            self.head = nn.Linear(32, 3)

        def forward(self, x: Tensor) -> Tensor:
            out, _ = self.lstm(x)
            return self.head(out[:, -1])

    failures = []
    torch.manual_seed(0)
    model = Model().to(device)
    x = torch.randn(4, 20, 8, device=device)
    for triton in (False, True):
        try:
            from lstmkit.nn.settings import flags

            with flags(triton=triton):
                torch._dynamo.reset()
                eager = model(x)
                eager.sum().backward()
                eager_grads = [p.grad.clone() for p in model.parameters()]
                model.zero_grad(set_to_none=True)
                compiled = torch.compile(model, fullgraph=True)(x)
                compiled.sum().backward()
            worst = max(
                (p.grad - e).abs().max().item()
                for p, e in zip(model.parameters(), eager_grads, strict=True)
            )
            worst = max(worst, (compiled - eager).abs().max().item())
            status = "ok" if worst < 1e-4 else "FAIL"
            print(
                f"  {status} fullgraph compile, triton={triton}: max |compiled - eager| {worst:.1e}"
            )
            if status == "FAIL":
                failures.append(f"compile triton={triton}: differs from eager by {worst:.1e}")
        except Exception as error:  # a graph break or a compile error is a reported failure
            print(f"  FAIL fullgraph compile, triton={triton}: {type(error).__name__}: {error}")
            failures.append(f"compile triton={triton}: {type(error).__name__}")
        model.zero_grad(set_to_none=True)
    return failures


def run_pytest() -> list[str]:
    command = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests/nn", "tests/scale"]
    print("  $", " ".join(command[2:]))
    result = subprocess.run(command, cwd=ROOT, check=False)
    return [] if result.returncode == 0 else [f"pytest -m cuda exited {result.returncode}"]


def run_training(max_epochs: int) -> list[str]:
    script = Path(sys.executable).with_name("lstmkit-train")
    base = [str(script)] if script.exists() else [sys.executable, "-m", "lstmkit.cli.train"]
    failures = []
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "LSTMKIT_LOG_DIR": out}
        for precision in PRECISIONS:
            for encoder in ENCODERS:
                command = [
                    *base, "trainer=gpu", f"trainer.precision={precision}",
                    f"model/encoder={encoder}", f"trainer.max_epochs={max_epochs}", "plots=false",
                ]  # fmt: skip
                log = Path(out) / f"log_{precision}_{encoder}.txt"
                with log.open("w") as handle:
                    result = subprocess.run(
                        command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                        check=False,
                    )  # fmt: skip
                ok = result.returncode == 0
                print(
                    f"  {'ok  ' if ok else 'FAIL'} lstmkit-train precision={precision} encoder={encoder}"
                )
                if not ok:
                    print("    " + "\n    ".join(log.read_text().splitlines()[-15:]))
                    failures.append(f"train {precision} {encoder}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=10, help="timed rounds per candidate")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    parser.add_argument(
        "--only", action="append", choices=SECTIONS, help="run only these sections (repeatable)"
    )
    parser.add_argument("--max-epochs", type=int, default=1, help="epochs per training run")
    parser.add_argument(
        "--cpu-dry-run",
        action="store_true",
        help="check this script's own plumbing on the CPU: the table at a tiny shape (the "
        "Triton rows then run the CPU path) and the compile check; no GPU figures",
    )
    args = parser.parse_args(argv)
    sections = args.only or SECTIONS

    if args.cpu_dry_run:
        device, shapes, lengths_shape = torch.device("cpu"), DRY_SHAPES, DRY_LENGTHS_SHAPE
        kernel_shapes = DRY_KERNEL_SHAPES
        os.environ.setdefault("TRITON_INTERPRET", "1")  # the kernels table in the interpreter
        sections = [s for s in sections if s in ("table", "kernels", "compile")]
        args.rounds, args.warmup = min(args.rounds, 2), min(args.warmup, 1)
    elif not torch.cuda.is_available():
        print("no CUDA device: gpu_check measures the GPU path; run it on a machine with one")
        return 2
    else:
        device, shapes, lengths_shape = torch.device("cuda"), SHAPES, LENGTHS_SHAPE
        kernel_shapes = KERNEL_SHAPES
    try:
        from lstmkit.nn.settings import flags  # noqa: F401  (the switch between the two paths)
    except ImportError as error:
        print(
            f"lstmkit.nn.settings.flags is missing ({error}): this lstmkit predates the switch "
            "between the torch-op and the Triton path; update lstmkit"
        )
        return 1

    started = time.perf_counter()
    print(
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}"
    )
    if device.type == "cuda":
        print(f"device {torch.cuda.get_device_name(device)}")
    try:
        import triton

        print(f"triton {triton.__version__}")
    except ImportError:
        print("triton not installed: the Triton rows run the torch-op path and FAIL")
    failures: list[str] = []
    if "table" in sections:
        print("\n== speed, accuracy, repeatability, memory")
        rows: list[Row] = []
        cases = [Case(s, device, False) for s in shapes] + [Case(lengths_shape, device, True)]
        for case in cases:
            rows += check_case(case, candidates(), args.rounds, args.warmup)
        print_table(rows)
        failures += [f"{r.case} {r.name}: {f}" for r in rows for f in r.failures]
    if "kernels" in sections:
        print(
            "\n== the Triton kernels alone (one layer, one direction): per-step vs whole-sequence"
        )
        try:
            failures += kernel_table(device, kernel_shapes, args.rounds, args.warmup)
        except Exception as error:  # e.g. a kernel that does not compile on this GPU
            print(f"  FAIL {type(error).__name__}: {error}")
            failures.append(f"kernels: {type(error).__name__}")
    if "compile" in sections:
        print("\n== torch.compile(fullgraph=True) of a model holding CustomLSTM")
        failures += check_compile(device)
    if "pytest" in sections:
        print("\n== pytest -m cuda")
        failures += run_pytest()
    if "train" in sections:
        print("\n== lstmkit-train trainer=gpu, both backends, three precisions")
        failures += run_training(args.max_epochs)

    print(f"\n{time.perf_counter() - started:.0f} s")
    if failures:
        print(f"{len(failures)} failure(s):\n  " + "\n  ".join(failures))
        return 1
    print("all GPU checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
