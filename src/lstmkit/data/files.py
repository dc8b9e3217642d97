"""Reading the user's files: tables (CSV/Parquet) and labelled sequences (``.npz``, ``.ts``).

Every problem raises one :class:`~lstmkit._errors.DataFileError` that names the file and what is
wrong with it (missing file, empty file, missing column, non-numeric column, missing labels), so
that a bad file stops a run before anything is trained.
"""

from __future__ import annotations

import re
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


#: Separators ``sep=None`` chooses from: the header line's most frequent one.
SEPARATORS = (",", ";", "\t", "|")
DECIMALS = (".", ",")


def check_dialect(
    sep: str | None = None, decimal: str = ".", encoding: str | None = None
) -> dict[str, Any]:
    """The CSV dialect arguments of :func:`read_table`, checked (``ValueError``/``TypeError``
    naming the argument)."""
    if sep is not None and (not isinstance(sep, str) or len(sep) != 1):
        raise ValueError(
            f"sep={sep!r}: must be one character, e.g. ',' ';' '\\t' '|' (null: detect it)"
        )
    if decimal not in DECIMALS:
        raise ValueError(f"decimal={decimal!r}: must be one of '.', ','")
    if sep is not None and sep == decimal:
        raise ValueError(f"sep={sep!r} and decimal={decimal!r}: must differ")
    if encoding is not None:
        import codecs

        if not isinstance(encoding, str):
            raise TypeError(f"encoding={encoding!r}: must be a text encoding name")
        try:
            codecs.lookup(encoding)
        except LookupError as err:
            raise ValueError(
                f"encoding={encoding!r}: not a text encoding (e.g. 'utf-8', 'latin-1', 'cp1252')"
            ) from err
    return {"sep": sep, "decimal": decimal, "encoding": encoding}


def _csv_dialect(path: Path, sep: str | None, encoding: str | None) -> tuple[str, str]:
    """``(sep, encoding)`` for reading ``path``: a UTF-16 byte-order mark selects UTF-16,
    otherwise UTF-8 with an optional mark (``utf-8-sig``); an unset ``sep`` is the most frequent
    of :data:`SEPARATORS` in the header line (``\\t`` for ``.tsv``, ``,`` when none occurs)."""
    with path.open("rb") as f:
        raw = f.read(1 << 16)
    if encoding is None:
        encoding = "utf-16" if raw.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    if len(raw) == 1 << 16 and b"\n" in raw:
        raw = raw[: raw.rfind(b"\n")]  # not a character cut in half
    try:
        text = raw.decode(encoding, errors="ignore" if "16" in encoding else "strict")
    except UnicodeDecodeError as err:
        raise DataFileError(
            path,
            f"is not {encoding.replace('-sig', '')} text (byte {err.start}: "
            f"{raw[err.start : err.start + 1]!r}); set data.encoding to the file's encoding "
            "(e.g. data.encoding=latin-1 or cp1252)",
        ) from err
    if sep is None:
        if path.suffix.lower() == ".tsv":
            sep = "\t"
        else:
            header = next((line for line in text.splitlines() if line.strip()), "")
            counts = {c: header.count(c) for c in SEPARATORS}
            best = max(counts, key=counts.get)
            sep = best if counts[best] > 0 else ","
    return sep, encoding


def table_columns(
    path: Path, sep: str | None = None, decimal: str = ".", encoding: str | None = None
) -> list[str]:
    """Column names of a CSV/Parquet file, read without reading the data."""
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except Exception as err:  # pyarrow raises ArrowInvalid and others
            raise DataFileError(path, f"cannot be read as Parquet: {err}") from err
    import pandas as pd

    sep, encoding = _csv_dialect(path, sep, encoding)
    try:
        return [str(c) for c in pd.read_csv(path, nrows=0, sep=sep, encoding=encoding).columns]
    except pd.errors.EmptyDataError as err:
        raise DataFileError(path, "is empty (no header row)") from err
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataFileError(path, f"cannot be parsed as CSV: {_first_line(err)}") from err


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def read_table(
    path: str | Path,
    columns: Sequence[str],
    *,
    sep: str | None = None,
    decimal: str = ".",
    encoding: str | None = None,
) -> Any:
    """Read ``columns`` of a CSV/Parquet file into a pandas DataFrame.

    CSV: ``sep=None`` takes the header line's most frequent of ``,`` ``;`` tab ``|``;
    ``encoding=None`` reads UTF-8 (a byte-order mark is skipped; a UTF-16 mark selects UTF-16).
    Parquet: a column stored as the pandas index (``df.set_index("date").to_parquet()``) is
    read as a column.

    Raises:
        DataFileError: the file is missing or empty, a column is missing, or there are no rows.
    """
    import pandas as pd

    p = check_file(path, TABLE_SUFFIXES)
    check_dialect(sep, decimal, encoding)
    available = table_columns(p, sep, decimal, encoding)
    require_columns(p, available, columns, sep=sep)
    wanted = list(dict.fromkeys(columns))  # unique, in order
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            import pyarrow as pa

            frame = pd.read_parquet(p, columns=wanted)
            pa.default_memory_pool().release_unused()  # arrow's pool keeps freed memory
            in_index = [c for c in wanted if c not in frame.columns and c in frame.index.names]
            if in_index:  # the time was written as the index
                frame = frame.reset_index(level=in_index)
            frame = frame.reset_index(drop=True)
        else:
            sep, encoding = _csv_dialect(p, sep, encoding)
            frame = pd.read_csv(p, usecols=wanted, sep=sep, decimal=decimal, encoding=encoding)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, KeyError) as err:
        raise DataFileError(p, f"cannot be read: {_first_line(err)}") from err
    if len(frame) == 0:
        raise DataFileError(p, "has a header but no data rows")
    return frame[wanted]


