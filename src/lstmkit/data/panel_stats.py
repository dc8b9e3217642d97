"""Per-series statistics of a panel stored as one ``(N, C)`` array, series after series:
scaling (standard, minmax, DeepAR's mean), the in-sample seasonal-naive MAE (MASE's scale),
in-place scaling and per-series imputation. Rows are reduced in chunks, so the temporaries
stay small whatever the table's size.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

#: Rows per chunk of the per-series reductions (bounds their temporaries to a few MB).
CHUNK_ROWS = 1 << 20


def _chunks(n: int) -> list[slice]:
    return [slice(i, min(i + CHUNK_ROWS, n)) for i in range(0, n, CHUNK_ROWS)]


def series_scaling(
    values: np.ndarray, series: np.ndarray, train: np.ndarray, num_series: int, kind: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per-series, per-column ``(center, scale)`` ``(S, C)`` from the rows where ``train``.

    NaN is ignored; a series/column without a usable value gets ``(0, 1)``, and a zero spread
    (or mean absolute value, for ``mean``) a scale of 1. Rows are reduced in chunks, so the
    temporaries stay small whatever the table's size.

    Args:
        values: ``(N, C)`` float32 with NaN where missing.
        series: ``(N,)`` the series of each row.
        train: ``(N,)`` bool, the rows of each series' training part.
        num_series: ``S``.
        kind: ``"standard"``, ``"minmax"`` or ``"mean"``.
    """
    c = values.shape[1]
    center, scale = np.zeros((num_series, c)), np.ones((num_series, c))
    for j in range(c):
        n, total, absolute = (np.zeros(num_series) for _ in range(3))
        low, high = np.full(num_series, np.inf), np.full(num_series, -np.inf)
        for rows in _chunks(len(values)):
            v, s = values[rows, j], series[rows]
            ok = train[rows] & ~np.isnan(v)
            w = np.where(ok, v, 0.0)
            n += np.bincount(s, weights=ok, minlength=num_series)
            total += np.bincount(s, weights=w, minlength=num_series)
            if kind == "mean":
                absolute += np.bincount(s, weights=np.abs(w), minlength=num_series)
            if kind == "minmax":
                np.minimum.at(low, s[ok], v[ok])
                np.maximum.at(high, s[ok], v[ok])
        has = n > 0
        if kind == "minmax":
            span = high - low
            center[:, j] = np.where(has, low, 0.0)
            scale[:, j] = np.where(has & (span > 1e-8), span, 1.0)
            continue
        if kind == "mean":
            mean_abs = np.divide(absolute, n, out=np.zeros(num_series), where=has)
            scale[:, j] = np.where(mean_abs > 1e-8, mean_abs, 1.0)
            continue
        mean = np.divide(total, n, out=np.zeros(num_series), where=has)
        squares = np.zeros(num_series)
        for rows in _chunks(len(values)):
            v, s = values[rows, j], series[rows]
            ok = train[rows] & ~np.isnan(v)
            dev = np.where(ok, v - mean[s], 0.0)
            squares += np.bincount(s, weights=dev * dev, minlength=num_series)
        std = np.sqrt(np.divide(squares, n, out=np.zeros(num_series), where=has))
        center[:, j] = mean
        scale[:, j] = np.where(std > 1e-8, std, 1.0)
    return center, scale


def naive_scales(
    targets: np.ndarray, series: np.ndarray, train: np.ndarray, num_series: int, season: int
) -> np.ndarray:
    """Per-series in-sample MAE of the seasonal naive forecast on the training part,
    ``mean |y_t - y_{t-m}|`` ``(S, O)``; a series with no pair (or a constant one) gets 1.
    The same formula as :func:`lstmkit.forecast_metrics.naive_scale`, vectorised.

    Args:
        targets: ``(N, O)`` with NaN where missing.
        series: ``(N,)`` the series of each row (rows of a series contiguous).
        train: ``(N,)`` bool, the rows of each series' training part (a prefix of it).
        num_series: ``S``.
        season: ``m``.
    """
    out = np.ones((num_series, targets.shape[1]))
    if len(targets) <= season:
        return out
    for o in range(targets.shape[1]):
        n, total = np.zeros(num_series), np.zeros(num_series)
        for rows in _chunks(len(targets) - season):
            later = slice(rows.start + season, rows.stop + season)  # pairs (t - m, t)
            s = series[later]
            diff = np.abs(targets[later, o] - targets[rows, o])
            good = (s == series[rows]) & train[later] & ~np.isnan(diff)
            n += np.bincount(s, weights=good, minlength=num_series)
            total += np.bincount(s, weights=np.where(good, diff, 0.0), minlength=num_series)
        mae = np.divide(total, n, out=np.zeros(num_series), where=n > 0)
        out[:, o] = np.where(mae > 0, mae, 1.0)
    return out


def scale_in_place(
    values: np.ndarray, series: np.ndarray, center: np.ndarray, scale: np.ndarray
) -> None:
    """``values[r] = (values[r] - center[series[r]]) / scale[series[r]]``, chunk by chunk."""
    center, scale = center.astype(np.float32), scale.astype(np.float32)
    for rows in _chunks(len(values)):
        s = series[rows]
        values[rows] -= center[s]
        values[rows] /= scale[s]


def prefix_rows(offsets: np.ndarray, length: np.ndarray) -> np.ndarray:
    """``(N,)`` bool, True on the first ``length[s]`` rows of every series ``s``."""
    mark = np.zeros(int(offsets[-1]) + 1, dtype=np.int8)
    np.add.at(mark, offsets[:-1], 1)
    np.add.at(mark, offsets[:-1] + np.clip(length, 0, np.diff(offsets)), -1)
    return np.cumsum(mark[:-1], dtype=np.int8).astype(bool)


def mask_per_series(x: Tensor, offsets: np.ndarray, impute: str) -> Tensor:
    """``missing=mask`` per series: ``(N, C)`` -> ``(N, 2C)``, values imputed (``ffill``
    never carries a value into the next series; 0 before a series' first observation) and
    the missing indicators appended."""
    indicator = torch.isnan(x).to(x.dtype)
    if impute == "zero":
        return torch.cat([torch.nan_to_num(x, nan=0.0), indicator], dim=1)
    n = len(x)
    rows = torch.arange(n).unsqueeze(1).expand_as(x)  # (N, C)
    last = torch.where(torch.isnan(x), torch.full_like(rows, -1), rows).cummax(0).values
    starts = torch.from_numpy(np.repeat(offsets[:-1], np.diff(offsets))).unsqueeze(1)  # (N, 1)
    filled = x.gather(0, last.clamp_min(0))
    filled = torch.where(last >= starts, filled, torch.zeros_like(x))
    return torch.cat([filled, indicator], dim=1)


__all__ = [
    "CHUNK_ROWS",
    "mask_per_series",
    "naive_scales",
    "prefix_rows",
    "scale_in_place",
    "series_scaling",
]
