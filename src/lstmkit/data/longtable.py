"""Reading a long-format table of many sequences: one row per (id, time step).

The source is a CSV/Parquet file or a folder of Parquet files (read as one dataset with
pyarrow, only the columns needed). :func:`order_panel` puts the rows of each id together in
time order (a stable sort, skipped when the table already is in that order) and gives the
series' boundaries, so that the datamodules can address every series by ``offsets`` without
copying it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit._errors import DataFileError
from lstmkit.data.files import read_table, require_columns


def read_long_table(path: str | Path, columns: Sequence[str]) -> Any:
    """``columns`` of a CSV/Parquet file, or of every ``*.parquet`` file of a folder, as one
    pandas DataFrame.

    Raises:
        DataFileError: no such file/folder, a folder without Parquet files, a missing column,
            or no rows.
    """
    p = Path(path).expanduser()
    parquet = p.suffix.lower() in (".parquet", ".pq")
    if not p.is_dir() and not (parquet and p.is_file() and p.stat().st_size > 0):
        return read_table(p, columns)  # CSV (and the errors of a missing or empty file)
    import pyarrow as pa
    import pyarrow.dataset as ds

    files = [p] if parquet and not p.is_dir() else sorted(
        f for f in p.rglob("*") if f.suffix.lower() in (".parquet", ".pq")
    )  # fmt: skip
    if not files:
        raise DataFileError(p, "is a folder without .parquet files: pass a file or such a folder")
    try:
        dataset = ds.dataset([str(f) for f in files], format="parquet")
        require_columns(p, dataset.schema.names, columns)
        wanted = list(dict.fromkeys(columns))
        frame = _read_parquet_batches([str(f) for f in files], wanted, dataset.schema)
    except pa.ArrowInvalid as err:
        raise DataFileError(p, f"cannot be read as Parquet: {err}") from err
    pa.default_memory_pool().release_unused()
    if len(frame) == 0:
        raise DataFileError(p, "has no data rows")
    return frame


def _read_parquet_batches(files: list[str], columns: list[str], schema: Any) -> Any:
    """``columns`` of Parquet ``files`` as one DataFrame, read batch by batch (row group after
    row group) into arrays allocated once: the peak stays near the data's own size instead
    of arrow's table plus pandas' copy. Numbers and dates fill preallocated numpy arrays
    (an integer column with a missing value becomes float64, NaN where missing); other
    types (text) are collected per batch."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    readers = [pq.ParquetFile(f) for f in files]
    n = sum(r.metadata.num_rows for r in readers)
    out: dict[str, Any] = {}
    for name in columns:
        kind = schema.field(name).type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_timestamp(kind):
            out[name] = np.empty(n, dtype=kind.to_pandas_dtype())
        else:
            out[name] = []  # text and other types: batches, joined at the end
    start = 0
    for reader in readers:
        for batch in reader.iter_batches(batch_size=1 << 16, columns=columns, use_threads=False):
            stop = start + batch.num_rows
            for name in columns:
                column = batch.column(name)
                target = out[name]
                if isinstance(target, list):
                    target.append(column.to_pandas())
                    continue
                if column.null_count and np.issubdtype(target.dtype, np.integer):
                    out[name] = target = target.astype(np.float64)  # room for NaN
                target[start:stop] = column.to_numpy(zero_copy_only=False)
            start = stop
    for name, value in out.items():
        if isinstance(value, list):
            out[name] = (
                pd.concat(value, ignore_index=True) if value else pd.Series([], dtype=object)
            )
    return pd.DataFrame(out, copy=False)[columns]


def parse_time(
    column: Any,
    name: str,
    source: str,
    time_format: str | None = None,
    dayfirst: bool | None = None,
) -> np.ndarray:
    """Time values as numbers or ``datetime64``: numeric and datetime columns are kept, text is
    parsed by `lstmkit.data.timecol`'s rules (``time_format``, ``dayfirst``; a column that
    reads two ways, or does not parse, is an error naming the option)."""
    import pandas as pd

    from lstmkit.data.timecol import parse_time as parse_time_column

    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_datetime64_any_dtype(column):
        values = column.to_numpy()
        if pd.isna(values).any():
            row = int(np.argmax(pd.isna(values)))
            raise DataFileError(source, f"time column {name!r} is empty at row {row}: fill it")
        return values
    key, dates, _ = parse_time_column(
        column.to_numpy(), name, source, time_format=time_format, dayfirst=dayfirst
    )
    return key if dates is None else np.asarray(dates)


