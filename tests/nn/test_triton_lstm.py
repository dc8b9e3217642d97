"""The Triton LSTM kernels (`lstmkit.nn.fastpath.triton_lstm`) against a float64 autograd reference.

Without a CUDA device the kernels run on CPU tensors in Triton's interpreter
(``TRITON_INTERPRET=1``, set here before triton is first imported); the ``cuda``-marked test
runs the same checks compiled on a GPU at larger shapes. Each case compares outputs, final
states and every gradient (xp, h0, c0, weight_hh, peephole, both layer norms), with and without
``batch_sizes``, in float32 (tight) and bfloat16/float16 (loose: the kernels store activations
and outputs in the input dtype). The reference is itself checked against
`FusedLSTMLayer` (the torch-op layer the kernels replace).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton", reason="triton is not installed: pip install 'lstmkit[gpu]'")

from lstmkit.nn.cell import LAYER_NORM_EPS
from lstmkit.nn.fastpath import fused, triton_lstm

# Triton's interpreter on CPU, ~15 s for the two modules: make test runs them, make check does not
pytestmark = pytest.mark.slow

INTERPRETED = triton_lstm.interpreted()
GRAD_NAMES = triton_lstm.BackwardResult._fields
# The kernels compute in float32, but store activations, outputs and the GEMMs' operands in the
# input dtype, and GEMMs sum in another order than float64's: their errors add up over the
# steps like those of the same equations run in torch ops in that dtype. So each tensor's
# largest error may be at most 3x that of torch ops in the same dtype (CPU), or a floor share
# of the tensor's largest entry (torch ops in bf16/fp16 miss by up to 3 % / 0.5 % of it here;
# a bf16 peephole gradient, a sum of 240 rounded products at T=12, B=20, by 3.4 %).
FLOOR = {torch.float32: 1e-5, torch.bfloat16: 0.04, torch.float16: 0.004}
SIZES = [3, 3, 2, 1]  # PackedSequence batch sizes for T=4, B=3


@dataclass(frozen=True)
class Variant:
    """Which options of the layer are on. Zoneout: None, "mask" or a keep rate."""

    name: str
    layer_norm: bool = False
    peephole: bool = False
    recurrent_mask: bool = False
    zoneout_h: str | float | None = None
    zoneout_c: str | float | None = None


VARIANTS = [
    Variant("plain"),
    Variant("layer_norm", layer_norm=True),
    Variant("peephole", peephole=True),
    Variant("zoneout_masks", zoneout_h="mask", zoneout_c="mask"),
    Variant("zoneout_rates", zoneout_h=0.3, zoneout_c=0.6),
    Variant("zoneout_h_only", zoneout_h="mask"),
    Variant("zoneout_c_rate_only", zoneout_c=0.25),
    Variant("recurrent_mask", recurrent_mask=True),
    Variant("ln_peephole_zoneout", layer_norm=True, peephole=True, zoneout_h=0.2, zoneout_c="mask"),
    Variant(
        "all",
        layer_norm=True,
        peephole=True,
        recurrent_mask=True,
        zoneout_h="mask",
        zoneout_c="mask",
    ),
]


def make_inputs(variant: Variant, steps: int, batch: int, hidden: int, seed: int = 0) -> dict:
    """Random float64 inputs of `triton_lstm.forward` for one variant (CPU)."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape: int, scale: float = 1.0) -> Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64) * scale

    def keep_mask(*shape: int) -> Tensor:
        return (torch.rand(*shape, generator=gen, dtype=torch.float64) < 0.5).double()

    gates = 4 * hidden
    inputs = {
        "xp": randn(steps, batch, gates),
        "h0": randn(batch, hidden, scale=0.5),
        "c0": randn(batch, hidden, scale=0.5),
        "weight_hh": randn(gates, hidden, scale=hidden**-0.5),  # torch's init scale
    }
    if variant.peephole:
        inputs["peephole"] = randn(3, hidden, scale=0.5)
    if variant.layer_norm:
        inputs["ln_hh"] = 1 + randn(gates, scale=0.2)
        inputs["ln_cell_weight"] = 1 + randn(hidden, scale=0.2)
        inputs["ln_cell_bias"] = randn(hidden, scale=0.2)
    if variant.recurrent_mask:
        inputs["recurrent_mask"] = keep_mask(batch, hidden) * 2  # inverted-dropout scale
    for name in ("zoneout_h", "zoneout_c"):
        z = getattr(variant, name)
        if z == "mask":
            inputs[name] = keep_mask(steps, batch, hidden)
        elif z is not None:
            inputs[name] = z
    return inputs


