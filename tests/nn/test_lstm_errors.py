"""Bad input raises ValueError/RuntimeError naming expected and actual; build_lstm's registry."""

from __future__ import annotations

import logging
import re
from types import SimpleNamespace

import pytest
import torch
from lstm_testing import OUR_BACKENDS, make_ours

from lstmkit.nn import BACKENDS, AutoLSTM, CudnnLSTM, CustomLSTM, LSTMCell, build_lstm
from lstmkit.nn import auto as auto_module

ERRORS = (ValueError, RuntimeError)
INPUT, HIDDEN, SEQ, BATCH = 7, 6, 5, 3


def _numbers(message: str) -> set[int]:
    return {int(n) for n in re.findall(r"-?\d+", message)}


def _assert_names(excinfo, *numbers: int) -> None:
    message = str(excinfo.value)
    found = _numbers(message)
    missing = [n for n in numbers if n not in found]
    assert not missing, f"message does not name {missing}: {message!r}"


@pytest.mark.parametrize("backend", OUR_BACKENDS)
@pytest.mark.parametrize("batch_first", [False, True], ids=["tf", "bf"])
def test_wrong_feature_size(backend, batch_first):
    m = make_ours(backend, INPUT, HIDDEN, batch_first=batch_first)
    with pytest.raises(ERRORS) as excinfo:
        m(torch.randn(SEQ, BATCH, 11))
    _assert_names(excinfo, INPUT, 11)


@pytest.mark.parametrize("backend", OUR_BACKENDS)
def test_wrong_feature_size_unbatched_and_packed(backend):
    m = make_ours(backend, INPUT, HIDDEN)
    with pytest.raises(ERRORS) as excinfo:
        m(torch.randn(SEQ, 11))
    _assert_names(excinfo, INPUT, 11)
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        torch.randn(SEQ, BATCH, 11), [5, 4, 2], enforce_sorted=False
    )
    with pytest.raises(ERRORS) as excinfo:
        m(packed)
    _assert_names(excinfo, INPUT, 11)


@pytest.mark.parametrize("backend", OUR_BACKENDS)
def test_wrong_feature_size_with_lengths(backend):
    m = make_ours(backend, INPUT, HIDDEN)
    with pytest.raises(ERRORS) as excinfo:
        m(torch.randn(SEQ, BATCH, 11), lengths=[5, 4, 2])
    _assert_names(excinfo, INPUT, 11)


# (which, shape) pairs; the correct shapes are h0 (2*2, 3, 6) and c0 (2*2, 3, 6)
BAD_STATES = {
    "h0_hidden": ("h", (4, BATCH, 13), 13),
    "h0_batch": ("h", (4, 8, HIDDEN), 8),
    "h0_layers": ("h", (9, BATCH, HIDDEN), 9),
    "c0_hidden": ("c", (4, BATCH, 13), 13),
    "c0_batch": ("c", (4, 8, HIDDEN), 8),
    "c0_layers": ("c", (9, BATCH, HIDDEN), 9),
}


@pytest.mark.parametrize("bad", list(BAD_STATES))
@pytest.mark.parametrize("backend", OUR_BACKENDS)
def test_wrong_state_shape(backend, bad):
    which, shape, wrong = BAD_STATES[bad]
    m = make_ours(backend, INPUT, HIDDEN, num_layers=2, bidirectional=True)
    h0 = torch.zeros(shape if which == "h" else (4, BATCH, HIDDEN))
    c0 = torch.zeros(shape if which == "c" else (4, BATCH, HIDDEN))
    with pytest.raises(ERRORS) as excinfo:
        m(torch.randn(SEQ, BATCH, INPUT), (h0, c0))
    expected = {"h0_hidden": HIDDEN, "h0_batch": BATCH, "h0_layers": 4}[bad.replace("c0", "h0")]
    _assert_names(excinfo, wrong, expected)


