"""The research variants of CustomLSTM against small hand-written references of their equations.

The references below are written from the papers, one layer, one direction, a plain loop over
time; they import nothing from lstmkit. Also here: fused == reference implementation for every
variant (values and gradients, float64), and ``torch.autograd.gradcheck`` of the fused path.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from lstm_testing import randomize_parameters
from torch import Tensor

from lstmkit.nn import CustomLSTM

SEQ, BATCH, INPUT, HIDDEN = 6, 3, 3, 4
EPS = 1e-5
F64 = torch.float64
TIGHT = {"atol": 1e-10, "rtol": 1e-10}
IMPLEMENTATIONS = ("fused", "reference")


# ---------------------------------------------------------------------- hand-written references
def _layer_norm(v: Tensor) -> Tensor:
    """Normalise over the last dimension (biased variance), no affine part."""
    mean = v.mean(-1, keepdim=True)
    var = ((v - mean) ** 2).mean(-1, keepdim=True)
    return (v - mean) / torch.sqrt(var + EPS)


def reference_lstm(
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    p: dict[str, Tensor],
    *,
    layer_norm: bool = False,
    peephole: bool = False,
    zoneout: tuple[float, float] = (0.0, 0.0),
) -> tuple[Tensor, Tensor, Tensor]:
    """One layer, one direction. ``x`` (T, B, C); ``p`` holds the ``*_l0`` parameters.

    Plain (Hochreiter & Schmidhuber 1997, torch's gate order i, f, g, o):
        a = W_ih x + b_ih + W_hh h + b_hh;  i, f, o = σ(.), g = tanh(.)
        c' = f c + i g;  h' = o tanh(c');  h' = W_hr h' with a projection.
    Layer norm (Ba et al. 2016):
        a = LN(W_ih x) g_ih + LN(W_hh h) g_hh + b_ih + b_hh;  h' = o tanh(LN(c') g_c + b_c).
    Peepholes (Gers & Schmidhuber 2000):
        i = σ(a_i + p_i c),  f = σ(a_f + p_f c),  o = σ(a_o + p_o c').
    Zoneout at evaluation (Krueger et al. 2016):
        h_t = z_h h_{t-1} + (1 - z_h) h'_t,  c_t = z_c c_{t-1} + (1 - z_c) c'_t.
    """
    w_ih, w_hh = p["weight_ih_l0"], p["weight_hh_l0"]
    b_ih, b_hh = p.get("bias_ih_l0"), p.get("bias_hh_l0")
    w_hr = p.get("weight_hr_l0")
    z_h, z_c = zoneout
    h, c = h0, c0
    outputs = []
    for t in range(x.shape[0]):
        from_x = x[t] @ w_ih.T
        from_h = h @ w_hh.T
        if layer_norm:
            from_x = _layer_norm(from_x) * p["layer_norm_ih_weight_l0"]
            from_h = _layer_norm(from_h) * p["layer_norm_hh_weight_l0"]
        a = from_x + from_h
        if b_ih is not None:
            a = a + b_ih + b_hh
        a_i, a_f, a_g, a_o = a.chunk(4, dim=-1)
        if peephole:
            p_i, p_f, p_o = p["weight_peephole_l0"]
            a_i = a_i + p_i * c
            a_f = a_f + p_f * c
        i, f, g = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g)
        c_new = f * c + i * g
        if peephole:
            a_o = a_o + p_o * c_new
        o = torch.sigmoid(a_o)
        if layer_norm:
            cell_out = _layer_norm(c_new) * p["layer_norm_cell_weight_l0"]
            cell_out = cell_out + p["layer_norm_cell_bias_l0"]
        else:
            cell_out = c_new
        h_new = o * torch.tanh(cell_out)
        if w_hr is not None:
            h_new = h_new @ w_hr.T
        h = z_h * h + (1 - z_h) * h_new
        c = z_c * c + (1 - z_c) * c_new
        outputs.append(h)
    return torch.stack(outputs), h, c


# ---------------------------------------------------------------------- comparison driver
def _inputs(module: CustomLSTM, seed: int = 0, batch: int = BATCH, seq: int = SEQ):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(seq, batch, module.input_size, generator=gen, dtype=F64)
    h0 = torch.randn(1, batch, module.proj_size or module.hidden_size, generator=gen, dtype=F64)
    c0 = torch.randn(1, batch, module.hidden_size, generator=gen, dtype=F64)
    return x, h0, c0


def _values_and_grads(fn, x, h0, c0, params: dict[str, Tensor], upstream=None):
    """Run ``fn(x, h0, c0, params) -> (out, h_n, c_n)`` and differentiate a random functional."""
    leaves = {
        "input": x.clone().requires_grad_(True),
        "h_0": h0.clone().requires_grad_(True),
        "c_0": c0.clone().requires_grad_(True),
    }
    ps = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
    out = fn(leaves["input"], leaves["h_0"], leaves["c_0"], ps)
    if upstream is None:
        gen = torch.Generator().manual_seed(77)
        upstream = [torch.randn(v.shape, generator=gen, dtype=v.dtype) for v in out]
    loss = sum((v * u).sum() for v, u in zip(out, upstream, strict=True))
    wrt = {**leaves, **ps}
    grads = dict(zip(wrt, torch.autograd.grad(loss, list(wrt.values())), strict=True))
    return [v.detach() for v in out], grads, upstream


def _ours_fn(module: CustomLSTM):
    def fn(x, h0, c0, ps):
        out, (h_n, c_n) = torch.func.functional_call(module, ps, (x, (h0, c0)))
        return out, h_n, c_n

    return fn


def _check_module_against(module: CustomLSTM, reference_fn, seed: int = 0) -> None:
    x, h0, c0 = _inputs(module, seed)
    params = dict(module.named_parameters())
    ref_vals, ref_grads, upstream = _values_and_grads(reference_fn, x, h0, c0, params)
    our_vals, our_grads, _ = _values_and_grads(_ours_fn(module), x, h0, c0, params, upstream)
    for name, a, b in zip(("output", "h_n", "c_n"), our_vals, ref_vals, strict=True):
        assert a.shape == b.shape, (name, a.shape, b.shape)
        torch.testing.assert_close(a, b, **TIGHT, msg=lambda m, n=name: f"{n}: {m}")
    assert set(our_grads) == set(ref_grads)
    for name, g in ref_grads.items():
        torch.testing.assert_close(
            our_grads[name], g, **TIGHT, msg=lambda m, n=name: f"grad of {n}: {m}"
        )


def _build(implementation: str, seed: int = 3, **kwargs) -> CustomLSTM:
    m = CustomLSTM(INPUT, HIDDEN, implementation=implementation, dtype=F64, **kwargs)
    randomize_parameters(m, torch.Generator().manual_seed(seed))
    return m.eval()


def _reference_fn(**options):
    def fn(x, h0, c0, ps):
        out, h, c = reference_lstm(x, h0[0], c0[0], ps, **options)
        return out, h.unsqueeze(0), c.unsqueeze(0)

    return fn


# ---------------------------------------------------------------------- variants vs references
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("proj_size", [0, 2], ids=["noproj", "proj2"])
def test_handwritten_reference_itself_matches_torch(proj_size, bias):
    """Sanity check of the hand-written reference: with every variant off it is torch's LSTM."""
    torch.manual_seed(1)
    lstm = torch.nn.LSTM(INPUT, HIDDEN, proj_size=proj_size, bias=bias, dtype=F64)
    x, h0, c0 = _inputs(CustomLSTM(INPUT, HIDDEN, proj_size=proj_size))
    params = dict(lstm.named_parameters())

    def torch_fn(x, h0, c0, ps):
        out, (h, c) = torch.func.functional_call(lstm, ps, (x, (h0, c0)))
        return out, h, c

    a, ga, up = _values_and_grads(torch_fn, x, h0, c0, params)
    b, gb, _ = _values_and_grads(_reference_fn(), x, h0, c0, params, up)
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v, **TIGHT)
    for name in ga:
        torch.testing.assert_close(ga[name], gb[name], **TIGHT)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("proj_size", [0, 2], ids=["noproj", "proj2"])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_layer_norm_matches_handwritten(implementation, proj_size, bias):
    m = _build(implementation, layer_norm=True, proj_size=proj_size, bias=bias)
    _check_module_against(m, _reference_fn(layer_norm=True))


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("proj_size", [0, 2], ids=["noproj", "proj2"])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_peephole_matches_handwritten(implementation, proj_size, bias):
    m = _build(implementation, peephole=True, proj_size=proj_size, bias=bias)
    _check_module_against(m, _reference_fn(peephole=True))