def reference(
    xp, h0, c0, weight_hh, *, peephole=None, ln_hh=None, ln_cell_weight=None,
    ln_cell_bias=None, recurrent_mask=None, zoneout_h=None, zoneout_c=None, batch_sizes=None,
):  # fmt: skip
    """The layer's equations step by step in torch ops (gate order o, i, f, g), for autograd.

    Returns ``out (T, B, H)`` (zero at inactive rows), ``h_n``, ``c_n`` (each row's last)."""
    steps, batch, gates = xp.shape
    hidden = gates // 4
    h, c, outs = h0, c0, []
    for t in range(steps):
        n = batch if batch_sizes is None else batch_sizes[t]
        h_prev, c_prev = h[:n], c[:n]
        h_in = h_prev if recurrent_mask is None else h_prev * recurrent_mask[:n]
        z = h_in @ weight_hh.t()
        if ln_hh is not None:
            z = F.layer_norm(z, (gates,), ln_hh, None, LAYER_NORM_EPS)
        a_o, a_i, a_f, a_g = (xp[t, :n] + z).split(hidden, dim=-1)
        if peephole is not None:
            a_i, a_f = a_i + peephole[0] * c_prev, a_f + peephole[1] * c_prev
        i, f, g = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g)
        c_hat = f * c_prev + i * g
        if peephole is not None:
            a_o = a_o + peephole[2] * c_hat
        o = torch.sigmoid(a_o)
        c_norm = c_hat
        if ln_cell_weight is not None:
            c_norm = F.layer_norm(c_hat, (hidden,), ln_cell_weight, ln_cell_bias, LAYER_NORM_EPS)
        h_new, c_new = o * torch.tanh(c_norm), c_hat
        if zoneout_h is not None:
            keep = zoneout_h[t, :n] if isinstance(zoneout_h, Tensor) else zoneout_h
            h_new = torch.lerp(h_new, h_prev, keep)
        if zoneout_c is not None:
            keep = zoneout_c[t, :n] if isinstance(zoneout_c, Tensor) else zoneout_c
            c_new = torch.lerp(c_hat, c_prev, keep)
        outs.append(F.pad(h_new, (0, 0, 0, batch - n)))
        h, c = torch.cat((h_new, h[n:])), torch.cat((c_new, c[n:]))
    return torch.stack(outs), h, c


def _differentiable(inputs: dict) -> list[str]:
    skip = ("recurrent_mask", "zoneout_h", "zoneout_c")
    return [k for k, v in inputs.items() if isinstance(v, Tensor) and k not in skip]


def reference_grads(inputs: dict, batch_sizes, upstream: tuple[Tensor, Tensor, Tensor]):
    """Reference outputs and gradients (float64, autograd) for `inputs` (float64)."""
    leaves = {
        k: v.detach().clone().requires_grad_(k in _differentiable(inputs))
        if isinstance(v, Tensor)
        else v
        for k, v in inputs.items()
    }
    outs = reference(**leaves, batch_sizes=batch_sizes)
    torch.autograd.backward(outs, upstream)
    grads = {k: leaves[k].grad for k in _differentiable(inputs)}
    return [o.detach() for o in outs], grads


