"""Forecasting windows over one long time series from a CSV/Parquet file (or a named series).

Windows are strided views over the series (``Tensor.unfold``), never materialised: a batch
gathers its windows by indexing the view, so a 10-million-row series costs about its own size
in memory (``scripts/benchmark_windows.py`` measures it).

Split (chronological, no shuffling across time): rows are cut into train/val/test by
``val_fraction`` and ``test_fraction``; a window belongs to the split that holds all its
**target** rows, and its inputs are the ``window`` rows before them (for validation and test
windows these may reach back into the previous split: those values are the known past, not
leakage). The scaler is fitted on the training rows only.

Log scale (``log_target=True``): the target columns (and the same columns where they are
inputs) are replaced by their natural log before standardising, so that a series whose level
and seasonal swings grow together becomes additive; the task gets ``log_target`` through
:meth:`TimeSeriesDataModule.model_kwargs` and exponentiates its predictions back.
"""

from __future__ import annotations

import logging
import os
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lstmkit._errors import DataFileError
from lstmkit._validation import check_bool, check_choice, check_float, check_int
from lstmkit.data.base import SequenceDataset
from lstmkit.data.filebase import (
    Encoded,
    FileDataModule,
    split_counts,
)
from lstmkit.data.files import check_dialect, numeric_values, read_table
from lstmkit.data.missing import first_missing, mask_missing
from lstmkit.data.timecol import check_order, parse_time, seasonal_period
from lstmkit.forecast_metrics import naive_scale

log = logging.getLogger(__name__)

#: ``scaler=`` choices: standardise, or map the training rows' range to 0..1.
SCALERS = ("standard", "minmax")
#: ``calendar=`` channels made from the time column.
CALENDAR = ("month", "year")


class WindowDataset(SequenceDataset):
    """Windows ``series[s : s + window] -> targets[s + window : s + window + horizon]``.

    Args:
        inputs: ``(N, C)`` the whole (standardised) series.
        targets: ``(N, O)`` the (standardised) targets; may be a view of ``inputs``' columns.
        window, horizon: input and target steps.
        starts: ``(M,)`` window starts, or ``(first, stride, count)`` for evenly spaced ones
            (nothing stored per window).
        future_blank: with known future covariates, the number of leading input channels
            (the targets) to blank in the ``horizon`` rows after the window; None: the inputs
            stop at the window.

    Batches: ``x`` ``(B, window, C)`` — or ``(B, window + horizon, C)`` with ``future_blank``:
    the horizon rows carry the covariates known in advance and zeros in the target channels
    (their values are what is forecast) — ``y`` ``(B, O)`` if ``horizon == 1`` else
    ``(B, horizon, O)``, ``lengths`` ``(B,)`` all ``x.shape[1]``.
    """

    def __init__(
        self,
        inputs: Tensor,
        targets: Tensor,
        window: int,
        horizon: int,
        starts: Tensor | tuple[int, int, int],
        future_blank: int | None = None,
    ) -> None:
        self.window, self.horizon, self.per_step = window, horizon, False
        self.inputs, self.targets_series = inputs, targets
        self.future_blank = future_blank
        self.steps = window + (horizon if future_blank is not None else 0)  # input rows
        self.x = inputs.unfold(0, self.steps, 1)  # (N - S + 1, C, S): a view, no copy
        self.y = targets.unfold(0, horizon, 1)  # (N - H + 1, O, H): a view, no copy
        self.starts = starts
        count = len(starts) if isinstance(starts, Tensor) else starts[2]
        self.lengths = torch.tensor(self.steps).expand(count)  # (M,) a stride-0 view: no memory

    def __len__(self) -> int:
        return len(self.starts) if isinstance(self.starts, Tensor) else self.starts[2]

    def start_of(self, idx: Tensor) -> Tensor:
        if isinstance(self.starts, Tensor):
            return self.starts[idx]
        first, stride, _ = self.starts
        return first + stride * idx

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        x, y, lengths = self.__getitems__([index])
        return x[0], y[0], lengths[0]

    def __getitems__(self, indices: Sequence[int]) -> tuple[Tensor, Tensor, Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long)
        start = self.start_of(idx)  # (B,)
        x = self.x[start].transpose(1, 2)  # (B, C, S) -> (B, S, C)
        if self.future_blank is not None:  # the forecast rows' targets are unknown: zeros
            x = x.clone()
            x[:, self.window :, : self.future_blank] = 0.0
        y = self.y[start + self.window].transpose(1, 2)  # (B, O, H) -> (B, H, O)
        if self.horizon == 1:
            y = y[:, 0]  # (B, O)
        return x, y, torch.full((len(idx),), self.steps, dtype=torch.long)

    def all_targets(self) -> Tensor:
        """Every window's targets ``(M, H, O)`` (materialised: for baselines and tests)."""
        start = self.start_of(torch.arange(len(self)))
        return self.y[start + self.window].transpose(1, 2)