@pytest.mark.parametrize(
    "zoneout",
    [0.3, (0.2, 0.7), (1.0, 0.0), (0.0, 1.0)],
    ids=["z0.3", "zh0.2-zc0.7", "zh1-zc0", "zh0-zc1"],
)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_zoneout_eval_matches_handwritten(implementation, zoneout):
    m = _build(implementation, zoneout=zoneout)
    pair = (zoneout, zoneout) if isinstance(zoneout, float) else zoneout
    _check_module_against(m, _reference_fn(zoneout=pair))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_layer_norm_peephole_together_match_handwritten(implementation):
    """Both variants together, as the two papers' equations compose (peepholes on the
    pre-activations after layer norm, the output peephole on the raw c_t)."""
    m = _build(implementation, layer_norm=True, peephole=True)
    _check_module_against(m, _reference_fn(layer_norm=True, peephole=True))


# ---------------------------------------------------------------------- recurrent dropout
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bidir"])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_recurrent_dropout_eval_equals_plain_lstm(implementation, bidirectional):
    torch.manual_seed(2)
    ref = torch.nn.LSTM(INPUT, HIDDEN, num_layers=2, bidirectional=bidirectional, dtype=F64)
    m = CustomLSTM(
        INPUT,
        HIDDEN,
        num_layers=2,
        bidirectional=bidirectional,
        recurrent_dropout=0.5,
        implementation=implementation,
        dtype=F64,
    )
    m.load_state_dict(ref.state_dict())
    m.eval()
    x = torch.randn(SEQ, BATCH, INPUT, dtype=F64)
    out, (h, c) = m(x)
    out_r, (h_r, c_r) = ref(x)
    torch.testing.assert_close(out, out_r, **TIGHT)
    torch.testing.assert_close(h, h_r, **TIGHT)
    torch.testing.assert_close(c, c_r, **TIGHT)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_recurrent_dropout_train_is_random_but_seeded(implementation):
    m = _build(implementation, recurrent_dropout=0.5, num_layers=2).train()
    x, h0, c0 = _inputs(m, batch=4)
    h0, c0 = h0.expand(2, -1, -1), c0.expand(2, -1, -1)
    torch.manual_seed(10)
    out_a, (h_a, c_a) = m(x, (h0, c0))
    torch.manual_seed(10)
    out_b, (h_b, c_b) = m(x, (h0, c0))
    assert torch.equal(out_a, out_b) and torch.equal(h_a, h_b) and torch.equal(c_a, c_b)
    torch.manual_seed(11)
    out_c, _ = m(x, (h0, c0))
    assert not torch.allclose(out_a, out_c)
    m.eval()
    out_eval, _ = m(x, (h0, c0))
    assert not torch.allclose(out_a, out_eval)