def check(
    variant: Variant, dtype, batch_sizes, *, steps=4, batch=3, hidden=6, device="cpu",
    persistent=False,
):  # fmt: skip
    """Kernel forward and backward in ``dtype`` against the float64 reference on the same
    (rounded) inputs: outputs, final states, every gradient. ``persistent``: the
    whole-sequence kernels instead of the per-step ones."""
    inputs = make_inputs(variant, steps, batch, hidden)
    # round once to dtype so both sides see the same numbers
    inputs = {k: v.to(dtype).double() if isinstance(v, Tensor) else v for k, v in inputs.items()}
    gen = torch.Generator().manual_seed(1)
    upstream = tuple(
        torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype).double()
        for shape in ((steps, batch, hidden), (batch, hidden), (batch, hidden))
    )
    if batch_sizes is not None:  # padded outputs get no gradient in a real layer either
        for t, n in enumerate(batch_sizes):
            upstream[0][t, n:] = 0
    expected_outs, expected_grads = reference_grads(inputs, batch_sizes, upstream)
    # what torch ops in this dtype miss by (CPU)
    low = {k: v.to(dtype) if isinstance(v, Tensor) else v for k, v in inputs.items()}
    outs, grads = reference_grads(low, batch_sizes, tuple(u.to(dtype) for u in upstream))
    torch_errors = {
        name: (got.double() - want).abs().max().item()
        for name, got, want in [
            *zip(("out", "h_n", "c_n"), outs, expected_outs, strict=True),
            *((f"d {k}", grads[k], expected_grads[k]) for k in expected_grads),
        ]
    }

    ours = {
        k: v.to(device=device, dtype=dtype) if isinstance(v, Tensor) else v
        for k, v in inputs.items()
    }
    sizes = None if batch_sizes is None else torch.tensor(batch_sizes)
    result = triton_lstm.forward(**ours, batch_sizes=sizes, persistent=persistent)
    grads = triton_lstm.backward(
        result, *(u.to(device=device, dtype=dtype) for u in upstream), persistent=persistent
    )

    specs = triton_lstm.saved_specs(
        steps, batch, hidden, dtype, layer_norm=variant.layer_norm,
        cell_layer_norm=variant.layer_norm, zoneout_c=variant.zoneout_c is not None,
    )  # fmt: skip
    for name, spec in specs.items():  # what a fake implementation would promise
        buffer = getattr(result, name)
        assert (None if buffer is None else (buffer.shape, buffer.dtype)) == spec, name
    for what, actual, expected in zip(
        ("out", "h_n", "c_n"), result[:3], expected_outs, strict=True
    ):
        assert_close(actual, expected, dtype, what, torch_errors[what])
    for name in GRAD_NAMES:
        actual = getattr(grads, name)
        if name not in expected_grads:
            assert actual is None, f"d {name} should be None"
            continue
        what = f"d {name}"
        assert_close(actual, expected_grads[name], dtype, what, torch_errors[what])


def assert_close(actual: Tensor, expected: Tensor, dtype, what: str, torch_error: float) -> None:
    """See `FLOOR`."""
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype}"
    atol = max(3 * torch_error, FLOOR[dtype] * expected.abs().max().item())
    torch.testing.assert_close(
        actual.double().cpu(), expected, atol=atol, rtol=0.0, msg=lambda m: f"{what}: {m}"
    )


DTYPES = [torch.float32, torch.bfloat16, torch.float16]
DTYPE_IDS = ["f32", "bf16", "f16"]


@pytest.mark.skipif(not INTERPRETED, reason="the interpreter runs on CPU; see the cuda test")
@pytest.mark.parametrize("packed", [False, True], ids=["full", "batch_sizes"])
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_kernels_float32(variant, packed):
    check(variant, torch.float32, SIZES if packed else None)


@pytest.mark.skipif(not INTERPRETED, reason="the interpreter runs on CPU; see the cuda test")
@pytest.mark.parametrize("packed", [False, True], ids=["full", "batch_sizes"])
@pytest.mark.parametrize("dtype", DTYPES[1:], ids=DTYPE_IDS[1:])
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_kernels_half_precision(variant, dtype, packed):
    check(variant, dtype, SIZES if packed else None)


