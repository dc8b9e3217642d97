"""scripts/gpu_check.py, the GPU check, on a machine without a GPU: it refuses with exit code 2,
and its plumbing runs end to end on the CPU at a tiny shape (``--cpu-dry-run``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), *args],
        capture_output=True, text=True, timeout=600, check=False, env=env,
    )  # fmt: skip


@pytest.mark.slow
def test_help_lists_the_sections():
    done = _run("--help")
    assert done.returncode == 0, done.stderr
    assert "--cpu-dry-run" in done.stdout and "table,kernels,compile,pytest,train" in done.stdout


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
def test_without_cuda_it_exits_2():
    done = _run()
    assert done.returncode == 2
    assert "no CUDA device" in done.stdout


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="the dry run is for machines without one")
def test_cpu_dry_run_prints_both_tables():
    pytest.importorskip("triton", reason="triton is not installed: pip install 'lstmkit[gpu]'")
    pytest.importorskip("lstmkit.nn.settings", reason="needs the settings switchboard")
    done = _run("--cpu-dry-run", "--only", "table", "--only", "kernels", "--rounds", "1")
    assert done.returncode == 0, done.stdout + done.stderr
    for text in ("Custom LN Triton", "3,5,2,4,1 lengths", "persistent LN", "all GPU checks passed"):
        assert text in done.stdout, text
