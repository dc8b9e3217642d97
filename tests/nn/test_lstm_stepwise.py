"""Running one step at a time with the returned state equals running the whole sequence."""

from __future__ import annotations

import pytest
import torch
from lstm_testing import randomize_parameters

from lstmkit.nn import CudnnLSTM, CustomLSTM

SEQ, BATCH, INPUT, HIDDEN = 6, 3, 3, 4

VARIANTS = {
    "plain": {},
    "layer_norm": {"layer_norm": True},
    "peephole": {"peephole": True},
    "recurrent_dropout": {"recurrent_dropout": 0.4},
    "zoneout": {"zoneout": 0.3},
    "zoneout_pair": {"zoneout": (0.2, 0.7)},
    "proj": {"proj_size": 2},
    "forget_bias_orthogonal": {"forget_bias": 1.0, "recurrent_init": "orthogonal"},
    "layer_norm+peephole+proj": {"layer_norm": True, "peephole": True, "proj_size": 3},
    "everything": {
        "layer_norm": True,
        "peephole": True,
        "proj_size": 3,
        "recurrent_dropout": 0.3,
        "zoneout": (0.2, 0.1),
    },
}


def _step_by_step(module, x, hx, batch_first, reseed=None):
    """Feed ``x`` one step at a time; ``reseed`` re-seeds the RNG before every call."""
    time_dim = 1 if batch_first else 0
    outs, state = [], hx
    for x_t in x.split(1, dim=time_dim):
        if reseed is not None:
            torch.manual_seed(reseed)
        out_t, state = module(x_t, state)
        outs.append(out_t)
    return torch.cat(outs, dim=time_dim), state


def _whole(module, x, hx, reseed=None):
    if reseed is not None:
        torch.manual_seed(reseed)
    return module(x, hx)


def _check(module, batch_first, with_state, reseed=None):
    gen = torch.Generator().manual_seed(21)
    shape = (BATCH, SEQ, INPUT) if batch_first else (SEQ, BATCH, INPUT)
    x = torch.randn(*shape, generator=gen, dtype=torch.float64)
    hx = None
    if with_state:
        rows = module.num_layers
        h_size = module.proj_size or module.hidden_size
        hx = (
            torch.randn(rows, BATCH, h_size, generator=gen, dtype=torch.float64),
            torch.randn(rows, BATCH, module.hidden_size, generator=gen, dtype=torch.float64),
        )
    out, (h_n, c_n) = _whole(module, x, hx, reseed)
    out_s, (h_s, c_s) = _step_by_step(module, x, hx, batch_first, reseed)
    tol = {"atol": 1e-12, "rtol": 1e-12}
    torch.testing.assert_close(out_s, out, **tol)
    torch.testing.assert_close(h_s, h_n, **tol)
    torch.testing.assert_close(c_s, c_n, **tol)


@pytest.mark.parametrize("with_state", [False, True], ids=["noh0", "h0"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tf", "bf"])
@pytest.mark.parametrize("implementation", ["fused", "reference"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_step_by_step_equals_sequence_eval(variant, implementation, batch_first, with_state):
    m = CustomLSTM(
        INPUT,
        HIDDEN,
        num_layers=2,
        batch_first=batch_first,
        implementation=implementation,
        dtype=torch.float64,
        **VARIANTS[variant],
    )
    randomize_parameters(m, torch.Generator().manual_seed(5))
    m.eval()
    _check(m, batch_first, with_state)


@pytest.mark.parametrize("implementation", ["fused", "reference"])
@pytest.mark.parametrize(
    "variant", ["recurrent_dropout", "everything_but_zoneout"], ids=lambda v: f"{v}-train"
)
def test_step_by_step_equals_sequence_recurrent_dropout_fixed_mask(variant, implementation):
    """In train mode the variational mask is drawn once per call and per sequence; with the
    RNG re-seeded before every call, each step sees the same mask as the whole-sequence call."""
    kwargs = dict(VARIANTS["everything"] if variant != "recurrent_dropout" else VARIANTS[variant])
    kwargs.pop("zoneout", None)
    m = CustomLSTM(
        INPUT, HIDDEN, num_layers=2, implementation=implementation, dtype=torch.float64, **kwargs
    )
    randomize_parameters(m, torch.Generator().manual_seed(6))
    m.train()
    _check(m, batch_first=False, with_state=True, reseed=1234)
    # and the mask is really active: train differs from eval
    x = torch.randn(SEQ, BATCH, INPUT, dtype=torch.float64)
    torch.manual_seed(1234)
    out_train, _ = m(x)
    m.eval()
    out_eval, _ = m(x)
    assert not torch.allclose(out_train, out_eval)


@pytest.mark.parametrize("with_state", [False, True], ids=["noh0", "h0"])
@pytest.mark.parametrize("proj_size", [0, 2], ids=["noproj", "proj2"])
def test_step_by_step_equals_sequence_cudnn(proj_size, with_state):
    m = CudnnLSTM(INPUT, HIDDEN, num_layers=2, proj_size=proj_size, dtype=torch.float64)
    _check(m, batch_first=False, with_state=with_state)
