"""The notebooks run headlessly, top to bottom, are stored without outputs, and show what their
text says: the models beat their trivial baselines, and the adding model has memory units."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="needs the dev extra (nbclient, nbformat)")
nbclient = pytest.importorskip("nbclient", reason="needs the dev extra (nbclient, ipykernel)")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["quickstart.ipynb", "inside_the_lstm.ipynb"])
def test_notebook_runs(name):
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    for cell in notebook.cells:  # stored clean: no outputs, no execution counts
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, name
    # nbclient raises CellExecutionError on the first cell that fails
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3").execute(
        cwd=str(NOTEBOOKS)
    )
    printed = "".join(
        out.get("text", "")
        for cell in notebook.cells
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream"
    )
    CLAIMS[name](printed)


def _numbers(pattern: str, text: str) -> list[float]:
    match = re.search(pattern, text)
    assert match, f"{pattern!r} not in the notebook's output:\n{text}"
    return [float(v) for v in match.groups()]


def _quickstart(printed: str) -> None:
    mse, baseline = _numbers(r"test MSE ([\d.]+)\s+trivial baseline ([\d.]+)", printed)
    assert mse < baseline / 100
    (next_value,) = _numbers(r"\[1, 2, 3\] -> ([-\d.]+)", printed)
    assert abs(next_value - 4) < 0.5
    acc, baseline = _numbers(r"test accuracy ([\d.]+)\s+trivial baseline ([\d.]+)", printed)
    assert acc > baseline + 0.3


def _inside_the_lstm(printed: str) -> None:
    (corr,) = _numbers(r"correlation: \[(-?[\d.]+)", printed)
    assert abs(corr) > 0.8  # a unit carries the first marked value to the second mark
    (all_units,) = _numbers(r"all units: ([\d.]+)", printed)
    memory = _numbers(r"memory units: \[([\d.]+)", printed[printed.index("between") :])
    assert memory[0] > all_units  # the memory units forget less between the marks


CLAIMS = {"quickstart.ipynb": _quickstart, "inside_the_lstm.ipynb": _inside_the_lstm}
