"""Code written for torch.nn.LSTM runs unchanged on lstmkit's cores: its exception types and
wording, its attributes and methods, whole-model pickles under ``weights_only=True``, and NaN /
Inf flowing through every path of the custom core exactly as through torch ops."""

from __future__ import annotations

import io
import warnings

import pytest
import torch

from lstmkit.nn import AutoLSTM, CudnnLSTM, CustomLSTM, LSTMCell
from lstmkit.nn.fastpath import native, ops
from lstmkit.nn.settings import flags, settings

CORES = {"custom": CustomLSTM, "cudnn": CudnnLSTM, "auto": AutoLSTM}


def _pair(core: str, **kwargs):
    torch.manual_seed(0)
    ref = torch.nn.LSTM(3, 5, **kwargs)
    ours = CORES[core](3, 5, **kwargs)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


X = torch.randn(4, 2, 3)
MISUSE = {
    "zero steps": lambda m: m(torch.randn(0, 2, 3)),
    "zero steps unbatched": lambda m: m(torch.randn(0, 3)),
    "wrong features": lambda m: m(torch.randn(4, 2, 4)),
    "4-D input": lambda m: m(torch.randn(4, 2, 3, 1)),
    "wrong dtype": lambda m: m(X.double()),
    "integer input": lambda m: m(torch.ones(4, 2, 3, dtype=torch.long)),
    "h0 batch": lambda m: m(X, (torch.zeros(1, 3, 5), torch.zeros(1, 2, 5))),
    "c0 size": lambda m: m(X, (torch.zeros(1, 2, 5), torch.zeros(1, 2, 6))),
    "h0 rank": lambda m: m(X, (torch.zeros(2, 5), torch.zeros(1, 2, 5))),
    "unbatched h0 rank": lambda m: m(X[:, 0], (torch.zeros(1, 2, 5), torch.zeros(1, 5))),
    "three states": lambda m: m(X, (torch.zeros(1, 2, 5),) * 3),
    "state dtype": lambda m: m(X, (torch.zeros(1, 2, 5).double(), torch.zeros(1, 2, 5).double())),
}
KEY_PHRASES = {
    "zero steps": "Expected sequence length to be larger than 0",
    "zero steps unbatched": "Expected sequence length to be larger than 0",
    "wrong features": "input.size(-1) must be equal to input_size. Expected 3, got 4",
    "4-D input": "Expected input to be 2D or 3D, got 4D instead",
    "wrong dtype": "does not match weight dtype",
    "integer input": "does not match weight dtype",
    "h0 batch": "Expected hidden[0] size (1, 2, 5), got [1, 3, 5]",
    "c0 size": "Expected hidden[1] size (1, 2, 5), got [1, 2, 6]",
    "h0 rank": "hx and cx should also be 3-D",
    "unbatched h0 rank": "hx and cx should also be 2-D",
    "three states": "lstm expects two hidden states",
    "state dtype": "not the same dtype",
}


@pytest.mark.parametrize("case", list(MISUSE))
@pytest.mark.parametrize("core", list(CORES))
def test_misuse_raises_what_torch_raises(core, case):
    """``except <torch's exception type>`` catches ours, and the message has torch's words."""
    ref, ours = _pair(core)
    with pytest.raises(Exception) as torch_error:
        MISUSE[case](ref)
    with pytest.raises(type(torch_error.value)) as our_error:
        MISUSE[case](ours)
    assert KEY_PHRASES[case] in str(our_error.value)


CONSTRUCTOR_MISUSE = [
    ({"hidden_size": 0}, "hidden_size must be greater than zero"),
    ({"hidden_size": -2}, "hidden_size must be greater than zero"),
    ({"input_size": 0}, "input_size must be greater than zero"),
    ({"num_layers": 0}, "num_layers must be greater than zero"),
    ({"hidden_size": 2.0}, "hidden_size should be of type int"),
    ({"dropout": 1.5}, "dropout should be a number in range [0, 1]"),
    ({"proj_size": -1}, "proj_size should be a positive integer or zero"),
    ({"proj_size": 5}, "proj_size has to be smaller than hidden_size"),
    ({"bias": 1}, "bias should be of type bool"),
    ({"batch_first": "yes"}, "batch_first should be of type bool"),
]