def _diagonal_recurrent_lstm(implementation: str, p: float, hidden: int):
    """A single-layer LSTM where unit j's gates see only h_{t-1, j} (diagonal W_hh blocks, no
    input weights, no bias): each unit's trajectory then depends on the dropout mask of that
    unit alone, so the mask can be read off the output."""
    m = CustomLSTM(
        1, hidden, bias=False, recurrent_dropout=p, implementation=implementation, dtype=F64
    )
    gate_weights = torch.tensor([1.5, -1.0, 2.0, 1.2], dtype=F64)  # i, f, g, o
    with torch.no_grad():
        m.weight_ih_l0.zero_()
        m.weight_hh_l0.copy_(torch.cat([w * torch.eye(hidden, dtype=F64) for w in gate_weights]))
    return m, gate_weights


def _scalar_trajectories(h0, c0, gate_weights, scales, steps):
    """Trajectories of h for every (i, f, g, o) mask combination, each held fixed over time.

    Returns ``(n_combos, steps, *h0.shape)`` and the list of combos."""
    combos = list(itertools.product(scales, repeat=4))
    result = []
    for combo in combos:
        h, c, hs = h0, c0, []
        for _ in range(steps):
            a_i, a_f, a_g, a_o = (w * m * h for w, m in zip(gate_weights, combo, strict=True))
            c = torch.sigmoid(a_f) * c + torch.sigmoid(a_i) * torch.tanh(a_g)
            h = torch.sigmoid(a_o) * torch.tanh(c)
            hs.append(h)
        result.append(torch.stack(hs))
    return torch.stack(result), combos


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_recurrent_dropout_mask_is_fixed_over_time_and_per_sequence(implementation):
    """Variational dropout (Gal & Ghahramani 2016): one mask per sequence, the same at every
    step, entries 0 or 1/(1-p) (inverted dropout), different across the batch."""
    p, hidden, batch, steps = 0.5, 5, 16, 7
    m, gate_weights = _diagonal_recurrent_lstm(implementation, p, hidden)
    m.train()
    gen = torch.Generator().manual_seed(5)
    h0 = (0.3 + 0.6 * torch.rand(1, batch, hidden, generator=gen, dtype=F64)) * torch.where(
        torch.rand(1, batch, hidden, generator=gen) < 0.5, -1.0, 1.0
    ).to(F64)
    c0 = torch.randn(1, batch, hidden, generator=gen, dtype=F64)
    x = torch.zeros(steps, batch, 1, dtype=F64)
    torch.manual_seed(123)
    out, _ = m(x, (h0, c0))  # (T, B, H)

    candidates, combos = _scalar_trajectories(
        h0[0], c0[0], gate_weights, (0.0, 1.0 / (1.0 - p)), steps
    )  # (K, T, B, H)
    match = ((candidates - out.unsqueeze(0)).abs().amax(dim=1) < 1e-10).any(dim=0)  # (B, H)
    assert match.all(), (
        f"{int((~match).sum())} of {match.numel()} units follow no time-constant mask "
        "(the recurrent-dropout mask must be drawn once per sequence)"
    )
    all_kept = combos.index((1.0 / (1.0 - p),) * 4)
    kept = (candidates[all_kept] - out).abs().amax(dim=0) < 1e-10  # (B, H)
    assert kept.any() and not kept.all(), "dropout must keep some units and drop others"
    # one mask per sequence: the pattern differs between sequences of the batch
    assert not (kept == kept[:1]).all()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"recurrent_dropout": 0.4},
        {"zoneout": 0.4},
        {"zoneout": (0.3, 0.6), "recurrent_dropout": 0.3},
        {"layer_norm": True, "peephole": True, "proj_size": 2, "recurrent_dropout": 0.3},
        {"zoneout": (0.2, 0.5), "proj_size": 2, "bidirectional": True, "num_layers": 2},
    ],
    ids=["rd", "zoneout", "zoneout+rd", "ln+peep+proj+rd", "zoneout+proj+bidir+L2"],
)
def test_fused_and_reference_agree_in_training_under_same_seed(kwargs):
    """Documented in CustomLSTM: both implementations draw the same masks in the same order."""
    fused = _build("fused", **kwargs).train()
    ref = CustomLSTM(INPUT, HIDDEN, implementation="reference", dtype=F64, **kwargs).train()
    ref.load_state_dict(fused.state_dict())
    gen = torch.Generator().manual_seed(4)
    rows = fused.num_layers * fused.num_directions
    x = torch.randn(SEQ, BATCH, INPUT, generator=gen, dtype=F64)
    h0 = torch.randn(rows, BATCH, fused.proj_size or HIDDEN, generator=gen, dtype=F64)
    c0 = torch.randn(rows, BATCH, HIDDEN, generator=gen, dtype=F64)
    lengths = [SEQ, 2, 5]

    def run(module):
        def fn(x, h0, c0, ps):
            torch.manual_seed(31)
            kw = {"lengths": lengths}
            out, (h, c) = torch.func.functional_call(module, ps, (x, (h0, c0)), kw)
            return out, h, c

        return fn

    params = dict(fused.named_parameters())
    a, ga, up = _values_and_grads(run(fused), x, h0, c0, params)
    b, gb, _ = _values_and_grads(run(ref), x, h0, c0, params, up)
    for u, v in zip(a, b, strict=True):
        torch.testing.assert_close(u, v, **TIGHT)
    for name in ga:
        torch.testing.assert_close(ga[name], gb[name], **TIGHT, msg=lambda m, n=name: f"{n}: {m}")
    # the masks are really active: a different seed gives different numbers
    torch.manual_seed(32)
    out_other, _ = fused(x, (h0, c0), lengths=lengths)
    assert not torch.allclose(out_other, a[0])


