"""The custom core as PyTorch operators: opcheck, torch.compile, torch.export, gradients of
any order, torch.func, empty batches — each against torch.nn.LSTM or the reference cell."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call, grad, vmap

from lstmkit.nn import AutoLSTM, CustomLSTM, auto, custom
from lstmkit.nn.fastpath.fused import LayerInputs
from lstmkit.nn.fastpath.ops import run_layer

VARIANTS = {
    "plain": {},
    "proj": {"proj_size": 2},
    "bidirectional": {"bidirectional": True, "num_layers": 2},
    "layer_norm": {"layer_norm": True},
    "peephole": {"peephole": True},
    "zoneout": {"zoneout": (0.3, 0.4)},
    "recurrent_dropout": {"recurrent_dropout": 0.3},
}
LENGTHS = {"full": None, "lengths": [4, 1, 3]}


def _model(variant: str, dtype=torch.float64, train: bool = True) -> CustomLSTM:
    torch.manual_seed(0)
    model = CustomLSTM(3, 4, dtype=dtype, **VARIANTS[variant]).train(train)
    with torch.no_grad():  # gains and biases away from their 1 / 0 init
        for param in model.parameters():
            param.add_(0.1 * torch.randn_like(param))
    return model


def _layer_calls(monkeypatch, model, x, lengths) -> list[LayerInputs]:
    """The `LayerInputs` of every layer and direction one forward hands to the op."""
    calls = []

    def record(inputs):
        calls.append(inputs)
        return run_layer(inputs)

    monkeypatch.setattr(custom, "run_layer", record)
    torch.manual_seed(1)
    model(x, lengths=lengths)
    monkeypatch.undo()
    return calls


def _leaf(t):
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        return t
    return t.detach().clone().requires_grad_(True)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("lengths", list(LENGTHS.values()), ids=list(LENGTHS))
@pytest.mark.parametrize("variant", [*list(VARIANTS), "zoneout-eval"])
def test_opcheck(monkeypatch, variant, lengths, dtype):
    """torch.library.opcheck (schema, fake tensors, autograd registration, AOT dispatch) on the
    very inputs each variant hands the op, for every layer and direction."""
    eval_mode = variant.endswith("-eval")
    model = _model(variant.removesuffix("-eval"), dtype, train=not eval_mode)
    x = torch.randn(4, 3, 3, dtype=dtype)
    for inputs in _layer_calls(monkeypatch, model, x, lengths):
        args = tuple(_leaf(t) for t in inputs)
        torch.library.opcheck(torch.ops.lstmkit.lstm_layer.default, (*args, True))


def _functional(model):
    names = [name for name, _ in model.named_parameters()]

    def run(x, *params, lengths=None):
        torch.manual_seed(1)  # the same dropout / zoneout masks at every evaluation
        out, (h, c) = functional_call(model, dict(zip(names, params, strict=True)), (x,),
                                      {"lengths": lengths})  # fmt: skip
        return out, h, c

    return run


@pytest.mark.parametrize("lengths", list(LENGTHS.values()), ids=list(LENGTHS))
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_gradgradcheck(variant, lengths):
    """Second-order gradients are exact for every variant (float64, numerical reference;
    fast mode: random projections of the Jacobians, which keeps the suite quick)."""
    model = _model(variant)
    run = _functional(model)
    x = torch.randn(4, 3, 3, dtype=torch.float64, requires_grad=True)
    params = tuple(p.detach().clone().requires_grad_(True) for p in model.parameters())
    assert torch.autograd.gradgradcheck(
        lambda *a: run(*a, lengths=lengths), (x, *params), fast_mode=True
    )


def test_gradient_penalty_reaches_every_parameter():
    """WGAN-GP style: d/dθ ||d out / d x||² is nonzero for every weight, as with nn.LSTM."""
    torch.manual_seed(0)
    ours = CustomLSTM(3, 4, num_layers=2, dtype=torch.float64)
    ref = torch.nn.LSTM(3, 4, num_layers=2, dtype=torch.float64)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    grads = []
    for model in (ours, ref):
        xg = x.clone().requires_grad_(True)
        out, _ = model(xg)
        (g,) = torch.autograd.grad(out.pow(2).sum(), xg, create_graph=True)
        grads.append(torch.autograd.grad(g.pow(2).sum(), list(model.parameters())))
    for a, b in zip(*grads, strict=True):
        assert b.abs().sum() > 0
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("variant", ["plain", "layer_norm", "proj"])
def test_batched_gradcheck(variant):
    model = _model(variant)
    run = _functional(model)
    x = torch.randn(3, 2, 3, dtype=torch.float64, requires_grad=True)
    params = tuple(p.detach().clone().requires_grad_(True) for p in model.parameters())
    assert torch.autograd.gradcheck(run, (x, *params), check_batched_grad=True)


@pytest.mark.parametrize("variant", ["plain", "layer_norm", "bidirectional"])
def test_vmap_of_grad_gives_per_sample_gradients(variant):
    """Per-sample gradients (Opacus, influence functions): vmap(grad) equals a loop."""
    model = _model(variant, train=False)
    params = {name: p.detach() for name, p in model.named_parameters()}
    x = torch.randn(5, 4, 3, dtype=torch.float64)

    def loss(p, sample):  # sample (T, C)
        out, _ = functional_call(model, p, (sample.unsqueeze(1),))
        return out.pow(2).sum()

    batched = vmap(grad(loss), in_dims=(None, 1))(params, x)
    for b in range(x.shape[1]):
        single = grad(loss)(params, x[:, b])
        looped = {name: torch.autograd.grad(loss(params_req, x[:, b]), params_req[name])[0]
                  for name in params
                  for params_req in [{k: v.clone().requires_grad_(True) for k, v in params.items()}]}  # fmt: skip
        for name in params:
            torch.testing.assert_close(batched[name][b], single[name])
            torch.testing.assert_close(batched[name][b], looped[name])


@pytest.mark.parametrize("backend", [CustomLSTM, AutoLSTM], ids=["custom", "auto"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["tf", "bf"])
def test_batch_of_size_zero_works_like_torch(backend, batch_first):
    torch.manual_seed(0)
    ours = backend(3, 4, num_layers=2, bidirectional=True, batch_first=batch_first)
    ref = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=batch_first)
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(0, 5, 3) if batch_first else torch.randn(5, 0, 3)
    for model in (ours, ref):
        out, (h, c) = model(x.clone().requires_grad_(True))
        assert out.shape == ((0, 5, 8) if batch_first else (5, 0, 8))
        assert h.shape == c.shape == (4, 0, 4)
        grads = torch.autograd.grad(out.sum() + h.sum(), list(model.parameters()))
        assert all(g.abs().sum() == 0 for g in grads)
    assert ours(x, lengths=torch.empty(0, dtype=torch.long))[0].shape == out.shape


class _Classifier(torch.nn.Module):
    def __init__(self, core: torch.nn.Module) -> None:
        super().__init__()
        self.core, self.head = core, torch.nn.Linear(8, 2)

    def forward(self, x, lengths=None):
        out, (h, _) = self.core(x, lengths=lengths)
        return self.head(h[-1]) + out.mean()


def _task(encoder: dict):
    from lstmkit.tasks import SequenceClassifier

    return SequenceClassifier(encoder, num_classes=3, input_size=3)


@pytest.mark.slow
@pytest.mark.parametrize(
    "encoder",
    [{"backend": "custom", "hidden_size": 8}, {"backend": "custom", "hidden_size": 8,
     "layer_norm": True, "bidirectional": True}, {"backend": "auto", "hidden_size": 8}],
    ids=["custom", "custom-layernorm-bidir", "auto"],
)  # fmt: skip
@pytest.mark.parametrize("lengths", [None, [6, 2, 5]], ids=["full", "lengths"])
def test_compile_fullgraph_of_a_task_matches_eager(encoder, lengths):
    """No graph break (fullgraph=True) around the core; outputs and gradients equal eager's."""
    torch._dynamo.reset()
    auto._LOGGED.clear()  # auto's first call logs its choice: never inside a graph
    model = _task(encoder)
    lengths = None if lengths is None else torch.tensor(lengths)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    for steps in (6, 9):
        x = torch.randn(3, steps, 3)
        if lengths is not None:
            lengths = lengths.clamp(max=steps)
        got, want = compiled(x, lengths), model(x, lengths)
        torch.testing.assert_close(got, want)
        g_got = torch.autograd.grad(got.sum(), list(model.parameters()))
        g_want = torch.autograd.grad(want.sum(), list(model.parameters()))
        for a, b in zip(g_got, g_want, strict=True):
            torch.testing.assert_close(a, b)