def window_starts(
    row_begin: int, row_end: int, window: int, horizon: int, stride: int
) -> tuple[int, int, int]:
    """``(first, stride, count)`` of the windows whose targets lie in rows
    ``[row_begin, row_end)``."""
    first_target = max(row_begin, window)
    last_target = row_end - horizon  # the first target row of the last window
    count = 0 if last_target < first_target else (last_target - first_target) // stride + 1
    return first_target - window, stride, count


#: ``window="auto"``: this many steps, or half the training rows when fewer.
AUTO_WINDOW = 24


def auto_window(n_train: int, horizon: int) -> int:
    """The ``window="auto"`` rule: ``min(24, (n_train - horizon + 1) // 2)``, at least 2 —
    a short series keeps at least as many training windows as steps in a window."""
    return max(2, min(AUTO_WINDOW, (n_train - horizon + 1) // 2))


def seasonal_naive_baseline(
    series: Tensor, windows: WindowDataset, season: int, scale: Tensor
) -> dict[str, float]:
    """Test metrics of the seasonal-naive forecast of every window of ``windows``.

    The forecast of target row ``t0 + h`` (``t0`` the window's first target row, ``h`` from 0)
    is ``series[t0 + h - m * ceil((h + 1) / m)]``: the last observed value one season back
    (``m = 1``: the last observed value). Rows before the series start fall back to the
    naive forecast.

    Args:
        series: ``(N, O)`` the targets in original units (NaN where missing).
        windows: the test split's windows.
        season: the seasonal period ``m``.
        scale: ``(O,)`` MASE's scale (:func:`lstmkit.forecast_metrics.naive_scale`).

    Returns:
        ``{"test/mse", "test/mae", "test/mase"}`` over every forecast value.
    """
    t0 = windows.start_of(torch.arange(len(windows))) + windows.window  # (M,)
    h = torch.arange(windows.horizon)  # (H,)
    back = season * torch.div(h + season, season, rounding_mode="floor")  # m * ceil((h+1)/m)
    source = t0[:, None] + h[None, :] - back[None, :]  # (M, H)
    source = torch.where(source >= 0, source, t0[:, None] - 1)
    rows = t0[:, None] + h[None, :]
    err = series[source] - series[rows]  # (M, H, O)
    valid = ~err.isnan()
    err = torch.where(valid, err, torch.zeros_like(err))
    count = valid.sum().clamp_min(1)
    return {
        "test/mse": float(err.pow(2).sum() / count),
        "test/mae": float(err.abs().sum() / count),
        "test/mase": float((err.abs() / scale.clamp_min(1e-12)).sum() / count),
    }


class TimeSeriesDataModule(FileDataModule):
    """Forecast ``target`` columns ``horizon`` steps ahead from the last ``window`` rows.

    Inputs per step are the target columns (unless ``include_target=False``) then the
    ``features`` columns, standardised with the training rows' mean and std; with
    ``missing="mask"`` one missing-indicator channel per input follows. Targets are
    standardised likewise, and the task gets the scaling (``target_mean``/``target_std``) so
    its predictions come back in original units. With ``log_target=True`` the target columns
    (as targets and as inputs) are log-transformed first; the task gets ``log_target`` and
    inverts it (``exp`` after de-standardising). The task also gets ``target_channels``: the
    input channels that hold the targets in the targets' own scaling (the first ``O`` channels
    when ``include_target=True``, else None), which residual forecasting needs.

    Args:
        target: target column name(s).
        features: extra input columns (covariates), or None.
        time: a column to sort the rows by (and to label predictions), or None (file order).
        window: input steps per window; ``"auto"`` (the default): 24, or half the training
            rows when that is fewer (a short series still gets as many windows as steps),
            at least 2.
        horizon: future steps to forecast.
        stride: steps between the starts of consecutive windows.
        include_target: whether past target values are inputs.
        log_target: model the natural log of the target columns (every value must be > 0);
            predictions and metrics stay in original units.
        scaler: ``"standard"`` (mean 0, std 1) or ``"minmax"`` (0..1), fitted on the
            training rows, for the target and feature columns.
        calendar: input channels made from the ``time`` column (parsed as dates), after the
            features and never rescaled: ``"month"`` (12 one-hot channels) and ``"year"``
            (years since the first row's year, divided by ``calendar_year_span``).
        calendar_year_span: the ``"year"`` channel's unit in years.
        time_format: strftime format of the ``time`` column (``"%d/%m/%Y"``), or None for
            the rules of :mod:`lstmkit.data.timecol` (numbers, ISO 8601, other dates).
        dayfirst: read ``1/2/2022`` as 1 February (True) or 2 January (False); None decides
            from the data and refuses a column that reads both ways.
        season: the seasonal period ``m`` of the seasonal-naive baseline and of MASE's
            scale (12 for monthly data with a yearly cycle, 1 for the plain naive forecast);
            ``"auto"`` (the default): from the time column's spacing
            (:func:`lstmkit.data.timecol.seasonal_period`), 1 without dates.
        future_covariates: the covariates (``features`` and ``calendar``) of the ``horizon``
            forecast rows are known in advance (a calendar, a planned price): each window's
            inputs then run ``window + horizon`` rows, with zeros in the target channels of
            the forecast rows (with no covariates they hold only those zeros). What
            :class:`lstmkit.tasks.AutoregressiveForecaster` reads.
        **kwargs: split fractions (``val_fraction=0``: no validation split), ``batch_size``,
            ``seed``, ``missing``, ``impute``, augmentation (see :class:`FileDataModule`).
    """

    def __init__(
        self,
        target: str | Sequence[str],
        features: Sequence[str] | None = None,
        time: str | None = None,
        window: int | str = "auto",
        horizon: int = 1,
        stride: int = 1,
        include_target: bool = True,
        log_target: bool = False,
        scaler: str = "standard",
        calendar: Sequence[str] | None = None,
        calendar_year_span: float = 100.0,
        future_covariates: bool = False,
        time_format: str | None = None,
        dayfirst: bool | None = None,
        season: int | str = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.task = "regression"
        self.targets = [target] if isinstance(target, str) else [str(t) for t in target]
        if not self.targets:
            raise ValueError("target=[]: name at least one target column")
        self.features = [str(f) for f in features or []]
        self.time = time
        if time_format is not None and not isinstance(time_format, str):
            raise TypeError(f"time_format={time_format!r}: must be a strftime format string")
        if dayfirst is not None and not isinstance(dayfirst, bool):
            raise TypeError(f"dayfirst={dayfirst!r}: must be true, false or null")
        if (time_format is not None or dayfirst is not None) and not time:
            raise ValueError(
                "time_format/dayfirst parse the time column, but time=None: name the column "
                "holding the times (data.time)"
            )
        self.time_format, self.dayfirst = time_format, dayfirst
        self.time_rule: dict[str, Any] = {}  # how the time column was read (parse_time)
        self.window: int | str = window if window == "auto" else check_int("window", window)
        self.season: int | str = season if season == "auto" else check_int("season", season)
        self.horizon = check_int("horizon", horizon)
        self.stride = check_int("stride", stride)
        self.include_target = check_bool("include_target", include_target)
        self.log_target = check_bool("log_target", log_target)
        if not self.include_target and not self.features:
            raise ValueError("include_target=False needs features: the inputs would be empty")
        dup = set(self.targets) & set(self.features)
        if dup and self.include_target:
            raise ValueError(f"features={self.features}: {sorted(dup)} already inputs as targets")
        self.scaler = check_choice("scaler", scaler, SCALERS)
        self.calendar = [str(c) for c in calendar or []]
        for name in self.calendar:
            check_choice("calendar", name, CALENDAR)
        if self.calendar and not time:
            raise ValueError(
                f"calendar={self.calendar} is made from the time column, but time=None: name "
                "the column holding the dates (data.time)"
            )
        self.calendar_year_span = check_float("calendar_year_span", calendar_year_span, low=0.0)
        if self.calendar_year_span == 0:
            raise ValueError("calendar_year_span=0: the year channel's unit must be > 0 years")
        self.future_covariates = check_bool("future_covariates", future_covariates)
        masked = kwargs.get("missing", "error") == "mask"
        if self.future_covariates and (not self.include_target or masked):
            raise ValueError(
                "future_covariates=True feeds past targets back as inputs: it needs "
                "include_target=true and missing=error or drop"
            )

    # ----------------------------------------------------------------- reading
    @abstractmethod
    def read_frame(self) -> tuple[Any, str]:
        """``(DataFrame with the needed columns, name of the source for messages)``."""

    @property
    def input_columns(self) -> list[str]:
        """The file's columns that are inputs (targets first, then features)."""
        return (self.targets if self.include_target else []) + self.features

    @property
    def calendar_columns(self) -> list[str]:
        """Names of the calendar channels, which follow the input columns."""
        names: list[str] = []
        for name in self.calendar:
            names += [f"month_{m:02d}" for m in range(1, 13)] if name == "month" else ["year"]
        return names

    def _calendar(self, time: Any, source: str, year0: int | None) -> tuple[np.ndarray, int]:
        """The calendar channels ``(N, K)`` of the parsed dates ``(N,)`` (None: the time
        column holds numbers), and the year the
        ``"year"`` channel counts from: ``year0`` (the training series', for a new file) or
        else the first row's."""
        import pandas as pd

        if time is None:
            raise DataFileError(
                source,
                f"calendar={self.calendar} needs dates in the time column {self.time!r}, but "
                "it holds numbers: give dates, or set data.calendar=null",
            )
        dates = pd.DatetimeIndex(time)
        year0 = int(dates.year[0]) if year0 is None else int(year0)
        columns = []
        for name in self.calendar:
            if name == "month":
                columns.append(np.eye(12, dtype=np.float32)[dates.month.to_numpy() - 1])
            else:
                years = (dates.year - year0).to_numpy(dtype=np.float32)
                columns.append((years / self.calendar_year_span)[:, None])
        return np.concatenate(columns, axis=1), year0

    @property
    def needed_columns(self) -> list[str]:
        cols = list(dict.fromkeys(self.targets + self.features))
        return [*cols, self.time] if self.time else cols

    def _arrays(
        self,
        frame: Any,
        source: str,
        *,
        need_targets: bool = True,
        year0: int | None = None,
        dayfirst: bool | None = None,
    ) -> dict[str, Any]:
        """Sort by time, check numbers and missing values; ``{"inputs", "targets", "rows",
        "time"}``: float32 ``(N, C)`` and ``(N, O)`` arrays (the targets a view of the inputs'
        first columns when they are inputs; None when not needed), the file's row labels (a
        pandas Index, lazy for unsorted files) and the time values (or None); and
        ``"calendar_year0"``, the year the calendar's year channel counts from (``year0`` when
        given, else the first row's; None without that channel)."""
        dates = None
        if self.time:  # parsed as time (lstmkit.data.timecol), sorted, duplicates refused
            key, dates, used = parse_time(
                frame[self.time].to_numpy(),
                self.time,
                source,
                time_format=self.time_format,
                dayfirst=self.dayfirst if dayfirst is None else dayfirst,
            )
            order = check_order(key, frame[self.time].to_numpy(), self.time, source)
            if (np.diff(order) != 1).any():
                log.info("%s: rows sorted by the time column %r", source, self.time)
                frame = frame.iloc[order]
                dates = None if dates is None else dates[order]
            self.time_rule = {"dayfirst": used}
        rows = frame.index  # the file's own row numbers, in time order
        time = frame[self.time].to_numpy() if self.time else None
        inputs = numeric_values(frame, self.input_columns, source)
        o = len(self.targets)
        if self.include_target:
            targets = inputs[:, :o]  # a view: targets are the first input columns
        else:
            targets = numeric_values(frame, self.targets, source) if need_targets else None
        del frame
        if self.log_target:  # in place: when targets are inputs, both see the log (a view)
            self._take_log(inputs[:, :o] if self.include_target else targets, rows, source)
        if self.missing == "error":
            for arr, cols in ((inputs, self.input_columns), (targets, self.targets)):
                where = None if arr is None else first_missing(torch.from_numpy(arr))
                if where is not None:
                    raise DataFileError(
                        source,
                        f"missing value (NaN) at row {rows[where[0]]}, column "
                        f"{cols[where[1]]!r}; set missing=mask (impute + indicator) or "
                        "missing=drop",
                    )
        elif self.missing == "drop":
            keep = ~np.isnan(inputs).any(1)
            if targets is not None:
                keep &= ~np.isnan(targets).any(1)
            inputs, rows = inputs[keep], rows[keep]
            time = None if time is None else time[keep]
            dates = None if dates is None else dates[keep]
            targets = None if targets is None else targets[keep]
        if self.missing == "mask" and targets is not None and self.include_target:
            targets = targets.copy()  # kept with its NaN: the inputs are standardised in place
        if self.calendar:  # (targets stay a view of the new array's first columns)
            channels, year0 = self._calendar(dates, source, year0)
            inputs = np.concatenate([inputs, channels], axis=1)
            if self.include_target and self.missing != "mask":
                targets = inputs[:, :o]
        arrays = {"inputs": inputs, "targets": targets, "rows": rows, "time": time, "dates": dates}
        return {**arrays, "calendar_year0": year0}

    def _take_log(self, values: np.ndarray | None, rows: Any, source: str) -> None:
        """Replace the target columns ``values`` ``(N, O)`` by their natural log, in place
        (NaN stays NaN for the missing-value policy).

        Raises:
            DataFileError: a value is zero or negative (names the column, the row and the key).
        """
        if values is None:
            return
        with np.errstate(invalid="ignore"):
            bad = values <= 0  # NaN compares False: left to the missing-value policy
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise DataFileError(
                source,
                f"log_target=true needs positive values, but column {self.targets[c]!r} holds "
                f"{values[r, c]:g} at row {rows[r]}; set log_target=false (data.log_target="
                "false), or shift/clean the column so that every value is > 0",
            )
        np.log(values, out=values)

    def _series(self, inputs: np.ndarray, stats: dict[str, Any]) -> Tensor:
        """Standardise (in place) and apply the missing policy: ``(N, C)`` -> ``(N, C')``."""
        x = torch.from_numpy(inputs)
        x.sub_(torch.tensor(stats["input_mean"])).div_(torch.tensor(stats["input_std"]))
        if self.missing == "mask":
            x = mask_missing(x, self.impute)  # (N, 2C)
        return x

    def _targets(self, x: Tensor, targets: np.ndarray | None, stats: dict[str, Any]) -> Tensor:
        """Standardised targets ``(N, O)``: a view of the inputs' first columns when they are
        the targets (no copy), else a separate tensor."""
        if self.include_target and self.missing != "mask":
            return x[:, : len(self.targets)]
        if targets is None:
            return torch.zeros(len(x), len(self.targets))
        y = torch.from_numpy(targets)
        return (y - torch.tensor(stats["target_mean"])) / torch.tensor(stats["target_std"])

    def _starts(self, targets: np.ndarray | None, begin: int, end: int) -> Tensor | tuple:
        """Window starts of target rows ``[begin, end)``; with ``missing="mask"`` windows with
        a missing target are left out (an explicit index tensor then)."""
        spec = window_starts(begin, end, self.window, self.horizon, self.stride)
        if self.missing != "mask" or targets is None or not np.isnan(targets).any():
            return spec
        first, stride, count = spec
        starts = first + stride * torch.arange(count)
        bad = torch.from_numpy(np.isnan(targets).any(1)).to(torch.int64)  # (N,)
        csum = torch.cat([torch.zeros(1, dtype=torch.int64), bad.cumsum(0)])
        t0 = starts + self.window
        return starts[(csum[t0 + self.horizon] - csum[t0]) == 0]

    # ----------------------------------------------------------------- FileDataModule
    def prepare_splits(self) -> None:
        frame, source = self.read_frame()
        arrays = self._arrays(frame, source)
        inputs, targets = arrays["inputs"], arrays["targets"]
        n = len(inputs)
        n_train, n_val, _ = split_counts(n, self.val_fraction, self.test_fraction)
        if self.window == "auto":
            self.window = auto_window(n_train, self.horizon)
            log.info("%s: window=auto: %d steps (training rows: %d)", source, self.window, n_train)
        season = seasonal_period(arrays["dates"]) if self.season == "auto" else int(self.season)
        need = self.window + self.horizon
        if n_train < need:
            raise DataFileError(
                source,
                f"window={self.window} + horizon={self.horizon} needs {need} rows in the "
                f"training split, but the series has {n} rows and the training split "
                f"{n_train} ({1 - self.val_fraction - self.test_fraction:.0%}): use a shorter "
                "window or more data",
            )
        train = slice(0, n_train)
        t = torch.from_numpy(targets[train])
        k = len(self.calendar_columns)  # calendar channels: already scaled, left as they are
        values = torch.from_numpy(inputs[train, : inputs.shape[1] - k])
        input_center, input_scale = _fit_scaler(values, self.scaler)
        target_center, target_scale = _fit_scaler(t, self.scaler)
        stats = {
            "kind": "timeseries",
            "input_columns": self.input_columns + self.calendar_columns,
            "target_columns": self.targets,
            "scaler": self.scaler,
            # (x - input_mean) / input_std: the mean and std, or the minimum and the range
            "input_mean": input_center + [0.0] * k,
            "input_std": input_scale + [1.0] * k,
            "target_mean": target_center,
            "target_std": target_scale,
            "log_target": self.log_target,
            "calendar_year0": arrays["calendar_year0"],  # what a new file's years count from
            # how the time column's dates were read (day first or not), for a new file
            "time_dayfirst": self.time_rule.get("dayfirst") if self.time else None,
            "window": self.window,  # the resolved window (window=auto), for a new file
            "season": season,
        }
        self.fitted = stats
        # the targets in original units, for the baseline and MASE's scale (copied before the
        # inputs, whose view ``targets`` may be, are standardised in place)
        original = torch.from_numpy(np.array(targets, dtype=np.float64))
        original = original.exp() if self.log_target else original  # (N, O)
        x = self._series(inputs, stats)
        y = self._targets(x, targets, stats)
        bounds = {
            "train": (0, n_train),
            "val": (n_train, n_train + n_val),
            "test": (n_train + n_val, n),
        }
        if n_val == 0:  # val_fraction=0: no validation split (train for a fixed budget)
            del bounds["val"]
        blank = len(self.targets) if self.future_covariates else None
        self.splits = {}
        for name, (begin, end) in bounds.items():
            starts = self._starts(targets, begin, end)
            ds = WindowDataset(x, y, self.window, self.horizon, starts, future_blank=blank)
            if len(ds) == 0:
                raise DataFileError(
                    source,
                    f"the {name} split (rows {begin}-{end - 1}) holds no window of window="
                    f"{self.window} + horizon={self.horizon}: use a larger {name}_fraction, "
                    "a shorter window or more data",
                )
            self.splits[name] = ds
        self.split_rows = {k: v for k, v in bounds.items()}
        self.mase_scale = naive_scale(original[:n_train], season).tolist()  # (O,)
        self._baseline = seasonal_naive_baseline(
            original, self.splits["test"], season, torch.tensor(self.mase_scale)
        )
        self.season_used = season
        log.info(
            "%s: baseline: %s; MASE scaled by the training rows' in-sample MAE of it",
            source,
            self.baseline_description,
        )

    @property
    def consecutive_windows(self) -> bool:
        """Whether each test window starts one step after the one before (stride 1, none left
        out for a missing target): the windows' forecasts then line up along the split."""
        self.setup()
        return self.stride == 1 and not isinstance(self.splits["test"].starts, Tensor)

    @property
    def input_kwargs(self) -> dict[str, int]:
        c = len(self.input_columns) + len(self.calendar_columns)
        return {"input_size": 2 * c if self.missing == "mask" else c}

    def target_kwargs(self) -> dict[str, Any]:
        return {"output_size": len(self.targets), "horizon": self.horizon}

    @property
    def target_channels(self) -> list[int] | None:
        """The input channels holding the targets, in the targets' scaling (the first ``O``
        when ``include_target=True``; with ``missing="mask"`` the value channels come before
        the indicators), or None when past targets are not inputs."""
        return list(range(len(self.targets))) if self.include_target else None

    def model_kwargs(self) -> dict[str, Any]:
        """Sizes and target scaling (see the base class), plus ``log_target`` (the task
        exponentiates its predictions back) and ``target_channels`` (for residual
        forecasting)."""
        return {
            **super().model_kwargs(),
            "log_target": self.log_target,
            "target_channels": self.target_channels,
            "mase_scale": self.mase_scale,
        }

    @property
    def baseline_description(self) -> str:
        """The seasonal-naive forecast (the naive one for ``season=1``) that every run prints
        beside the model."""
        self.setup()
        m = self.season_used
        if m == 1:
            return "naive: each forecast repeats the last observed value"
        return f"seasonal naive (m={m}): each forecast repeats the value one season ({m} steps) earlier"

    def augment_kwargs(self) -> dict[str, Any]:
        channels = len(self.input_columns) + len(self.calendar_columns)
        return {**super().augment_kwargs(), "value_channels": channels}

    def encode_file(self, path: str) -> Encoded:
        """Every window of a new file (stride 1), including the last one whose forecast lies
        past the end of the file. Targets, when the file has them, are kept for the CSV."""
        import pandas as pd

        stats = self.require_fitted()
        self.window = int(stats.get("window", self.window))  # window=auto: the fitted one
        if self.future_covariates:
            raise ValueError(
                "lstmkit-predict cannot forecast with data.future_covariates=true yet: the "
                "forecast rows' covariates would have to come from outside the file. Load the "
                "checkpoint in Python and call the model on windows of window + horizon rows "
                "(see lstmkit.tasks.AutoregressiveForecaster)"
            )
        has_targets = self.include_target or _has_columns(
            path, self.targets, getattr(self, "dialect", {})
        )
        columns = (
            self.needed_columns
            if has_targets
            else [*self.features] + ([self.time] if self.time else [])
        )
        frame = read_table(path, columns, **getattr(self, "dialect", {}))
        year0 = stats.get("calendar_year0")
        arrays = self._arrays(
            frame,
            str(path),
            need_targets=has_targets,
            year0=year0,
            dayfirst=stats.get("time_dayfirst"),
        )
        inputs, targets = arrays["inputs"], arrays["targets"]
        n = len(inputs)
        if n < self.window:
            raise DataFileError(
                path, f"has {n} usable rows, fewer than the checkpoint's window={self.window}"
            )
        count = n - self.window + 1
        # targets padded so that the last windows (forecasts past the end) can be gathered;
        # filled before the inputs (whose view they may be) are standardised in place
        padded = np.full((n + self.horizon, len(self.targets)), np.nan, dtype=np.float32)
        if targets is not None:
            padded[:n] = np.exp(targets) if self.log_target else targets  # original units
        x = self._series(inputs, stats)
        y = torch.from_numpy(padded)
        dataset = WindowDataset(x, torch.zeros(n + self.horizon, y.shape[1]), self.window,
                                self.horizon, (0, 1, count))  # fmt: skip
        truth = WindowDataset(x, y, self.window, self.horizon, (0, 1, count)).all_targets()
        last = slice(self.window - 1, self.window - 1 + count)  # the last input row of each
        index = pd.DataFrame({"last_input_row": np.asarray(arrays["rows"])[last]})
        if arrays["time"] is not None:
            index["last_input_time"] = arrays["time"][last]
        return Encoded(dataset, index, truth if has_targets else None)

    def format_predictions(self, outputs: dict[str, Tensor], encoded: Encoded) -> Any:
        frame = encoded.index.copy()
        pred = outputs["pred"].reshape(len(frame), self.horizon, len(self.targets))
        for h in range(self.horizon):
            for o, name in enumerate(self.targets):
                suffix = "" if self.horizon == 1 else f"_t+{h + 1}"
                frame[f"pred_{name}{suffix}"] = pred[:, h, o].numpy()
                if encoded.targets is not None:
                    frame[f"true_{name}{suffix}"] = encoded.targets[:, h, o].numpy()
        return frame


class CSVDataModule(TimeSeriesDataModule):
    """A time series from a CSV (``.csv``, ``.tsv``) or Parquet (``.parquet``) file.

    Example:
        >>> dm = CSVDataModule("sales.csv", target="sales", features=["price"], time="date",
        ...                    window=28, horizon=7)  # doctest: +SKIP

    Args:
        path: the file.
        target, features, time, window, horizon, stride, include_target, log_target, scaler, calendar, calendar_year_span, future_covariates, time_format, dayfirst, season: see
            :class:`TimeSeriesDataModule`.
        sep: CSV column separator (``","``, ``";"``, ``"\\t"``); None detects it from the
            header line (see :func:`lstmkit.data.files.read_table`).
        decimal: CSV decimal mark (``"."`` or ``","``).
        encoding: CSV text encoding; None reads UTF-8 (a byte-order mark is skipped; a UTF-16
            mark selects UTF-16).
        **kwargs: split fractions, ``batch_size``, ``seed``, ``missing``, ``impute``,
            ``noise_std``, ``step_dropout`` (see :class:`FileDataModule`).
    """

    def __init__(
        self,
        path: str,
        target: str | Sequence[str],
        features: Sequence[str] | None = None,
        time: str | None = None,
        window: int | str = "auto",
        horizon: int = 1,
        stride: int = 1,
        include_target: bool = True,
        log_target: bool = False,
        scaler: str = "standard",
        calendar: Sequence[str] | None = None,
        calendar_year_span: float = 100.0,
        future_covariates: bool = False,
        time_format: str | None = None,
        dayfirst: bool | None = None,
        season: int | str = "auto",
        sep: str | None = None,
        decimal: str = ".",
        encoding: str | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(path, str | os.PathLike):
            raise TypeError(
                f"path={type(path).__name__}: must be the path of a CSV/Parquet file (str or "
                "pathlib.Path); for a series in memory use StreamDataModule(series=...)"
            )
        super().__init__(
            target,
            features,
            time,
            window,
            horizon,
            stride,
            include_target,
            log_target,
            scaler=scaler,
            calendar=calendar,
            calendar_year_span=calendar_year_span,
            future_covariates=future_covariates,
            time_format=time_format,
            dayfirst=dayfirst,
            season=season,
            **kwargs,
        )
        self.dialect = check_dialect(sep, decimal, encoding)
        self._save_hparams(locals())
        self.path = str(path)

    def read_frame(self) -> tuple[Any, str]:
        return read_table(self.path, self.needed_columns, **self.dialect), self.path


class AirlineDataModule(TimeSeriesDataModule):
    """The monthly airline passengers series 1949–1960 (Box & Jenkins; 144 values), from
    aeon's bundled copy (``pip install 'lstmkit[datasets]'``); no network needed.

    Columns: ``passengers`` (the target) and ``month`` (time, ``"1949-01"`` ...).
    ``log_target=True`` models log(passengers): the seasonal swings, which grow with the
    level, then have a constant size. ``calendar=["month", "year"]`` adds the month (one-hot)
    and the year as inputs, known in advance (``future_covariates=True``). See
    :class:`TimeSeriesDataModule` for every argument.
    """

    def __init__(
        self,
        window: int = 24,
        horizon: int = 1,
        stride: int = 1,
        log_target: bool = False,
        scaler: str = "standard",
        calendar: Sequence[str] | None = None,
        calendar_year_span: float = 100.0,
        future_covariates: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            "passengers",
            None,
            "month",
            window,
            horizon,
            stride,
            True,
            log_target,
            scaler=scaler,
            calendar=calendar,
            calendar_year_span=calendar_year_span,
            future_covariates=future_covariates,
            **kwargs,
        )
        self._save_hparams(locals())

    def read_frame(self) -> tuple[Any, str]:
        import pandas as pd

        from lstmkit.data.files import aeon_loader

        values = np.asarray(aeon_loader("load_airline")(), dtype=np.float64)
        months = pd.period_range("1949-01", periods=len(values), freq="M").astype(str)
        return pd.DataFrame({"passengers": values, "month": months}), "airline (aeon)"


def _has_columns(path: str, columns: Sequence[str], dialect: dict[str, Any]) -> bool:
    from lstmkit.data.files import check_file, table_columns

    available = table_columns(check_file(path), **dialect)
    return all(c in available for c in columns)


def _fit_scaler(x: Tensor, kind: str) -> tuple[list[float], list[float]]:
    """``(center, scale)`` per column of ``x`` ``(N, C)`` (NaN ignored): the mean and std
    (``"standard"``) or the minimum and the range (``"minmax"``); a constant column gets
    scale 1."""
    if kind == "standard":
        return _nanmean(x), _nanstd(x)
    x = x.double()
    low = torch.where(x.isnan(), torch.inf, x).amin(0)
    high = torch.where(x.isnan(), -torch.inf, x).amax(0)
    span = high - low
    return low.tolist(), torch.where(span > 1e-8, span, torch.ones_like(span)).tolist()


def _nanmean(x: Tensor) -> list[float]:
    return torch.nanmean(x.double(), dim=0).tolist()


def _nanstd(x: Tensor) -> list[float]:
    """Per-column population std ignoring NaN; 1.0 for constant columns."""
    x = x.double()
    var = torch.nanmean((x - torch.nanmean(x, dim=0)).pow(2), dim=0)
    std = var.sqrt()
    return torch.where(std > 1e-8, std, torch.ones_like(std)).tolist()


__all__ = [
    "AirlineDataModule",
    "CSVDataModule",
    "TimeSeriesDataModule",
    "WindowDataset",
    "window_starts",
]