# ---------------------------------------------------------------------- zoneout in training
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_zoneout_rate_one_freezes_the_state(implementation):
    m = _build(implementation, zoneout=1.0, num_layers=2, proj_size=2).train()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(SEQ, BATCH, INPUT, generator=gen, dtype=F64)
    h0 = torch.randn(2, BATCH, 2, generator=gen, dtype=F64)
    c0 = torch.randn(2, BATCH, HIDDEN, generator=gen, dtype=F64)
    for seed in range(3):
        torch.manual_seed(seed)
        out, (h_n, c_n) = m(x, (h0, c0))
        assert torch.equal(out, h0[-1].expand(SEQ, -1, -1))
        assert torch.equal(h_n, h0)
        assert torch.equal(c_n, c0)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_zoneout_rate_zero_in_training_is_plain_lstm(implementation):
    torch.manual_seed(4)
    ref = torch.nn.LSTM(INPUT, HIDDEN, num_layers=2, dtype=F64)
    m = CustomLSTM(
        INPUT, HIDDEN, num_layers=2, zoneout=0.0, implementation=implementation, dtype=F64
    )
    m.load_state_dict(ref.state_dict())
    m.train()
    x = torch.randn(SEQ, BATCH, INPUT, dtype=F64)
    out, (h, c) = m(x)
    out_r, (h_r, c_r) = ref(x)
    torch.testing.assert_close(out, out_r, **TIGHT)
    torch.testing.assert_close(h, h_r, **TIGHT)
    torch.testing.assert_close(c, c_r, **TIGHT)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_zoneout_training_keeps_or_updates_each_unit(implementation):
    """One training step: every unit of h (c) is either its previous value or the plain LSTM
    update, kept with probability rate_h (rate_c)."""
    rate_h, rate_c = 0.3, 0.7
    m = CustomLSTM(INPUT, HIDDEN, zoneout=(rate_h, rate_c), implementation=implementation)
    m = m.to(F64).train()
    cell = torch.nn.LSTMCell(INPUT, HIDDEN, dtype=F64)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in m.state_dict().items()})
    gen = torch.Generator().manual_seed(9)
    batch, calls = 64, 8
    kept_h = kept_c = total = 0
    h = torch.randn(1, batch, HIDDEN, generator=gen, dtype=F64)
    c = torch.randn(1, batch, HIDDEN, generator=gen, dtype=F64)
    torch.manual_seed(0)
    for _ in range(calls):
        x = torch.randn(1, batch, INPUT, generator=gen, dtype=F64)
        out, (h_new, c_new) = m(x, (h, c))
        assert torch.equal(out[0], h_new[0])
        h_plain, c_plain = cell(x[0], (h[0], c[0]))
        is_kept_h = (h_new[0] - h[0]).abs() < 1e-12
        is_new_h = (h_new[0] - h_plain).abs() < 1e-12
        is_kept_c = (c_new[0] - c[0]).abs() < 1e-12
        is_new_c = (c_new[0] - c_plain).abs() < 1e-12
        assert (is_kept_h | is_new_h).all()
        assert (is_kept_c | is_new_c).all()
        kept_h += int(is_kept_h.sum())
        kept_c += int(is_kept_c.sum())
        total += is_kept_h.numel()
        h, c = h_new, c_new
    assert abs(kept_h / total - rate_h) < 0.07, kept_h / total
    assert abs(kept_c / total - rate_c) < 0.07, kept_c / total


