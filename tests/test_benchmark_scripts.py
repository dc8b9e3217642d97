"""The benchmark scripts run end to end at tiny sizes (their figures live in the README)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if "no GEMM binding here" in done.stderr:
        pytest.skip("no C time loop on this machine")
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("lengths", [[], ["--lengths"]], ids=["dense", "lengths"])
def test_benchmark_nn_writes_its_table_and_json(tmp_path, lengths):
    out = tmp_path / "nn.json"
    names = "torch,cudnn,custom,custom-layernorm,custom-mkl"
    printed = _run(
        "benchmark_nn.py", "--shapes", "4,6,3,8,1", "--rounds", "1", "--warmup", "0",
        "--threads", "1", "--candidates", names, "--json", str(out), *lengths,
    )  # fmt: skip
    results = json.loads(out.read_text())
    assert {r["candidate"] for r in results["results"]} == set(names.split(","))
    assert results["meta"]["variable_lengths"] == bool(lengths)
    assert all(r["ratio_to_torch"]["fwd+bwd"] > 0 for r in results["results"])
    assert "custom-mkl" in printed


@pytest.mark.slow
def test_benchmark_gemm_prints_a_row_per_shape_and_direction():
    printed = _run("benchmark_gemm.py", "--shapes", "3,8", "--calls", "2", "--rounds", "1")
    rows = [line for line in printed.splitlines() if line.split()[:2] == ["3", "8"]]
    assert [row.split()[3] for row in rows] == ["fwd", "bwd"]


@pytest.mark.slow
@pytest.mark.parametrize("stream", [[], ["--stream", "--files", "3"]], ids=["memory", "stream"])
def test_benchmark_table_prints_memory_and_throughput(stream):
    printed = _run(
        "benchmark_table.py", "--series", "30", "--steps", "60", "--window", "8",
        "--horizon", "2", "--stride", "5", "--batch-size", "32", *stream,
    )  # fmt: skip
    assert "30 series x 60 steps = 1,800 rows" in printed
    assert "peak RSS growth during setup" in printed and "windows/s" in printed


@pytest.mark.slow
def test_benchmark_latency_runs_every_command_line_with_its_exit_status(tmp_path):
    out = tmp_path / "latency.json"
    printed = _run("benchmark_latency.py", "--repeat", "1", "--json", str(out))
    rows = json.loads(out.read_text())["results"]
    assert "lstmkit-train --help" in printed and len(rows) >= 3
    assert all(row["exit"] == [row["expected_exit"]] for row in rows), rows
