"""Bad files stop a run before training with one clear error naming the file and problem."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers_data import SMALL_RUN, make_sequences, write_series

from lstmkit._errors import DataFileError
from lstmkit.data import CSVDataModule, SequencesDataModule, TextDataModule
from run_helpers import run_command


def _csv(tmp_path, **kw):
    kw = {"target": "y", "window": 4, **kw}
    return CSVDataModule(str(tmp_path / kw.pop("name", "s.csv")), **kw)


def _bad(tmp_path, case):
    write_series(tmp_path / "s.csv", n=50)
    if case == "missing file":
        return _csv(tmp_path, name="nope.csv"), "nope.csv: no such file"
    if case == "empty file":
        (tmp_path / "e.csv").write_text("")
        return _csv(tmp_path, name="e.csv"), r"e\.csv: is empty"
    if case == "header only":
        (tmp_path / "h.csv").write_text("time,y\n")
        return _csv(tmp_path, name="h.csv"), r"h\.csv: has a header but no data rows"
    if case == "missing column":
        return _csv(
            tmp_path, features=["price"]
        ), r"s\.csv: column 'price' not found; the file has 'time', 'y', 'x1'"
    if case == "non-numeric column":
        pd.DataFrame({"y": [1.0, 2.0, 3.0], "x1": ["1", "2", "high"]}).to_csv(
            tmp_path / "t.csv", index=False
        )
        return _csv(
            tmp_path, name="t.csv", features=["x1"]
        ), r"t\.csv: column 'x1' is not numeric: row 2 holds 'high'"
    if case == "window longer than the series":
        return _csv(
            tmp_path, window=60
        ), r"s\.csv: window=60 \+ horizon=1 needs 61 rows .* the series has 50 rows"
    if case == "labels missing (npz)":
        seqs, _, _ = make_sequences(n=10)
        x = np.empty(10, dtype=object)
        x[:] = seqs
        np.savez(tmp_path / "nolabels.npz", x=x)
        return SequencesDataModule(
            str(tmp_path / "nolabels.npz")
        ), r"nolabels\.npz: has no 'y' array: the labels are missing"
    if case == "labels missing (text)":
        pd.DataFrame({"text": ["a b", "c"]}).to_csv(tmp_path / "txt.csv", index=False)
        return TextDataModule(str(tmp_path / "txt.csv")), r"txt\.csv: column 'label' not found"
    if case == "a label missing (text)":
        pd.DataFrame({"text": ["a b", "c", "d"], "label": ["x", None, "y"]}).to_csv(
            tmp_path / "t2.csv", index=False
        )
        return TextDataModule(
            str(tmp_path / "t2.csv")
        ), r"t2\.csv: label missing at row 1, column 'label'"
    raise AssertionError(case)


CASES = [
    "missing file", "empty file", "header only", "missing column", "non-numeric column",
    "window longer than the series", "labels missing (npz)", "labels missing (text)",
    "a label missing (text)",
]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_bad_file_gives_one_clear_error_before_training(tmp_path, case):
    dm, message = _bad(tmp_path, case)
    with pytest.raises(DataFileError, match=message) as info:
        dm.model_kwargs()  # what lstmkit-train calls before it builds the model
    assert "\n" not in str(info.value)


@pytest.mark.slow
def test_the_command_prints_one_line_and_exits_2(tmp_path):
    proc = run_command(
        ["lstmkit-train", "data=csv", "data.path=missing.csv", "data.target=y", *SMALL_RUN,
         f"paths.log_dir={tmp_path}"],
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert lines[-1] == "lstmkit-train: error: missing.csv: no such file"
    assert "Traceback" not in proc.stderr
