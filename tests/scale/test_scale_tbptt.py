"""Truncated BPTT and stateful streaming: exact forward, gradients cut at chunk borders, learning."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from lstmkit.data import SequenceDataset, SineDataModule, StreamDataModule
from lstmkit.tasks import SequenceClassifier, SequenceRegressor, tbptt

pytestmark = pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")

ENCODER = {"backend": "cudnn", "hidden_size": 8}


def _trainer(max_epochs: int, **kwargs) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def _record_losses(task):
    """Wrap ``compute_loss`` to keep each chunk's (out, loss)."""
    seen = []
    original = task.compute_loss

    def compute_loss(out, y, lengths):
        loss = original(out, y, lengths)
        seen.append((out, loss))
        return loss

    task.compute_loss = compute_loss
    return seen


@pytest.mark.parametrize("backend", ["cudnn", "custom"])
def test_gradients_stop_at_chunk_borders(backend):
    torch.manual_seed(0)
    k = 4
    task = SequenceClassifier(
        {"backend": backend, "hidden_size": 6}, num_classes=3, input_size=2, per_step=True,
        tbptt_steps=k,
    )  # fmt: skip
    x = torch.randn(3, 12, 2, requires_grad=True)  # (B, T, C): 3 chunks
    y = torch.randint(0, 3, (3, 12))
    lengths = torch.tensor([12, 12, 12])
    seen = _record_losses(task)
    tbptt.chunked_step(task, (x, y, lengths), "val")  # grads enabled, no optimizer
    assert len(seen) == 3
    for i, (_, loss) in enumerate(seen):
        (grad,) = torch.autograd.grad(loss, x, retain_graph=True)
        per_step = grad.abs().sum((0, 2))  # (T,)
        assert torch.all(per_step[: i * k] == 0), f"chunk {i} loss reached earlier chunks"
        assert torch.all(per_step[(i + 1) * k :] == 0)
        assert per_step[i * k : (i + 1) * k].sum() > 0


def test_carried_state_is_detached_and_reset():
    task = SequenceRegressor(ENCODER, input_size=1, stateful=True, tbptt_steps=5)
    x = torch.randn(2, 10, 1, requires_grad=True)
    tbptt.chunked_step(task, (x, torch.randn(2, 1), torch.tensor([10, 10])), "val")
    h, c = task._carried_state["val"]
    assert h.grad_fn is None and c.grad_fn is None and not h.requires_grad
    assert h.shape == (1, 2, 8) and h.abs().sum() > 0
    task.on_validation_epoch_start()
    assert "val" not in task._carried_state


def test_chunked_forward_equals_whole_sequence_with_lengths():
    """Only gradients are truncated: outputs equal the plain forward, lengths respected."""
    torch.manual_seed(1)
    task = SequenceRegressor(ENCODER, input_size=2, horizon=2, tbptt_steps=3)
    x = torch.randn(4, 11, 2)
    lengths = torch.tensor([11, 4, 7, 3])
    x[torch.arange(11) >= lengths[:, None]] = 0.0
    seen = _record_losses(task)
    with torch.no_grad():
        tbptt.chunked_step(task, (x, torch.randn(4, 2, 1), lengths), "val")
        whole = task(x, lengths)  # (B, horizon, O)
    # rows end in chunks 0 (len 3), 1 (len 4), 2 (len 7), 3 (len 11)
    chunked = torch.cat([out for out, _ in seen])
    torch.testing.assert_close(chunked, whole[[3, 1, 2, 0]])


def test_options_checked():
    with pytest.raises(ValueError, match="tbptt_steps"):
        SequenceRegressor(ENCODER, input_size=1, tbptt_steps=0)
    with pytest.raises(ValueError, match="pooling"):
        SequenceRegressor(ENCODER, input_size=1, tbptt_steps=5, pooling="mean")
    with pytest.raises(ValueError, match="bidirectional"):
        SequenceRegressor({**ENCODER, "bidirectional": True}, input_size=1, stateful=True)


def test_tbptt_learns_long_delayed_labels():
    """Per-step labels = sign of the input 3 steps back, T=600 in chunks of 20: the model must
    use the carried state at chunk starts (forward crosses borders, gradients do not)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 600, 1, generator=g)
    y = torch.zeros(64, 600, dtype=torch.long)
    y[:, 3:] = (x[:, :-3, 0] > 0).long()
    data = SequenceDataset(x, y, torch.full((64,), 600), per_step=True)
    task = SequenceClassifier(
        {"backend": "cudnn", "hidden_size": 16}, num_classes=2, input_size=1, per_step=True,
        tbptt_steps=20, optimizer={"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-2},
    )  # fmt: skip
    loader = data.loader(16, shuffle=True, seed=0)
    trainer = _trainer(3)
    trainer.fit(task, loader)
    metrics = trainer.validate(task, data.loader(64, shuffle=False, seed=0), verbose=False)[0]
    assert metrics["val/acc"] > 0.95  # chance: 0.5


@pytest.mark.slow  # a learning run; make test runs it
def test_tbptt_sine_forecast_learns():
    dm = SineDataModule(
        seq_len=500, horizon=1, num_train=512, num_val=128, num_test=128, batch_size=32
    )
    task = SequenceRegressor(
        ENCODER | {"hidden_size": 24}, tbptt_steps=50,
        optimizer={"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-2},
        **dm.model_kwargs(),
    )  # fmt: skip
    task._manual_clip_val = 1.0
    trainer = _trainer(6)
    trainer.fit(task, dm)
    mse = trainer.test(task, dm, verbose=False)[0]["test/mse"]
    assert mse < 0.5 * dm.trivial_baseline()["test/mse"]


@pytest.mark.slow  # a learning run; make test runs it
def test_stateful_stream_learns_and_batches_are_consecutive():
    dm = StreamDataModule(series_len=8000, window=20, num_streams=8, seed=0)
    it = iter(dm.train_dataloader())
    (x0, y0, _), (x1, _, _) = next(it), next(it)
    assert x0.shape == (8, 20, 1)
    torch.testing.assert_close(y0, x1[:, 0])  # the target of window i starts window i+1
    task = SequenceRegressor(
        ENCODER | {"hidden_size": 16}, stateful=True,
        optimizer={"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-2},
        **dm.model_kwargs(),
    )  # fmt: skip
    trainer = _trainer(4)
    trainer.fit(task, dm)
    mse = trainer.test(task, dm, verbose=False)[0]["test/mse"]
    assert mse < 0.2 * dm.trivial_baseline()["test/mse"]


def test_cli_tbptt_moves_gradient_clipping_into_the_task(cfg_factory):
    from lstmkit.cli.train import train

    cfg = cfg_factory(
        "data=sine", "data.seq_len=60", "model.tbptt_steps=20", "trainer.gradient_clip_val=0.5",
        "plots=false",
    )  # fmt: skip
    metrics = train(cfg)
    assert cfg.trainer.gradient_clip_val is None
    assert metrics["test/mse"] > 0