@pytest.mark.parametrize(("kwargs", "phrase"), CONSTRUCTOR_MISUSE, ids=str)
@pytest.mark.parametrize("core", list(CORES))
def test_constructor_misuse_raises_what_torch_raises(core, kwargs, phrase):
    arguments = {"input_size": 3, "hidden_size": 5, **kwargs}
    with pytest.raises(Exception) as torch_error:
        torch.nn.LSTM(**arguments)
    with pytest.raises(type(torch_error.value), match=phrase.replace("[", r"\[")):
        CORES[core](**arguments)


def test_dropout_on_one_layer_warns_like_torch():
    with pytest.warns(UserWarning, match="non-zero dropout expects num_layers greater than 1"):
        CustomLSTM(3, 5, dropout=0.5)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"num_layers": 2, "bidirectional": True}, {"proj_size": 2}, {"bias": False}],
    ids=str,
)
def test_torch_surface(kwargs):
    """The attributes and methods client code reaches for on an nn.LSTM."""
    ref, ours = _pair("custom", **kwargs)
    assert ours.mode == ref.mode == "LSTM"
    assert ours._flat_weights_names == ref._flat_weights_names
    for a, b in zip(ours._flat_weights, ref._flat_weights, strict=True):
        torch.testing.assert_close(a, b)
    assert [[p.shape for p in ps] for ps in ours.all_weights] == [
        [p.shape for p in ps] for ps in ref.all_weights
    ]
    ours.flatten_parameters()  # a documented no-op
    x = torch.randn(4, 2, 3)
    hx = (torch.zeros(ref.get_expected_hidden_size(x, None)),
          torch.zeros(ref.get_expected_cell_size(x, None)))  # fmt: skip
    assert ours.get_expected_hidden_size(x, None) == ref.get_expected_hidden_size(x, None)
    assert ours.get_expected_cell_size(x, None) == ref.get_expected_cell_size(x, None)
    ours.check_forward_args(x, hx, None)
    with pytest.raises(RuntimeError, match="Expected hidden"):
        ours.check_forward_args(x, (hx[0][:, :1], hx[1]), None)
    permutation = torch.tensor([1, 0])
    for a, b in zip(ours.permute_hidden(hx, permutation), ref.permute_hidden(hx, permutation),
                    strict=True):  # fmt: skip
        torch.testing.assert_close(a, b)
    # torch.nn.LSTM's own forward runs over the custom core's weights (the surface is complete)
    torch.testing.assert_close(torch.nn.LSTM.forward(ours, x)[0], ref(x)[0])


class _WordModel(torch.nn.Module):
    """pytorch/examples' word_language_model RNNModel, its one line changed to lstmkit."""

    def __init__(self, core: type) -> None:
        super().__init__()
        self.encoder = torch.nn.Embedding(10, 4)
        self.rnn = core(4, 6, 2, dropout=0.2)
        self.decoder = torch.nn.Linear(6, 10)

    def forward(self, tokens, hidden):
        output, hidden = self.rnn(self.encoder(tokens), hidden)
        return self.decoder(output), hidden


@pytest.mark.parametrize("core", [CustomLSTM, CudnnLSTM, AutoLSTM], ids=lambda c: c.__name__)
def test_whole_model_pickle_loads_with_weights_only(core):
    # the client allowlists its own class and the torch modules it holds, as it must with
    # torch.nn.LSTM too; lstmkit's cores need nothing more
    torch.serialization.add_safe_globals(
        [_WordModel, torch.nn.Embedding, torch.nn.Linear, torch.nn.LSTM]
    )
    torch.manual_seed(0)
    model = _WordModel(core).eval()
    model.rnn.flatten_parameters()
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer)  # torch's default: weights_only=True
    loaded.rnn.flatten_parameters()
    tokens = torch.randint(0, 10, (5, 2))
    hidden = (torch.zeros(2, 2, 6), torch.zeros(2, 2, 6))
    torch.testing.assert_close(loaded(tokens, hidden)[0], model(tokens, hidden)[0])


def test_cell_pickle_loads_with_weights_only():
    cell = LSTMCell(3, 4)
    buffer = io.BytesIO()
    torch.save(cell, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer)
    x = torch.randn(2, 3)
    torch.testing.assert_close(loaded(x)[0], cell(x)[0])


# ---------------------------------------------------------------- non-finite values

PATHS = {
    "c-loop": {"native": True, "native_loop": True, "own_gemm": True},
    "c-loop-blas": {"native": True, "native_loop": True, "own_gemm": False},
    "python-loop": {"native": True, "native_loop": False},
    "composite": None,  # the differentiable layer torch.func and double backward run
}