# ---------------------------------------------------------------------- fused == reference
FUSED_VS_REFERENCE = {
    "plain": {},
    "proj": {"proj_size": 2},
    "layer_norm": {"layer_norm": True},
    "peephole": {"peephole": True},
    "recurrent_dropout_eval": {"recurrent_dropout": 0.3},
    "zoneout_eval": {"zoneout": (0.3, 0.6)},
    "forget_bias_orthogonal": {"forget_bias": 1.0, "recurrent_init": "orthogonal"},
    "layer_norm+peephole+proj": {"layer_norm": True, "peephole": True, "proj_size": 2},
    "bidir+L2": {"bidirectional": True, "num_layers": 2},
    "everything-L3-bidir": {
        "num_layers": 3,
        "bidirectional": True,
        "layer_norm": True,
        "peephole": True,
        "proj_size": 3,
        "zoneout": 0.2,
        "recurrent_dropout": 0.2,
        "bias": False,
    },
}
LENGTHS_CASES = {"nolengths": None, "lengths": [6, 1, 4], "lengths_tensor": torch.tensor([3, 6, 3])}


@pytest.mark.parametrize("lengths_case", list(LENGTHS_CASES))
@pytest.mark.parametrize("variant", list(FUSED_VS_REFERENCE))
def test_fused_equals_reference_implementation(variant, lengths_case):
    kwargs = FUSED_VS_REFERENCE[variant]
    lengths = LENGTHS_CASES[lengths_case]
    fused = _build("fused", **kwargs)
    ref = CustomLSTM(INPUT, HIDDEN, implementation="reference", dtype=F64, **kwargs).eval()
    ref.load_state_dict(fused.state_dict())
    gen = torch.Generator().manual_seed(8)
    rows = fused.num_layers * fused.num_directions
    x = torch.randn(SEQ, BATCH, INPUT, generator=gen, dtype=F64)
    h0 = torch.randn(rows, BATCH, fused.proj_size or HIDDEN, generator=gen, dtype=F64)
    c0 = torch.randn(rows, BATCH, HIDDEN, generator=gen, dtype=F64)

    def run(module):
        def fn(x, h0, c0, ps):
            kw = {} if lengths is None else {"lengths": lengths}
            out, (h, c) = torch.func.functional_call(module, ps, (x, (h0, c0)), kw)
            return out, h, c

        return fn

    params = dict(fused.named_parameters())
    a, ga, up = _values_and_grads(run(fused), x, h0, c0, params)
    b, gb, _ = _values_and_grads(run(ref), x, h0, c0, params, up)
    for name, u, v in zip(("output", "h_n", "c_n"), a, b, strict=True):
        torch.testing.assert_close(u, v, **TIGHT, msg=lambda m, n=name: f"{n}: {m}")
    assert set(ga) == set(gb)
    for name in ga:
        torch.testing.assert_close(ga[name], gb[name], **TIGHT, msg=lambda m, n=name: f"{n}: {m}")