@pytest.mark.parametrize("backend", OUR_BACKENDS)
def test_wrong_state_shape_with_projection(backend):
    """With proj_size, h0 is (L*D, B, proj_size): passing hidden_size there is an error."""
    m = make_ours(backend, INPUT, HIDDEN, proj_size=2)
    with pytest.raises(ERRORS) as excinfo:
        m(torch.randn(SEQ, BATCH, INPUT), (torch.zeros(1, BATCH, HIDDEN), torch.zeros(1, BATCH, 6)))
    _assert_names(excinfo, 2, HIDDEN)


@pytest.mark.parametrize("backend", OUR_BACKENDS)
def test_wrong_state_shape_unbatched(backend):
    m = make_ours(backend, INPUT, HIDDEN)
    with pytest.raises(ERRORS) as excinfo:
        m(torch.randn(SEQ, INPUT), (torch.zeros(1, 13), torch.zeros(1, HIDDEN)))
    _assert_names(excinfo, 13, HIDDEN)


@pytest.mark.parametrize("backend", OUR_BACKENDS)
@pytest.mark.parametrize("proj_size", [6, 9, -1], ids=["equal", "larger", "negative"])
def test_bad_proj_size(backend, proj_size):
    with pytest.raises(ValueError) as excinfo:
        make_ours(backend, INPUT, HIDDEN, proj_size=proj_size)
    assert "proj_size" in str(excinfo.value)
    if proj_size >= 0:
        _assert_names(excinfo, proj_size, HIDDEN)
    else:
        _assert_names(excinfo, proj_size)


BAD_LENGTHS = {
    "too_long_list": ([5, 8, 2], (8, SEQ)),
    "too_long_tensor": (torch.tensor([5, 4, 9]), (9, SEQ)),
    "zero": ([5, 0, 2], (0,)),
    "negative": (torch.tensor([-2, 5, 1]), (-2,)),
    "too_few": ([5, 4], (2, BATCH)),
    "too_many": (torch.tensor([5, 4, 3, 2]), (4, BATCH)),
}


@pytest.mark.parametrize("batch_first", [False, True], ids=["tf", "bf"])
@pytest.mark.parametrize("bad", list(BAD_LENGTHS))
@pytest.mark.parametrize("backend", OUR_BACKENDS)
def test_bad_lengths(backend, bad, batch_first):
    lengths, named = BAD_LENGTHS[bad]
    m = make_ours(backend, INPUT, HIDDEN, batch_first=batch_first)
    shape = (BATCH, SEQ, INPUT) if batch_first else (SEQ, BATCH, INPUT)
    with pytest.raises(ERRORS) as excinfo:
        m(torch.randn(shape), lengths=lengths)
    _assert_names(excinfo, *named)


def test_lstm_cell_wrong_sizes():
    cell = LSTMCell(INPUT, HIDDEN)
    with pytest.raises(ERRORS) as excinfo:
        cell(torch.randn(BATCH, 11))
    _assert_names(excinfo, INPUT, 11)
    with pytest.raises(ERRORS) as excinfo:
        cell(torch.randn(BATCH, INPUT), (torch.zeros(BATCH, 13), torch.zeros(BATCH, HIDDEN)))
    _assert_names(excinfo, 13, HIDDEN)


# ---------------------------------------------------------------------- build_lstm
def test_build_lstm_unknown_backend_lists_valid_ones():
    with pytest.raises(ValueError) as excinfo:
        build_lstm("nope", input_size=3, hidden_size=4)
    message = str(excinfo.value)
    assert "nope" in message
    for name in ("custom", "cudnn", "auto", *BACKENDS):
        assert name in message, (name, message)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("layer_norm", True),
        ("peephole", True),
        ("recurrent_dropout", 0.2),
        ("zoneout", 0.1),
        ("zoneout", (0.0, 0.3)),
        ("implementation", "reference"),
    ],
    ids=["layer_norm", "peephole", "recurrent_dropout", "zoneout", "zoneout_pair", "impl"],
)
def test_build_lstm_cudnn_refuses_custom_only_options(option, value):
    with pytest.raises(ValueError) as excinfo:
        build_lstm("cudnn", input_size=3, hidden_size=4, **{option: value})
    message = str(excinfo.value)
    assert option in message and "custom" in message, message


CUDA = SimpleNamespace(device=torch.device("cuda"))  # engine() reads only the device


