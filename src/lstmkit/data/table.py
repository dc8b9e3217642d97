"""Many sequences in one long-format table (``data=table``): one row per (id, time step).

Two modes, chosen by which column is named:

- ``label=<column>`` (or ``label_path=`` a file of id -> label): one target per sequence,
  classification or regression of variable-length sequences (:class:`LabelTableDataModule`,
  the machinery of ``data=sequences``: per-channel standardisation on the training sequences,
  ``lengths``, missing-value policies, a seeded split by id);
- ``target=<column(s)>``: panel forecasting with one global model over every series
  (:class:`lstmkit.data.panel.PanelDataModule`).

:func:`TableDataModule` (what ``configs/data/table.yaml`` instantiates) picks the mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lstmkit._errors import DataFileError
from lstmkit.data.filebase import Encoded
from lstmkit.data.files import numeric_values, read_table
from lstmkit.data.longtable import constant_per_series, id_label, order_panel, read_long_table
from lstmkit.data.sequences import (
    LabelledSequencesDataModule,
    RawSplit,
    format_sequence_predictions,
)


def _as_list(value: str | Sequence[str] | None, name: str) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else [str(v) for v in value]
    if len(set(items)) != len(items):
        raise ValueError(f"{name}={items}: a column is named twice")
    return items


class LabelTableDataModule(LabelledSequencesDataModule):
    """One label per sequence from a long table: each id's rows (in ``time`` order) are one
    sequence of ``features``; the label is a column constant within each id, or comes from a
    separate table of id -> label.

    Example:
        >>> dm = LabelTableDataModule("motions.parquet", id="case", time="t",
        ...                           features=["x", "y", "z"], label="activity")  # doctest: +SKIP

    Args:
        path: a CSV/Parquet file or a folder of Parquet files.
        id: the id column(s) of each sequence.
        features: the value columns (inputs per step).
        time: the column that orders each sequence's rows (numbers or dates), or None (the
            table's order).
        label: the label column (must hold one value per id), or None with ``label_path``.
        label_path: a CSV/Parquet file with the ``id`` column(s) and the ``label`` column
            (``label`` names it; default ``"label"``).
        test_path: a second table of the same columns as the test split (as the UCR/UEA
            archives' ``_TEST`` files), or None to cut ``test_fraction`` of the ids off
            ``path``.
        task: ``"classification"`` or ``"regression"``.
        standardize: standardise the inputs per channel (training sequences).
        **kwargs: ``val_fraction``, ``test_fraction`` (the seeded split by id),
            ``batch_size``, ``seed``, ``missing``, ``impute``, ``noise_std``,
            ``step_dropout``, ``bucket_by_length`` (see :class:`FileDataModule`).
    """

    def __init__(
        self,
        path: str,
        id: str | Sequence[str],
        features: Sequence[str],
        time: str | None = None,
        time_format: str | None = None,
        dayfirst: bool | None = None,
        label: str | None = None,
        label_path: str | None = None,
        test_path: str | None = None,
        task: str = "classification",
        standardize: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(task, standardize, **kwargs)
        self._save_hparams(locals())
        self.time_format, self.dayfirst = time_format, dayfirst
        self.path, self.time, self.label_path = str(path), time, label_path
        self.test_path = test_path
        self.ids = _as_list(id, "id")
        self.features = _as_list(features, "features")
        if not self.ids:
            raise ValueError("id=[]: name the column(s) that identify each sequence")
        if not self.features:
            raise ValueError("features=[]: name the value columns of each step")
        if label is None and label_path is None:
            raise ValueError("label=None and label_path=None: name the label column")
        self.label = label or "label"
        clash = set(self.ids) & ({self.label, time} | set(self.features))
        if clash:
            raise ValueError(f"id={self.ids}: {sorted(clash)} also named as label/time/feature")

    def _columns(self, with_label: bool) -> list[str]:
        cols = [*self.ids, *([self.time] if self.time else []), *self.features]
        return [*cols, self.label] if with_label else cols

    def _sequences(self, path: str, need_labels: bool) -> tuple[list[np.ndarray], Any, Any]:
        """``(sequences (T_i, C), labels or None, id table)`` of a table."""
        import pandas as pd

        from lstmkit.data.files import table_columns

        inline = self.label_path is None
        has_label = inline and (
            need_labels or self.label in _available_columns(path, table_columns)
        )
        frame = read_long_table(path, self._columns(has_label))
        panel = order_panel(frame, self.ids, self.time, path, self.time_format, self.dayfirst)
        values = numeric_values(panel.frame, self.features, path)  # (N, C)
        sequences = np.split(values, panel.offsets[1:-1])
        ids = pd.DataFrame(list(panel.keys) if len(self.ids) > 1 else {self.ids[0]: panel.keys})
        ids.columns = self.ids
        labels = None
        if has_label:
            labels = constant_per_series(panel, self.label, path, what="label")
        elif self.label_path is not None:
            labels = self._labels_from_file(ids, need_labels)
        return sequences, labels, ids

    def _labels_from_file(self, ids: Any, need_labels: bool) -> Any:
        """Labels of ``ids`` from ``label_path``: every id once; an id without a label is an
        error (for training) or None (when predicting)."""
        path = str(self.label_path)
        table = read_table(path, [*self.ids, self.label])
        dup = table.duplicated(self.ids)
        if dup.any():
            key = table.loc[dup.to_numpy(), self.ids].iloc[0].tolist()
            raise DataFileError(path, f"id {key} has more than one label: give each id one row")
        merged = ids.merge(table, on=self.ids, how="left", validate="one_to_one")
        missing = merged[self.label].isna().to_numpy()
        if missing.any():
            if not need_labels:
                return None
            key = ids.iloc[int(np.argmax(missing))].tolist()
            raise DataFileError(path, f"has no label for id {key[0] if len(key) == 1 else key}")
        return merged[self.label].to_numpy()

    def read_splits(self) -> tuple[RawSplit, RawSplit | None]:
        sequences, labels, ids = self._sequences(self.path, need_labels=True)
        self.series_ids = ids
        test = None
        if self.test_path is not None:
            t_sequences, t_labels, _ = self._sequences(str(self.test_path), need_labels=True)
            test = (t_sequences, t_labels, str(self.test_path))
        return (sequences, labels, self.path), test

    def encode_file(self, path: str) -> Encoded:
        """Every id of a new table (labels optional); ``missing="drop"`` leaves out sequences
        with a missing value."""
        import torch

        from lstmkit.data.base import SequenceDataset
        from lstmkit.data.sequences import pad

        stats = self.require_fitted()
        sequences, labels, ids = self._sequences(path, need_labels=False)
        x, lengths = pad(sequences)
        x, keep = self._missing(x, lengths, str(path))
        x, lengths = x[keep], lengths[keep]
        x = self._encode_inputs(x, lengths)
        assert x.shape[-1] == (2 if self.missing == "mask" else 1) * stats["num_channels"]
        index = ids[keep.numpy()].reset_index(drop=True)
        index["length"] = lengths.numpy()
        y = torch.zeros(len(x), dtype=torch.long)
        encoded = Encoded(SequenceDataset(x, y, lengths), index)
        if labels is not None:
            encoded.extra["labels"] = np.asarray(labels, dtype=object)[keep.numpy()]
        return encoded

    def format_predictions(self, outputs: dict[str, Any], encoded: Encoded) -> Any:
        return format_sequence_predictions(self.task, self.fitted, outputs, encoded)


def _available_columns(path: str, table_columns: Any) -> list[str]:
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        import pyarrow.dataset as ds

        files = sorted(str(f) for f in p.rglob("*") if f.suffix.lower() in (".parquet", ".pq"))
        return list(ds.dataset(files, format="parquet").schema.names) if files else []
    from lstmkit.data.files import check_file

    return table_columns(check_file(p))


#: Keys that only one mode reads, with their defaults in ``configs/data/table.yaml``.
LABEL_ONLY = {
    "label": None, "label_path": None, "test_path": None, "task": "classification",
    "standardize": True,
}  # fmt: skip
PANEL_ONLY = {
    "target": None, "window": 24, "horizon": 1, "stride": 1, "val_steps": None,
    "test_steps": None, "holdout_fraction": 0.0, "scaler": "standard", "season": 1,
    "short_series": "skip", "min_window": 1, "static_numeric": None,
    "static_categorical": None, "calendar": None, "calendar_year_span": 100.0, "future_covariates": False, "stream": False,
}  # fmt: skip


def TableDataModule(**kwargs: Any) -> Any:
    """The datamodule of a long table: :class:`LabelTableDataModule` when ``label`` or
    ``label_path`` is set, :class:`~lstmkit.data.panel.PanelDataModule` when ``target`` is;
    a key of the other mode set to anything but its default is an error naming it."""
    from lstmkit.data.panel import PanelDataModule

    labelled = kwargs.get("label") is not None or kwargs.get("label_path") is not None
    forecast = kwargs.get("target") is not None
    if labelled == forecast:
        raise ValueError(
            "data=table needs exactly one of label= (one target per sequence: "
            "classification/regression) and target= (forecast the series): "
            + ("both are set" if labelled else "neither is set")
        )
    other = PANEL_ONLY if labelled else LABEL_ONLY
    for key, default in other.items():
        if key in kwargs and kwargs[key] != default:
            mode = "label" if labelled else "target"
            raise ValueError(
                f"{key}={kwargs[key]!r} is not read in {mode} mode (data.{mode} is set): remove it"
            )
    kwargs = {k: v for k, v in kwargs.items() if k not in other}
    if labelled:
        return LabelTableDataModule(**kwargs)
    return PanelDataModule(**kwargs)


__all__ = ["LabelTableDataModule", "TableDataModule", "id_label"]
