"""Time-series options for forecasting with covariates known in advance: calendar channels,
min-max scaling, forecast rows appended to every window, and no validation split — each
checked against values computed by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lstmkit._errors import DataFileError
from lstmkit.data import AirlineDataModule, CSVDataModule


def _write(path, y, dates) -> str:
    pd.DataFrame({"date": dates, "y": y}).to_csv(path, index=False)
    return str(path)


def _monthly(tmp_path, n=30, start="2001-11"):
    dates = pd.period_range(start, periods=n, freq="M").astype(str)
    y = 10.0 + np.arange(n, dtype=float)
    return _write(tmp_path / "m.csv", y, dates), y, dates


def test_calendar_channels_are_one_hot_months_and_scaled_years(tmp_path):
    path, *_ = _monthly(tmp_path)
    dm = CSVDataModule(path, target="y", time="date", window=4, calendar=["month", "year"],
                       calendar_year_span=10.0, val_fraction=0.0, test_fraction=0.2)  # fmt: skip
    assert dm.calendar_columns == [f"month_{m:02d}" for m in range(1, 13)] + ["year"]
    assert dm.model_kwargs()["input_size"] == 1 + 12 + 1
    x, _, _ = dm.splits["train"].__getitems__([0])  # rows 0..3: 2001-11 .. 2002-02
    months = x[0, :, 1:13].argmax(-1) + 1
    assert months.tolist() == [11, 12, 1, 2]
    assert x[0, :, 1:13].sum(-1).tolist() == [1.0] * 4  # exactly one month each
    assert x[0, :, 13].tolist() == pytest.approx([0.0, 0.0, 0.1, 0.1])  # (year - 2001) / 10
    # calendar channels are never rescaled: the fitted scaler leaves them as they are
    assert dm.fitted["input_mean"][1:] == [0.0] * 13 and dm.fitted["input_std"][1:] == [1.0] * 13


def test_minmax_scaler_maps_the_training_range_to_0_1(tmp_path):
    path, y, _ = _monthly(tmp_path)
    dm = CSVDataModule(path, target="y", time="date", window=4, scaler="minmax",
                       val_fraction=0.2, test_fraction=0.2)  # fmt: skip
    n_train = 30 - 6 - 6
    low, high = y[:n_train].min(), y[:n_train].max()
    kwargs = dm.model_kwargs()
    assert kwargs["target_mean"] == pytest.approx([low]) and kwargs["target_std"] == pytest.approx(
        [high - low]
    )
    x, target, _ = dm.splits["test"].__getitems__([0])  # beyond the training range: > 1
    first = n_train + 6  # the first test target row
    np.testing.assert_allclose(x[0, :, 0], (y[first - 4 : first] - low) / (high - low), rtol=1e-6)
    assert target[0].item() == pytest.approx((y[first] - low) / (high - low)) and target[0] > 1


def test_future_covariates_append_the_forecast_rows_with_blank_targets(tmp_path):
    path, y, _ = _monthly(tmp_path)
    dm = CSVDataModule(path, target="y", time="date", window=4, horizon=3, calendar=["month"],
                       future_covariates=True, val_fraction=0.0, test_fraction=0.3)  # fmt: skip
    dm.setup()
    x, target, lengths = dm.splits["train"].__getitems__([0, 5])
    assert x.shape == (2, 4 + 3, 13) and lengths.tolist() == [7, 7]
    mean, std = dm.fitted["target_mean"][0], dm.fitted["target_std"][0]
    for row, start in enumerate((0, 5)):
        np.testing.assert_allclose(x[row, :4, 0], (y[start : start + 4] - mean) / std, rtol=1e-5)
        assert x[row, 4:, 0].tolist() == [0.0, 0.0, 0.0]  # the forecast rows' targets: unknown
        months = (x[row, :, 1:].argmax(-1) + 1).tolist()  # the calendar runs on through them
        assert months == [(10 + start + k) % 12 + 1 for k in range(7)]
        np.testing.assert_allclose(target[row, :, 0], (y[start + 4 : start + 7] - mean) / std,
                                   rtol=1e-5)  # fmt: skip
    # the series itself is untouched by the blanking (windows share its memory)
    assert dm.splits["train"].inputs[4, 0] != 0


def test_no_validation_split(tmp_path):
    path, *_ = _monthly(tmp_path)
    dm = CSVDataModule(path, target="y", window=4, val_fraction=0.0, test_fraction=0.2)
    dm.setup()
    assert set(dm.splits) == {"train", "test"} and dm.val_dataloader() == []
    # training windows reach the row before the test split
    assert dm.splits["train"].all_targets().shape[0] == 30 - 6 - 4


def test_airline_with_the_darts_covariates():
    dm = AirlineDataModule(window=14, horizon=6, log_target=True, scaler="minmax",
                           calendar=["month", "year"], calendar_year_span=83.25,
                           future_covariates=True, val_fraction=0.0,
                           test_fraction=24 / 144)  # fmt: skip
    dm.setup()
    assert len(dm.splits["train"]) == 120 - 20 + 1 and len(dm.splits["test"]) == 19
    x, y, _ = dm.splits["test"].__getitems__([18])  # the last window: forecasts 1960-07 .. 12
    assert x.shape == (1, 20, 14)
    assert x[0, -1, 1:13].argmax().item() == 11  # December
    assert x[0, -1, 13].item() == pytest.approx((1960 - 1949) / 83.25)
    low, span = dm.fitted["target_mean"][0], dm.fitted["target_std"][0]
    assert float(np.exp(y[0, -1, 0].item() * span + low)) == pytest.approx(432.0, rel=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"calendar": ["month"]}, r"calendar=\['month'\] is made from the time column"),
        ({"time": "date", "calendar": ["week"]}, "calendar"),
        ({"scaler": "robust"}, "scaler"),
        ({"features": ["y2"], "include_target": False, "future_covariates": True},
         "include_target=true"),
        ({"future_covariates": True, "missing": "mask"}, "missing=error or drop"),
    ],
)  # fmt: skip
def test_bad_covariate_options_say_what_to_set(tmp_path, kwargs, match):
    path, *_ = _monthly(tmp_path)
    with pytest.raises(ValueError, match=match):
        CSVDataModule(path, target="y", window=4, **kwargs)


def test_calendar_of_a_column_that_holds_no_dates(tmp_path):
    path = _write(tmp_path / "bad.csv", np.arange(20.0), ["not a date"] * 20)
    dm = CSVDataModule(path, target="y", time="date", window=4, calendar=["month"])
    with pytest.raises(DataFileError, match=r"bad.csv.*time column 'date'"):
        dm.setup()


def test_predict_refuses_future_covariates_with_the_reason(tmp_path):
    path, *_ = _monthly(tmp_path)
    dm = CSVDataModule(path, target="y", time="date", window=4, horizon=2, calendar=["month"],
                       future_covariates=True, val_fraction=0.0)  # fmt: skip
    dm.setup()
    with pytest.raises(ValueError, match="future_covariates=true"):
        dm.encode_file(path)
    assert torch.is_tensor(dm.splits["train"].inputs)


@pytest.mark.slow
def test_consecutive_windows_line_up_their_forecasts_along_the_split(tmp_path):
    from lstmkit.runtime import plots

    path, *_ = _monthly(tmp_path)
    kwargs = {"target": "y", "window": 4, "horizon": 3, "val_fraction": 0.0}
    assert CSVDataModule(path, **kwargs).consecutive_windows
    assert not CSVDataModule(path, stride=2, **kwargs).consecutive_windows
    truth = torch.arange(10.0).view(-1, 1, 1) + torch.arange(3.0).view(1, -1, 1)  # (10, 3, 1)
    out = plots.plot_predictions(truth + 0.5, truth, tmp_path / "p.png", consecutive=True)
    assert out.is_file() and out.stat().st_size > 0


def test_a_new_files_years_count_from_the_training_series_first_year(tmp_path):
    path, y, dates = _monthly(tmp_path, n=40)  # 2001-11 .. 2005-02
    dm = CSVDataModule(path, target="y", time="date", window=4, calendar=["year"],
                       calendar_year_span=10.0, val_fraction=0.0)  # fmt: skip
    dm.setup()
    assert dm.fitted["calendar_year0"] == 2001
    later = _write(tmp_path / "later.csv", y[26:], dates[26:])  # starts 2004-01
    encoded = dm.encode_file(later)
    x, _, _ = encoded.dataset.__getitems__([0])
    assert x[0, :, 1].tolist() == pytest.approx([0.3] * 4)  # (2004 - 2001) / 10, not 0
