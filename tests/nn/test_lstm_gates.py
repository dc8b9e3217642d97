"""Gate recording: ``return_gates=True``, ``record_gates(module)`` and ``to_custom``."""

from __future__ import annotations

import pytest
import torch
from lstm_testing import randomize_parameters
from torch import nn

from lstmkit.nn import CudnnLSTM, CustomLSTM, GateTrace, record_gates, to_custom

SEQ, BATCH, INPUT, HIDDEN = 5, 3, 3, 4
F64 = torch.float64
FIELDS = ("input_gate", "forget_gate", "cell_gate", "output_gate", "cell", "hidden")
TIGHT = {"atol": 1e-12, "rtol": 1e-12}

CONFIGS = {
    "L1-uni": {},
    "L2-bidir": {"num_layers": 2, "bidirectional": True},
    "L2-bidir-proj": {"num_layers": 2, "bidirectional": True, "proj_size": 2},
    "L3-uni-bf": {"num_layers": 3, "batch_first": True},
    "layer_norm+peephole": {"layer_norm": True, "peephole": True, "bidirectional": True},
}


def _inputs(m, lengths=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shape = (BATCH, SEQ, INPUT) if m.batch_first else (SEQ, BATCH, INPUT)
    x = torch.randn(*shape, generator=gen, dtype=F64)
    rows = m.num_layers * (2 if m.bidirectional else 1)
    h0 = torch.randn(rows, BATCH, m.proj_size or m.hidden_size, generator=gen, dtype=F64)
    c0 = torch.randn(rows, BATCH, m.hidden_size, generator=gen, dtype=F64)
    return x, (h0, c0)


def _time_major(out, batch_first):
    return out.transpose(0, 1) if batch_first else out


def _check_trace(m, out, h_n, c_n, trace, hx, lengths=None):
    dirs = 2 if m.bidirectional else 1
    rows = m.num_layers * dirs
    state = m.proj_size or m.hidden_size
    assert isinstance(trace, GateTrace)
    for name in FIELDS:
        size = state if name == "hidden" else m.hidden_size
        assert getattr(trace, name).shape == (rows, BATCH, SEQ, size), name
    lens = torch.full((BATCH,), SEQ) if lengths is None else torch.as_tensor(lengths)
    valid = torch.arange(SEQ).unsqueeze(0) < lens.unsqueeze(1)  # (B, T)
    v = valid.unsqueeze(0).unsqueeze(-1)  # (1, B, T, 1)

    # gate ranges at valid steps; exact zeros at padded steps
    for name in ("input_gate", "forget_gate", "output_gate"):
        g = getattr(trace, name)
        assert ((g > 0) & (g < 1) | ~v).all(), name
    g = trace.cell_gate
    assert ((g > -1) & (g < 1) | ~v).all()
    for name in FIELDS:
        padded = getattr(trace, name).masked_select(~v)
        assert torch.equal(padded, torch.zeros_like(padded)), f"{name} not zero at padded steps"

    # recorded hidden of the last layer is the output, per direction
    out_tm = _time_major(out, m.batch_first)  # (T, B, D*state)
    for d in range(dirs):
        recorded = trace.hidden[(m.num_layers - 1) * dirs + d].transpose(0, 1)  # (T, B, state)
        torch.testing.assert_close(recorded, out_tm[..., d * state : (d + 1) * state], **TIGHT)

    # the states at each sequence's last processed step are h_n / c_n (every layer)
    for row in range(rows):
        reverse = row % dirs == 1
        for b in range(BATCH):
            t = 0 if reverse else int(lens[b]) - 1
            torch.testing.assert_close(trace.cell[row, b, t], c_n[row, b], **TIGHT)
            torch.testing.assert_close(trace.hidden[row, b, t], h_n[row, b], **TIGHT)

    # the cell recursion c_t = f c_{t-1} + i g holds (no zoneout here)
    c0 = hx[1]
    for row in range(rows):
        reverse = row % dirs == 1
        for b in range(BATCH):
            n = int(lens[b])
            prev = c0[row, b]
            steps = range(n - 1, -1, -1) if reverse else range(n)
            for t in steps:
                expected = (
                    trace.forget_gate[row, b, t] * prev
                    + trace.input_gate[row, b, t] * trace.cell_gate[row, b, t]
                )
                torch.testing.assert_close(trace.cell[row, b, t], expected, **TIGHT)
                prev = trace.cell[row, b, t]


@pytest.mark.parametrize("implementation", ["fused", "reference"])
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("lengths", [None, [5, 2, 1]], ids=["full", "lengths"])
def test_return_gates(config, implementation, lengths):
    m = CustomLSTM(INPUT, HIDDEN, implementation=implementation, dtype=F64, **CONFIGS[config])
    randomize_parameters(m, torch.Generator().manual_seed(1))
    x, hx = _inputs(m)
    kw = {} if lengths is None else {"lengths": lengths}
    out, (h_n, c_n), trace = m(x, hx, return_gates=True, **kw)
    out2, (h2, c2) = m(x, hx, **kw)
    torch.testing.assert_close(out, out2, **TIGHT)
    torch.testing.assert_close(h_n, h2, **TIGHT)
    torch.testing.assert_close(c_n, c2, **TIGHT)
    _check_trace(m, out, h_n, c_n, trace, hx, lengths)


def test_recorded_gates_are_torch_gate_order():
    """Layer 0 at t=0 recomputed by hand from torch's weight layout (i, f, g, o)."""
    torch.manual_seed(3)
    lstm = torch.nn.LSTM(INPUT, HIDDEN, dtype=F64)
    m = to_custom(lstm)
    x, hx = _inputs(m)
    _, _, trace = m(x, hx, return_gates=True)
    pre = (
        x[0] @ lstm.weight_ih_l0.T
        + lstm.bias_ih_l0
        + hx[0][0] @ lstm.weight_hh_l0.T
        + lstm.bias_hh_l0
    ).detach()
    a_i, a_f, a_g, a_o = pre.chunk(4, dim=-1)
    torch.testing.assert_close(trace.input_gate[0, :, 0], torch.sigmoid(a_i), **TIGHT)
    torch.testing.assert_close(trace.forget_gate[0, :, 0], torch.sigmoid(a_f), **TIGHT)
    torch.testing.assert_close(trace.cell_gate[0, :, 0], torch.tanh(a_g), **TIGHT)
    torch.testing.assert_close(trace.output_gate[0, :, 0], torch.sigmoid(a_o), **TIGHT)


@pytest.mark.parametrize("source", ["torch", "cudnn"])
@pytest.mark.parametrize("config", ["L1-uni", "L2-bidir-proj", "L3-uni-bf"])
def test_to_custom_records_like_a_custom_lstm_with_the_same_weights(source, config):
    kwargs = CONFIGS[config]
    torch.manual_seed(4)
    cls = torch.nn.LSTM if source == "torch" else CudnnLSTM
    lstm = cls(INPUT, HIDDEN, dtype=F64, **kwargs)
    converted = to_custom(lstm)
    assert isinstance(converted, CustomLSTM)
    direct = CustomLSTM(INPUT, HIDDEN, dtype=F64, **kwargs)
    direct.load_state_dict(lstm.state_dict())
    x, hx = _inputs(direct)
    out_src, (h_src, c_src) = lstm(x, hx)
    out_c, (h_c, c_c), trace_c = converted(x, hx, return_gates=True)
    out_d, _, trace_d = direct(x, hx, return_gates=True)
    torch.testing.assert_close(out_c, out_src, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(h_c, h_src, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(c_c, c_src, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(out_c, out_d, **TIGHT)
    for name in FIELDS:
        torch.testing.assert_close(getattr(trace_c, name), getattr(trace_d, name), **TIGHT)
    _check_trace(converted, out_c, h_c, c_c, trace_c, hx)


def test_to_custom_keeps_weights_independent_of_source():
    lstm = torch.nn.LSTM(INPUT, HIDDEN)
    converted = to_custom(lstm)
    assert converted.state_dict().keys() == lstm.state_dict().keys()
    for k, v in converted.state_dict().items():
        assert torch.equal(v, lstm.state_dict()[k])


class _Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = CustomLSTM(INPUT, HIDDEN, bidirectional=True, dtype=F64)
        self.decoder = CustomLSTM(2 * HIDDEN, HIDDEN, dtype=F64)
        self.head = nn.Linear(HIDDEN, 1, dtype=F64)

    def forward(self, x):
        enc, _ = self.encoder(x)
        dec, _ = self.decoder(enc)
        return self.head(dec)


def test_record_gates_context_manager():
    model = _Model()
    x = torch.randn(SEQ, BATCH, INPUT, dtype=F64)
    expected_out = model(x)
    with record_gates(model) as traces:
        out = model(x)
        out_again = model(x)
    torch.testing.assert_close(out, expected_out, **TIGHT)
    torch.testing.assert_close(out_again, expected_out, **TIGHT)
    assert len(traces) == 4  # two CustomLSTM calls, twice
    _, _, enc_trace = model.encoder(x, return_gates=True)
    enc_out, _ = model.encoder(x)
    _, _, dec_trace = model.decoder(enc_out, return_gates=True)
    for recorded, direct in ((traces[0], enc_trace), (traces[1], dec_trace)):
        for name in FIELDS:
            torch.testing.assert_close(getattr(recorded, name), getattr(direct, name), **TIGHT)
    # nothing is recorded after the context exits
    model(x)
    assert len(traces) == 4


def test_record_gates_on_a_bare_custom_lstm_with_lengths():
    m = CustomLSTM(INPUT, HIDDEN, num_layers=2, bidirectional=True, dtype=F64)
    x, hx = _inputs(m)
    lengths = torch.tensor([2, 5, 1])
    with record_gates(m) as traces:
        out, (h_n, c_n) = m(x, hx, lengths=lengths)
    assert len(traces) == 1
    _check_trace(m, out, h_n, c_n, traces[0], hx, lengths)


def test_return_gates_unbatched():
    m = CustomLSTM(INPUT, HIDDEN, num_layers=2, dtype=F64)
    x = torch.randn(SEQ, INPUT, dtype=F64)
    out, (h_n, c_n), trace = m(x, return_gates=True)
    for name in FIELDS:
        assert getattr(trace, name).shape == (2, SEQ, HIDDEN), name
    torch.testing.assert_close(trace.hidden[-1], out, **TIGHT)
    torch.testing.assert_close(trace.hidden[:, -1], h_n, **TIGHT)
    torch.testing.assert_close(trace.cell[:, -1], c_n, **TIGHT)
