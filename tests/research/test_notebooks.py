"""The notebooks run headlessly, top to bottom, and are stored without outputs."""

from __future__ import annotations

import time
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
    start = time.perf_counter()
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3").execute(
        cwd=str(NOTEBOOKS)
    )
    assert time.perf_counter() - start < 90
    errors = [
        out for cell in notebook.cells for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]  # fmt: skip
    assert not errors
