"""The parity tests on CUDA (skipped cleanly without a device)."""

from __future__ import annotations

import pytest
import torch
from lstm_testing import (
    BATCH,
    FORMS,
    HIDDEN,
    INPUT,
    OUR_BACKENDS,
    TENSOR_FORM,
    Cfg,
    check_against_reference,
    copy_weights,
    make_input,
    make_ours,
    random_state,
)

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

CUDA_CFGS = [
    Cfg(1, False, False, 0, True, False),
    Cfg(2, True, True, 0, True, True),
    Cfg(3, True, False, 2, False, True),
    Cfg(2, False, True, 3, True, False),
]
DTYPES = [torch.float64, torch.float32]


def _run(backend, cfg, form, dtype):
    torch.manual_seed(7)
    ref = torch.nn.LSTM(INPUT, HIDDEN, **cfg.lstm_kwargs(), dtype=dtype, device="cuda")
    ours = make_ours(backend, INPUT, HIDDEN, **cfg.lstm_kwargs(), dtype=dtype, device="cuda")
    copy_weights(ref, ours)
    gen = torch.Generator().manual_seed(99)
    x = make_input(cfg, form, gen, dtype, "cuda")
    hx = None
    if cfg.init_state:
        hx = random_state(cfg, None if form.kind == "unbatched" else BATCH, gen, dtype, "cuda")
    check_against_reference(ours, ref, x, hx, form, cfg.batch_first, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("cfg", CUDA_CFGS, ids=lambda c: c.id)
@pytest.mark.parametrize("backend", OUR_BACKENDS)
def test_cuda_parity(backend, cfg, dtype):
    _run(backend, cfg, TENSOR_FORM, dtype)


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f.name)
@pytest.mark.parametrize("backend", OUR_BACKENDS)
def test_cuda_parity_input_forms(backend, form):
    _run(backend, CUDA_CFGS[2], form, torch.float64)


@pytest.mark.parametrize("backend", OUR_BACKENDS)
def test_cuda_lengths_on_cpu_and_on_device(backend):
    """``lengths`` may live on any device."""
    cfg = Cfg(2, True, False, 0, True, False)
    ours = make_ours(backend, INPUT, HIDDEN, **cfg.lstm_kwargs(), device="cuda")
    x = torch.randn(6, BATCH, INPUT, device="cuda")
    lengths = [3, 6, 1, 5]
    out_cpu, _ = ours(x, lengths=torch.tensor(lengths))
    out_dev, _ = ours(x, lengths=torch.tensor(lengths, device="cuda"))
    torch.testing.assert_close(out_cpu, out_dev)
