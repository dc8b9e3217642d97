"""Forecasting options: log-scale targets (data) and residual / relative-input forecasting
(task), checked against hand-computed values, and kept by checkpoints."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch

from lstmkit._errors import DataFileError
from lstmkit.data import CSVDataModule
from lstmkit.tasks import SequenceRegressor

ENCODER = {"backend": "custom", "hidden_size": 4}


def _write(path, y, x1=None) -> str:
    frame = pd.DataFrame({"time": np.arange(len(y)), "y": y})
    if x1 is not None:
        frame["x1"] = x1
    frame.to_csv(path, index=False)
    return str(path)


def _constant_head(model: SequenceRegressor, bias: list[float]) -> SequenceRegressor:
    """Make the head output ``bias`` whatever the encoder says (a hand-computable model)."""
    linear = model.head.net[-1]
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(torch.tensor(bias))
    return model.eval()


# ----------------------------------------------------------------- log-scale targets
def test_log_targets_are_standardised_logs_and_predictions_come_back_in_units(tmp_path):
    y = np.exp(np.linspace(0.0, 2.0, 20))  # positive, growing
    path = _write(tmp_path / "s.csv", y, x1=np.arange(20.0))
    dm = CSVDataModule(path, target="y", features=["x1"], time="time", window=3,
                       val_fraction=0.2, test_fraction=0.2, log_target=True)  # fmt: skip
    kwargs = dm.model_kwargs()
    assert kwargs["log_target"] is True and kwargs["target_channels"] == [0]
    logs = np.log(y[:12])  # the 12 training rows
    mean, std = logs.mean(), logs.std()
    assert kwargs["target_mean"] == pytest.approx([mean]) and kwargs["target_std"] == pytest.approx(
        [std]
    )
    x, target, _ = dm.splits["train"].__getitems__([0])
    np.testing.assert_allclose(x[0, :, 0], (np.log(y[:3]) - mean) / std, rtol=1e-5)
    np.testing.assert_allclose(x[0, :, 1], (np.arange(3) - 5.5) / np.arange(12).std(), rtol=1e-5)
    np.testing.assert_allclose(target[0], [(np.log(y[3]) - mean) / std], rtol=1e-5)
    # the task inverts: exp(z * std + mean); metrics and predict_step in original units
    levels = {"residual": False, "relative_inputs": False}  # the head alone: hand-computable
    model = _constant_head(SequenceRegressor(ENCODER, **kwargs, **levels), [0.5])
    pred = math.exp(0.5 * std + mean)
    out = model.predict_step((x, target, torch.tensor([3])))
    assert out["pred"].item() == pytest.approx(pred, rel=1e-5)
    assert out["target"].item() == pytest.approx(y[3], rel=1e-5)
    inputs = model.metric_inputs(model(x), target, None)  # keywords: MASE needs windows
    preds, truth = inputs["preds"], inputs["target"]
    assert preds.item() == pytest.approx(pred, rel=1e-5)
    assert truth.item() == pytest.approx(y[3], rel=1e-5)
    # the baseline (the naive forecast: numeric time, no season) and the test metrics are in
    # original units; MASE divides by the training rows' mean absolute step
    test_y = y[16:]
    baseline_mae = np.abs(test_y - y[15:19]).mean()
    assert dm.trivial_baseline()["test/mae"] == pytest.approx(baseline_mae, rel=1e-5)
    scale = np.abs(np.diff(y[:12])).mean()
    assert dm.trivial_baseline()["test/mase"] == pytest.approx(baseline_mae / scale, rel=1e-5)
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    metrics = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert metrics["test/mape"] == pytest.approx(np.mean(np.abs(pred - test_y) / test_y), rel=1e-4)
    assert metrics["test/mae"] == pytest.approx(np.mean(np.abs(pred - test_y)), rel=1e-4)
    assert metrics["test/mase"] == pytest.approx(np.mean(np.abs(pred - test_y)) / scale, rel=1e-4)


def test_log_targets_of_a_new_file_keep_their_units(tmp_path):
    y = np.linspace(1.0, 40.0, 40)
    path = _write(tmp_path / "s.csv", y)
    dm = CSVDataModule(path, target="y", time="time", window=4, horizon=2, log_target=True)
    dm.setup()
    assert dm.state_dict()["log_target"] is True
    encoded = dm.encode_file(path)
    np.testing.assert_allclose(encoded.targets[0, :, 0], y[4:6], rtol=1e-5)
    x, _, _ = encoded.dataset.__getitems__([0])
    mean, std = dm.fitted["target_mean"][0], dm.fitted["target_std"][0]
    np.testing.assert_allclose(x[0, :, 0], (np.log(y[:4]) - mean) / std, rtol=1e-5)


@pytest.mark.parametrize("include_target", [True, False])
def test_log_of_a_non_positive_value_names_the_column_the_row_and_the_key(tmp_path, include_target):
    y = np.linspace(1.0, 30.0, 30)
    y[7] = 0.0 if include_target else -2.5
    path = _write(tmp_path / "s.csv", y, x1=np.ones(30))
    dm = CSVDataModule(path, target="y", features=["x1"], time="time", window=3,
                       include_target=include_target, log_target=True)  # fmt: skip
    value = "0" if include_target else "-2.5"
    with pytest.raises(
        DataFileError, match=rf"column 'y' holds {value} at row 7.*log_target=false"
    ):
        dm.setup()


# ----------------------------------------------------------------- residual forecasting
def test_residual_adds_the_last_observed_target_value_to_the_head_output():
    x = torch.tensor(
        [
            [[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]],
            [[4.0, 40.0], [5.0, 50.0], [6.0, 60.0]],
        ]
    )  # (B=2, T=3, C=2); the target lives in channel 1
    model = SequenceRegressor(ENCODER, input_size=2, target_channels=[1], residual=True)
    model = _constant_head(model, [0.25])
    torch.testing.assert_close(model(x), torch.tensor([[30.25], [60.25]]))
    lengths = torch.tensor([2, 1])  # last valid steps: 1 and 0
    torch.testing.assert_close(model(x, lengths), torch.tensor([[20.25], [40.25]]))
    # horizon 3, two outputs: the same last value is added to every step
    multi = SequenceRegressor(ENCODER, input_size=2, output_size=2, horizon=3,
                              target_channels=[1, 0], residual=True)  # fmt: skip
    multi = _constant_head(multi, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    expected = torch.tensor([[20.0, 2.0]]) + torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    torch.testing.assert_close(multi(x[:1], lengths[:1]), expected.unsqueeze(0))


def test_relative_inputs_make_the_forecast_follow_the_level():
    """With residual + relative_inputs, shifting the target channel by c shifts the
    prediction by c (the encoder sees the same level-free window); the covariate is not
    shifted."""
    torch.manual_seed(0)
    model = SequenceRegressor(ENCODER, input_size=2, target_channels=[0], residual=True,
                              relative_inputs=True).eval()  # fmt: skip
    x = torch.randn(3, 5, 2)
    lengths = torch.tensor([5, 3, 1])
    shifted = x.clone()
    shifted[..., 0] += 7.0
    with torch.no_grad():
        torch.testing.assert_close(model(shifted, lengths), model(x, lengths) + 7.0)
        plain = SequenceRegressor(
            ENCODER, input_size=2, target_channels=[0], residual=True, relative_inputs=False
        )
        plain.load_state_dict(model.state_dict())
        assert not torch.allclose(plain.eval()(shifted, lengths), plain(x, lengths) + 7.0)


def test_residual_without_target_channels_fails_clearly(tmp_path):
    y = np.linspace(1.0, 30.0, 30)
    dm = CSVDataModule(_write(tmp_path / "s.csv", y, x1=np.sin(y)), target="y",
                       features=["x1"], time="time", window=3, include_target=False)  # fmt: skip
    kwargs = dm.model_kwargs()
    assert kwargs["target_channels"] is None
    with pytest.raises(ValueError, match=r"residual=True .*include_target=true"):
        SequenceRegressor(ENCODER, residual=True, **kwargs)
    with pytest.raises(ValueError, match=r"relative_inputs=True .*no target channels"):
        SequenceRegressor(ENCODER, relative_inputs=True, **kwargs)
    with pytest.raises(ValueError, match="no target channels among token inputs"):
        SequenceRegressor(ENCODER, vocab_size=5, embedding_dim=3, residual=True)
    with pytest.raises(ValueError, match="target_channels=\\[3\\]"):
        SequenceRegressor(ENCODER, input_size=2, target_channels=[3], residual=True)
    with pytest.raises(ValueError, match="tbptt_steps=null"):
        SequenceRegressor(ENCODER, input_size=2, target_channels=[0], residual=True,
                          tbptt_steps=2)  # fmt: skip


# ----------------------------------------------------------------- checkpoints
def test_a_reloaded_checkpoint_keeps_log_and_residual(tmp_path):
    y = np.exp(np.linspace(0.0, 3.0, 40) + 0.1 * np.sin(np.arange(40)))
    dm = CSVDataModule(_write(tmp_path / "s.csv", y), target="y", time="time", window=4,
                       batch_size=8, log_target=True)  # fmt: skip
    torch.manual_seed(0)
    model = SequenceRegressor(ENCODER, residual=True, relative_inputs=True, **dm.model_kwargs())
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(model, datamodule=dm)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    restored = SequenceRegressor.load_from_checkpoint(path).eval()
    assert restored.log_target and restored.residual and restored.relative_inputs
    assert restored.target_channels.tolist() == [0]
    batch = next(iter(dm.test_dataloader()))
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(restored.predict_step(batch), model.predict_step(batch))
        truth = restored.predict_step(batch)["target"]
    np.testing.assert_allclose(truth[:, 0], y[34 : 34 + len(truth)], rtol=1e-5)  # units
    # the datamodule is rebuilt from the checkpoint's hyperparameters with log_target too
    saved = torch.load(path, weights_only=True)
    assert saved["datamodule_hyper_parameters"]["log_target"] is True
    rebuilt = CSVDataModule(**saved["datamodule_hyper_parameters"])
    assert rebuilt.model_kwargs()["log_target"] is True


# ----------------------------------------------------------------- defaults from the data
def test_seasonal_period_from_the_spacing_of_the_dates():
    from lstmkit.data.timecol import seasonal_period

    def dates(freq, n=30):
        return pd.date_range("2021-01-01", periods=n, freq=freq)

    expected = {"h": 24, "D": 7, "W": 52, "MS": 12, "ME": 12, "QS": 4, "YS": 1, "17min": 1}
    assert {freq: seasonal_period(dates(freq)) for freq in expected} == expected
    assert seasonal_period(None) == 1 and seasonal_period(dates("MS", n=1)) == 1


def test_seasonal_naive_baseline_and_mase_scale_by_hand(tmp_path):
    """Monthly dates give m=12: the forecast of row t+h repeats row t+h-12 (h < 12), and MASE
    divides by the training rows' mean |y_t - y_(t-12)|."""
    n = 60
    y = 100 + np.arange(n) + 10 * np.sin(2 * np.pi * np.arange(n) / 12) + (np.arange(n) % 5)
    dates = pd.date_range("2010-01-01", periods=n, freq="MS").strftime("%Y-%m-%d")
    path = tmp_path / "m.csv"
    pd.DataFrame({"date": dates, "y": y}).to_csv(path, index=False)
    dm = CSVDataModule(str(path), target="y", time="date", window=6, horizon=2)
    kwargs = dm.model_kwargs()
    n_train, n_val = n - 9 - 9, 9  # split_counts(60, 0.15, 0.15)
    scale = np.abs(y[12:n_train] - y[: n_train - 12]).mean()
    assert kwargs["mase_scale"] == pytest.approx([scale])
    first = n_train + n_val  # the first test window's first target row
    rows = np.arange(first, n - 1)  # windows whose 2 targets lie in the test rows
    err = np.concatenate([y[rows] - y[rows - 12], y[rows + 1] - y[rows + 1 - 12]])
    baseline = dm.trivial_baseline()
    assert baseline["test/mae"] == pytest.approx(np.abs(err).mean(), rel=1e-6)
    assert baseline["test/mse"] == pytest.approx((err**2).mean(), rel=1e-6)
    assert baseline["test/mase"] == pytest.approx(np.abs(err).mean() / scale, rel=1e-6)
    assert dm.baseline_description.startswith("seasonal naive (m=12)")
    numeric = CSVDataModule(str(path), target="y", window=6, horizon=2, season=1)
    numeric.setup()
    assert numeric.baseline_description.startswith("naive")


