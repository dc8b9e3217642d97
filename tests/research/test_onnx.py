"""ONNX export: onnxruntime equals PyTorch to 1e-4 for the full-sequence and step graphs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from lstmkit.research.onnx_export import ExportError, check_onnx, export_onnx
from lstmkit.tasks import Seq2SeqLSTM, SequenceClassifier, SequenceRegressor
from run_helpers import compose_config

pytest.importorskip("onnxruntime", reason="needs the export extra: pip install 'lstmkit[export]'")

TOLERANCE = 1e-4


def _classifier(backend: str, **kwargs) -> SequenceClassifier:
    encoder = {"backend": backend, "hidden_size": 8, "num_layers": 2, **kwargs.pop("encoder", {})}
    return SequenceClassifier(encoder, num_classes=3, input_size=4, **kwargs)


def _regressor(backend: str) -> SequenceRegressor:
    encoder = {"backend": backend, "hidden_size": 8, "forget_bias": 1.0}
    return SequenceRegressor(
        encoder, input_size=2, output_size=2, horizon=3, target_mean=[1.0, 2.0], target_std=[2, 3]
    )


def _tagger(backend: str) -> SequenceClassifier:  # token inputs, one label per step
    return SequenceClassifier(
        {"backend": backend, "hidden_size": 8},
        num_classes=5,
        vocab_size=11,
        embedding_dim=4,
        per_step=True,
    )


@pytest.mark.parametrize("backend", ["cudnn", "custom"])
@pytest.mark.parametrize("build", [_classifier, _regressor, _tagger], ids=lambda f: f.__name__[1:])
def test_full_and_step_graphs_match_pytorch(build, backend, tmp_path):
    torch.manual_seed(0)
    model = build(backend).eval()
    paths = export_onnx(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "export.json",
        "model.onnx",
        "model_step.onnx",
    ]
    for steps, batch in ((7, 3), (1, 1), (23, 5)):  # dynamic batch and time axes
        diffs = check_onnx(model, paths, batch=batch, steps=steps)
        assert diffs["full"] < TOLERANCE and diffs["step"] < TOLERANCE, diffs


@pytest.mark.slow
def test_variants_export_the_step_graph_and_refuse_the_full_one(tmp_path):
    torch.manual_seed(0)
    model = _classifier("custom", encoder={"layer_norm": True, "peephole": True}).eval()
    with pytest.raises(ExportError, match=r"model\.encoder\.layer_norm: .*ONNX LSTM operator"):
        export_onnx(model, tmp_path / "both", graphs=("full", "step"))
    assert set(export_onnx(model, tmp_path / "possible")) == {"step"}  # every graph it can
    paths = export_onnx(model, tmp_path / "step", graphs=("step",))
    assert check_onnx(model, paths)["step"] < TOLERANCE
    zoneout = _classifier("custom", encoder={"zoneout": 0.2}).eval()
    with pytest.raises(ExportError, match="zoneout"):
        export_onnx(zoneout, tmp_path / "zoneout", graphs=("full",))
    paths = export_onnx(zoneout, tmp_path / "zoneout", graphs=("step",))
    assert check_onnx(zoneout, paths)["step"] < TOLERANCE


def test_what_cannot_stream_is_refused_with_the_reason(tmp_path):
    bidirectional = _classifier("cudnn", encoder={"bidirectional": True})
    with pytest.raises(ExportError, match="bidirectional=true: a single-step graph"):
        export_onnx(bidirectional, tmp_path / "b", graphs=("step",))
    paths = export_onnx(bidirectional, tmp_path / "b", graphs=("full",))
    assert check_onnx(bidirectional, paths)["full"] < TOLERANCE
    with pytest.raises(ExportError, match="pooling='mean'"):
        export_onnx(_classifier("cudnn", pooling="mean"), tmp_path / "m", graphs=("step",))
    seq2seq = Seq2SeqLSTM({"hidden_size": 8}, vocab_size=5, num_classes=5)
    with pytest.raises(ExportError, match="encoder-decoder"):
        export_onnx(seq2seq, tmp_path / "s")
    for option in ("residual", "relative_inputs"):  # the full graph computes them exactly
        flags = {"residual": option == "residual", "relative_inputs": option != "residual"}
        forecaster = SequenceRegressor(
            {"hidden_size": 8}, input_size=2, target_channels=[0], horizon=2, **flags
        )
        with pytest.raises(ExportError, match=f"model.{option}: each step's output"):
            export_onnx(forecaster, tmp_path / option, graphs=("step",))
        paths = export_onnx(forecaster, tmp_path / option)  # every graph it can: the full one
        assert set(paths) == {"full"}
        assert check_onnx(forecaster, paths)["full"] < TOLERANCE


def test_a_default_forecaster_exports_its_level_options(tmp_path):
    """Residual forecasts from level-free inputs (the defaults for forecasting data): the full
    graph adds the last value back, and shifting the target channel shifts the output."""
    model = SequenceRegressor({"hidden_size": 8}, input_size=3, target_channels=[1]).eval()
    assert model.residual and model.relative_inputs
    paths = export_onnx(model, tmp_path)
    assert check_onnx(model, paths)["full"] < TOLERANCE
    import onnxruntime as ort

    session = ort.InferenceSession(str(paths["full"]), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 6, 3)
    shifted = x.clone()
    shifted[..., 1] += 5.0
    (y,) = session.run(None, {"x": x.numpy()})
    (y_shifted,) = session.run(None, {"x": shifted.numpy()})
    np.testing.assert_allclose(y_shifted, y + 5.0, atol=1e-4)


def test_never_overwrites_without_permission(tmp_path):
    model = _classifier("cudnn").eval()
    export_onnx(model, tmp_path)
    before = (tmp_path / "model.onnx").stat().st_mtime_ns
    with pytest.raises(ExportError, match="overwrite=true"):
        export_onnx(model, tmp_path)
    assert (tmp_path / "model.onnx").stat().st_mtime_ns == before
    export_onnx(model, tmp_path, overwrite=True)


def test_lstmkit_export_command(adding_run, tmp_path):
    from lstmkit.cli.export import export
    from lstmkit.runtime.config_checks import ConfigError

    out = tmp_path / "onnx"
    cfg = compose_config(
        tmp_path, [f"ckpt_path={adding_run}", "format=onnx", f"out_dir={out}"], "export", False
    )
    result = export(cfg)
    assert set(result["files"]) == {"full", "step"}
    assert max(result["max_abs_diff"].values()) < TOLERANCE
    with pytest.raises(ConfigError, match="overwrite=true"):
        export(cfg)
    bad = compose_config(tmp_path, [f"ckpt_path={adding_run}", "format=tflite"], "export", False)
    with pytest.raises(ConfigError, match="format='tflite'"):
        export(bad)
    GlobalHydra.instance().clear()


def test_a_front_end_exports_the_full_graph_and_refuses_the_step_one(tmp_path):
    torch.manual_seed(0)
    model = _classifier("custom", frontend={"channels": 6, "kernel_size": 5}).eval()
    with pytest.raises(ExportError, match=r"model\.frontend: .*export graph=full"):
        export_onnx(model, tmp_path / "step", graphs=("step",))
    paths = export_onnx(model, tmp_path / "full", graphs=("full",))
    for steps, batch in ((7, 3), (1, 1), (40, 5)):  # dynamic batch and time axes
        assert check_onnx(model, paths, batch=batch, steps=steps)["full"] < TOLERANCE