@pytest.mark.skipif(not INTERPRETED, reason="the interpreter runs on CPU; see the cuda test")
@pytest.mark.parametrize("packed", [False, True], ids=["full", "batch_sizes"])
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_whole_sequence_kernels_float32(variant, packed):
    check(variant, torch.float32, SIZES if packed else None, persistent=True)


@pytest.mark.skipif(not INTERPRETED, reason="the interpreter runs on CPU; see the cuda test")
@pytest.mark.parametrize("dtype", DTYPES[1:], ids=DTYPE_IDS[1:])
@pytest.mark.parametrize("variant", [VARIANTS[0], VARIANTS[-1]], ids=lambda v: v.name)
def test_whole_sequence_kernels_half_precision(variant, dtype):
    check(variant, dtype, SIZES, persistent=True)


@pytest.mark.skipif(not INTERPRETED, reason="the interpreter runs on CPU; see the cuda test")
def test_whole_sequence_kernels_several_programs():
    """More rows than one program holds (20 rows, 16 a program), with batch_sizes."""
    sizes = [20, 17, 16, 9]
    check(VARIANTS[-1], torch.float32, sizes, batch=20, persistent=True)


@pytest.mark.skipif(not INTERPRETED, reason="the interpreter runs on CPU; see the cuda test")
@pytest.mark.parametrize("variant", [VARIANTS[0], VARIANTS[4]], ids=lambda v: v.name)
def test_kernels_split_rows(monkeypatch, variant):
    """Without layer norm a row is split over several programs (here 6 units in blocks of 4)."""
    monkeypatch.setattr(triton_lstm, "BLOCK_PLAIN", 4)
    check(variant, torch.float32, SIZES)


def _fused_forward(inputs: dict, sizes) -> tuple[Tensor, Tensor, Tensor]:
    """``out, h_n, c_n`` of `lstmkit.nn.fastpath.fused`'s layer (through whichever entry point this
    version of it has: `layer_forward` with `LayerInputs`, or `FusedLSTMLayer`)."""
    g = inputs.get
    if hasattr(fused, "layer_forward"):
        rates = {
            f"{name}_rate": g(name) for name in ("zoneout_h", "zoneout_c")
            if g(name) is not None and not isinstance(g(name), Tensor)
        }  # fmt: skip
        tensors = {k: v for k, v in inputs.items() if isinstance(v, Tensor)}
        batch_sizes = None if sizes is None else torch.tensor(sizes)
        layer = fused.LayerInputs(**tensors, **rates, batch_sizes=batch_sizes)
        return fused.layer_forward(layer)[:3]
    return fused.FusedLSTMLayer.apply(
        inputs["xp"], inputs["h0"], inputs["c0"], inputs["weight_hh"], None, g("peephole"),
        g("ln_hh"), g("ln_cell_weight"), g("ln_cell_bias"), g("recurrent_mask"),
        g("zoneout_h"), g("zoneout_c"), sizes,
    )  # fmt: skip