def test_auto_window_fits_a_short_series(tmp_path):
    from lstmkit.data.timeseries import auto_window

    assert auto_window(100, 1) == 24 and auto_window(26, 1) == 13 and auto_window(3, 1) == 2
    path = _write(tmp_path / "short.csv", np.linspace(1.0, 36.0, 36))
    dm = CSVDataModule(path, target="y", time="time")
    assert dm.window == "auto"
    dm.setup()
    assert dm.window == 13 and dm.state_dict()["window"] == 13  # 26 training rows
    assert dm.splits["train"][0][0].shape == (13, 1)
    with pytest.raises(TypeError, match="window='wide': must be an integer"):
        CSVDataModule(path, target="y", window="wide")


def test_residual_and_relative_inputs_default_to_on_for_forecasts_only():
    forecast = SequenceRegressor(ENCODER, input_size=2, target_channels=[0])
    assert forecast.residual and forecast.relative_inputs
    plain = SequenceRegressor(ENCODER, input_size=2)  # no past targets among the inputs
    assert not plain.residual and not plain.relative_inputs
    chunked = SequenceRegressor(ENCODER, input_size=2, target_channels=[0], tbptt_steps=4)
    assert not chunked.residual and not chunked.relative_inputs
    with pytest.raises(ValueError, match="residual='yes': must be true, false or 'auto'"):
        SequenceRegressor(ENCODER, input_size=2, target_channels=[0], residual="yes")
