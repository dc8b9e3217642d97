"""ONNX export of trained sequence tasks: a full-sequence graph and a single-step graph.

- **Full sequence** (``model.onnx``): input ``x`` ``(batch, time, C)`` floats or ``(batch, time)``
  int64 tokens, both axes dynamic; output ``y``, what the task's ``forward`` returns (logits, or
  standardised regression values; per-step models ``(batch, time, ·)``). The recurrence is the
  ONNX ``LSTM`` operator: the encoder's weights go into an equal ``torch.nn.LSTM``, whichever
  backend trained them.
- **Single step** (``model_step.onnx``), for streaming: inputs ``x`` ``(batch, C)`` (or
  ``(batch,)`` tokens), ``h`` ``(num_layers, batch, P)``, ``c`` ``(num_layers, batch, H)``;
  outputs ``y`` (the output if the sequence ended at this step), ``h_out``, ``c_out``. Start from
  zeros. It is traced from the readable cell (``lstmkit.nn.lstm_step``), so the custom
  variants ``layer_norm``, ``peephole`` and ``zoneout`` export exactly.

What cannot be exported raises :class:`ExportError` naming the option and why; a graph is never
written that would compute something else than the model.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor, nn

from lstmkit._logging import get_logger
from lstmkit.nn import CustomLSTM, lstm_step, to_custom
from lstmkit.tasks.heads import pool

log = get_logger(__name__)

GRAPHS = ("full", "step")
#: Custom-core options with no counterpart in the ONNX LSTM operator (at evaluation).
FULL_GRAPH_VARIANTS = ("layer_norm", "peephole", "zoneout")
OPSET = 17


class ExportError(ValueError):
    """A model (or an option of it) that cannot be exported; the message says which and why."""


def _check_task(model: nn.Module) -> None:
    if hasattr(model, "generate"):
        raise ExportError(
            f"{type(model).__name__}: export of encoder-decoder models is not supported (greedy "
            "decoding is a data-dependent loop); export works for SequenceClassifier and "
            "SequenceRegressor"
        )
    if getattr(model, "feeds_back_forecasts", False):
        raise ExportError(
            f"{type(model).__name__}: export of autoregressive forecasters is not supported "
            "(each forecast step feeds the one before back in a loop); export works for "
            "SequenceClassifier and SequenceRegressor"
        )
    if not hasattr(model, "encoder") or not hasattr(model, "head"):
        raise ExportError(f"{type(model).__name__} is not an lstmkit sequence task")


def level_options(model: nn.Module) -> list[str]:
    """The forecasting options (as the task resolved them) that use each window's last
    observed target value: the full graph computes them, a single step cannot."""
    return [o for o in ("residual", "relative_inputs") if getattr(model, o, False)]


def supported_graphs(model: nn.Module) -> tuple[str, ...]:
    """The graphs of :data:`GRAPHS` that can compute ``model`` exactly."""
    _check_task(model)
    streams = not level_options(model) and model.num_directions == 1
    streams = streams and getattr(model, "frontend", None) is None
    pooling = model.hparams.get("pooling", "last")
    streams = streams and (model.per_step or pooling == "last")
    full = not variants(model.encoder)
    return tuple(g for g in GRAPHS if (full if g == "full" else streams))


def variants(core: nn.Module) -> list[str]:
    """Options of a CustomLSTM that change its evaluation-mode output from a plain LSTM's."""
    if not isinstance(core, CustomLSTM):
        return []
    found = [name for name in ("layer_norm", "peephole") if getattr(core, name)]
    if any(core.zoneout):
        found.append("zoneout")
    return found


