"""``AutoregressiveForecaster``: its forecast against a hand-written loop over
``torch.nn.LSTM``, teacher forcing against the forecast, both backends, the last-step MAPE,
the errors, and one training run from the command line's config."""

from __future__ import annotations

import pytest
import torch

from lstmkit.research.onnx_export import ExportError, export_onnx
from lstmkit.runtime.config_checks import ConfigError
from lstmkit.tasks import AutoregressiveForecaster, SequenceRegressor
from lstmkit.tasks.regression import LastStepMAPE
from run_helpers import SHRINK

W, H, C = 5, 3, 4  # window, horizon, channels: the target first, then 3 covariates


def _model(backend: str = "cudnn", horizon: int = H, **kwargs) -> AutoregressiveForecaster:
    torch.manual_seed(0)
    encoder = {"backend": backend, "hidden_size": 6, "num_layers": 2}
    return AutoregressiveForecaster(
        encoder, input_size=C, horizon=horizon, target_channels=[0], **kwargs
    ).double()


def _window(batch: int = 2, horizon: int = H) -> torch.Tensor:
    x = torch.randn(batch, W + horizon, C, dtype=torch.float64)
    x[:, W:, 0] = 0.0  # the forecast rows' targets are unknown
    return x


def _hand_forecast(model: AutoregressiveForecaster, x: torch.Tensor) -> torch.Tensor:
    """The forecaster's equations, one sample and one step at a time, with torch.nn.LSTM."""
    lstm = torch.nn.LSTM(C, 6, num_layers=2, batch_first=True).double()
    lstm.load_state_dict(model.encoder.state_dict())
    head = model.head
    out = []
    for sample in x:
        state, prev = None, sample[0, 0]
        preds = []
        for t in range(1, W + H):
            step = sample[t].clone()
            step[0] = prev  # the previous target: known in the window, else the forecast
            y, state = lstm(step.view(1, 1, C), state)
            pred = head(y[:, -1])[0, 0]
            if t >= W:
                preds.append(pred)
            prev = sample[t, 0] if t < W else pred
        out.append(torch.stack(preds))
    return torch.stack(out).unsqueeze(-1)  # (B, H, 1)


def test_forecast_equals_a_hand_written_loop():
    model = _model().eval()
    x = _window()
    with torch.no_grad():
        torch.testing.assert_close(model(x), _hand_forecast(model, x), rtol=1e-12, atol=1e-12)


def test_forecast_reads_no_future_target_and_both_backends_agree():
    cudnn, custom = _model("cudnn").eval(), _model("custom").eval()
    custom.load_state_dict(cudnn.state_dict())
    x = _window()
    leaked = x.clone()
    leaked[:, W:, 0] = 100.0  # whatever stands in the forecast rows' target channel
    with torch.no_grad():
        torch.testing.assert_close(cudnn(leaked), cudnn(x), rtol=0, atol=0)
        torch.testing.assert_close(custom(x), cudnn(x), rtol=1e-12, atol=1e-12)


def test_teacher_forcing_with_its_own_forecasts_gives_the_forecast():
    model = _model().eval()
    x = _window()
    with torch.no_grad():
        forecast = model(x)  # (B, H, 1)
        out, target = model.teacher_forced(x, forecast)
    assert out.shape == target.shape == (2, W + H - 1, 1)
    torch.testing.assert_close(out[:, -H:], forecast, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(target[:, : W - 1, 0], x[:, 1:W, 0])  # the window's own values
    torch.testing.assert_close(target[:, -H:], forecast)


def test_one_step_horizon_and_gradients():
    model = _model(horizon=1)
    x, y = _window(horizon=1), torch.randn(2, 1, dtype=torch.float64)
    assert model(x).shape == (2, 1)
    loss = model._shared_step((x, y, None), "train")  # teacher forcing, loss on every step
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_last_step_mape_is_the_last_steps_alone():
    metric = LastStepMAPE(horizon=2, outputs=1)
    preds = torch.tensor([[[1.0], [110.0]], [[1.0], [190.0]]])  # (B, H, O)
    target = torch.tensor([[[2.0], [100.0]], [[3.0], [200.0]]])
    metric.update(preds.reshape(-1), target.reshape(-1))
    assert metric.compute().item() == pytest.approx((0.10 + 0.05) / 2)
    regressor = SequenceRegressor({"backend": "cudnn", "hidden_size": 4}, input_size=1, horizon=2)
    assert "mape_last" in regressor.make_metrics()
    one = SequenceRegressor({"backend": "cudnn", "hidden_size": 4}, input_size=1)
    assert "mape_last" not in one.make_metrics()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"residual": True}, "does not support residual"),
        ({"tbptt_steps": 4}, "does not support tbptt_steps"),
        ({"target_channels": None}, "include_target=true"),
        ({"encoder": {"backend": "cudnn", "hidden_size": 4, "bidirectional": True}},
         "bidirectional"),
    ],
)  # fmt: skip
def test_unsupported_options_say_what_to_do(kwargs, match):
    args = {"encoder": {"backend": "cudnn", "hidden_size": 4}, "input_size": C,
            "horizon": H, "target_channels": [0], **kwargs}  # fmt: skip
    with pytest.raises(ValueError, match=match):
        AutoregressiveForecaster(**args)


def test_windows_without_forecast_rows_are_refused():
    model = _model()
    with pytest.raises(ValueError, match=r"future_covariates=true"):
        model(torch.zeros(2, H, C, dtype=torch.float64))
    with pytest.raises(ValueError, match="full windows"):
        model(_window(), torch.tensor([W + H, W]))


def test_onnx_export_refuses_with_the_reason(tmp_path):
    with pytest.raises(ExportError, match="autoregressive forecasters"):
        export_onnx(_model().float(), tmp_path / "onnx")


def test_train_checks_that_model_and_data_fit(cfg_factory):
    from lstmkit.cli.train import train

    cfg = cfg_factory("data=airline", "model=autoregressive", *SHRINK, shrink=False)
    with pytest.raises(ConfigError, match=r"data\.future_covariates=true"):
        train(cfg)
    cfg = cfg_factory("data=airline", "data.future_covariates=true", *SHRINK, shrink=False,
                      subdir="run2")  # fmt: skip
    with pytest.raises(ConfigError, match="model=autoregressive"):
        train(cfg)


def test_reference_airline_config_trains_and_scores_the_last_step(cfg_factory):
    from lstmkit.cli.train import train

    cfg = cfg_factory(
        "experiment=reference_airline", "model.encoder.backend=custom", *SHRINK,
        "trainer.max_epochs=2", "plots=false", shrink=False,
    )  # fmt: skip
    result = train(cfg)
    assert {"test/mape", "test/mape_last", "test/rmse"} <= set(result)
    assert result["best_model_path"].endswith("best.ckpt")  # the last epoch's: no validation
    assert 0 < result["test/mape_last"] < 1
