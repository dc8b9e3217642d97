"""The fused path's machinery: oneDNN packed GEMMs on/off, and mixed precision."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest
import torch

from lstmkit.nn import CudnnLSTM, CustomLSTM
from lstmkit.nn.cudnn import torch_lstm_runs
from lstmkit.nn.fastpath import fused, native
from lstmkit.nn.settings import settings


def _run(model: torch.nn.Module, x: torch.Tensor, lengths=None):
    out, (h, c) = model(x, lengths=lengths)
    grads = torch.autograd.grad((out.sum() + h.sum() + c.sum()), [x, *model.parameters()])
    return [out, h, c, *grads]


@pytest.mark.parametrize(
    "options",
    [{}, {"proj_size": 3}, {"layer_norm": True, "peephole": True}, {"bidirectional": True}],
    ids=["plain", "proj", "layernorm-peephole", "bidirectional"],
)
@pytest.mark.parametrize("lengths", [None, [6, 2, 5]], ids=["full", "lengths"])
def test_onednn_packed_gemm_equals_plain_matmul(monkeypatch, options, lengths):
    if not fused.ONEDNN_AVAILABLE:
        pytest.skip("oneDNN is not available in this torch build")
    monkeypatch.setattr(settings, "onednn_min_macs", 0)  # tiny test shapes would use torch.mm
    model = CustomLSTM(4, 6, **options)
    x = torch.randn(6, 3, 4, requires_grad=True)
    with_onednn = _run(model, x, lengths)
    monkeypatch.setattr(settings, "onednn", False)
    without = _run(model, x, lengths)
    # two float32 GEMMs summing in different orders (which orders depends on the CPU's ISA)
    for a, b in zip(with_onednn, without, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "make",
    [
        lambda: CudnnLSTM(4, 8),
        lambda: CustomLSTM(4, 8),
        lambda: CustomLSTM(4, 8, implementation="reference"),
        lambda: CustomLSTM(4, 8, layer_norm=True, bidirectional=True),
    ],
    ids=["cudnn", "custom", "custom-reference", "custom-layernorm-bidir"],
)
@pytest.mark.parametrize("lengths", [None, [7, 3, 5]], ids=["full", "lengths"])
def test_cpu_bf16_autocast_runs_and_stays_close(make, lengths):
    """Like torch.nn.LSTM, the cores run the recurrence in the autocast dtype.

    (torch.nn.LSTM itself runs packed input, which CudnnLSTM uses for ``lengths=``, in float32
    under CPU autocast; CudnnLSTM follows torch there.)
    """
    model = make()
    if isinstance(model, CudnnLSTM) and not torch_lstm_runs(torch.bfloat16):
        pytest.skip(
            "this CPU's oneDNN cannot build a bf16 LSTM (no native bf16): torch's own limit"
        )
    x = torch.randn(7, 3, 4, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, (h, c) = model(x, lengths=lengths)
    expected = torch.float32 if isinstance(model, CudnnLSTM) and lengths else torch.bfloat16
    assert out.dtype == h.dtype == c.dtype == expected
    out.float().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None and p.grad.dtype == p.dtype for p in model.parameters())
    full, _ = model(x, lengths=lengths)
    torch.testing.assert_close(out.float(), full, atol=3e-2, rtol=3e-2)


@pytest.mark.slow
@pytest.mark.parametrize("backend", [CudnnLSTM, CustomLSTM], ids=["cudnn", "custom"])
def test_torch_compile_of_a_model_around_a_core(backend):
    """The core runs eager inside a compiled model; the model compiles and gives eager's numbers."""

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.core = backend(4, 8, batch_first=True)
            self.head = torch.nn.Linear(8, 2)

        def forward(self, x, lengths):
            _, (h, _) = self.core(x, lengths=lengths)
            return self.head(h[-1])

    model = Model()
    compiled = torch.compile(model)
    for steps in (5, 9):
        x = torch.randn(3, steps, 4)
        torch.testing.assert_close(compiled(x, [steps, 2, 3]), model(x, [steps, 2, 3]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"proj_size": 3},
        {"bidirectional": True, "num_layers": 2},
        {"layer_norm": True},
        {"layer_norm": True, "proj_size": 3, "bidirectional": True},
    ],
    ids=str,
)
@pytest.mark.parametrize("lengths", [None, [6, 2, 5]], ids=["full", "lengths"])
@pytest.mark.parametrize("loop", ["c-loop", "c-loop-blas", "python-loop"])
def test_native_kernels_equal_torch_ops(monkeypatch, dtype, options, lengths, loop):
    """The C kernels, with the time loop in C (lstmkit's own GEMM where built, or torch's BLAS)
    or in Python, equal torch ops."""
    if native.kernels() is None:
        pytest.skip("no C compiler here: the native kernels are not built")
    monkeypatch.setattr(settings, "native_loop", loop != "python-loop")
    monkeypatch.setattr(settings, "own_gemm", loop != "c-loop-blas")
    model = CustomLSTM(4, 6, dtype=dtype, **options)
    with torch.no_grad():  # layer-norm gains and biases away from their 1 and 0 init
        for param in model.parameters():
            param.add_(0.1 * torch.randn_like(param))
    x = torch.randn(6, 3, 4, dtype=dtype, requires_grad=True)
    with_native = _run(model, x, lengths)
    monkeypatch.setattr(settings, "native", False)
    without = _run(model, x, lengths)
    # float32 layer-norm gradients differ in summation order only; rstd amplifies that.
    tol = 1e-12 if dtype == torch.float64 else (1e-4 if options.get("layer_norm") else 1e-5)
    for a, b in zip(with_native, without, strict=True):
        torch.testing.assert_close(a, b, atol=tol, rtol=tol)


