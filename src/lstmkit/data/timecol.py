"""The time column of a table, parsed as time by stated rules (never sorted as text).

Rules, in order (:func:`parse_time`):

1. A numeric column is numeric time (seconds, steps, years, ...): sorted as numbers.
2. ``time_format`` given (``"%m/%d/%Y"``, strftime codes): every value must match it.
3. ISO 8601 (``2022-01-13``, ``2022-01-13 10:00:00``, with or without a time zone).
4. Other dates (``1/13/2022``, ``13.01.2022``, ``Jan 13 2022``) are read month first and day
   first; ``dayfirst`` picks one. Unset, a column that reads only one way is read that way,
   and a column that reads both ways with different dates (every day <= 12) is an error that
   shows two values and names ``dayfirst``/``time_format``.
5. Anything else is an error showing two values that do not parse.

Then (:func:`check_order`): rows are sorted by the parsed time (stable), and a time that
occurs twice is refused, naming the time(s): two rows at one time are two series (two stores,
two sensors) or a duplicated export, and a window must not interleave them.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from lstmkit._errors import DataFileError


def _examples(values: Any, k: int = 2) -> str:
    shown = list(dict.fromkeys(str(v) for v in values))[:k]
    return " and ".join(repr(v) for v in shown)


def _to_datetime(values: Any, **kwargs: Any) -> Any:
    """``pd.to_datetime`` as a DatetimeIndex, pandas' format-guessing warnings silenced;
    raises on failure."""
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.DatetimeIndex(pd.to_datetime(pd.Series(values), **kwargs))


#: ``(spacing in days, seasonal period)``: hourly data repeats daily, daily weekly, weekly
#: and monthly yearly, quarterly yearly; yearly data has no season (m = 1).
SEASONS = ((1 / 24, 24), (1.0, 7), (7.0, 52), (30.44, 12), (91.31, 4), (365.25, 1))


def seasonal_period(dates: Any) -> int:
    """The seasonal period ``m`` of a ``DatetimeIndex`` by its median spacing (within 10 % of
    a spacing of :data:`SEASONS`); 1 for numeric time (None), other spacings or < 2 dates."""
    if dates is None or len(dates) < 2:
        return 1
    seconds = np.asarray(dates.values, dtype="datetime64[s]").astype(np.float64)
    days = float(np.median(np.diff(seconds))) / 86_400
    for spacing, season in SEASONS:
        if abs(days - spacing) <= 0.1 * spacing:
            return season
    return 1


def parse_time(
    values: Any,
    column: str,
    source: str,
    *,
    time_format: str | None = None,
    dayfirst: bool | None = None,
) -> tuple[np.ndarray, Any, bool | None]:
    """Parse the time column ``values`` ``(N,)`` by the rules of this module.

    Args:
        values: the column as read (numbers, text or datetimes).
        column, source: for messages (the column name and the file).
        time_format: strftime format every value must match, or None.
        dayfirst: read ``1/2/2022`` as 1 February (True) or 2 January (False); None: decide
            from the data, refusing a column that reads both ways.

    Returns:
        ``(sort_key, dates, dayfirst)``: an ``(N,)`` array that sorts like the times (int64
        nanoseconds or float numbers), the parsed datetimes (None for
        numeric time) as a ``DatetimeIndex``, and the day-first rule that was used (None when it did not matter).

    Raises:
        DataFileError: values that do not parse, or a column that reads two ways.
    """
    import pandas as pd

    series = pd.Series(values)
    if series.isna().any():
        row = int(np.argmax(series.isna().to_numpy()))
        raise DataFileError(
            source, f"time column {column!r} is empty at row {row}: every row needs a time"
        )
    if time_format is None and (
        pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    ):
        return series.to_numpy(dtype=np.float64), None, None
    if pd.api.types.is_datetime64_any_dtype(series):  # Parquet timestamps
        return _key(series), pd.DatetimeIndex(series), None
    text = series.astype(str)
    if time_format is not None:
        try:
            dates = _to_datetime(text, format=time_format)
        except (ValueError, TypeError) as err:
            bad = [v for v in text if _fails(v, time_format)]
            raise DataFileError(
                source,
                f"time column {column!r} does not match data.time_format={time_format!r}: "
                f"e.g. {_examples(bad or text)}; fix the format (strftime codes such as "
                f"%d/%m/%Y) or the values ({str(err).splitlines()[0]})",
            ) from err
        return _key(dates), dates, None
    try:
        dates = _to_datetime(text, format="ISO8601")
        return _key(dates), dates, None
    except (ValueError, TypeError):
        pass
    readings = {}
    for first in (False, True) if dayfirst is None else (dayfirst,):
        try:
            readings[first] = _to_datetime(text, dayfirst=first)
        except (ValueError, TypeError, OverflowError):
            continue
    if not readings:
        order = {None: "", True: " day first", False: " month first"}[dayfirst]
        raise DataFileError(
            source,
            f"time column {column!r} cannot be read as dates{order} or numbers: e.g. "
            f"{_examples(text)}; set data.time_format (strftime codes, e.g. "
            "data.time_format='%d/%m/%Y %H:%M')"
            + ("" if dayfirst is None else " or data.dayfirst=null"),
        )
    if len(readings) == 2:
        month_first, day_first = readings[False], readings[True]
        differ = np.asarray(month_first != day_first)
        if differ.any():
            shown = _examples(text[differ])
            raise DataFileError(
                source,
                f"time column {column!r} is ambiguous: {shown} read as month/day or as "
                "day/month; set data.dayfirst=true (31/12/2022) or data.dayfirst=false "
                "(12/31/2022), or data.time_format (e.g. '%d/%m/%Y')",
            )
        return _key(month_first), month_first, None
    (first, dates), *_ = readings.items()
    return _key(dates), dates, first


def _fails(value: str, time_format: str) -> bool:
    from datetime import datetime

    try:
        datetime.strptime(value, time_format)
    except ValueError:
        return True
    return False


def _key(dates: Any) -> np.ndarray:
    """int64 nanoseconds since the epoch (UTC for zone-aware times)."""
    import pandas as pd

    index = pd.DatetimeIndex(dates)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.as_unit("ns").asi8.copy()


def check_order(key: np.ndarray, shown: Any, column: str, source: str) -> np.ndarray:
    """The stable order that sorts ``key`` ``(N,)``; a repeated time is refused.

    Args:
        key: the sort key from :func:`parse_time`.
        shown: the time values as the file writes them ``(N,)`` (for the message).
        column, source: for messages.

    Returns:
        ``(N,)`` int64 row order (the identity when the file is already sorted).

    Raises:
        DataFileError: a time occurs more than once (names the time and the fixes).
    """
    order = np.argsort(key, kind="stable")
    ordered = key[order]
    repeated = np.flatnonzero(ordered[1:] == ordered[:-1])
    if len(repeated):
        times = np.asarray(shown, dtype=object)[order[repeated + 1]]
        names = list(dict.fromkeys(str(t) for t in times))
        more = f" and {len(names) - 2} more" if len(names) > 2 else ""
        rows = sorted(order[repeated[0] : repeated[0] + 2].tolist())
        raise DataFileError(
            source,
            f"time column {column!r} repeats {', '.join(repr(n) for n in names[:2])}{more} "
            f"(rows {rows[0]} and {rows[1]}): one row per time is one series; several series "
            "in one file (stores, sensors) must be filtered to one, or read as a long-format "
            "table with an id column; aggregate or drop duplicated rows",
        )
    return order


__all__ = ["SEASONS", "check_order", "parse_time", "seasonal_period"]
