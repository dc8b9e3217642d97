"""Reading the user's files: tables (CSV/Parquet) and labelled sequences (``.npz``, ``.ts``).

Every problem raises one :class:`~lstmkit._errors.DataFileError` that names the file and what is
wrong with it (missing file, empty file, missing column, non-numeric column, missing labels), so
that a bad file stops a run before anything is trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit._errors import DataFileError

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq")
SEQUENCE_SUFFIXES = (".npz", ".ts")


def check_file(path: str | Path, suffixes: Sequence[str] | None = None) -> Path:
    """Return ``path`` as a :class:`Path` if it is a non-empty file with an accepted suffix."""
    p = Path(path).expanduser()
    if not p.exists():
        raise DataFileError(p, "no such file")
    if not p.is_file():
        raise DataFileError(p, "is not a file")
    if suffixes is not None and p.suffix.lower() not in suffixes:
        raise DataFileError(
            p, f"unsupported file type {p.suffix!r}: use one of {', '.join(suffixes)}"
        )
    if p.stat().st_size == 0:
        raise DataFileError(p, "is empty (0 bytes)")
    return p


def table_columns(path: Path) -> list[str]:
    """Column names of a CSV/Parquet file, read without reading the data."""
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except Exception as err:  # pyarrow raises ArrowInvalid and others
            raise DataFileError(path, f"cannot be read as Parquet: {err}") from err
    import pandas as pd

    try:
        return [str(c) for c in pd.read_csv(path, nrows=0, sep=_separator(path)).columns]
    except pd.errors.EmptyDataError as err:
        raise DataFileError(path, "is empty (no header row)") from err
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataFileError(path, f"cannot be parsed as CSV: {err}") from err


def read_table(path: str | Path, columns: Sequence[str]) -> Any:
    """Read ``columns`` of a CSV/Parquet file into a pandas DataFrame.

    Raises:
        DataFileError: the file is missing or empty, a column is missing, or there are no rows.
    """
    import pandas as pd

    p = check_file(path, TABLE_SUFFIXES)
    available = table_columns(p)
    require_columns(p, available, columns)
    wanted = list(dict.fromkeys(columns))  # unique, in order
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            import pyarrow as pa

            frame = pd.read_parquet(p, columns=wanted)
            pa.default_memory_pool().release_unused()  # arrow's pool keeps freed memory
        else:
            frame = pd.read_csv(p, usecols=wanted, sep=_separator(p))
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise DataFileError(p, f"cannot be read: {err}") from err
    if len(frame) == 0:
        raise DataFileError(p, "has a header but no data rows")
    return frame[wanted]


def require_columns(path: Path, available: Sequence[str], wanted: Sequence[str]) -> None:
    """Raise if a column of ``wanted`` is not in ``available``, listing the file's columns."""
    missing = [c for c in wanted if c not in available]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise DataFileError(
            path,
            f"column{'s' if len(missing) > 1 else ''} {names} not found; the file has "
            f"{', '.join(repr(c) for c in available) or 'no columns'}",
        )


def numeric_values(frame: Any, columns: Sequence[str], path: Path | str) -> np.ndarray:
    """``frame[columns]`` as a ``(N, C)`` float32 array; NaN where a value is missing.

    Raises:
        DataFileError: a column holds text that is not a number (names the row and the value).
    """
    import pandas as pd

    for name in columns:
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
            continue
        coerced = pd.to_numeric(column, errors="coerce")
        bad = coerced.isna() & column.notna()
        if bad.any():
            row = int(np.argmax(bad.to_numpy()))
            raise DataFileError(
                path,
                f"column {name!r} is not numeric: row {row} holds {column.iloc[row]!r}",
            )
        frame = frame.assign(**{name: coerced})
    values = frame[list(columns)].to_numpy(dtype=np.float32, na_value=np.nan)
    infinite = np.isinf(values)
    if infinite.any():  # never a missing value: no missing= policy applies
        r, c = np.argwhere(infinite)[0]
        raise DataFileError(
            path,
            f"infinite value ({values[r, c]}) at row {frame.index[r]}, column {columns[c]!r}; "
            "replace it, or leave the cell empty to treat it as missing",
        )
    return np.require(values, requirements=["C", "W"])  # pandas may hand out read-only arrays


def _separator(path: Path) -> str:
    return "\t" if path.suffix.lower() == ".tsv" else ","