@pytest.mark.slow
def test_compile_with_inductor_matches_eager():
    torch._dynamo.reset()
    model = _task({"backend": "custom", "hidden_size": 8})
    x = torch.randn(3, 6, 3)
    compiled = torch.compile(model, fullgraph=True)
    torch.testing.assert_close(compiled(x), model(x))


@pytest.mark.parametrize("lengths", [None, [6, 2, 5]], ids=["full", "lengths"])
@pytest.mark.parametrize("options", [{}, {"layer_norm": True, "peephole": True}], ids=str)
def test_torch_export_runs_and_matches_eager(options, lengths):
    torch.manual_seed(0)
    model = _Classifier(CustomLSTM(3, 8, batch_first=True, **options)).eval()
    x = torch.randn(3, 6, 3)
    args = (x,) if lengths is None else (x, torch.tensor(lengths))
    program = torch.export.export(model, args)
    torch.testing.assert_close(program.module()(*args), model(*args))


def test_auto_compiles_whatever_engine_it_would_pick_eagerly(monkeypatch):
    """On CUDA auto runs cuDNN eagerly, which PyTorch cannot trace: inside torch.compile it
    runs the custom operator instead (checked here with the eager choice forced to torch's)."""
    torch._dynamo.reset()
    model = _Classifier(AutoLSTM(3, 8, batch_first=True))
    x = torch.randn(3, 6, 3)
    eager = model(x)
    original = AutoLSTM.engine

    def cuda_like(self, x, lengths):
        engine = original(self, x, lengths)
        return engine if torch.compiler.is_compiling() else ("torch", "as on CUDA")

    monkeypatch.setattr(AutoLSTM, "engine", cuda_like)
    torch.testing.assert_close(model(x), eager)  # torch.nn.LSTM's code, eagerly
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(x), eager)


@pytest.mark.parametrize("jvp", ["forward_ad", "torch.func.jvp"])
def test_forward_mode_ad_matches_finite_differences(jvp):
    """Forward-mode AD (which torch.nn.LSTM's CPU kernel lacks) through the composite layer."""
    import torch.autograd.forward_ad as fwad

    model = _model("layer_norm")
    x, tangent = (
        torch.randn(4, 2, 3, dtype=torch.float64),
        torch.randn(4, 2, 3, dtype=torch.float64),
    )
    if jvp == "forward_ad":
        with fwad.dual_level():
            out, _ = model(fwad.make_dual(x, tangent))
            got = fwad.unpack_dual(out).tangent
    else:
        _, got = torch.func.jvp(lambda z: model(z)[0], (x,), (tangent,))
    eps = 1e-6
    expected = (model(x + eps * tangent)[0] - model(x - eps * tangent)[0]) / (2 * eps)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-7)
