"""Parity of CustomLSTM (fused and reference), CudnnLSTM and LSTMCell with torch.nn.LSTM(Cell).

Weights are copied with ``load_state_dict`` in both directions (torch -> ours and ours ->
torch). Compared: ``output``, ``h_n``, ``c_n`` and the gradients of the input, the initial
state and every parameter under a random upstream gradient on output, h_n and c_n.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from lstm_testing import (
    BATCH,
    DTYPE_IDS,
    FORMS,
    HIDDEN,
    INPUT,
    OUR_BACKENDS,
    SEQ,
    TENSOR_FORM,
    Cfg,
    check_against_reference,
    copy_weights,
    make_input,
    make_ours,
    random_state,
)

from lstmkit.nn import LSTMCell

# Full grid (float64): num_layers 1-3 x bidirectional x batch_first x proj_size x bias x h0.
FULL_GRID = [
    Cfg(layers, bidir, bf, proj, bias, init)
    for layers, bidir, bf, proj, bias, init in itertools.product(
        (1, 2, 3), (False, True), (False, True), (0, 2), (True, False), (False, True)
    )
]

# A slice of the grid for float32: every num_layers, bidirectional and proj value at least once,
# each of the other switches on and off.
F32_SLICE = [
    Cfg(1, False, False, 0, True, False),
    Cfg(1, True, True, 2, True, True),
    Cfg(2, True, False, 0, False, True),
    Cfg(2, False, True, 3, True, False),
    Cfg(3, True, True, 2, True, True),
    Cfg(3, False, False, 0, False, False),
]

# Configurations for the input forms (unbatched, packed, lengths=).
FORM_CFGS = [
    Cfg(1, False, False, 0, True, False),
    Cfg(2, True, True, 0, True, True),
    Cfg(3, True, False, 2, False, True),
    Cfg(2, False, True, 3, True, False),
]
FORM_CFGS_F32 = [FORM_CFGS[1], FORM_CFGS[2]]

COPY_DIRECTIONS = ("torch_to_ours", "ours_to_torch")


def _build_pair(backend, cfg: Cfg, dtype, copy: str = "torch_to_ours", device="cpu"):
    torch.manual_seed(7)
    ref = torch.nn.LSTM(INPUT, HIDDEN, **cfg.lstm_kwargs(), dtype=dtype, device=device)
    ours = make_ours(backend, INPUT, HIDDEN, **cfg.lstm_kwargs(), dtype=dtype, device=device)
    if copy == "torch_to_ours":
        copy_weights(ref, ours)
    else:
        copy_weights(ours, ref)
    return ours, ref


def _run_parity(backend, cfg: Cfg, form, dtype, copy="torch_to_ours", device="cpu"):
    ours, ref = _build_pair(backend, cfg, dtype, copy, device)
    gen = torch.Generator().manual_seed(99)
    x = make_input(cfg, form, gen, dtype, device)
    hx = None
    if cfg.init_state:
        hx = random_state(cfg, None if form.kind == "unbatched" else BATCH, gen, dtype, device)
    check_against_reference(ours, ref, x, hx, form, cfg.batch_first, dtype)


@pytest.mark.parametrize("copy", COPY_DIRECTIONS)
@pytest.mark.parametrize("cfg", FULL_GRID, ids=lambda c: c.id)
@pytest.mark.parametrize("backend", OUR_BACKENDS)
def test_parity_full_grid_float64(backend, cfg, copy):
    _run_parity(backend, cfg, TENSOR_FORM, torch.float64, copy)


@pytest.mark.parametrize("copy", COPY_DIRECTIONS)
@pytest.mark.parametrize("cfg", F32_SLICE, ids=lambda c: c.id)
@pytest.mark.parametrize("backend", OUR_BACKENDS)
def test_parity_slice_float32(backend, cfg, copy):
    _run_parity(backend, cfg, TENSOR_FORM, torch.float32, copy)


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f.name)
@pytest.mark.parametrize("cfg", FORM_CFGS, ids=lambda c: c.id)
@pytest.mark.parametrize("backend", OUR_BACKENDS)
def test_parity_input_forms_float64(backend, cfg, form):
    _run_parity(backend, cfg, form, torch.float64)


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f.name)
@pytest.mark.parametrize("cfg", FORM_CFGS_F32, ids=lambda c: c.id)
@pytest.mark.parametrize("backend", OUR_BACKENDS)
def test_parity_input_forms_float32(backend, cfg, form):
    _run_parity(backend, cfg, form, torch.float32, copy="ours_to_torch")


@pytest.mark.parametrize("backend", OUR_BACKENDS)
def test_lengths_equal_to_plain_run_when_all_full(backend):
    """``lengths`` all equal to T gives exactly the plain run's numbers."""
    cfg = Cfg(2, True, False, 0, True, True)
    ours, _ = _build_pair(backend, cfg, torch.float64)
    gen = torch.Generator().manual_seed(3)
    x = make_input(cfg, TENSOR_FORM, gen, torch.float64)
    hx = random_state(cfg, BATCH, gen)
    out, (h, c) = ours(x, hx)
    out_l, (h_l, c_l) = ours(x, hx, lengths=torch.full((BATCH,), SEQ))
    torch.testing.assert_close(out_l, out, atol=1e-12, rtol=0)
    torch.testing.assert_close(h_l, h, atol=1e-12, rtol=0)
    torch.testing.assert_close(c_l, c, atol=1e-12, rtol=0)


