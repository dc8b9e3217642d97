"""GPU checks for issue 6 (skipped cleanly without CUDA): AMP with both backends, TBPTT on GPU,
cuDNN weights kept flat (no warning), and DDP over the visible GPUs.

Run them all on a GPU machine with ``scripts/gpu_smoke.sh``.
"""

from __future__ import annotations

import json
import math
import warnings

import lightning.pytorch as pl
import pytest
import torch

from lstmkit.data import SineDataModule, WaveformDataModule
from lstmkit.runtime.distributed import flatten_rnn_parameters
from lstmkit.tasks import SequenceClassifier, SequenceRegressor
from run_helpers import run_command

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

PRECISIONS = ["16-mixed", "bf16-mixed"]


def _gpu_trainer(**kwargs) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=1,
        accelerator="gpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


@pytest.mark.parametrize("backend", ["cudnn", "custom"])
@pytest.mark.parametrize("precision", PRECISIONS)
def test_amp_trains_with_both_backends(backend, precision):
    if precision == "bf16-mixed" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    dm = WaveformDataModule(num_train=128, num_val=64, num_test=64, batch_size=32)
    task = SequenceClassifier({"backend": backend, "hidden_size": 32}, **dm.model_kwargs())
    trainer = _gpu_trainer(precision=precision)
    trainer.fit(task, dm)
    assert math.isfinite(float(trainer.callback_metrics["val/loss"]))
    assert next(task.parameters()).dtype == torch.float32


def test_tbptt_on_gpu():
    dm = SineDataModule(seq_len=300, horizon=1, num_train=128, num_val=32, num_test=32)
    task = SequenceRegressor({"backend": "cudnn", "hidden_size": 32}, tbptt_steps=50,
                             **dm.model_kwargs())  # fmt: skip
    trainer = _gpu_trainer(precision="16-mixed")
    trainer.fit(task, dm)
    assert math.isfinite(float(trainer.callback_metrics["val/loss"]))


def test_cudnn_weights_flat_no_warning():
    task = SequenceRegressor({"backend": "cudnn", "hidden_size": 32, "num_layers": 2},
                             input_size=3).cuda()  # fmt: skip
    replica = torch.nn.parallel.replicate(task, [0])[0]  # how DataParallel copies a module
    flatten_rnn_parameters(replica)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "not part of single contiguous chunk" would raise
        replica(torch.randn(4, 7, 3, device="cuda"))
        task(torch.randn(4, 7, 3, device="cuda"))


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_ddp_two_gpus_one_run_folder(tmp_path):
    proc = run_command(
        ["lstmkit-train", "trainer=ddp", "trainer.devices=2", "trainer.max_epochs=2",
         "data.num_train=256", "data.batch_size=32", "plots=false"],
        cwd=tmp_path,
        env={"LSTMKIT_LOG_DIR": str(tmp_path / "out")},
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (tmp_path / "out" / "train" / "runs").iterdir()
    assert (run / "checkpoints" / "best.ckpt").is_file()
    assert json.loads((run / "metrics.json").read_text())["test"]["test/mse"] > 0
    assert "contiguous chunk" not in proc.stderr