@pytest.mark.parametrize(
    ("kwargs", "cpu", "cuda", "reason"),
    [
        ({}, "custom", "torch", "plain LSTM"),
        ({"num_layers": 2, "bidirectional": True, "proj_size": 2}, "custom", "torch", "plain"),
        ({"forget_bias": 1.0, "recurrent_init": "orthogonal"}, "custom", "torch", "plain"),
        ({"layer_norm": True}, "custom", "custom", "layer_norm"),
        ({"peephole": True}, "custom", "custom", "peephole"),
        ({"recurrent_dropout": 0.3}, "custom", "custom", "recurrent_dropout"),
        ({"zoneout": (0.1, 0.2)}, "custom", "custom", "zoneout"),
        ({"implementation": "reference"}, "custom", "custom", "implementation"),
    ],
    ids=["plain", "torch-args", "init-options", "ln", "peephole", "rd", "zoneout", "impl"],
)
def test_build_lstm_auto_picks_the_engine_per_call(kwargs, cpu, cuda, reason):
    """auto: one module; the custom fused path on CPU, cuDNN for a plain LSTM on CUDA, the
    custom path wherever a custom-only option is set."""
    m = build_lstm("auto", input_size=3, hidden_size=4, **kwargs)
    assert type(m) is AutoLSTM
    engine, why = m.engine(torch.zeros(2, 1, 3), None)
    assert engine == cpu
    engine, why = m.engine(CUDA, None)
    assert engine == cuda and reason in why, why
    for key, value in kwargs.items():  # the options reach the module
        if key not in ("forget_bias", "recurrent_init", "zoneout"):
            assert getattr(m, key) == value, key


def test_auto_logs_each_choice_once_with_its_reason(caplog):
    m = build_lstm("auto", input_size=3, hidden_size=4)
    with caplog.at_level(logging.INFO, logger="lstmkit.nn.auto"):
        auto_module._LOGGED.clear()
        for _ in range(3):
            m(torch.randn(5, 2, 3))
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "custom path" in messages[0] and "CPU" in messages[0]


@pytest.mark.parametrize("lengths", [None, [5, 2, 4]], ids=["full", "lengths"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tf", "bf"])
def test_auto_engines_give_torch_nn_lstm_numbers(monkeypatch, lengths, batch_first):
    """Both engines of one AutoLSTM (the custom path, and torch.nn.LSTM's code over the same
    weights, which is what runs on CUDA) equal torch.nn.LSTM, gradients included."""
    torch.manual_seed(0)
    m = build_lstm("auto", input_size=3, hidden_size=4, num_layers=2, batch_first=batch_first)
    ref = torch.nn.LSTM(3, 4, num_layers=2, batch_first=batch_first)
    ref.load_state_dict(m.state_dict())
    x = torch.randn(3, 5, 3) if batch_first else torch.randn(5, 3, 3)

    def run(model, **kw):
        xg = x.clone().requires_grad_(True)
        if lengths is None:
            out, (h, c) = model(xg, **kw)
        else:
            packed = torch.nn.utils.rnn.pack_padded_sequence(
                xg, lengths, batch_first=batch_first, enforce_sorted=False
            )
            out, (h, c) = model(packed)
            out, _ = torch.nn.utils.rnn.pad_packed_sequence(
                out, batch_first=batch_first, total_length=5
            )
        grads = torch.autograd.grad(out.sum() + h.sum() + c.sum(), [xg, *model.parameters()])
        return [out, h, c, *grads]

    expected = run(ref)
    for engine in ("custom", "torch"):
        monkeypatch.setattr(AutoLSTM, "engine", lambda self, x, lengths, e=engine: (e, "test"))
        for a, b in zip(run(m), expected, strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("backend", "expected"), [("custom", CustomLSTM), ("cudnn", CudnnLSTM)], ids=str
)
def test_build_lstm_explicit_backend(backend, expected):
    m = build_lstm(backend, input_size=3, hidden_size=4, num_layers=2, batch_first=True)
    assert type(m) is expected
    assert (m.input_size, m.hidden_size, m.num_layers, m.batch_first) == (3, 4, 2, True)