# ---------------------------------------------------------------------- gradcheck (fused)
GRADCHECK_CASES = {
    "plain": ({}, False, None),
    "proj": ({"proj_size": 1}, False, None),
    "layer_norm": ({"layer_norm": True}, False, None),
    "peephole": ({"peephole": True}, False, None),
    "zoneout_eval": ({"zoneout": (0.3, 0.5)}, False, None),
    "zoneout_train": ({"zoneout": (0.3, 0.5)}, True, None),
    "recurrent_dropout_train": ({"recurrent_dropout": 0.4}, True, None),
    "ln+peephole+proj": ({"layer_norm": True, "peephole": True, "proj_size": 1}, False, None),
    "bidir+L2+lengths": ({"bidirectional": True, "num_layers": 2}, False, [3, 1]),
}


@pytest.mark.parametrize("case", list(GRADCHECK_CASES))
def test_gradcheck_fused(case):
    kwargs, train, lengths = GRADCHECK_CASES[case]
    hidden, inp, batch, seq = 2, 2, 2, 3
    m = CustomLSTM(inp, hidden, implementation="fused", dtype=F64, **kwargs)
    randomize_parameters(m, torch.Generator().manual_seed(1))
    m.train(train)
    names = [n for n, _ in m.named_parameters()]
    rows = m.num_layers * m.num_directions
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(seq, batch, inp, generator=gen, dtype=F64, requires_grad=True)
    h0 = torch.randn(rows, batch, m.proj_size or hidden, generator=gen, dtype=F64)
    c0 = torch.randn(rows, batch, hidden, generator=gen, dtype=F64)
    params = [p.detach().clone().requires_grad_(True) for p in m.parameters()]

    def fn(x, h0, c0, *ps):
        with torch.random.fork_rng():
            torch.manual_seed(5)
            kw = {} if lengths is None else {"lengths": lengths}
            out, (h, c) = torch.func.functional_call(
                m, dict(zip(names, ps, strict=True)), (x, (h0, c0)), kw
            )
        return out, h, c

    inputs = (x, h0.requires_grad_(True), c0.requires_grad_(True), *params)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)
