"""Parameters: names, shapes and state_dict like torch.nn.LSTM's; default init; init options."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from lstm_testing import OUR_BACKENDS, make_ours

from lstmkit.nn import CudnnLSTM, CustomLSTM, LSTMCell

ARCHS = [
    {"num_layers": layers, "bidirectional": bidir, "proj_size": proj, "bias": bias}
    for layers, bidir, proj, bias in itertools.product((1, 3), (False, True), (0, 3), (True, False))
]


def _arch_id(a: dict) -> str:
    return (
        f"L{a['num_layers']}-{'bidir' if a['bidirectional'] else 'uni'}-proj{a['proj_size']}"
        f"-{'bias' if a['bias'] else 'nobias'}"
    )


def _shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("arch", ARCHS, ids=_arch_id)
@pytest.mark.parametrize("backend", OUR_BACKENDS)
def test_state_dict_keys_and_shapes_match_torch(backend, arch):
    ref = torch.nn.LSTM(5, 4, **arch)
    ours = make_ours(backend, 5, 4, **arch)
    assert _shapes(ours) == _shapes(ref)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]


def test_cudnn_lstm_is_a_torch_lstm():
    assert isinstance(CudnnLSTM(3, 4), torch.nn.LSTM)


@pytest.mark.parametrize("backend", OUR_BACKENDS)
@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, 7),
        ({"bidirectional": True}, 14),
        ({"proj_size": 3}, 3),
        ({"proj_size": 3, "bidirectional": True, "num_layers": 2}, 6),
    ],
    ids=["plain", "bidir", "proj", "proj-bidir"],
)
def test_output_size(backend, kwargs, expected):
    m = make_ours(backend, 2, 7, **kwargs)
    assert m.output_size == expected
    out, _ = m(torch.randn(3, 2, 2))
    assert out.shape[-1] == expected


def test_lstm_cell_parameters_match_torch():
    ref, ours = torch.nn.LSTMCell(5, 4), LSTMCell(5, 4)
    assert _shapes(ours) == _shapes(ref)
    ref, ours = torch.nn.LSTMCell(5, 4, bias=False), LSTMCell(5, 4, bias=False)
    assert _shapes(ours) == _shapes(ref)


def _check_uniform(values: torch.Tensor, bound: float) -> None:
    assert values.min() >= -bound and values.max() <= bound
    assert values.numel() > 1000
    # uniform(-k, k): mean 0, std k/sqrt(3), reaches close to both ends.
    assert values.max() > 0.95 * bound and values.min() < -0.95 * bound
    assert abs(values.mean().item()) < 0.05 * bound
    assert abs(values.std().item() - bound / math.sqrt(3)) < 0.05 * bound


@pytest.mark.parametrize("backend", OUR_BACKENDS)
def test_default_init_is_uniform_like_torch(backend):
    hidden = 32
    m = make_ours(backend, 16, hidden, num_layers=2, bidirectional=True, proj_size=8)
    bound = 1 / math.sqrt(hidden)
    for name, p in m.named_parameters():
        assert p.min() >= -bound and p.max() <= bound, name
        assert not torch.all(p == p.flatten()[0]), f"{name} has all values equal"
    _check_uniform(torch.cat([p.detach().flatten() for p in m.parameters()]), bound)


def test_lstm_cell_default_init_is_uniform_like_torch():
    hidden = 32
    cell = LSTMCell(16, hidden)
    bound = 1 / math.sqrt(hidden)
    for name, p in cell.named_parameters():
        assert p.min() >= -bound and p.max() <= bound, name
        assert not torch.all(p == p.flatten()[0]), name
    _check_uniform(torch.cat([p.detach().flatten() for p in cell.parameters()]), bound)


@pytest.mark.parametrize("backend", OUR_BACKENDS)
def test_forget_bias_shifts_forget_slice_of_bias_ih(backend):
    hidden, fb = 4, 1.5
    kwargs = {"num_layers": 2, "bidirectional": True, "proj_size": 2}
    torch.manual_seed(3)
    base = make_ours(backend, 3, hidden, **kwargs)
    torch.manual_seed(3)
    shifted = make_ours(backend, 3, hidden, **kwargs, forget_bias=fb)
    base_sd, shifted_sd = base.state_dict(), shifted.state_dict()
    assert base_sd.keys() == shifted_sd.keys()
    n_bias_ih = 0
    for name, value in base_sd.items():
        if name.startswith("bias_ih"):
            n_bias_ih += 1
            expected = value.clone()
            expected[hidden : 2 * hidden] += fb
            torch.testing.assert_close(shifted_sd[name], expected, atol=1e-6, rtol=0)
            torch.testing.assert_close(
                shifted_sd[name][hidden : 2 * hidden] - value[hidden : 2 * hidden],
                torch.full((hidden,), fb),
            )
        else:
            assert torch.equal(shifted_sd[name], value), name
    assert n_bias_ih == 4


@pytest.mark.parametrize("backend", OUR_BACKENDS)
def test_input_bias_shifts_input_slice_of_bias_ih(backend):
    hidden, ib, fb = 4, -3.0, 3.0
    torch.manual_seed(5)
    base = make_ours(backend, 3, hidden, num_layers=2, bidirectional=True)
    torch.manual_seed(5)
    shifted = make_ours(
        backend, 3, hidden, num_layers=2, bidirectional=True, input_bias=ib, forget_bias=fb
    )
    for name, value in base.state_dict().items():
        expected = value.clone()
        if name.startswith("bias_ih"):
            expected[:hidden] += ib
            expected[hidden : 2 * hidden] += fb
        torch.testing.assert_close(shifted.state_dict()[name], expected, atol=1e-6, rtol=0)
    assert "input_bias=-3.0" in repr(shifted)


@pytest.mark.parametrize("backend", OUR_BACKENDS)
def test_input_bias_needs_a_bias(backend):
    with pytest.raises(ValueError, match=r"input_bias=-3\.0 needs bias=True"):
        make_ours(backend, 3, 4, bias=False, input_bias=-3.0)


@pytest.mark.parametrize("proj_size", [0, 2], ids=["noproj", "proj2"])
@pytest.mark.parametrize("backend", OUR_BACKENDS)
def test_orthogonal_recurrent_init(backend, proj_size):
    hidden = 5
    m = make_ours(
        backend,
        3,
        hidden,
        num_layers=2,
        bidirectional=True,
        proj_size=proj_size,
        recurrent_init="orthogonal",
        dtype=torch.float64,
    )
    n = 0
    for name, w in m.named_parameters():
        if not name.startswith("weight_hh"):
            continue
        n += 1
        assert w.shape == (4 * hidden, proj_size or hidden)
        for gate in range(4):
            block = w[gate * hidden : (gate + 1) * hidden].detach()  # (hidden, proj or hidden)
            # Square blocks are orthogonal; tall blocks (proj) have orthonormal columns.
            eye = torch.eye(block.shape[1], dtype=block.dtype)
            torch.testing.assert_close(block.T @ block, eye, atol=1e-6, rtol=0)
            if block.shape[0] == block.shape[1]:
                torch.testing.assert_close(block @ block.T, eye, atol=1e-6, rtol=0)
        # the four gate blocks are not copies of one another
        assert not torch.allclose(w[:hidden], w[hidden : 2 * hidden])
    assert n == 4


def test_orthogonal_init_leaves_other_parameters_default():
    m = CustomLSTM(3, 5, recurrent_init="orthogonal")
    bound = 1 / math.sqrt(5)
    for name, p in m.named_parameters():
        if not name.startswith("weight_hh"):
            assert p.abs().max() <= bound, name


VARIANT_PARAMS = {
    "peephole": ({"peephole": True}, {"weight_peephole_l{k}{s}": lambda h: (3, h)}),
    "layer_norm": (
        {"layer_norm": True},
        {
            "layer_norm_ih_weight_l{k}{s}": lambda h: (4 * h,),
            "layer_norm_hh_weight_l{k}{s}": lambda h: (4 * h,),
            "layer_norm_cell_weight_l{k}{s}": lambda h: (h,),
            "layer_norm_cell_bias_l{k}{s}": lambda h: (h,),
        },
    ),
}


@pytest.mark.parametrize("implementation", ["fused", "reference"])
@pytest.mark.parametrize("proj_size", [0, 2], ids=["noproj", "proj2"])
@pytest.mark.parametrize(
    "variants", [("peephole",), ("layer_norm",), ("peephole", "layer_norm")], ids="+".join
)
def test_variant_parameter_names_and_shapes(variants, proj_size, implementation):
    hidden, layers = 4, 2
    kwargs = {"num_layers": layers, "bidirectional": True, "proj_size": proj_size}
    for v in variants:
        kwargs.update(VARIANT_PARAMS[v][0])
    m = CustomLSTM(3, hidden, **kwargs, implementation=implementation)
    expected = {
        k: tuple(v.shape)
        for k, v in torch.nn.LSTM(
            3, hidden, num_layers=layers, bidirectional=True, proj_size=proj_size
        )
        .state_dict()
        .items()
    }
    for v in variants:
        for pattern, shape in VARIANT_PARAMS[v][1].items():
            for k in range(layers):
                for s in ("", "_reverse"):
                    expected[pattern.format(k=k, s=s)] = shape(hidden)
    assert _shapes(m) == expected
    assert {n for n, _ in m.named_parameters()} == set(expected)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"recurrent_dropout": 0.3}, {"zoneout": 0.2}, {"zoneout": (0.1, 0.4)}],
    ids=["plain", "recurrent_dropout", "zoneout", "zoneout_pair"],
)
def test_stochastic_variants_add_no_parameters(kwargs):
    ours = CustomLSTM(3, 4, num_layers=2, **kwargs)
    assert _shapes(ours) == _shapes(torch.nn.LSTM(3, 4, num_layers=2))