def require_columns(
    path: Path, available: Sequence[str], wanted: Sequence[str], *, sep: str | None = None
) -> None:
    """Raise if a column of ``wanted`` is not in ``available``, listing the file's columns
    (and naming ``data.sep`` when the header looks split by another separator)."""
    missing = [c for c in wanted if c not in available]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        hint = ""
        glued = [s for s in SEPARATORS if any(s in str(c) for c in available)]
        if glued and path.suffix.lower() not in (".parquet", ".pq"):
            hint = f'; the header looks separated by {glued[0]!r}: set "data.sep={glued[0]!r}"'
        raise DataFileError(
            path,
            f"column{'s' if len(missing) > 1 else ''} {names} not found; the file has "
            f"{', '.join(repr(c) for c in available) or 'no columns'}{hint}",
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
            value = column.iloc[row]
            hint = ""
            if isinstance(value, str) and _DECIMAL_COMMA.match(value):
                hint = "; it looks like a decimal comma: set \"data.decimal=','\""
            raise DataFileError(
                path, f"column {name!r} is not numeric: row {row} holds {value!r}{hint}"
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


_DECIMAL_COMMA = re.compile(r"^\s*[-+]?\d[\d.]*,\d+\s*$")


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
        _check_lengths(p, lengths, len(x), x.shape[1])
        sequences = [_as_steps(p, i, x[i, : int(n)]) for i, n in enumerate(lengths)]
    if not sequences:
        raise DataFileError(p, "holds no sequences")
    check_channels(p, sequences)
    if y is not None and len(y) != len(sequences):
        raise DataFileError(p, f"'y' has {len(y)} labels for {len(sequences)} sequences")
    return sequences, y


def _check_lengths(path: Path, lengths: np.ndarray, n: int, steps: int) -> None:
    """``lengths`` of a padded ``x`` ``(N, T, ...)``: ``N`` integers in ``[1, T]``."""
    allowed = f"'lengths' must hold {n} integers in [1, {steps}] (x is padded to T={steps})"
    if lengths.shape != (n,):
        raise DataFileError(path, f"{allowed}; it has shape {lengths.shape}")
    if not np.issubdtype(lengths.dtype, np.number) or (lengths != np.round(lengths)).any():
        raise DataFileError(path, f"{allowed}; it holds {lengths.dtype} values")
    for bad, what in ((lengths < 1, "< 1"), (lengths > steps, f"> T={steps}")):
        if bad.any():
            i = int(np.argmax(bad))
            raise DataFileError(
                path,
                f"{allowed}: lengths[{i}]={lengths[i]:g} is {what} ({int(bad.sum())} such); fix "
                "the lengths or pad x to the longest sequence",
            )


def check_channels(path: str | Path, sequences: Sequence[np.ndarray]) -> None:
    """Every ``(T_i, C)`` sequence has the same ``C``; else one line naming two sequences."""
    first = sequences[0].shape[1]
    for i, seq in enumerate(sequences):
        if seq.shape[1] != first:
            raise DataFileError(
                path,
                f"sequences have different channel counts: sequence 0 has {first}, sequence "
                f"{i} has {seq.shape[1]}; every sequence needs the same channels (T_i, C)",
            )


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
    check_channels(p, sequences)
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
    "check_channels",
    "check_dialect",
    "check_file",
    "numeric_values",
    "read_npz",
    "read_sequences",
    "read_table",
    "read_ts",
    "require_columns",
    "table_columns",
]
