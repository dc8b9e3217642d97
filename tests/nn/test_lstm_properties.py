"""Property-based parity: random shapes, options and lengths, CustomLSTM vs torch.nn.LSTM."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from lstm_testing import Cfg, Form, check_against_reference, copy_weights

from lstmkit.nn import CustomLSTM

SETTINGS = settings(max_examples=25, deadline=None)


@st.composite
def lstm_cases(draw, with_lengths: bool):
    hidden = draw(st.integers(1, 5))
    cfg = Cfg(
        num_layers=draw(st.integers(1, 3)),
        bidirectional=draw(st.booleans()),
        batch_first=draw(st.booleans()),
        proj_size=draw(st.integers(0, hidden - 1)),
        bias=draw(st.booleans()),
        init_state=draw(st.booleans()),
    )
    seq, batch, input_size = (
        draw(st.integers(1, 7)),
        draw(st.integers(1, 4)),
        draw(st.integers(1, 4)),
    )
    lengths = None
    if with_lengths:
        lengths = tuple(draw(st.lists(st.integers(1, seq), min_size=batch, max_size=batch)))
    seed = draw(st.integers(0, 2**16))
    return cfg, hidden, seq, batch, input_size, lengths, seed


def _run(case, implementation, form_kind):
    cfg, hidden, seq, batch, input_size, lengths, seed = case
    torch.manual_seed(seed)
    ref = torch.nn.LSTM(input_size, hidden, **cfg.lstm_kwargs(), dtype=torch.float64)
    ours = CustomLSTM(
        input_size, hidden, **cfg.lstm_kwargs(), implementation=implementation, dtype=torch.float64
    )
    copy_weights(ref, ours)
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, seq, input_size) if cfg.batch_first else (seq, batch, input_size)
    x = torch.randn(*shape, generator=gen, dtype=torch.float64)
    hx = None
    if cfg.init_state:
        rows = cfg.num_layers * cfg.directions
        hx = (
            torch.randn(rows, batch, cfg.proj_size or hidden, generator=gen, dtype=torch.float64),
            torch.randn(rows, batch, hidden, generator=gen, dtype=torch.float64),
        )
    form = Form(form_kind, form_kind, lengths)
    check_against_reference(ours, ref, x, hx, form, cfg.batch_first, torch.float64, seed=seed)


@SETTINGS
@given(case=lstm_cases(with_lengths=False))
def test_fused_matches_torch_on_random_configs(case):
    _run(case, "fused", "tensor")


@SETTINGS
@given(case=lstm_cases(with_lengths=True))
def test_fused_matches_torch_with_random_lengths(case):
    _run(case, "fused", "lengths")


@SETTINGS
@given(case=lstm_cases(with_lengths=True))
def test_fused_matches_torch_on_random_packed_input(case):
    _run(case, "fused", "packed")


@SETTINGS
@given(
    case=lstm_cases(with_lengths=True),
    layer_norm=st.booleans(),
    peephole=st.booleans(),
    zoneout=st.tuples(st.floats(0, 1), st.floats(0, 1)),
)
def test_fused_matches_reference_implementation_with_variants(case, layer_norm, peephole, zoneout):
    cfg, hidden, seq, batch, input_size, lengths, seed = case
    options = {"layer_norm": layer_norm, "peephole": peephole, "zoneout": zoneout}
    torch.manual_seed(seed)
    fused = CustomLSTM(
        input_size, hidden, **cfg.lstm_kwargs(), **options, dtype=torch.float64
    ).eval()
    ref = CustomLSTM(
        input_size,
        hidden,
        **cfg.lstm_kwargs(),
        **options,
        implementation="reference",
        dtype=torch.float64,
    ).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in fused.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    copy_weights(fused, ref)
    shape = (batch, seq, input_size) if cfg.batch_first else (seq, batch, input_size)
    x = torch.randn(*shape, generator=gen, dtype=torch.float64)
    form = Form("lengths", "lengths", lengths)
    # the reference implementation plays the role of torch.nn.LSTM, called with lengths= too
    gen_up = torch.Generator().manual_seed(seed)
    values, grads = [], []
    upstream = None
    for module in (ref, fused):
        xs = x.clone().requires_grad_(True)
        out, (h, c) = module(xs, lengths=list(form.lengths))
        if upstream is None:
            upstream = [torch.randn(t.shape, generator=gen_up, dtype=t.dtype) for t in (out, h, c)]
        loss = sum((t * u).sum() for t, u in zip((out, h, c), upstream, strict=True))
        params = list(module.parameters())
        grads.append(torch.autograd.grad(loss, [xs, *params]))
        values.append((out.detach(), h.detach(), c.detach()))
    for a, b in zip(*values, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)
