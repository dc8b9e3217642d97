"""The whole loop: CPU bf16 autocast with both backends, model.compile, the batch data path,
and ``deterministic=true``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from lstmkit.data import SequenceDataset, SineDataModule, StreamDataModule, WaveformDataModule
from lstmkit.nn.cudnn import torch_lstm_runs
from lstmkit.runtime import determinism
from lstmkit.tasks import SequenceClassifier, SequenceRegressor


def _fit(task, dm, **trainer_kwargs) -> pl.Trainer:
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **trainer_kwargs,
    )
    trainer.fit(task, dm)
    return trainer


@pytest.mark.parametrize("backend", ["cudnn", "custom", "auto"])
def test_cpu_bf16_mixed_trains_with_both_backends(backend):
    """bf16-mixed trains on any CPU with the custom core (and auto, which picks it there); the
    cudnn backend is torch.nn.LSTM, whose oneDNN kernel needs native bf16 (AVX-512 BF16/AMX)."""
    if backend == "cudnn" and not torch_lstm_runs(torch.bfloat16):
        pytest.skip(
            "this CPU's oneDNN cannot build a bf16 LSTM (no native bf16): torch's own limit"
        )
    dm = WaveformDataModule(num_train=64, num_val=32, num_test=32, batch_size=32)
    task = SequenceClassifier({"backend": backend, "hidden_size": 16}, **dm.model_kwargs())
    before = {k: v.clone() for k, v in task.state_dict().items()}
    trainer = _fit(task, dm, precision="bf16-mixed")
    assert math.isfinite(float(trainer.callback_metrics["val/loss"]))
    assert all(v.dtype == torch.float32 for v in task.state_dict().values())  # fp32 master
    assert any(not torch.equal(before[k], v) for k, v in task.state_dict().items())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output, _ = task.encoder(torch.randn(2, 5, 1))
    assert output.dtype == torch.bfloat16


@pytest.mark.slow
def test_compile_option_compiles_in_place():
    dm = SineDataModule(seq_len=12, horizon=1, num_train=32, num_val=16, num_test=16)
    task = SequenceRegressor({"backend": "cudnn", "hidden_size": 8}, compile=True,
                             **dm.model_kwargs())  # fmt: skip
    keys = list(task.state_dict())
    trainer = _fit(task, dm)
    assert task._compiled_call_impl is not None
    assert list(task.state_dict()) == keys  # no `_orig_mod.` prefix: checkpoints unchanged
    assert math.isfinite(float(trainer.callback_metrics["val/loss"]))


def test_batches_are_gathered_without_per_sample_python(monkeypatch):
    def per_sample(self, index):
        raise AssertionError("a batch was built sample by sample")

    monkeypatch.setattr(SequenceDataset, "__getitem__", per_sample)
    dm = WaveformDataModule(num_train=64, num_val=32, num_test=32, batch_size=16)
    dm.setup()
    x, _, lengths = next(iter(dm.train_dataloader()))
    assert x.shape[0] == 16 and x.shape[1] == int(lengths.max())
    stream = StreamDataModule(series_len=2000, window=10, num_streams=4)
    x, _, _ = next(iter(stream.train_dataloader()))
    assert x.shape == (4, 10, 1)


def test_cudnn_dropout_warning():
    assert determinism.cudnn_dropout_warning({"backend": "cudnn", "num_layers": 1}) is None
    assert determinism.cudnn_dropout_warning(
        {"backend": "custom", "num_layers": 2, "dropout": 0.2}
    ) is None  # fmt: skip
    message = determinism.cudnn_dropout_warning(
        {"backend": "auto", "num_layers": 2, "dropout": 0.2}
    )
    assert "pytorch#18110" in message and "custom" in message


@pytest.mark.slow
def test_deterministic_flag_records_settings_and_repeats(cfg_factory):
    from lstmkit.cli.train import train

    results = []
    try:
        for subdir in ("a", "b"):
            cfg = cfg_factory(
                "deterministic=true", "seed=null", "model.encoder.num_layers=2",
                "model.encoder.dropout=0.1", "plots=false", subdir=subdir,
            )  # fmt: skip
            results.append(train(cfg))
            assert cfg.trainer.deterministic is True and cfg.seed == 0
            record = json.loads((Path(cfg.paths.output_dir) / "determinism.json").read_text())
            assert record["CUBLAS_WORKSPACE_CONFIG"] and record["seed"] == 0
            assert record["warnings"] and "18110" in record["warnings"][0]
    finally:
        torch.use_deterministic_algorithms(False)
    assert results[0]["test/mse"] == results[1]["test/mse"]