class FullSequenceGraph(nn.Module):
    """The task's ``forward`` on whole sequences with the recurrence in a ``torch.nn.LSTM``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        _check_task(model)
        core = model.encoder
        found = variants(core)
        if found:
            raise ExportError(
                f"model.encoder.{found[0]}: the full-sequence graph uses the ONNX LSTM operator, "
                f"which has no {found[0].replace('_', ' ')}; export graph=step (the single-step "
                "graph computes the variant exactly) or use a plain LSTM"
            )
        self.lstm = nn.LSTM(
            core.input_size,
            core.hidden_size,
            num_layers=core.num_layers,
            bias=core.bias,
            batch_first=True,
            bidirectional=core.bidirectional,
            proj_size=core.proj_size,
        )
        self.lstm.load_state_dict(core.state_dict())
        self.embedding = model.embedding
        self.frontend = getattr(model, "frontend", None)  # a ConvFrontEnd, or None
        self.head = model.head
        self.per_step = bool(model.per_step)
        self.pooling = model.hparams.get("pooling", "last")
        self.num_directions = model.num_directions
        self.out_shape = _out_shape(model)
        # residual / relative_inputs: pick the target channels with a one-hot matrix (O, C), a
        # matmul in the graph (the exporter maps index_add poorly)
        options = level_options(model)
        self.residual, self.relative = "residual" in options, "relative_inputs" in options
        channels = getattr(model, "target_channels", torch.zeros(0, dtype=torch.long)).cpu()
        width = model.hparams.get("input_size") or 1
        self.register_buffer("pick", torch.eye(width)[channels])  # (O, C); (0, C) if none

    def forward(self, x: Tensor) -> Tensor:
        last = None
        if self.residual or self.relative:
            last = x[:, -1] @ self.pick.T  # (B, O): the targets' last observed values
        if self.relative:  # the target channels minus their last value, at every step
            x = x - (last @ self.pick).unsqueeze(1)  # (B, T, C)
        if self.embedding is not None:
            x = self.embedding(x)  # (B, T) -> (B, T, E)
        if self.frontend is not None:
            x, _ = self.frontend(x)  # (B, T, C) -> (B, T', channels)
        output, (h_n, _) = self.lstm(x)  # (B, T, D*P), (L*D, B, P)
        if self.per_step:
            features = output
        else:
            features = pool(output, h_n, None, self.pooling, self.num_directions)  # (B, D*P)
        y = self.head(features)
        y = y if self.out_shape is None else y.view(-1, *self.out_shape)
        if self.residual:  # the forecast is the last value plus the head's change
            y = y + (last if self.out_shape is None else last.unsqueeze(1))
        return y


class StepGraph(nn.Module):
    """One step of the encoder (every layer) and the head: ``(x_t, h, c) -> (y_t, h', c')``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        _check_task(model)
        if model.num_directions != 1:
            raise ExportError(
                "model.encoder.bidirectional=true: a single-step graph cannot stream a "
                "bidirectional LSTM (the reverse direction needs the whole sequence); export "
                "graph=full"
            )
        options = level_options(model)
        if options:
            raise ExportError(
                f"model.{options[0]}: each step's output would need the window's last value "
                "before the window has ended, so a single step cannot compute it; export "
                "graph=full (which does)"
            )
        if getattr(model, "frontend", None) is not None:
            raise ExportError(
                "model.frontend: a convolutional front end reads several input steps for each "
                "encoder step, so the model cannot run one input step at a time; export "
                "graph=full"
            )
        pooling = model.hparams.get("pooling", "last")
        if not model.per_step and pooling != "last":
            raise ExportError(
                f"model.pooling={pooling!r}: the output pools over the whole sequence, so one "
                "step's state does not give it; the step graph streams pooling=last or per-step "
                "models; export graph=full"
            )
        self.core = to_custom(model.encoder)
        self.embedding = model.embedding
        self.head = model.head
        self.out_shape = _out_shape(model)
        zh, zc = getattr(self.core, "zoneout", (0.0, 0.0))
        self.zoneout_h, self.zoneout_c = (zh or None), (zc or None)

    def forward(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        inp = self.embedding(x) if self.embedding is not None else x  # (B, E) or (B, C)
        hs, cs = [], []
        for layer in range(self.core.num_layers):
            w = self.core.layer_weights(layer, 0)
            h_new, c_new, _ = lstm_step(
                inp, h[layer], c[layer], w, zoneout_h=self.zoneout_h, zoneout_c=self.zoneout_c
            )
            hs.append(h_new)
            cs.append(c_new)
            inp = h_new
        y = self.head(inp)
        y = y if self.out_shape is None else y.view(-1, *self.out_shape)
        return y, torch.stack(hs), torch.stack(cs)


def _out_shape(model: nn.Module) -> tuple[int, ...] | None:
    horizon = getattr(model, "horizon", 1)
    return (horizon, model.output_size) if horizon > 1 else None


def example_inputs(model: nn.Module, graph: str, batch: int = 2, steps: int = 5) -> tuple:
    """Random inputs of the right kinds and shapes for a graph of ``model``."""
    hp = model.hparams
    if hp.get("vocab_size") is not None:
        shape = (batch, steps) if graph == "full" else (batch,)
        x = torch.randint(0, hp.vocab_size, shape)
    else:
        shape = (batch, steps, hp.input_size) if graph == "full" else (batch, hp.input_size)
        x = torch.randn(shape)
    if graph == "full":
        return (x,)
    core = model.encoder
    state = core.proj_size or core.hidden_size
    h = torch.randn(core.num_layers, batch, state) * 0.5
    c = torch.randn(core.num_layers, batch, core.hidden_size) * 0.5
    return (x, h, c)


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError as err:
        raise ImportError(
            "ONNX export needs the optional dependencies: pip install 'lstmkit[export]' "
            "(onnx, onnxruntime, onnxscript)"
        ) from err


def export_onnx(
    model: nn.Module,
    out_dir: str | Path,
    graphs: tuple[str, ...] | None = None,
    overwrite: bool = False,
    opset: int = OPSET,
) -> dict[str, Path]:
    """Write ``model.onnx`` and/or ``model_step.onnx`` and ``export.json`` into ``out_dir``.

    ``graphs=None`` writes every graph that computes the model exactly
    (:func:`supported_graphs`, the others logged with the reason); graphs named explicitly
    must all be possible.

    Raises:
        ExportError: an option that cannot be exported (named), or an existing file without
            ``overwrite=True``.
        ImportError: ``onnx`` is not installed.
    """
    _require_onnx()
    if graphs is None:
        graphs = supported_graphs(model)
        for graph in set(GRAPHS) - set(graphs):  # say why, from the graph's own check
            try:
                FullSequenceGraph(model) if graph == "full" else StepGraph(model)
            except ExportError as err:
                log.info("graph=%s not written: %s", graph, err)
        if not graphs:
            FullSequenceGraph(model)  # raises with the reason
    for graph in graphs:
        if graph not in GRAPHS:
            raise ExportError(f"graph={graph!r}: must be one of {', '.join(GRAPHS)}")
    model = model.cpu().eval()
    out_dir = Path(out_dir)
    names = {"full": "model.onnx", "step": "model_step.onnx"}
    targets = {g: out_dir / names[g] for g in graphs}
    for path in [*targets.values(), out_dir / "export.json"]:
        if path.exists() and not overwrite:
            raise ExportError(f"{path} exists: pass overwrite=true to replace it")
    modules = {g: (FullSequenceGraph(model) if g == "full" else StepGraph(model)) for g in graphs}
    out_dir.mkdir(parents=True, exist_ok=True)
    for graph, module in modules.items():
        module.eval()
        if graph == "full":
            inputs, names_in, names_out = example_inputs(model, "full", batch=3), ["x"], ["y"]
            axes = {"x": {0: "batch", 1: "time"}, "y": {0: "batch"}}
            if model.per_step:
                axes["y"][1] = "time"
        else:
            inputs = example_inputs(model, "step", batch=3)
            names_in, names_out = ["x", "h", "c"], ["y", "h_out", "c_out"]
            axes = {n: {1: "batch"} for n in ("h", "c", "h_out", "c_out")}
            axes |= {"x": {0: "batch"}, "y": {0: "batch"}}
        # The TorchScript exporter is fast and maps nn.LSTM to the ONNX LSTM operator; the
        # layer-norm step needs symbolic shapes, which only the dynamo exporter traces.
        dynamo = graph == "step" and bool(variants(module.core))
        _export(module, inputs, targets[graph], names_in, names_out, axes, opset, dynamo)
    hp = model.hparams
    info = {
        "task": f"{type(model).__module__}.{type(model).__qualname__}",
        "graphs": {g: p.name for g, p in targets.items()},
        "output": "logits" if hasattr(model, "num_classes") else "standardised values",
        "target_mean": hp.get("target_mean"),
        "target_std": hp.get("target_std"),
        # targets are logs: original units are exp(y * target_std + target_mean)
        "log_target": bool(hp.get("log_target", False)),
        "vocab_size": hp.get("vocab_size"),
        "input_size": hp.get("input_size"),
        "num_layers": model.encoder.num_layers,
        "hidden_size": model.encoder.hidden_size,
        "proj_size": model.encoder.proj_size,
        "opset": opset,
    }
    (out_dir / "export.json").write_text(json.dumps(info, indent=2) + "\n")
    return targets


def _export(
    module: nn.Module,
    inputs: tuple,
    path: Path,
    input_names: list[str],
    output_names: list[str],
    axes: dict[str, dict[int, str]],
    opset: int,
    dynamo: bool = False,
) -> None:
    import warnings

    kwargs: dict = {"dynamic_axes": axes, "opset_version": opset}
    if dynamo:  # dynamic_shapes by forward-argument name; the same names as the inputs
        dims = {
            name: torch.export.Dim(name) for name in {a for v in axes.values() for a in v.values()}
        }
        shapes = {n: {k: dims[a] for k, a in axes[n].items()} for n in input_names}
        kwargs = {"dynamic_shapes": shapes, "opset_version": max(opset, 18)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        try:
            torch.onnx.export(
                module,
                inputs,
                str(path),
                input_names=input_names,
                output_names=output_names,
                dynamo=dynamo,
                **kwargs,
            )
        except Exception as err:  # the exporter raises many types; say which graph failed
            path.unlink(missing_ok=True)
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ExportError(f"{path.name}: the ONNX exporter failed: {first}") from err


def check_onnx(
    model: nn.Module, paths: dict[str, Path], batch: int = 3, steps: int = 7, seed: int = 0
) -> dict[str, float]:
    """Max absolute difference between onnxruntime and PyTorch on random inputs, per graph.

    The full graph is compared with ``model(x)``; the step graph, stepped over a sequence from
    zero state, with ``model(x)`` at its end (and per step for per-step models).
    """
    import onnxruntime as ort

    torch.manual_seed(seed)
    model = model.cpu().eval()
    diffs = {}
    with torch.no_grad():
        (x,) = example_inputs(model, "full", batch, steps)
        expected = model(x)
        if "full" in paths:
            session = ort.InferenceSession(str(paths["full"]), providers=["CPUExecutionProvider"])
            (got,) = session.run(None, {"x": x.numpy()})
            diffs["full"] = float((torch.from_numpy(got) - expected).abs().max())
        if "step" in paths:
            session = ort.InferenceSession(str(paths["step"]), providers=["CPUExecutionProvider"])
            _, h, c = example_inputs(model, "step", batch)
            h, c = torch.zeros_like(h).numpy(), torch.zeros_like(c).numpy()
            worst = 0.0
            for t in range(steps):
                y, h, c = session.run(None, {"x": x[:, t].numpy(), "h": h, "c": c})
                if model.per_step:
                    worst = max(worst, float((torch.from_numpy(y) - expected[:, t]).abs().max()))
            if not model.per_step:
                worst = float((torch.from_numpy(y) - expected).abs().max())
            diffs["step"] = worst
    return diffs


__all__ = [
    "GRAPHS",
    "ExportError",
    "FullSequenceGraph",
    "StepGraph",
    "check_onnx",
    "example_inputs",
    "export_onnx",
    "level_options",
    "supported_graphs",
    "variants",
]
