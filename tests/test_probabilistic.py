"""Probabilistic forecasts and forecast metrics against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from lstmkit.forecast_metrics import naive_scale, window_errors
from lstmkit.tasks import SequenceRegressor
from lstmkit.tasks.probabilistic import (
    IntervalCoverage,
    PinballLoss,
    check_quantiles,
    gaussian_quantiles,
    monotone_quantiles,
    pinball_loss,
)

ENCODER = {"backend": "cudnn", "hidden_size": 8}


def test_pinball_loss_equals_the_hand_computed_value():
    pred = torch.tensor([[1.0, 2.0, 3.0]])  # quantiles 0.1, 0.5, 0.9 of one value
    target = torch.tensor([2.5])
    # errors y - f: 1.5, 0.5, -0.5 -> 0.1*1.5, 0.5*0.5, (0.9-1)*(-0.5)
    expected = (0.15 + 0.25 + 0.05) / 3
    loss = pinball_loss(pred, target, torch.tensor([0.1, 0.5, 0.9]))
    assert loss.item() == pytest.approx(expected)
    metric = PinballLoss([0.1, 0.5, 0.9])
    metric.update(quantile_preds=pred, target_values=target)
    assert metric.compute().item() == pytest.approx(expected)
    coverage = IntervalCoverage()
    coverage.update(quantile_preds=pred.expand(4, 3), target_values=torch.tensor([0.5, 1, 3, 3.5]))
    assert coverage.compute().item() == 0.5  # 1 and 3 are inside [1, 3]


def test_quantiles_never_cross_and_bad_levels_are_refused():
    raw = torch.randn(50, 4, 1, 5) * 10
    q = monotone_quantiles(raw)
    assert (q.diff(dim=-1) >= 0).all()
    torch.testing.assert_close(q[..., 0], raw[..., 0])
    for bad, match in (([0.1, 1.0], "outside"), ([0.5, 0.1], "increasing"), ([], "needs")):
        with pytest.raises(ValueError, match=match):
            check_quantiles(bad)
    with pytest.raises(ValueError, match="outside"):
        SequenceRegressor(ENCODER, input_size=1, loss="quantile", quantiles=[0.0, 0.5])


def test_gaussian_quantiles_equal_the_normal_distribution():
    mean, std = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 3.0])
    got = gaussian_quantiles(mean, std, [0.1, 0.5, 0.9])
    normal = torch.distributions.Normal(mean.unsqueeze(-1), std.unsqueeze(-1))
    torch.testing.assert_close(got, normal.icdf(torch.tensor([0.1, 0.5, 0.9])))


@pytest.mark.parametrize("loss", ["quantile", "gaussian"])
def test_probabilistic_heads_predict_in_original_units(loss):
    torch.manual_seed(0)
    model = SequenceRegressor(ENCODER, input_size=2, horizon=3, loss=loss,
                              quantiles=[0.1, 0.5, 0.9], target_mean=[10.0], target_std=[2.0])  # fmt: skip
    x = torch.randn(4, 6, 2)
    out = model(x)
    assert out.shape == (4, 3, 1, 3 if loss == "quantile" else 2)
    result = model.predict_step((x, torch.randn(4, 3, 1), torch.full((4,), 6)))
    assert result["quantiles"].shape == (4, 3, 1, 3)
    assert (result["quantiles"].diff(dim=-1) > 0).all()
    point = out[..., 1] if loss == "quantile" else out[..., 0]
    torch.testing.assert_close(result["pred"], point * 2.0 + 10.0)
    if loss == "quantile":
        torch.testing.assert_close(result["pred"], result["quantiles"][..., 1])


def test_series_scale_channels_return_each_window_to_its_own_units():
    model = SequenceRegressor(ENCODER, input_size=1 + 3, horizon=2, series_scale=True)
    x = torch.randn(2, 5, 4)
    x[0, :, 1:] = torch.tensor([100.0, 10.0, 1.0])  # center, scale, naive of window 0
    x[1, :, 1:] = torch.tensor([-5.0, 0.5, 1.0])
    out = model(x)  # (2, 2, 1) scaled
    pred = model.predict_step((x, torch.zeros(2, 2, 1), torch.full((2,), 5)))["pred"]
    torch.testing.assert_close(pred[0], out[0] * 10.0 + 100.0)
    torch.testing.assert_close(pred[1], out[1] * 0.5 - 5.0)
    # the scale channels never reach the encoder
    assert model.encoder.input_size == 1


def test_window_errors_and_naive_scale_by_hand():
    history = torch.tensor([[1.0], [3.0], [2.0], [6.0]])
    assert naive_scale(history, 1).item() == pytest.approx((2 + 1 + 4) / 3)
    assert naive_scale(history, 2).item() == pytest.approx((1 + 3) / 2)
    pred = torch.tensor([[[2.0], [4.0]]])
    truth = torch.tensor([[[1.0], [5.0]]])
    errors = window_errors(pred, truth, torch.tensor([[2.0]]))
    assert errors["mase"].item() == pytest.approx(0.5)  # mean |e| = 1, scale 2
    assert errors["smape"].item() == pytest.approx((2 / 3 + 2 / 9) / 2)
    assert errors["mape"].item() == pytest.approx((1 + 0.2) / 2)
    assert errors["rmse_series"].item() == pytest.approx(1.0)