@pytest.mark.slow
def test_native_time_loop_binds_torch_blas_on_x86_64():
    """The x86-64 wheels export MKL's gemm: the whole-loop path must be the one that runs there."""
    if native.kernels() is None or platform.machine() != "x86_64":
        pytest.skip("the C time loop is only expected on x86-64 with a C compiler")
    kernels = native.kernels()
    for dtype in (torch.float32, torch.float64):
        assert kernels.supports_sequence(torch.empty(0, dtype=dtype))
        a, w = torch.randn(5, 7, dtype=dtype), torch.randn(12, 7, dtype=dtype)
        blas = kernels.blas(dtype)
        for packed in (None, blas.pack(w, transposed=True, rows=5)):
            torch.testing.assert_close(kernels.blas_matmul(a, w, packed), a @ w.t())
    float32 = kernels.blas(torch.float32)
    if platform.system() == "Linux":
        # built with OpenMP, on torch's own libgomp; asked in a fresh process, as this one may
        # hold a second OpenMP runtime by now (scikit-learn's, loaded by aeon in a data test),
        # which turns the parallel loops off
        probe = "from lstmkit.nn.fastpath import native; print(native.kernels().parallel)"
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
        assert out.stdout.strip() == "True", out.stderr
    if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        assert float32.panel is not None  # lstmkit's own GEMM, row-parallel
    else:
        assert float32.packed is not None  # MKL's packed GEMM for float32


def test_native_kernels_leave_denormals_alone():
    """Loading the kernels must not flush denormals to zero process-wide (crtfastmath.o)."""
    native.kernels()
    tiny = torch.tensor(1e-40, dtype=torch.float32)
    assert tiny.item() != 0.0 and (tiny * 2).item() != 0.0


def test_native_kernels_fall_back_without_a_compiler(
    rebuilt_kernels, monkeypatch, tmp_path, caplog
):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setattr(settings, "cache_dir", tmp_path)
    monkeypatch.setattr(native, "INSTALLED_DIR", tmp_path / "no-installed-build")
    native.kernels.cache_clear()
    try:
        assert native.kernels() is None
        assert "native kernels unavailable" in caplog.text
        model = CustomLSTM(3, 4)
        reference = torch.nn.LSTM(3, 4)
        reference.load_state_dict(model.state_dict())
        x = torch.randn(5, 2, 3)
        torch.testing.assert_close(model(x)[0], reference(x)[0])
    finally:
        native.kernels.cache_clear()


