"""DDP on 2 CPU processes (gloo) equals one process with the same global batch; one run folder.

Each run is a real ``lstmkit-train`` command: Lightning's DDP launcher re-runs the command line
for rank 1, which under pytest would re-run pytest.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from run_helpers import run_command

pytestmark = pytest.mark.slow

COMMON = (
    "data.num_train=32",  # one global batch per epoch: the same samples in both runs
    "data.num_val=32",
    "data.num_test=32",
    "model.encoder.hidden_size=8",
    "model.optimizer.lr=0.02",
    "trainer.max_epochs=4",
    "+trainer.enable_progress_bar=false",
    "~callbacks.rich_progress_bar",
    "~callbacks.model_summary",
    "~callbacks.early_stopping",
    "plots=false",
)


def _run(tmp_path: Path, name: str, *overrides: str) -> Path:
    log_dir = tmp_path / name
    proc = run_command(
        ["lstmkit-train", *COMMON, *overrides],
        cwd=tmp_path,
        env={"LSTMKIT_LOG_DIR": str(log_dir)},
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted((log_dir / "train" / "runs").iterdir())
    assert len(runs) == 1, f"expected one run folder, got {runs}"
    return runs[0]


def test_ddp_cpu_matches_single_process(tmp_path):
    sine = ("data=sine", "data.seq_len=24", "data.horizon=1")
    single = _run(tmp_path, "single", "trainer=cpu", *sine, "data.batch_size=32")
    ddp = _run(tmp_path, "ddp", "trainer=ddp_cpu", *sine, "data.batch_size=16")  # 2 x 16

    assert (ddp / "checkpoints" / "best.ckpt").is_file()
    assert (ddp / "checkpoints" / "last.ckpt").is_file()
    assert not list(ddp.parent.parent.glob("**/train_ddp_process_*"))
    got = json.loads((ddp / "metrics.json").read_text())
    want = json.loads((single / "metrics.json").read_text())
    assert Path(got["best_model_path"]).parent == ddp / "checkpoints"
    for key in ("val/loss", "val/mse"):
        assert got["fit"][key] == pytest.approx(want["fit"][key], rel=1e-4, abs=1e-6), key
    assert got["test"]["test/mse"] == pytest.approx(want["test"]["test/mse"], rel=1e-4)

    def weights(run: Path) -> dict[str, torch.Tensor]:
        return torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]

    w_ddp, w_single = weights(ddp), weights(single)
    assert w_ddp.keys() == w_single.keys()
    for key in w_single:
        torch.testing.assert_close(w_ddp[key], w_single[key], rtol=1e-4, atol=1e-5, msg=key)


def test_ddp_cpu_tbptt_variable_lengths_keeps_ranks_in_step(tmp_path):
    """Ranks whose batches end in different chunks still run matching backward passes
    (a mismatch would hang the gloo all-reduce until the timeout)."""
    run = _run(
        tmp_path, "tbptt", "trainer=ddp_cpu", "data.variable_length=true",
        "data.seq_len=40", "data.batch_size=4", "model.tbptt_steps=8",
    )  # fmt: skip
    assert json.loads((run / "metrics.json").read_text())["test"]["test/mse"] > 0