@pytest.mark.parametrize("packed", [False, True], ids=["full", "batch_sizes"])
@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_reference_matches_fused_layer(variant, packed):
    """The test's reference computes what `lstmkit.nn.fastpath.fused`'s layer (torch ops) computes."""
    inputs = make_inputs(variant, 4, 3, 6)
    sizes = SIZES if packed else None
    ours = reference(**inputs, batch_sizes=sizes)
    for a, b in zip(ours, _fused_forward(inputs, sizes), strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


@pytest.mark.skipif(not INTERPRETED, reason="the interpreter runs on CPU")
@pytest.mark.parametrize("persistent", [False, True], ids=["per_step", "whole_sequence"])
@pytest.mark.parametrize("variant", [VARIANTS[1], VARIANTS[-1]], ids=lambda v: v.name)
def test_keep_false_saves_nothing_and_computes_the_same(variant, persistent):
    inputs = {
        k: v.float() if isinstance(v, Tensor) else v
        for k, v in make_inputs(variant, 4, 3, 6).items()
    }
    kept = triton_lstm.forward(**inputs, batch_sizes=SIZES, persistent=persistent)
    lean = triton_lstm.forward(**inputs, batch_sizes=SIZES, persistent=persistent, keep=False)
    for a, b in zip(kept[:3], lean[:3], strict=True):
        assert torch.equal(a, b)
    assert all(getattr(lean, name) is None for name in triton_lstm.SAVED_BUFFERS[2:])
    with pytest.raises(ValueError, match="keep=False"):
        triton_lstm.backward(lean, None, None, None)


def test_supports_names_what_it_does_not_cover():
    xp = torch.zeros(2, 1, 16)
    assert triton_lstm.supports(xp.double()) == (
        "dtype torch.float64 (the Triton kernels take float32, bfloat16, float16)"
    )
    assert "proj_size" in triton_lstm.supports(xp, proj=True)
    big = torch.zeros(1, 1, 4 * (triton_lstm.MAX_LN_HIDDEN + 1))
    assert "with layer norm" in triton_lstm.supports(big, layer_norm=True)
    assert triton_lstm.supports(big) in (None, "device cpu (the Triton kernels run on CUDA)")


def test_supports_cpu_only_in_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert triton_lstm.supports(torch.zeros(2, 1, 16)) == (
        "device cpu (the Triton kernels run on CUDA)"
    )
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert triton_lstm.supports(torch.zeros(2, 1, 16)) is None


def test_missing_triton_is_a_clear_import_error(monkeypatch):
    monkeypatch.setattr(triton_lstm, "available", lambda: False)
    triton_lstm._kernels.cache_clear()
    try:
        assert "pip install 'lstmkit[gpu]'" in triton_lstm.supports(torch.zeros(1, 1, 4))
        with pytest.raises(ImportError, match=r"pip install 'lstmkit\[gpu\]'"):
            triton_lstm.forward(torch.zeros(1, 1, 4), *[torch.zeros(1, 1)] * 2, torch.zeros(4, 1))
    finally:
        triton_lstm._kernels.cache_clear()


@pytest.mark.skipif(not INTERPRETED, reason="the interpreter runs on CPU")
def test_bad_batch_sizes_are_refused():
    inputs = make_inputs(VARIANTS[0], 3, 2, 4)
    inputs = {k: v.float() for k, v in inputs.items()}
    with pytest.raises(ValueError, match="non-increasing"):
        triton_lstm.forward(**inputs, batch_sizes=torch.tensor([1, 2, 2]))


CUDA_SIZES = [8] * 4 + [7, 7, 5, 5, 3, 2, 2, 1]
# Each variant and dtype compiles its own kernels on a GPU (~1-2 s each): every variant in
# float32, the plain and the all-options one in bf16/fp16 (with batch_sizes).
CUDA_CASES = [
    *((v, torch.float32, packed) for v in VARIANTS for packed in (False, True)),
    *((v, d, True) for v in (VARIANTS[0], VARIANTS[-1]) for d in DTYPES[1:]),
]


def _case_id(case) -> str:
    variant, dtype, packed = case
    return f"{variant.name}-{DTYPE_IDS[DTYPES.index(dtype)]}-{'batch_sizes' if packed else 'full'}"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("case", CUDA_CASES, ids=_case_id)
def test_kernels_cuda(case):
    """Compiled on a GPU, at a shape where a row spans several warps, and without layer norm
    two programs (H=300: blocks of 256, the second one partly masked)."""
    variant, dtype, packed = case
    sizes = CUDA_SIZES if packed else None
    check(variant, dtype, sizes, steps=12, batch=8, hidden=300, device="cuda")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("case", CUDA_CASES, ids=_case_id)
def test_whole_sequence_kernels_cuda(case):
    """The whole-sequence kernels compiled on a GPU: H=200 (a 256-wide tile, partly masked),
    20 rows (two programs of 16)."""
    variant, dtype, packed = case
    sizes = [20] * 4 + [17, 16, 16, 9, 9, 4, 2, 1] if packed else None
    check(variant, dtype, sizes, steps=12, batch=20, hidden=200, device="cuda", persistent=True)
