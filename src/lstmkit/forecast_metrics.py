"""Forecast accuracy as the forecasting competitions score it: per series, then averaged.

Pure tensor functions shared by the tasks (their test metrics) and the datamodules (the
seasonal-naive baseline on the same split), so both are scored by one formula.

- MASE (Hyndman & Koehler 2006): the mean absolute error of a series' forecast divided by the
  in-sample mean absolute error of the seasonal naive forecast on that series' training part,
  ``mean_t |y_t - y_{t-m}|`` with ``m`` the seasonal period (1: the naive forecast).
- sMAPE and MAPE as fractions (``2|y - f| / (|y| + |f|)`` and ``|y - f| / |y|``, as
  torchmetrics computes them; multiply by 100 for percent).
- ``rmse_series``: the root mean squared error of each series' forecast, averaged over series.

Each window (one per series on a per-series test split) counts once in the average.
"""

from __future__ import annotations

import torch
from torch import Tensor

_EPS = 1.17e-6  # torchmetrics' epsilon for percentage errors


def window_errors(pred: Tensor, target: Tensor, naive_scale: Tensor | None = None) -> dict:
    """Per-window errors of forecasts ``(B, H, O)`` (original units) against the truth.

    Args:
        pred, target: ``(B, H, O)`` (or ``(B, O)`` for one step).
        naive_scale: ``(B, O)`` the in-sample seasonal-naive MAE of each window's series, or
            None (then no ``mase``).

    Returns:
        ``{"smape", "mape", "rmse_series", "mase"?}``: ``(B,)`` tensors, each window's value
        averaged over its steps and outputs.
    """
    if pred.dim() == 2:
        pred, target = pred.unsqueeze(1), target.unsqueeze(1)  # (B, 1, O)
    err = (pred - target).abs().double()  # (B, H, O)
    out = {
        "smape": (2 * err / (pred.abs() + target.abs()).double().clamp_min(_EPS)).mean((1, 2)),
        "mape": (err / target.abs().double().clamp_min(_EPS)).mean((1, 2)),
        "rmse_series": err.pow(2).mean(1).sqrt().mean(1),
    }
    if naive_scale is not None:
        scale = naive_scale.double().clamp_min(1e-12).unsqueeze(1)  # (B, 1, O)
        out["mase"] = (err / scale).mean((1, 2))
    return out


def naive_scale(history: Tensor, season: int) -> Tensor:
    """In-sample MAE of the seasonal naive forecast: ``mean_t |y_t - y_{t-m}|`` over the
    valid (non-NaN) pairs of ``history`` ``(T, O)``; ``(O,)``. A series too short for one pair
    falls back to ``m = 1``, and a constant one gets 1 (MASE is then the plain MAE)."""
    m = season if len(history) > season else 1
    diff = (history[m:] - history[:-m]).abs().double()  # (T - m, O)
    value = torch.nanmean(diff, 0) if len(diff) else torch.full(history.shape[1:], torch.nan)
    return torch.where(value.isnan() | (value <= 0), torch.ones_like(value), value)


def seasonal_naive(history: Tensor, horizon: int, season: int) -> Tensor:
    """Repeat the last ``season`` observed values: ``(T, O)`` -> ``(horizon, O)``."""
    m = min(season, len(history))
    last = history[-m:]  # (m, O)
    return last[torch.arange(horizon) % m]


def averaged(errors: dict[str, Tensor], prefix: str = "test/") -> dict[str, float]:
    """Mean over windows of :func:`window_errors`' values, as ``{prefix + name: float}``."""
    return {f"{prefix}{k}": float(v.mean()) for k, v in errors.items()}


__all__ = ["averaged", "naive_scale", "seasonal_naive", "window_errors"]
