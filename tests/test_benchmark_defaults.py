"""``scripts/benchmark_defaults.py``'s pure pieces (issue #18): the MASE scale, the seasonal
naive forecast, the test-split scoring and the reference table. Nothing is trained here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from lstmkit import forecast_metrics
from lstmkit.data.filebase import split_counts

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark_defaults.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("lstmkit_benchmark_defaults", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_naive_mae_by_hand(bench):
    train = [1.0, 3.0, 2.0, 5.0, 4.0, 6.0]
    assert bench.naive_mae(train, 1) == pytest.approx((2 + 1 + 3 + 1 + 2) / 5)
    assert bench.naive_mae(train, 2) == pytest.approx((1 + 2 + 2 + 1) / 4)
    assert bench.naive_mae(train, 12) == pytest.approx(1.8)  # too short for m: m = 1


def test_seasonal_naive_by_hand(bench):
    series = [10.0, 20.0, 30.0, 40.0, 50.0]
    # made at index 3 with m = 2: the last season is (30, 40), repeated
    assert [bench.seasonal_naive(series, 3, h, 2) for h in (1, 2, 3, 4)] == [30, 40, 30, 40]
    assert bench.seasonal_naive(series, 3, 2, 1) == 40  # m = 1: the last value


def test_naive_pieces_match_the_library(bench):
    """The harness's plain-Python formulas against lstmkit.forecast_metrics'."""
    series = torch.randn(40, dtype=torch.float64).cumsum(0)
    values = series.tolist()
    for m in (1, 4, 12):
        reference = forecast_metrics.naive_scale(series[:30, None], m)
        assert bench.naive_mae(values[:30], m) == pytest.approx(float(reference[0]))
        forecast = forecast_metrics.seasonal_naive(series[:30, None], 6, m)[:, 0]
        mine = [bench.seasonal_naive(values, 29, h, m) for h in range(1, 7)]
        assert mine == pytest.approx(forecast.tolist())


def test_split_counts_match_the_datamodules(bench):
    for n in (36, 114, 144, 7):
        for fractions in ((0.15, 0.15), (0.1, 0.2), (0.0, 0.15)):
            assert bench.split_counts(n, *fractions) == split_counts(n, *fractions)


def test_score_forecast_by_hand(bench):
    series = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    # targets 5 (before the test split) and past the end are not scored
    preds = {4: [100.0], 5: [7.5], 6: [7.0], 7: [0.0]}
    scores = bench.score_forecast(series, preds, n_train=4, test_begin=6, m=1)
    assert scores["scale"] == pytest.approx(1.0)
    assert scores["test_targets"] == 2
    assert scores["mase"] == pytest.approx((0.5 + 1.0) / 2)
    assert scores["snaive_mase"] == pytest.approx(1.0)  # predicts 6 for 7, 7 for 8
    with pytest.raises(ValueError, match="no window"):
        bench.score_forecast(series, {0: [1.0]}, n_train=4, test_begin=6, m=1)


def test_score_forecast_multi_step(bench):
    series = [float(v) for v in range(10)]
    preds = {5: [6.0, 7.0, 9.0]}  # targets 6, 7, 8: errors 0, 0, 1
    scores = bench.score_forecast(series, preds, n_train=5, test_begin=6, m=2)
    assert scores["scale"] == pytest.approx(2.0)  # y_t - y_{t-2} = 2
    assert scores["mase"] == pytest.approx(1 / 3 / 2)
    # seasonal naive from origin 5, m = 2: 4, 5, 4 for 6, 7, 8
    assert scores["snaive_mase"] == pytest.approx((2 + 2 + 4) / 3 / 2)


def test_goal_met(bench):
    assert bench.goal_met("classification", 0.89, 0.907, 10.0) == "yes"
    assert bench.goal_met("classification", 0.88, 0.907, 10.0) == "no (acc)"
    assert bench.goal_met("classification", 0.95, 0.907, 200.0) == "no (time)"
    assert bench.goal_met("forecasting", 1.2, 1.5, 10.0) == "yes"
    assert bench.goal_met("forecasting", 1.6, 1.5, 190.0) == "no (mase, time)"
    assert bench.goal_met("forecasting", None, 1.5, 1.0) == "no (failed)"


def test_time_stamps(bench):
    months = bench.time_stamps("Airline", 14)
    assert months[0] == "1949-01-01" and months[11] == "1949-12-01"
    assert months[13] == "1950-02-01"
    assert bench.time_stamps("Lynx", 3) == ["1821", "1822", "1823"]


def test_reference_table_shape(bench):
    assert set(bench.REFERENCES) == set(bench.CLASSIFICATION)
    for name, refs in bench.REFERENCES.items():
        assert "1nn_dtw" in refs, name
        for key, ref in refs.items():
            assert set(ref) == {"value", "source", "verified"}, (name, key)
            assert 0.0 < ref["value"] <= 1.0
            assert ref["source"] and ref["verified"]
    # the forecasting sets: monthly series seasonal with m = 12, the yearly one with m = 1
    assert {k: v[1] for k, v in bench.FORECASTING.items()} == {
        "Airline": 12, "Lynx": 1, "ShampooSales": 12,
    }  # fmt: skip


def test_a_failed_run_is_a_line_not_a_crash(bench):
    seconds, error = bench.run(
        [sys.executable, "-c", "import sys; print('log'); sys.exit('DataFileError: too short')"],
        timeout=60,
    )
    assert error == "DataFileError: too short" and seconds >= 0
    assert bench.run([sys.executable, "-c", "pass"], timeout=60)[1] is None