# --------------------------------------------------------------------------- sequences
def read_npz(path: str | Path, *, need_labels: bool = True) -> tuple[list[np.ndarray], Any]:
    """Read labelled sequences from ``.npz``: ``x`` + ``y``, with ``lengths`` for padded ``x``.

    ``x`` is either an object array of ``(T_i, C)`` (or ``(T_i,)``) arrays, or a padded float
    array ``(N, T, C)`` / ``(N, T)`` with ``lengths`` ``(N,)`` (all ``T`` when absent).
    Object arrays are stored pickled by numpy: only read files you trust.

    Returns:
        ``(sequences, y)``: a list of ``(T_i, C)`` float32 arrays and ``y`` (``None`` when the
        file has no ``y`` and ``need_labels`` is false).
    """
    p = check_file(path, (".npz",))
    try:
        archive = np.load(p, allow_pickle=True)
    except Exception as err:  # zipfile.BadZipFile, ValueError, OSError
        raise DataFileError(p, f"cannot be read as .npz: {err}") from err
    with archive:
        keys = set(archive.files)
        if "x" not in keys:
            raise DataFileError(p, f"has no 'x' array (the sequences); it holds {sorted(keys)}")
        x = archive["x"]
        y = archive["y"] if "y" in keys else None
        lengths = archive["lengths"] if "lengths" in keys else None
    if y is None and need_labels:
        raise DataFileError(p, f"has no 'y' array: the labels are missing; it holds {sorted(keys)}")
    if x.dtype == object:
        sequences = [_as_steps(p, i, np.asarray(s)) for i, s in enumerate(x)]
    else:
        if x.ndim not in (2, 3):
            raise DataFileError(p, f"'x' has shape {x.shape}: expected (N, T, C) or (N, T)")
        x = x[..., None] if x.ndim == 2 else x
        if lengths is None:
            lengths = np.full(len(x), x.shape[1])
        lengths = np.asarray(lengths)
        if lengths.shape != (len(x),) or (lengths < 1).any() or (lengths > x.shape[1]).any():
            raise DataFileError(
                p, f"'lengths' must hold {len(x)} integers in [1, {x.shape[1]}], got {lengths!r}"
            )
        sequences = [_as_steps(p, i, x[i, : int(n)]) for i, n in enumerate(lengths)]
    if not sequences:
        raise DataFileError(p, "holds no sequences")
    if y is not None and len(y) != len(sequences):
        raise DataFileError(p, f"'y' has {len(y)} labels for {len(sequences)} sequences")
    return sequences, y


def read_ts(path: str | Path, *, need_labels: bool = True) -> tuple[list[np.ndarray], Any]:
    """Read a UCR/UEA ``.ts`` file (uni- or multivariate, equal or unequal length) with aeon.

    Returns:
        ``(sequences, y)`` as :func:`read_npz`; missing values (``?``) become NaN.
    """
    p = check_file(path, (".ts",))
    load_from_ts_file = aeon_loader("load_from_ts_file")
    try:
        x, y = load_from_ts_file(str(p))
    except Exception as err:  # aeon raises IOError/ValueError/TypeError on a malformed file
        raise DataFileError(p, f"cannot be read as a .ts file: {err}") from err
    sequences = [_as_steps(p, i, np.asarray(s).T) for i, s in enumerate(x)]  # (C, T) -> (T, C)
    if not sequences:
        raise DataFileError(p, "holds no sequences")
    if y is None or len(y) == 0:
        if need_labels:
            raise DataFileError(p, "has no labels (@classLabel false / @targetLabel false)")
        y = None
    return sequences, y


def read_sequences(path: str | Path, *, need_labels: bool = True) -> tuple[list[np.ndarray], Any]:
    """:func:`read_npz` or :func:`read_ts` by suffix."""
    p = check_file(path, SEQUENCE_SUFFIXES)
    if p.suffix.lower() == ".ts":
        return read_ts(p, need_labels=need_labels)
    return read_npz(p, need_labels=need_labels)


def _as_steps(path: Path, index: int, seq: np.ndarray) -> np.ndarray:
    """One sequence as ``(T, C)`` float32, or a clear error."""
    if seq.ndim == 1:
        seq = seq[:, None]
    if seq.ndim != 2 or seq.shape[0] == 0:
        raise DataFileError(
            path, f"sequence {index} has shape {seq.shape}: expected (T, C), T >= 1"
        )
    try:
        return seq.astype(np.float32)
    except (TypeError, ValueError) as err:
        raise DataFileError(path, f"sequence {index} is not numeric: {err}") from err


def aeon_loader(name: str) -> Any:
    """A function of ``aeon.datasets``, or an ImportError that says what to install."""
    try:
        import aeon.datasets as datasets
    except ImportError as err:
        raise ImportError(
            "reading .ts files and the named datasets needs aeon: pip install 'lstmkit[datasets]'"
        ) from err
    return getattr(datasets, name)


__all__ = [
    "SEQUENCE_SUFFIXES",
    "TABLE_SUFFIXES",
    "DataFileError",
    "aeon_loader",
    "check_file",
    "numeric_values",
    "read_npz",
    "read_sequences",
    "read_table",
    "read_ts",
    "require_columns",
    "table_columns",
]