@pytest.mark.parametrize("path", ["c-loop", "python-loop", "torch-ops"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_backward_leaves_the_incoming_gradients_untouched(monkeypatch, path, num_layers):
    """The backward must not write into the gradients autograd hands it (the caller's)."""
    monkeypatch.setattr(settings, "native_loop", path == "c-loop")
    monkeypatch.setattr(settings, "native", path != "torch-ops")
    torch.manual_seed(0)
    model = CustomLSTM(3, 5, num_layers=num_layers)
    x = torch.randn(4, 2, 3, requires_grad=True)
    out, (h_n, c_n) = model(x)
    grads = [torch.randn_like(t) for t in (out, h_n, c_n)]
    before = [g.clone() for g in grads]
    torch.autograd.grad((out, h_n, c_n), (x, *model.parameters()), grads)
    for grad, kept in zip(grads, before, strict=True):
        torch.testing.assert_close(grad, kept, rtol=0, atol=0)


def _own_gemm() -> native.Blas:
    kernels = native.kernels()
    if kernels is None or not kernels.supports_sequence(torch.empty(0)):
        pytest.skip("no C time loop here")
    blas = kernels.blas(torch.float32)
    if blas.panel is None:
        pytest.skip("lstmkit's own GEMM needs an AVX-512, AVX2 or NEON build")
    return blas


@pytest.mark.parametrize("k", [1, 7, 128])
@pytest.mark.parametrize("cols", [1, 15, 16, 17, 31, 32, 33, 100, 512])
def test_own_gemm_equals_torch_mm(k, cols):
    """Every register-block height (1-8 rows, and the split of the last two blocks) and every
    column mask of a partial panel."""
    _own_gemm()
    kernels = native.kernels()
    generator = torch.Generator().manual_seed(cols * 1000 + k)
    w = torch.randn(cols, k, generator=generator)
    for rows in [*range(1, 18), 33]:
        a = torch.randn(rows, k, generator=generator)
        torch.testing.assert_close(kernels.blas_matmul(a, w), a @ w.t(), rtol=1e-5, atol=1e-5)
        # and the untransposed packing the backward uses: a @ w2 with w2 (k, cols)
        w2 = w.t().contiguous()
        packed = kernels.blas(torch.float32).pack(w2, transposed=False, rows=rows)
        out = kernels.blas_matmul(a, w, packed)  # same B, packed from the other layout
        torch.testing.assert_close(out, a @ w2, rtol=1e-5, atol=1e-5)


def test_row_ranges_split_the_work_evenly():
    assert native.row_ranges(10, None, 2) == [(0, 5), (5, 10)]
    assert native.row_ranges(10, None, 3) == [(0, 3), (3, 7), (7, 10)]
    assert native.row_ranges(2, None, 4) == [(0, 1), (1, 2)]  # never an empty range
    # rows active for 9, 3, 2, 2 steps: 16 row-steps, the first row alone is over half
    sizes = torch.tensor([4, 4, 2, 1, 1, 1, 1, 1, 1])
    assert native.row_ranges(4, sizes, 2) == [(0, 1), (1, 4)]
    # 4 rows of 3 steps each: 2 and 2
    assert native.row_ranges(4, torch.tensor([4, 4, 4]), 2) == [(0, 2), (2, 4)]


@pytest.mark.parametrize(
    "options",
    [{}, {"proj_size": 3}, {"bidirectional": True, "num_layers": 2}, {"layer_norm": True}],
    ids=str,
)
@pytest.mark.parametrize("lengths", [None, [6, 2, 5, 1, 6, 3, 4]], ids=["full", "lengths"])
def test_row_parallel_time_loop_equals_torch_ops(monkeypatch, options, lengths):
    """Rows split over 3 threads (forced on at this tiny size) give the torch-ops numbers."""
    _own_gemm()
    if not native.kernels().parallel:
        pytest.skip("the kernels are built without OpenMP here")
    monkeypatch.setattr(settings, "parallel_min_macs", 0)
    monkeypatch.setattr(settings, "parallel_min_rows", 1)
    splits = []
    row_ranges = native.row_ranges
    monkeypatch.setattr(
        native, "row_ranges", lambda *a: splits.append(row_ranges(*a)) or splits[-1]
    )
    torch.manual_seed(0)
    model = CustomLSTM(4, 6, **options)
    x = torch.randn(6, 7, 4, requires_grad=True)
    layers = model.num_layers * (2 if model.bidirectional else 1)
    state = model.proj_size or model.hidden_size
    hx = (torch.randn(layers, 7, state), torch.randn(layers, 7, 6))

    def run():
        out, (h, c) = model(x, hx, lengths=lengths)
        loss = out.sum() + (h * h).sum() + (c * c).sum()
        return [out, h, c, *torch.autograd.grad(loss, [x, *model.parameters()])]

    threads = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        parallel = run()
        assert splits and all(len(ranges) == 3 for ranges in splits), splits
        monkeypatch.setattr(settings, "native", False)
        reference = run()
    finally:
        torch.set_num_threads(threads)
    tol = 1e-4 if options.get("layer_norm") else 1e-5
    for a, b in zip(parallel, reference, strict=True):
        torch.testing.assert_close(a, b, atol=tol, rtol=tol)


@pytest.mark.parametrize("m, n", [(1, 1), (7, 5), (24, 6), (512, 8), (40, 33), (512, 128)])
@pytest.mark.parametrize("k", [1, 255, 700])  # one reduction chunk, and several (256 rows each)
def test_own_weight_grad_equals_torch(monkeypatch, m, n, k):
    """``a.T @ b`` over long reductions, alone and accumulated, on one thread and split over 3."""
    _own_gemm()
    kernels = native.kernels()
    generator = torch.Generator().manual_seed(m * n + k)
    a, b = torch.randn(k, m, generator=generator), torch.randn(k, n, generator=generator)
    start = torch.randn(m, n, generator=generator)
    expected = a.t().double() @ b.double()
    for min_macs in (1 << 62, 0):  # never / always split rows over threads
        monkeypatch.setattr(settings, "parallel_min_macs", min_macs)
        threads = torch.get_num_threads()
        torch.set_num_threads(3)
        try:
            alone = kernels.weight_grad(a, b)
            added = kernels.weight_grad(a, b, start.clone())
        finally:
            torch.set_num_threads(threads)
        torch.testing.assert_close(alone.double(), expected, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(added.double(), expected + start.double(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("min_macs", [1 << 62, 0], ids=["one-thread", "rows-split"])
def test_layer_norm_gain_grad_equals_its_formula(monkeypatch, min_macs):
    if native.kernels() is None:
        pytest.skip("no C compiler here: the native kernels are not built")
    monkeypatch.setattr(settings, "parallel_min_macs", min_macs)
    generator = torch.Generator().manual_seed(0)
    grad, x = (torch.randn(37, 24, dtype=torch.float64, generator=generator) for _ in range(2))
    mean, rstd = torch.randn(37, dtype=torch.float64), torch.rand(37, dtype=torch.float64)
    expected = (grad * (x - mean[:, None]) * rstd[:, None]).sum(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        got = native.kernels().ln_gain_grad(grad, x, torch.stack((mean, rstd)))
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "options",
    [{}, {"proj_size": 3, "bidirectional": True, "num_layers": 2}, {"layer_norm": True}],
    ids=str,
)
@pytest.mark.parametrize("lengths", [None, [6, 2, 5]], ids=["full", "lengths"])
def test_inference_forward_equals_the_training_forward(options, lengths):
    """Without grad mode the C loop keeps one step of what only the backward reads."""
    torch.manual_seed(0)
    model = CustomLSTM(4, 6, **options)
    x = torch.randn(6, 3, 4)
    with torch.no_grad():
        out, (h, c) = model(x, lengths=lengths)
    ref_out, (ref_h, ref_c) = model(x, lengths=lengths)
    for a, b in ((out, ref_out), (h, ref_h), (c, ref_c)):
        torch.testing.assert_close(a, b.detach(), rtol=0, atol=0)


@pytest.mark.slow
def test_own_gemm_built_for_avx2_equals_torch(rebuilt_kernels, monkeypatch, tmp_path):
    """The same source built for AVX2 (8-float vectors, 6-row blocks, 16-column panels) where this
    CPU also runs AVX-512: both GEMMs against torch, partial panels and row blocks included."""
    if platform.machine() != "x86_64" or torch.backends.cpu.get_cpu_capability() != "AVX512":
        pytest.skip("needs an x86-64 CPU that runs both builds")
    monkeypatch.setattr(native, "runnable_variants", lambda: ["avx2"])
    monkeypatch.setattr(native, "INSTALLED_DIR", tmp_path / "no-installed-build")
    monkeypatch.setattr(settings, "cache_dir", tmp_path)
    native.kernels.cache_clear()
    try:
        kernels = native.kernels()
        assert kernels is not None and kernels.blas(torch.float32).panel[2] == 16
        generator = torch.Generator().manual_seed(0)
        for rows, cols, k in [(1, 5, 3), (13, 40, 17), (32, 512, 128)]:
            a, w = (torch.randn(r, k, generator=generator) for r in (rows, cols))
            torch.testing.assert_close(kernels.blas_matmul(a, w), a @ w.t(), rtol=1e-5, atol=1e-5)
            d, h = (
                torch.randn(300, cols, generator=generator),
                torch.randn(300, k, generator=generator),
            )
            torch.testing.assert_close(kernels.weight_grad(d, h), d.t() @ h, rtol=1e-4, atol=1e-4)
    finally:
        native.kernels.cache_clear()


@pytest.mark.parametrize("lengths", [None, [6, 2, 5]], ids=["full", "lengths"])
def test_kept_workspace_gives_the_numbers_of_fresh_buffers(monkeypatch, lengths):
    """The backward's temporaries are reused between calls: a larger call, then a smaller one
    with variable lengths (stale rows must read as zeros), equal fresh buffers bit for bit."""
    torch.manual_seed(0)
    model = CustomLSTM(4, 6, layer_norm=True, proj_size=3)
    big = torch.randn(9, 5, 4)
    x = torch.randn(6, 3, 4, requires_grad=True)

    def grads():
        out, (h, c) = model(x, lengths=lengths)
        loss = out.sum() + (h * h).sum() + (c * c).sum()
        return torch.autograd.grad(loss, [x, *model.parameters()])

    fused.release_workspace()
    model(big)[0].sum().backward()  # leaves larger buffers, full of other numbers
    model.zero_grad()
    kept = grads()
    buffers = dict(fused._WORKSPACE.buffers)
    assert buffers and all(b.numel() >= 9 * 5 * 3 for b in buffers.values())
    monkeypatch.setattr(settings, "reuse_workspace", False)
    fresh = grads()
    for a, b in zip(kept, fresh, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    fused.release_workspace()
    assert not hasattr(fused._WORKSPACE, "buffers")


@pytest.mark.parametrize("native_on", [True, False], ids=["native", "torch"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_feature_projection_equals_linear(monkeypatch, native_on, dtype):
    """With one input feature the projection runs as an outer product (`fused._OuterLinear`, its
    backward one C pass where the kernels run): values, gradients and NaN positions equal
    ``F.linear``'s, double backward included."""
    monkeypatch.setattr(settings, "native", native_on)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(7, 5, 1, dtype=dtype, generator=generator)
    x[2, 3, 0] = float("nan")
    weight = torch.randn(12, 1, dtype=dtype, generator=generator)
    bias = torch.randn(12, dtype=dtype, generator=generator)
    grad = torch.randn(7, 5, 12, dtype=dtype, generator=generator)
    results = []
    for project in (fused.project_input, torch.nn.functional.linear):
        inputs = [t.clone().requires_grad_(True) for t in (x, weight, bias)]
        out = project(*inputs)
        results.append([out, *torch.autograd.grad(out, inputs, grad)])
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    for a, b in zip(*results, strict=True):
        assert torch.equal(a.isnan(), b.isnan())
        torch.testing.assert_close(a, b, atol=tol, rtol=tol, equal_nan=True)
    # double backward (create_graph): the differentiable formulas
    inputs = [t.clone().requires_grad_(True) for t in (x.nan_to_num(), weight, bias)]
    first = torch.autograd.grad(fused.project_input(*inputs), inputs, grad, create_graph=True)
    second = torch.autograd.grad(sum(g.square().sum() for g in first), inputs[:2])
    inputs_ref = [t.detach().clone().requires_grad_(True) for t in inputs]
    first_ref = torch.autograd.grad(
        torch.nn.functional.linear(*inputs_ref), inputs_ref, grad, create_graph=True
    )
    second_ref = torch.autograd.grad(sum(g.square().sum() for g in first_ref), inputs_ref[:2])
    for a, b in zip(second, second_ref, strict=True):
        torch.testing.assert_close(a, b, atol=tol, rtol=tol)