@pytest.mark.parametrize("backend", OUR_BACKENDS)
def test_lengths_independent_of_padding_values(backend):
    """Whatever sits in the padded steps changes nothing (forward values)."""
    cfg = Cfg(2, True, True, 2, True, True)
    ours, _ = _build_pair(backend, cfg, torch.float64)
    gen = torch.Generator().manual_seed(4)
    x = make_input(cfg, TENSOR_FORM, gen, torch.float64)
    hx = random_state(cfg, BATCH, gen)
    lengths = [2, 6, 1, 4]
    out, (h, c) = ours(x, hx, lengths=lengths)
    x2 = x.clone()
    for b, n in enumerate(lengths):
        x2[b, n:] = 1e3 * torch.randn(x2[b, n:].shape, generator=gen, dtype=x.dtype)
    out2, (h2, c2) = ours(x2, hx, lengths=lengths)
    assert torch.equal(out, out2)
    assert torch.equal(h, h2)
    assert torch.equal(c, c2)


@pytest.mark.parametrize("backend", OUR_BACKENDS)
def test_eval_mode_with_inter_layer_dropout_matches_torch(backend):
    """``dropout`` between layers is inactive in eval mode, as in torch.nn.LSTM."""
    torch.manual_seed(5)
    ref = torch.nn.LSTM(INPUT, HIDDEN, num_layers=3, dropout=0.5, dtype=torch.float64).eval()
    ours = make_ours(backend, INPUT, HIDDEN, num_layers=3, dropout=0.5, dtype=torch.float64)
    ours.eval()
    copy_weights(ref, ours)
    gen = torch.Generator().manual_seed(6)
    x = make_input(Cfg(3), TENSOR_FORM, gen, torch.float64)
    check_against_reference(ours, ref, x, None, TENSOR_FORM, False, torch.float64)


@pytest.mark.parametrize("backend", OUR_BACKENDS)
def test_train_mode_inter_layer_dropout_is_active(backend):
    ours = make_ours(backend, INPUT, HIDDEN, num_layers=2, dropout=0.5, dtype=torch.float64)
    gen = torch.Generator().manual_seed(8)
    x = make_input(Cfg(2), TENSOR_FORM, gen, torch.float64)
    ours.eval()
    out_eval, _ = ours(x)
    ours.train()
    out_train, _ = ours(x)
    assert not torch.allclose(out_train, out_eval)


# ---------------------------------------------------------------------- LSTMCell
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=DTYPE_IDS.get)
@pytest.mark.parametrize("copy", COPY_DIRECTIONS)
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("with_state", [True, False], ids=["hx", "nohx"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_lstm_cell_parity(bias, with_state, batched, copy, dtype):
    torch.manual_seed(11)
    ref = torch.nn.LSTMCell(INPUT, HIDDEN, bias=bias, dtype=dtype)
    ours = LSTMCell(INPUT, HIDDEN, bias=bias, dtype=dtype)
    if copy == "torch_to_ours":
        copy_weights(ref, ours)
    else:
        copy_weights(ours, ref)
    gen = torch.Generator().manual_seed(12)
    lead = (BATCH,) if batched else ()
    steps = 3
    x = torch.randn(steps, *lead, INPUT, generator=gen, dtype=dtype)
    hx = None
    if with_state:
        hx = (
            torch.randn(*lead, HIDDEN, generator=gen, dtype=dtype),
            torch.randn(*lead, HIDDEN, generator=gen, dtype=dtype),
        )
    upstream = torch.randn(steps, 2, *lead, HIDDEN, generator=gen, dtype=dtype)

    def run(cell):
        xs = x.clone().requires_grad_(True)
        leaves = [xs]
        state = hx
        if hx is not None:
            state = tuple(t.clone().requires_grad_(True) for t in hx)
            leaves += list(state)
        outs = []
        for t in range(steps):
            state = cell(xs[t], state)
            assert isinstance(state, tuple) and len(state) == 2
            outs.append(torch.stack(state))
        out = torch.stack(outs)
        params = dict(cell.named_parameters())
        grads = torch.autograd.grad((out * upstream).sum(), leaves + list(params.values()))
        return out.detach(), dict(
            zip(["x", "h0", "c0"][: len(leaves)] + list(params), grads, strict=True)
        )

    out_ours, g_ours = run(ours)
    out_ref, g_ref = run(ref)
    tol = {"atol": 1e-10, "rtol": 1e-10} if dtype == torch.float64 else {"atol": 1e-5, "rtol": 1e-5}
    assert out_ours.shape == out_ref.shape
    torch.testing.assert_close(out_ours, out_ref, **tol)
    assert set(g_ours) == set(g_ref)
    for name in g_ref:
        torch.testing.assert_close(g_ours[name], g_ref[name], **tol, msg=f"grad of {name}")