def _poisoned(where: str, value: float, layer_norm: bool, dtype):
    torch.manual_seed(0)
    model = CustomLSTM(3, 6, num_layers=2, layer_norm=layer_norm, dtype=dtype)
    x = torch.randn(5, 4, 3, dtype=dtype)
    h0, c0 = torch.randn(2, 2, 4, 6, dtype=dtype).unbind(0)
    if where == "input":
        x[2, 1, 0] = value
    elif where == "h0":
        h0[0, 2, 3] = value
    elif where == "c0":
        c0[1, 3, 1] = value
    else:
        with torch.no_grad():
            model.weight_hh_l0[5, 2] = value
    return model, x, (h0, c0)


def _run_all(model, x, hx, lengths):
    xg = x.clone().requires_grad_(True)
    h0, c0 = (t.clone().requires_grad_(True) for t in hx)
    out, (h, c) = model(xg, (h0, c0), lengths=lengths)
    loss = out.sum() + h.sum() + c.sum()
    grads = torch.autograd.grad(loss, [xg, h0, c0, *model.parameters()], allow_unused=True)
    return [out, h, c, *grads]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("lengths", [None, [5, 2, 4, 3]], ids=["full", "lengths"])
@pytest.mark.parametrize("layer_norm", [False, True], ids=["plain", "layernorm"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")], ids=str)
@pytest.mark.parametrize("where", ["input", "h0", "c0", "weight"])
def test_nonfinite_values_propagate_like_torch_ops(
    monkeypatch, where, value, layer_norm, lengths, dtype
):
    """NaN and ±Inf give the same NaN / Inf positions in outputs, states and every gradient on
    every native path as on the torch-op path, and the forward's as torch.nn.LSTM's."""
    if native.kernels() is None:
        pytest.skip("the native kernels are not built here")
    model, x, hx = _poisoned(where, value, layer_norm, dtype)
    with flags(native=False):
        expected = _run_all(model, x, hx, lengths)
    if value != value and lengths is None:  # NaN: the poison shows (±Inf may saturate a gate)
        assert all(not torch.isfinite(t).all() for t in expected[:3])
    for path, switches in PATHS.items():
        if switches is None:
            with monkeypatch.context() as patch:
                patch.setattr(ops, "functorch_active", lambda: True)
                got = _run_all(model, x, hx, lengths)
        else:
            with flags(**switches):
                got = _run_all(model, x, hx, lengths)
        for name, a, b in zip(["output", "h_n", "c_n", "x", "h0", "c0"] + [
                n for n, _ in model.named_parameters()], got, expected, strict=True):  # fmt: skip
            assert torch.equal(a.isnan(), b.isnan()), (path, name, "NaN positions")
            assert torch.equal(a.isposinf(), b.isposinf()), (path, name, "+Inf positions")
            assert torch.equal(a.isneginf(), b.isneginf()), (path, name, "-Inf positions")
    if not layer_norm:
        ref = torch.nn.LSTM(3, 6, num_layers=2, dtype=dtype)
        ref.load_state_dict(model.state_dict())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            packed = lengths is not None
            inp = (torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
                   if packed else x)  # fmt: skip
            out, (h, c) = ref(inp, hx)
            if packed:
                out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=5)
        for a, b in zip(expected[:3], (out, h, c), strict=True):
            assert torch.equal(a.isnan(), b.isnan())


@pytest.mark.slow
@pytest.mark.parametrize("variant", native.runnable_variants())
def test_every_isa_build_keeps_nan_and_inf(rebuilt_kernels, monkeypatch, tmp_path, variant):
    """Each build this CPU runs (installed, or compiled here), not only the one loaded by
    default, propagates NaN / Inf like the torch-op path."""
    monkeypatch.setattr(native, "runnable_variants", lambda: [variant])
    monkeypatch.setattr(settings, "cache_dir", tmp_path)
    native.kernels.cache_clear()
    try:
        if native.kernels() is None:
            pytest.skip("no build of the kernels here")
        assert native.kernels().origin.startswith(variant)
        for where, value in (("input", float("nan")), ("weight", -float("inf"))):
            model, x, hx = _poisoned(where, value, False, torch.float32)
            with flags(native=False):
                expected = _run_all(model, x, hx, None)
            got = _run_all(model, x, hx, None)
            for a, b in zip(got, expected, strict=True):
                assert torch.equal(a.isnan(), b.isnan()) and torch.equal(a.isinf(), b.isinf())
    finally:
        native.kernels.cache_clear()
