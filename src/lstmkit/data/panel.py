"""Panel forecasting: one global model over many series of a long table (``data=table``
with ``target=``), as darts' lists of series, neuralforecast's ``unique_id`` or GluonTS do.

Rows are grouped by id and sorted by time (:func:`lstmkit.data.longtable.order_panel`); the
values of all series lie in one ``(N, C)`` array and series ``s`` is rows
``offsets[s]:offsets[s+1]``. Nothing is copied per window: a window is a series index and a
target row, found from a flat index through per-series window counts (``O(S)`` memory), and
a batch gathers its rows by indexing.

Split in time within each series (the forecasting competitions' protocol): the last
``test_steps`` rows of every series are its test targets, the ``val_steps`` rows before them
its validation targets, the rest its training part. A window belongs to the split holding its
target rows; its inputs are the ``window`` rows before, which may reach back into the
previous split (the known past). With ``test_steps = val_steps = horizon`` (the default)
every series gives exactly one validation and one test window. ``holdout_fraction`` keeps a
seeded share of the ids out of training and validation: the test split then holds only their
windows (forecasting series never seen in training).

Per-series scaling, fitted on each series' training part: ``standard`` (mean, std), ``minmax``
(minimum, range) or ``mean`` (0, mean absolute value: DeepAR's scaling). Every window carries
its series' target ``center``/``scale`` and in-sample seasonal-naive MAE (for MASE) as
trailing channels, which the task reads (:mod:`lstmkit.tasks.panel`) to return forecasts and
metrics in original units. Static covariates (one value per id): numeric ones standardised
across the training series and repeated along time, categorical ones as integer codes that
the task turns into learned embeddings.

Series shorter than a window (``short_series``): ``skip`` (default) draws only windows with
``window`` input rows inside their series — a series with no such window in a split takes no
part in it (the log says how many); ``pad`` also draws windows with fewer input rows (at least
``min_window``), as variable-length inputs (``lengths``), so that short series are used too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lstmkit._errors import DataFileError
from lstmkit._logging import get_logger
from lstmkit._validation import check_bool, check_choice, check_float, check_int
from lstmkit.data.base import SequenceDataset
from lstmkit.data.filebase import Encoded, FileDataModule
from lstmkit.data.files import numeric_values
from lstmkit.data.longtable import (
    Panel,
    constant_per_series,
    id_label,
    order_panel,
    read_long_table,
)
from lstmkit.data.panel_stats import (
    mask_per_series,
    naive_scales,
    prefix_rows,
    scale_in_place,
    series_scaling,
)
from lstmkit.data.panel_windows import (
    PanelWindowDataset,
    PanelWindows,
    StreamingWindows,
    cat_padded,
)
from lstmkit.forecast_metrics import averaged, window_errors

log = get_logger(__name__)

#: ``scaler=`` choices, fitted per series on its training part.
PANEL_SCALERS = ("standard", "minmax", "mean")
#: ``short_series=`` rules.
SHORT_SERIES = ("skip", "pad")
#: ``calendar=`` channels made from a date time column.
PANEL_CALENDAR = ("month", "year", "dayofweek")


class PanelDataModule(FileDataModule):
    """Forecast every series of a long table with one model (see the module docstring).

    Example:
        >>> dm = PanelDataModule("sales.parquet", id="store", time="date", target="sales",
        ...                      window=28, horizon=7, season=7)  # doctest: +SKIP

    Args:
        path: a CSV/Parquet file or a folder of Parquet files.
        id: the id column(s).
        target: the target column(s) (past values are inputs too).
        time: the column that orders each series (numbers or dates); None keeps the order.
        features: extra value columns per step (scaled per series like the targets).
        window: input rows per window (at most, with ``short_series="pad"``).
        horizon: target rows per window.
        stride: rows between the training windows of a series.
        val_steps, test_steps: the last rows of each series held out as its validation and
            test targets (None: ``horizon``; ``val_steps=0``: no validation split).
        holdout_fraction: share of the ids (seeded) kept out of training and validation;
            the test split then holds only theirs.
        scaler: ``"standard"``, ``"minmax"`` or ``"mean"``, per series (training part).
        season: the seasonal period of MASE's naive scale and of the seasonal-naive baseline
            (1: the naive forecast).
        short_series: ``"skip"`` or ``"pad"`` (see the module docstring).
        min_window: with ``short_series="pad"``, the fewest input rows a window may have.
        static_numeric, static_categorical: columns with one value per id.
        calendar: channels made from a date time column: ``month`` (12 one-hot),
            ``dayofweek`` (7 one-hot), ``year`` (years since the first training year /
            ``calendar_year_span``); not rescaled.
        calendar_year_span: the year channel's unit in years.
        future_covariates: the covariates (``features``, ``calendar``) of the ``horizon``
            forecast rows are known in advance: each window's inputs run ``window + horizon``
            rows, the forecast rows' target channels zeroed (what ``model=autoregressive``
            reads; as ``data=csv``). Needs full windows (``short_series="skip"``).
        stream: read a folder of Parquet files one file at a time (data larger than memory):
            each id's rows must lie in one file; the training windows are shuffled within a
            file and the files in a seeded order each epoch; memory holds one file plus the
            validation and test windows. No static covariates or held-out ids yet.
        **kwargs: ``batch_size``, ``seed``, ``num_workers``, ``missing`` (``error``,
            ``mask``: impute per series + indicator channels, windows with a missing target
            left out; ``drop``: rows with a missing value dropped), ``impute``,
            ``noise_std``, ``step_dropout`` (see :class:`FileDataModule`).
    """

    def __init__(
        self,
        path: str,
        id: str | Sequence[str],
        target: str | Sequence[str],
        time: str | None = None,
        time_format: str | None = None,
        dayfirst: bool | None = None,
        features: Sequence[str] | None = None,
        window: int = 24,
        horizon: int = 1,
        stride: int = 1,
        val_steps: int | None = None,
        test_steps: int | None = None,
        holdout_fraction: float = 0.0,
        scaler: str = "standard",
        season: int = 1,
        short_series: str = "skip",
        min_window: int = 1,
        static_numeric: Sequence[str] | None = None,
        static_categorical: Sequence[str] | None = None,
        calendar: Sequence[str] | None = None,
        calendar_year_span: float = 100.0,
        future_covariates: bool = False,
        stream: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.pop("val_fraction", None)
        kwargs.pop("test_fraction", None)
        super().__init__(**kwargs)
        self._save_hparams(locals())
        self.task = "regression"
        self.time_format, self.dayfirst = time_format, dayfirst
        self.path, self.time = str(path), time
        self.ids = _names(id, "id")
        self.targets = _names(target, "target")
        self.features = _names(features, "features")
        self.static_numeric = _names(static_numeric, "static_numeric")
        self.static_categorical = _names(static_categorical, "static_categorical")
        if not self.ids or not self.targets:
            raise ValueError("id and target must name at least one column each")
        named = [*self.ids, *self.targets, *self.features, *self.static_numeric,
                 *self.static_categorical, *([time] if time else [])]  # fmt: skip
        twice = sorted({c for c in named if named.count(c) > 1})
        if twice:
            raise ValueError(f"column(s) {twice} named twice among id/target/features/static/time")
        self.window = check_int("window", window)
        self.horizon = check_int("horizon", horizon)
        self.stride = check_int("stride", stride)
        self.val_steps = (
            self.horizon if val_steps is None else check_int("val_steps", val_steps, minimum=0)
        )
        self.test_steps = (
            self.horizon if test_steps is None else check_int("test_steps", test_steps)
        )
        for name, steps in (("val_steps", self.val_steps), ("test_steps", self.test_steps)):
            if 0 < steps < self.horizon:
                raise ValueError(f"{name}={steps}: must be 0 or at least horizon={self.horizon}")
        self.holdout_fraction = check_float(
            "holdout_fraction", holdout_fraction, low=0.0, high=1.0, high_inclusive=False
        )
        self.scaler = check_choice("scaler", scaler, PANEL_SCALERS)
        self.season = check_int("season", season)
        self.short_series = check_choice("short_series", short_series, SHORT_SERIES)
        self.min_window = check_int("min_window", min_window)
        if self.min_window > self.window:
            raise ValueError(f"min_window={min_window}: must be at most window={window}")
        self.calendar = [check_choice("calendar", str(c), PANEL_CALENDAR) for c in calendar or []]
        if self.calendar and not time:
            raise ValueError(
                f"calendar={self.calendar} is made from the time column: set data.time"
            )
        self.calendar_year_span = check_float("calendar_year_span", calendar_year_span, low=0.0)
        if self.calendar_year_span == 0:
            raise ValueError("calendar_year_span=0: the year channel's unit must be > 0 years")
        self.future_covariates = check_bool("future_covariates", future_covariates)
        if self.future_covariates and (
            self.short_series != "skip" or self.missing == "mask" or stream
        ):
            raise ValueError(
                "future_covariates=true feeds past targets back over full windows: it needs "
                "short_series=skip, missing=error or drop, and stream=false"
            )
        self.stream = bool(stream)
        if self.stream:
            unsupported = [
                name for name, value in (
                    ("static_numeric", self.static_numeric),
                    ("static_categorical", self.static_categorical),
                    ("holdout_fraction", self.holdout_fraction),
                    ("bucket_by_length", self.bucket_by_length),
                    ("noise_std", self.noise_std),
                    ("step_dropout", self.step_dropout),
                ) if value
            ]  # fmt: skip
            if unsupported:
                raise ValueError(f"stream=true does not support {unsupported[0]} yet: unset it")
        self.series_keys: np.ndarray | None = None

    # ----------------------------------------------------------------- columns
    @property
    def value_columns(self) -> list[str]:
        return [*self.targets, *self.features]

    @property
    def needed_columns(self) -> list[str]:
        return [*self.ids, *([self.time] if self.time else []), *self.value_columns,
                *self.static_numeric, *self.static_categorical]  # fmt: skip

    @property
    def calendar_columns(self) -> list[str]:
        names: list[str] = []
        for name in self.calendar:
            if name == "month":
                names += [f"month_{m:02d}" for m in range(1, 13)]
            elif name == "dayofweek":
                names += [f"dayofweek_{d}" for d in range(7)]
            else:
                names.append("year")
        return names

    def _calendar(self, time: np.ndarray, source: str, year0: int | None) -> tuple[np.ndarray, int]:
        import pandas as pd

        if not np.issubdtype(time.dtype, np.datetime64):
            raise DataFileError(
                source, f"calendar={self.calendar} needs dates in the time column {self.time!r}"
            )
        dates = pd.DatetimeIndex(time)
        year0 = int(dates.year.min()) if year0 is None else int(year0)
        parts = []
        for name in self.calendar:
            if name == "month":
                parts.append(np.eye(12, dtype=np.float32)[dates.month.to_numpy() - 1])
            elif name == "dayofweek":
                parts.append(np.eye(7, dtype=np.float32)[dates.dayofweek.to_numpy()])
            else:
                years = (dates.year.to_numpy() - year0).astype(np.float32)
                parts.append((years / self.calendar_year_span)[:, None])
        return np.concatenate(parts, axis=1), year0

    # ----------------------------------------------------------------- reading
    def read_frame(self, path: str) -> Any:
        """The needed columns of the table at ``path`` (a DataFrame); a named dataset's
        datamodule overrides it."""
        return read_long_table(path, self.needed_columns)

    def _read(self, path: str) -> tuple[Panel, np.ndarray]:
        """The ordered panel and its ``(N, C)`` float32 values (NaN where missing), with the
        ``missing`` policy's checks (``error``: names id, time and column; ``drop``: rows
        with a missing value dropped before the series are formed)."""
        frame = self.read_frame(path)
        if self.missing == "drop":
            values = numeric_values(frame, self.value_columns, path)
            keep = ~np.isnan(values).any(1)
            if not keep.all():
                log.info("%s: dropped %d rows with a missing value", path, int((~keep).sum()))
                frame = frame[keep]
        panel = order_panel(frame, self.ids, self.time, path, self.time_format, self.dayfirst)
        del frame  # the panel holds it (reordered, or the same rows)
        values = numeric_values(panel.frame, self.value_columns, path)
        panel.frame = panel.frame.drop(columns=self.value_columns)  # copied into ``values``
        if self.missing == "error":
            bad = np.isnan(values)
            if bad.any():
                row, col = (int(i) for i in np.argwhere(bad)[0])
                s = int(np.searchsorted(panel.offsets, row, side="right") - 1)
                when = f", time {panel.time[row]!s}" if panel.time is not None else ""
                raise DataFileError(
                    path,
                    f"missing value (NaN) in column {self.value_columns[col]!r} of id "
                    f"{id_label(panel.keys[s])} (step {row - panel.offsets[s]}{when}); set "
                    "missing=mask (impute + indicator) or missing=drop",
                )
        return panel, values

    def _statics(self, panel: Panel, source: str, fitted: dict[str, Any] | None) -> np.ndarray:
        """``(S, K_num + K_cat)`` static channels: numeric ones standardised with the training
        series' mean/std, then category codes (classes from the training data)."""
        columns = []
        for j, name in enumerate(self.static_numeric):
            raw = constant_per_series(panel, name, source)
            try:
                v = np.asarray(raw, dtype=np.float64)
            except (TypeError, ValueError) as err:
                raise DataFileError(
                    source, f"static_numeric column {name!r} is not numeric"
                ) from err
            if np.isnan(v).any():
                s = int(np.argmax(np.isnan(v)))
                raise DataFileError(
                    source,
                    f"static_numeric column {name!r} is empty for id {id_label(panel.keys[s])}",
                )
            if fitted is None:
                mean, std = float(v.mean()), float(v.std())
                self._fit_static.append((mean, std if std > 1e-8 else 1.0))
            mean, std = (fitted or {"static_numeric_stats": self._fit_static})[
                "static_numeric_stats"
            ][j]
            columns.append((v - mean) / std)
        for j, name in enumerate(self.static_categorical):
            raw = np.asarray([str(v) for v in constant_per_series(panel, name, source)])
            if fitted is None:
                self._fit_classes.append(sorted(set(raw.tolist())))
            classes = (fitted or {"static_classes": self._fit_classes})["static_classes"][j]
            lookup = {c: i for i, c in enumerate(classes)}
            unknown = [v for v in raw if v not in lookup]
            if unknown:
                raise DataFileError(
                    source,
                    f"static_categorical column {name!r} holds {unknown[0]!r}, a category the "
                    f"model was not trained on ({len(classes)} known)",
                )
            columns.append(np.asarray([lookup[v] for v in raw], dtype=np.float64))
        if not columns:
            return np.zeros((len(panel.keys), 0))
        return np.stack(columns, axis=1)

    # ----------------------------------------------------------------- FileDataModule
    def prepare_splits(self) -> None:
        if self.stream:
            self._prepare_stream()
            return
        panel, values = self._read(self.path)
        self._fit_static: list[tuple[float, float]] = []
        self._fit_classes: list[list[str]] = []
        part = self._assemble(panel, values, self.path, fit=True)
        pred, truth, scale = part["naive_test"]
        self._baseline = self._naive_baseline(pred, truth, scale)
        self.series_keys = panel.keys
        self.series_lengths = panel.lengths
        self.fitted = self._fitted([part])
        self.splits = part["splits"]

    def _fitted(self, parts: list[dict[str, Any]]) -> dict[str, Any]:
        """The checkpoint's preprocessing, from one part (in memory) or one per file."""
        return {
            "kind": "panel",
            "value_columns": self.value_columns,
            "series_keys": [_plain_key(k) for p in parts for k in p["keys"]],
            "center": [row for p in parts for row in p["center"].tolist()],
            "scale": [row for p in parts for row in p["scale"].tolist()],
            "naive_scale": [row for p in parts for row in p["naive"].tolist()],
            "static_numeric_stats": [list(s) for s in self._fit_static],
            "static_classes": self._fit_classes,
            "calendar_year0": parts[0]["year0"],
            "time_step": parts[0]["time_step"],
        }

    def _assemble(
        self,
        panel: Panel,
        values: np.ndarray,
        source: str,
        *,
        fit: bool,
        year0: int | None = None,
        need_all: bool = True,
    ) -> dict[str, Any]:
        """Scale a panel per series and index its windows: ``{"splits", "center", "scale",
        "naive", "keys", "year0", "time_step", "naive_test"}`` (the last: the seasonal naive
        forecast, truth and naive scale of every test window, original units). ``values`` is
        scaled in place."""
        num_series, o = len(panel.keys), len(self.targets)
        lengths = panel.lengths
        held = self.val_steps + self.test_steps
        train_len = lengths - held  # (S,) rows of each series' training part
        statics = self._statics(panel, source, None if fit else self.fitted)
        calendar = None
        if self.calendar:
            calendar, year0 = self._calendar(panel.time, source, year0)
        time_step = _time_step(panel)
        panel.frame = panel.time = None  # the table's columns are no longer needed
        series = panel.series_of_rows()  # (N,) int32
        holdout = np.zeros(num_series, dtype=bool)
        if self.holdout_fraction > 0:
            rng = np.random.default_rng(self.seed)
            n_hold = max(1, round(num_series * self.holdout_fraction))
            holdout[rng.choice(num_series, n_hold, replace=False)] = True
        train_rows = prefix_rows(panel.offsets, train_len)
        center, scale = series_scaling(values, series, train_rows, num_series, self.scaler)
        naive = naive_scales(values[:, :o], series, train_rows, num_series, self.season)
        del train_rows
        # windows, on the raw targets (missing ones leave windows out under missing=mask)
        bounds = {
            "train": (np.zeros(num_series, np.int64), train_len),
            "val": (train_len, train_len + self.val_steps),
            "test": (lengths - self.test_steps, lengths),
        }
        if self.val_steps == 0:
            del bounds["val"]
        nan_targets = np.isnan(values[:, :o]).any(1) if self.missing == "mask" else None
        splits_windows = {}
        for name, (lo, hi) in bounds.items():
            use = ~holdout if name != "test" or not holdout.any() else holdout
            splits_windows[name] = self._windows(panel.offsets, lo, hi, use, nan_targets)
        short = {k: int(num_series - len(w.series)) for k, w in splits_windows.items()}
        for name, w in splits_windows.items():
            if len(w) == 0 and need_all:
                longest = int(lengths.max())
                raise DataFileError(
                    source,
                    f"no series has a valid {name} window: window={self.window} + "
                    f"horizon={self.horizon} with val_steps={self.val_steps} and "
                    f"test_steps={self.test_steps} held out, but the longest series has "
                    f"{longest} rows; use a shorter window, short_series=pad or more data",
                )
        if any(short.values()):
            log.info(
                "%s: series without a window (short_series=%s), per split: %s",
                source, self.short_series, short,
            )  # fmt: skip
        naive_test = self._naive_forecasts(values[:, :o], *splits_windows["test"].all(), naive)
        # scale the value channels per series, in place (no copy of the table)
        scale_in_place(values, series, center, scale)
        del series
        x = torch.from_numpy(values)
        targets = x[:, :o]
        if self.missing == "mask":
            targets = targets.clone()
            x = mask_per_series(x, panel.offsets, self.impute)
        if calendar is not None:
            x = torch.cat([x, torch.from_numpy(calendar)], dim=1)
        per_series = np.concatenate([statics, center[:, :o], scale[:, :o], naive], axis=1)
        per_series_t = torch.from_numpy(per_series.astype(np.float32))
        return {
            "splits": {
                name: PanelWindowDataset(
                    x,
                    targets,
                    per_series_t,
                    w,
                    self.window,
                    self.horizon,
                    future_blank=o if self.future_covariates else None,
                )
                for name, w in splits_windows.items()
            },
            "center": center,
            "scale": scale,
            "naive": naive,
            "keys": panel.keys,
            "year0": year0,
            "time_step": time_step,
            "naive_test": naive_test,
        }

    # ----------------------------------------------------------------- streaming
    def _files(self) -> list[str]:
        from pathlib import Path

        folder = Path(self.path)
        if not folder.is_dir():
            raise DataFileError(self.path, "stream=true reads a folder of Parquet files: pass one")
        files = sorted(str(f) for f in folder.rglob("*") if f.suffix.lower() in (".parquet", ".pq"))
        if not files:
            raise DataFileError(self.path, "is a folder without .parquet files")
        return files

    def _prepare_stream(self) -> None:
        """One pass over the folder, one file at a time: fit each series' scaling, keep the
        (small) validation and test windows and the checkpoint's statistics; the training
        windows are read again, file by file, every epoch (:class:`StreamingWindows`)."""
        self._fit_static, self._fit_classes = [], []
        parts, val, test, naive = [], [], [], []
        batches = 0
        seen: set = set()
        year0 = None
        for path in self._files():
            panel, values = self._read(path)
            again = seen.intersection(_key_tuple(_plain_key(k)) for k in panel.keys)
            if again:
                raise DataFileError(
                    path,
                    f"id {sorted(again)[0]} also appears in an earlier file: with stream=true "
                    "each id's rows must lie in one file",
                )
            seen.update(_key_tuple(_plain_key(k)) for k in panel.keys)
            part = self._assemble(panel, values, path, fit=True, year0=year0, need_all=False)
            year0 = part["year0"]
            splits = part.pop("splits")
            for name, kept in (("val", val), ("test", test)):
                if name in splits and len(splits[name]):
                    kept.append(splits[name].__getitems__(list(range(len(splits[name])))))
            naive.append(part["naive_test"])
            batches += -(-len(splits["train"]) // self.batch_size)
            parts.append(part)
            del splits, panel, values
        if not test:
            raise DataFileError(self.path, "no series has a valid test window")
        self.series_keys = np.concatenate([p["keys"] for p in parts])
        self.fitted = self._fitted(parts)
        self._baseline = self._naive_baseline(*(torch.cat(z) for z in zip(*naive, strict=True)))
        self.splits = {"train": StreamingWindows(self, self._files(), batches)}
        for name, kept in (("val", val), ("test", test)):
            if kept:
                x = cat_padded([k[0] for k in kept])
                y = torch.cat([k[1] for k in kept])
                self.splits[name] = SequenceDataset(x, y, torch.cat([k[2] for k in kept]))

    def _loader(self, split: str, *, shuffle: bool) -> Any:
        self.setup()
        if split == "train" and isinstance(self.splits["train"], StreamingWindows):
            from torch.utils.data import DataLoader

            return DataLoader(self.splits["train"], batch_size=None)
        return super()._loader(split, shuffle=shuffle)

    def _windows(
        self,
        offsets: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        use: np.ndarray,
        nan_targets: np.ndarray | None,
    ) -> PanelWindows:
        """The windows whose target rows lie in rows ``[lo, hi)`` of each series (relative
        positions ``(S,)`` each), for the series where ``use``."""
        context = self.window if self.short_series == "skip" else self.min_window
        first = np.maximum(lo, context)  # first target row, relative
        last = hi - self.horizon
        count = np.where(use & (last >= first), (last - first) // self.stride + 1, 0)
        count = np.maximum(count, 0)
        begin = offsets[:-1]
        series = np.arange(len(lo))
        explicit = None
        if nan_targets is not None and nan_targets.any():
            rows = [
                (s, begin[s], begin[s] + first[s] + self.stride * j)
                for s in np.flatnonzero(count)
                for j in range(count[s])
            ]
            pairs = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
            csum = np.r_[0, np.cumsum(nan_targets)]
            ok = csum[pairs[:, 2] + self.horizon] - csum[pairs[:, 2]] == 0
            explicit = pairs[ok]
        return PanelWindows(series, begin, begin + first, count, self.stride, explicit)

    def _naive_forecasts(
        self, targets: np.ndarray, series: Tensor, begin: Tensor, t0: Tensor, naive: np.ndarray
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The seasonal naive forecast of windows (each one's last ``season`` observed values
        repeated over the horizon; fewer when the history is shorter), their truth ``(B, H,
        O)`` and their series' naive scale ``(B, O)``, in original units."""
        y = torch.from_numpy(targets)
        steps = torch.arange(self.horizon)
        m = torch.minimum(torch.full_like(t0, self.season), t0 - begin).clamp_min(1)  # (B,)
        rows = t0.unsqueeze(1) - m.unsqueeze(1) + steps % m.unsqueeze(1)  # (B, H)
        pred = y[rows].double()  # (B, H, O)
        truth = y[t0.unsqueeze(1) + steps].double()
        return pred, truth, torch.from_numpy(naive)[series]

    @staticmethod
    def _naive_baseline(pred: Tensor, truth: Tensor, scale: Tensor) -> dict[str, float]:
        """Test metrics of the seasonal naive forecasts (windows with a missing value left
        out)."""
        ok = ~(truth.isnan().flatten(1).any(1) | pred.isnan().flatten(1).any(1))
        pred, truth, scale = pred[ok], truth[ok], scale[ok]
        err = pred - truth
        result = {
            "test/mse": float(err.pow(2).mean()),
            "test/mae": float(err.abs().mean()),
            "test/rmse": float(err.pow(2).mean().sqrt()),
        }
        result |= averaged(window_errors(pred, truth, scale))
        return result

    @property
    def baseline_description(self) -> str:
        return (
            f"seasonal naive (season={self.season}): each series' last {self.season} "
            "observed values repeated"
        )

    # ----------------------------------------------------------------- sizes for the task
    @property
    def num_value_channels(self) -> int:
        c = len(self.value_columns)
        return (2 * c if self.missing == "mask" else c) + len(self.calendar_columns)

    @property
    def input_kwargs(self) -> dict[str, int]:
        statics = len(self.static_numeric) + len(self.static_categorical)
        return {"input_size": self.num_value_channels + statics + 3 * len(self.targets)}

    def target_kwargs(self) -> dict[str, Any]:
        return {"output_size": len(self.targets), "horizon": self.horizon}

    def target_scaling(self) -> dict[str, list[float]]:
        o = len(self.targets)  # the per-window scale channels do the scaling
        return {"target_mean": [0.0] * o, "target_std": [1.0] * o}

    def model_kwargs(self) -> dict[str, Any]:
        """Sizes (see the base class), ``series_scale=True``, the static categories'
        cardinalities and ``target_channels`` (the targets are the first value channels)."""
        self.setup()
        classes = self.require_fitted()["static_classes"]
        return {
            **super().model_kwargs(),
            "series_scale": True,
            "static_cardinalities": [len(c) for c in classes] or None,
            "target_channels": list(range(len(self.targets))),
        }

    def augment_kwargs(self) -> dict[str, Any]:
        return {**super().augment_kwargs(), "value_channels": len(self.value_columns)}

    @property
    def consecutive_windows(self) -> bool:
        return False

    # ----------------------------------------------------------------- lstmkit-predict
    def encode_file(self, path: str) -> Encoded:
        """One window per series of a new table: its last ``window`` rows, to forecast the
        ``horizon`` steps past its end. Series seen in training use their stored scaling;
        new ids are scaled by their own rows."""
        import pandas as pd

        stats = self.require_fitted()
        if self.future_covariates:
            raise ValueError(
                "lstmkit-predict cannot forecast with data.future_covariates=true yet: the "
                "forecast rows' covariates would have to come from outside the table"
            )
        panel, values = self._read(path)
        o, num_series = len(self.targets), len(panel.keys)
        lengths = panel.lengths
        series = panel.series_of_rows()
        all_rows = np.ones(len(values), dtype=bool)
        center, scale = series_scaling(values, series, all_rows, num_series, self.scaler)
        naive = naive_scales(values[:, :o], series, all_rows, num_series, self.season)
        known = {k: i for i, k in enumerate(_key_tuple(k) for k in stats["series_keys"])}
        for s, key in enumerate(panel.keys):
            i = known.get(_key_tuple(_plain_key(key)))
            if i is not None:
                center[s], scale[s] = stats["center"][i], stats["scale"][i]
                naive[s] = stats["naive_scale"][i]
        statics = self._statics(panel, path, stats)
        need = self.window if self.short_series == "skip" else self.min_window
        short = lengths < need
        if short.all():
            raise DataFileError(
                path,
                f"no series has the {need} rows a forecast window needs (window={self.window})",
            )
        scale_in_place(values, series, center, scale)
        x = torch.from_numpy(values)
        if self.missing == "mask":
            x = mask_per_series(x, panel.offsets, self.impute)
        if self.calendar:
            cal, _ = self._calendar(panel.time, path, stats["calendar_year0"])
            x = torch.cat([x, torch.from_numpy(cal)], dim=1)
        per_series = torch.from_numpy(
            np.concatenate([statics, center[:, :o], scale[:, :o], naive], axis=1).astype(np.float32)
        )
        keep = np.flatnonzero(~short)
        ends = torch.as_tensor(panel.offsets[1:][keep])
        begins = torch.as_tensor(panel.offsets[:-1][keep])
        start = torch.maximum(ends - self.window, begins)
        steps = int((ends - start).max())
        offsets = torch.arange(steps)
        win_len = ends - start
        valid = offsets < win_len.unsqueeze(1)
        rows = (start.unsqueeze(1) + offsets).clamp_max(len(x) - 1)
        side = per_series[torch.as_tensor(keep)].unsqueeze(1).expand(-1, steps, -1)
        xs = torch.cat([x[rows], side], dim=-1) * valid.unsqueeze(-1)
        y = torch.zeros(len(keep), self.horizon, o).squeeze(1)
        ids = [panel.keys[s] for s in keep]
        index = pd.DataFrame(list(ids) if len(self.ids) > 1 else {self.ids[0]: ids})
        index.columns = self.ids
        if panel.time is not None:
            index["last_time"] = panel.time[panel.offsets[1:][keep] - 1]
        if short.any():
            log.info(
                "%s: %d series shorter than %d rows not forecast", path, int(short.sum()), need
            )
        encoded = Encoded(SequenceDataset(xs, y, win_len), index)
        encoded.extra["future_time"] = _future_times(panel, keep, self.horizon, stats["time_step"])
        return encoded

    def format_predictions(self, outputs: dict[str, Tensor], encoded: Encoded) -> Any:
        """Long format: one row per (id, forecast step) with ``time`` (when the table has a
        time column), ``step``, ``pred_<target>`` and, for probabilistic models,
        ``pred_<target>_q<level>`` per quantile (and ``std_<target>`` for a Gaussian)."""
        import pandas as pd

        h, o, n = self.horizon, len(self.targets), len(encoded.index)
        frame = encoded.index.loc[np.repeat(np.arange(n), h)].reset_index(drop=True)
        frame = frame.drop(columns=[c for c in ("last_time",) if c in frame])
        future = encoded.extra.get("future_time")
        if future is not None:
            frame["time"] = np.asarray(future).reshape(-1)
        frame["step"] = np.tile(np.arange(1, h + 1), n)
        pred = outputs["pred"].reshape(n, h, o)
        quantiles = outputs.get("quantiles")
        levels = outputs.get("quantile_levels")
        for j, name in enumerate(self.targets):
            frame[f"pred_{name}"] = pred[:, :, j].reshape(-1).numpy()
            if quantiles is not None:
                q = quantiles.reshape(n, h, o, -1)
                for k in range(q.shape[-1]):
                    label = f"{float(levels[0, k]):g}" if levels is not None else str(k)
                    frame[f"pred_{name}_q{label}"] = q[:, :, j, k].reshape(-1).numpy()
            if "std" in outputs:
                frame[f"std_{name}"] = outputs["std"].reshape(n, h, o)[:, :, j].reshape(-1).numpy()
        return pd.DataFrame(frame)


def _names(value: str | Sequence[str] | None, name: str) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _plain_key(key: Any) -> Any:
    """An id as plain values for the checkpoint (numpy scalars -> Python, tuples -> lists)."""
    if isinstance(key, tuple):
        return [_plain_key(k) for k in key]
    return key.item() if hasattr(key, "item") else key


def _key_tuple(key: Any) -> tuple:
    return tuple(str(k) for k in key) if isinstance(key, list | tuple) else (str(key),)


def _time_step(panel: Panel) -> Any:
    """The table's time step for dates past a series' end, read off its longest series: a
    pandas frequency string when the dates have one (e.g. ``"MS"``), else the median
    difference (a number, or nanoseconds); None without a time column."""
    if panel.time is None:
        return None
    t = panel.time
    if np.issubdtype(t.dtype, np.datetime64):
        import pandas as pd

        s = int(np.argmax(panel.lengths))
        rows = t[panel.offsets[s] : panel.offsets[s + 1]]
        freq = pd.infer_freq(pd.DatetimeIndex(rows)) if len(rows) >= 3 else None
        if freq:
            return str(freq)
        diffs = np.diff(rows).astype("timedelta64[ns]").astype(np.int64)
        return {"nanoseconds": int(np.median(diffs))} if len(diffs) else None
    s = int(np.argmax(panel.lengths))  # the longest series' steps (no table-sized arrays)
    diffs = np.diff(t[panel.offsets[s] : panel.offsets[s + 1]])
    return float(np.median(diffs)) if len(diffs) else 1.0


def _future_times(panel: Panel, keep: np.ndarray, horizon: int, step: Any) -> np.ndarray | None:
    """``(S', H)`` the times of the ``horizon`` rows after each kept series' end."""
    if panel.time is None or step is None:
        return None
    last = panel.time[panel.offsets[1:][keep] - 1]
    if np.issubdtype(panel.time.dtype, np.datetime64):
        import pandas as pd

        if isinstance(step, str):
            offset = pd.tseries.frequencies.to_offset(step)
            return np.stack(
                [pd.date_range(t, periods=horizon + 1, freq=offset)[1:].to_numpy() for t in last]
            )
        delta = np.timedelta64(int(step["nanoseconds"]), "ns")
        return last[:, None] + delta * np.arange(1, horizon + 1)
    steps = float(step) * np.arange(1, horizon + 1)
    if np.issubdtype(panel.time.dtype, np.integer) and float(step).is_integer():
        steps = steps.astype(panel.time.dtype)  # integer times stay integers
    return last[:, None] + steps


__all__ = [
    "PanelDataModule",
    "PanelWindowDataset",
    "PanelWindows",
    "naive_scales",
    "series_scaling",
]
