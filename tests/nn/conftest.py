"""Shared set-up for the ``lstmkit.nn`` tests.

The helper module ``lstm_testing.py`` lives next to the tests; make it importable whatever
pytest import mode is in use.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


@pytest.fixture(autouse=True)
def _seed_and_single_thread():
    """Every test starts from the same global RNG state (tests use explicit generators too).

    The tensors here are tiny: one intra-op thread is faster than two and is not slowed down
    by other processes competing for the cores. Restored after the test.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def rebuilt_kernels():
    """For a test that rebuilds the native kernels under other settings (``cache_clear``):
    afterwards the process's kernels are built again as they were at first load — with their
    row-parallel loops if they had them then. Rebuilt plainly, they would lose those loops
    whenever a data test has put scikit-learn's OpenMP runtime into the process since, and the
    row-parallel tests that follow would skip. Request it before ``monkeypatch`` so that it
    rebuilds after the patched settings are undone."""
    from lstmkit.nn.fastpath import native

    first = native.kernels()
    parallel = first is not None and first.parallel
    yield
    native.kernels.cache_clear()
    one_runtime = native._one_openmp_runtime
    native._one_openmp_runtime = lambda: parallel
    try:
        native.kernels()
    finally:
        native._one_openmp_runtime = one_runtime
