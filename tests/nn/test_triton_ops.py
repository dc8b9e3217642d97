"""CustomLSTM through the Triton operator (`lstmkit.nn.fastpath.triton_ops`), in Triton's interpreter
on CPU: the same outputs and gradients as the torch-op path, opcheck, double backward.

On CUDA the operator runs the compiled kernels; here (no GPU) ``covers`` is widened to the
interpreted CPU tensors, at tiny shapes (the interpreter is ~1000x slower than torch ops)."""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported
pytest.importorskip("triton", reason="Triton is not installed: pip install 'lstmkit[gpu]'")

from lstmkit.nn import CustomLSTM
from lstmkit.nn.fastpath import triton_lstm, triton_ops
from lstmkit.nn.settings import flags, settings

# Triton's interpreter on CPU, ~15 s for the two modules: make test runs them, make check does not
pytestmark = pytest.mark.slow


@pytest.fixture
def through_triton(monkeypatch):
    """Route every layer Triton supports through its operator, and count the calls."""
    if torch.cuda.is_available() or not triton_lstm.interpreted():
        pytest.skip("these run the interpreter on CPU (the cuda tests cover a GPU)")
    calls = []
    run = triton_ops.run_layer

    def covers(inputs):
        if not settings.triton:
            return False
        layer_norm = inputs.ln_hh is not None or inputs.ln_cell_weight is not None
        proj = inputs.weight_hr is not None
        return triton_lstm.supports(inputs.xp, proj=proj, layer_norm=layer_norm) is None

    monkeypatch.setattr(triton_ops, "covers", covers)
    monkeypatch.setattr(triton_ops, "run_layer", lambda *a: calls.append(1) or run(*a))
    return calls


def _grads(model, x, lengths):
    torch.manual_seed(1)  # the same dropout/zoneout masks in both runs
    x = x.clone().requires_grad_(True)
    out, (h, c) = model(x, lengths=lengths)
    loss = (out * out).sum() + (h * 2).sum() + c.sum()
    return [out, h, c, *torch.autograd.grad(loss, [x, *model.parameters()])]


@pytest.mark.parametrize("lengths", [None, [3, 1]], ids=["full", "lengths"])
@pytest.mark.parametrize(
    "options",
    [{}, {"layer_norm": True}, {"peephole": True, "zoneout": 0.3, "recurrent_dropout": 0.2},
     {"bidirectional": True}],
    ids=["plain", "layernorm", "peephole-zoneout-rd", "bidirectional"],
)  # fmt: skip
def test_custom_lstm_through_triton_equals_torch_ops(through_triton, options, lengths):
    torch.manual_seed(0)
    model = CustomLSTM(2, 4, **options)
    x = torch.randn(3, 2, 2)
    got = _grads(model, x, lengths)
    assert through_triton, "the Triton operator did not run"
    with flags(triton=False, native=False):
        calls = len(through_triton)
        expected = _grads(model, x, lengths)
        assert len(through_triton) == calls  # the reference ran the torch-op path
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_proj_size_falls_back_to_the_general_operator(through_triton):
    model = CustomLSTM(2, 4, proj_size=2)
    model(torch.randn(3, 2, 2))
    assert not through_triton


def test_triton_operator_opcheck(through_triton):
    torch.manual_seed(0)
    xp, h0, c0 = torch.randn(3, 2, 16), torch.randn(2, 4), torch.randn(2, 4)
    weight_hh = torch.randn(16, 4) * 0.3
    args = [t.requires_grad_(True) for t in (xp, h0, c0, weight_hh)]
    sizes = torch.tensor([2, 2, 1])
    torch.library.opcheck(
        torch.ops.lstmkit.lstm_layer_triton.default,
        (*args, None, None, None, None, None, None, None, 0.0, 0.0, sizes, True),
        test_utils=("test_schema", "test_autograd_registration", "test_faketensor"),
    )


def test_double_backward_through_triton(through_triton):
    """A gradient penalty: the second derivative comes from the composite layer, exactly."""
    torch.manual_seed(0)
    model = CustomLSTM(2, 4)
    x = torch.randn(3, 2, 2)

    def penalty():
        xg = x.clone().requires_grad_(True)
        out, _ = model(xg)
        (g,) = torch.autograd.grad(out.pow(2).sum(), xg, create_graph=True)
        return torch.autograd.grad(g.pow(2).sum(), list(model.parameters()))

    got = penalty()
    assert through_triton
    calls = len(through_triton)
    with flags(triton=False, native=False):
        expected = penalty()
    assert len(through_triton) == calls
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