@dataclass
class Panel:
    """A table's rows grouped by id, each series in time order.

    Attributes:
        frame: the table, rows reordered (series after series, each in time order).
        offsets: ``(S + 1,)`` int64: series ``s`` holds rows ``offsets[s]:offsets[s + 1]``.
        keys: ``(S,)`` object array of each series' id (a tuple for several id columns).
        time: ``(N,)`` time values in row order (numbers or ``datetime64``), or None.
    """

    frame: Any
    offsets: np.ndarray
    keys: np.ndarray
    time: np.ndarray | None

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def series_of_rows(self) -> np.ndarray:
        """``(N,)`` the series index of every row."""
        return np.repeat(np.arange(len(self.keys), dtype=np.int32), self.lengths)


def id_label(key: Any) -> str:
    """An id for messages: ``'A'`` or ``('A', 3)``."""
    return repr(key.item() if hasattr(key, "item") else key)


def order_panel(
    frame: Any,
    ids: Sequence[str],
    time: str | None,
    source: str,
    time_format: str | None = None,
    dayfirst: bool | None = None,
) -> Panel:
    """Group the rows by ``ids`` (series in sorted id order, whatever the files' row order)
    and sort each series by ``time`` (stable; without a time column rows keep the table's
    order). A time value that occurs twice within an id is an error
    that names the id and the time."""
    import pandas as pd

    ids = list(ids)
    codes = None  # (N,) int32 series codes in sorted id order; not built for a grouped table
    if len(ids) == 1:
        column = frame[ids[0]]
        if column.isna().any():
            row = int(np.argmax(column.isna().to_numpy()))
            raise DataFileError(source, f"id column {ids[0]!r} is empty at row {row}: fill it")
        if pd.api.types.is_numeric_dtype(column) and column.is_monotonic_increasing:
            v = column.to_numpy()
            change = v[1:] != v[:-1]  # already grouped in id order: no codes needed
        else:
            codes = pd.factorize(column, sort=True)[0].astype(np.int32)
    else:
        codes = frame.groupby(ids, sort=True, dropna=False).ngroup().to_numpy(np.int32)
    ordered = codes is None or bool(np.all(codes[1:] >= codes[:-1]))
    if codes is not None and ordered:
        change = codes[1:] != codes[:-1]
    t = parse_time(frame[time], time, source, time_format, dayfirst) if time else None
    if ordered and t is not None:  # strictly increasing times within each id
        ok = t[1:] > t[:-1]
        ok |= change
        ordered = bool(ok.all())
        del ok
    if not ordered:
        if codes is None:
            codes = np.zeros(len(frame), dtype=np.int32)
            np.cumsum(change, out=codes[1:], dtype=np.int32)
        order = np.lexsort((t, codes)) if t is not None else np.argsort(codes, kind="stable")
        frame = frame.take(order)
        codes = codes[order]
        t = t[order] if t is not None else None
        change = codes[1:] != codes[:-1]
    del codes
    starts = np.r_[0, np.flatnonzero(change) + 1].astype(np.int64)
    offsets = np.r_[starts, len(frame)].astype(np.int64)
    key_frame = frame[ids].iloc[starts]
    keys = np.empty(len(starts), dtype=object)
    keys[:] = list(key_frame[ids[0]]) if len(ids) == 1 else list(key_frame.itertuples(False, None))
    if t is not None and not ordered:  # sorted now: a repeated time sits next to its twin
        dup = np.flatnonzero(~change & (t[1:] == t[:-1]))
        if len(dup):
            s = int(np.searchsorted(offsets, dup[0], side="right") - 1)
            raise DataFileError(
                source,
                f"time {t[dup[0]]!s} occurs twice for id {id_label(keys[s])} (column "
                f"{time!r}): each id needs distinct times; remove the duplicate rows",
            )
    return Panel(frame.reset_index(drop=True), offsets, keys, t)


def constant_per_series(
    panel: Panel, column: str, source: str, what: str = "static column"
) -> np.ndarray:
    """``(S,)`` the value of ``column`` in each series, which must not vary within an id."""
    import pandas as pd

    values = panel.frame[column].to_numpy()
    first = values[panel.offsets[:-1]]
    expected = np.repeat(first, panel.lengths)
    both_nan = pd.isna(values) & pd.isna(expected)
    differs = (values != expected) & ~both_nan
    if differs.any():
        row = int(np.argmax(differs))
        s = int(np.searchsorted(panel.offsets, row, side="right") - 1)
        raise DataFileError(
            source,
            f"{what} {column!r} varies within id {id_label(panel.keys[s])} ({first[s]!r} and "
            f"{values[row]!r}): it must hold one value per id",
        )
    return first


__all__ = [
    "Panel",
    "constant_per_series",
    "id_label",
    "order_panel",
    "parse_time",
    "read_long_table",
]
