"""Synthetic datamodules: shapes, padding, seeding, the tasks' definitions, batching."""

from __future__ import annotations

import pytest
import torch

from lstmkit.data import (
    IGNORE_INDEX,
    AddingDataModule,
    CopyDataModule,
    CountingDataModule,
    SequenceDataset,
    SineDataModule,
    WaveformDataModule,
)

SMALL = {"num_train": 64, "num_val": 16, "num_test": 16, "batch_size": 8}


def _first_batch(dm):
    return next(iter(dm.train_dataloader()))


@pytest.mark.parametrize(
    ("cls", "kwargs", "x_shape", "y_shape", "x_dtype"),
    [
        (CountingDataModule, {"window": 3}, (8, 3, 1), (8, 1), torch.float32),
        (SineDataModule, {"seq_len": 20, "horizon": 4, "num_channels": 2}, (8, 20, 2), (8, 4, 2),
         torch.float32),
        (SineDataModule, {"seq_len": 20, "horizon": 1}, (8, 20, 1), (8, 1), torch.float32),
        (AddingDataModule, {"seq_len": 20}, (8, 20, 2), (8, 1), torch.float32),
        (CopyDataModule, {"delay": 5, "copy_len": 3}, (8, 11), (8, 11), torch.int64),
        (WaveformDataModule, {"min_len": 10, "max_len": 10}, (8, 10, 1), (8,), torch.float32),
    ],
)  # fmt: skip
def test_batches_have_documented_shapes(cls, kwargs, x_shape, y_shape, x_dtype):
    x, y, lengths = _first_batch(cls(**kwargs, **SMALL))
    assert x.shape == x_shape and x.dtype == x_dtype
    assert y.shape == y_shape
    assert lengths.shape == (8,) and lengths.dtype == torch.int64
    assert int(lengths.max()) == x.shape[1]  # trimmed to the longest in the batch


@pytest.mark.parametrize(
    "dm",
    [
        SineDataModule(seq_len=30, min_len=10, **SMALL),
        AddingDataModule(seq_len=30, variable_length=True, **SMALL),
        WaveformDataModule(min_len=5, max_len=30, **SMALL),
    ],
    ids=["sine", "adding", "waveform"],
)
def test_variable_lengths_are_zero_padded(dm):
    dm.setup()
    ds = dm.splits["train"]
    assert len(set(ds.lengths.tolist())) > 1
    steps = torch.arange(ds.x.shape[1])
    padded = steps >= ds.lengths.unsqueeze(1)  # (N, T)
    assert padded.any()
    assert (ds.x[padded] == 0).all()


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = (AddingDataModule(seq_len=20, seed=s, **SMALL) for s in (3, 3, 4))
    for dm in (a, b, c):
        dm.setup()
    torch.testing.assert_close(a.splits["test"].x, b.splits["test"].x)
    assert not torch.equal(a.splits["test"].x, c.splits["test"].x)
    assert not torch.equal(a.splits["train"].x[:16], a.splits["test"].x)  # splits differ


@pytest.mark.parametrize("placement", ["halves", "paper"])
def test_adding_target_is_the_sum_of_the_two_marked_values(placement):
    dm = AddingDataModule(seq_len=40, placement=placement, **SMALL)
    x, y, _ = dm.generate(500, torch.Generator().manual_seed(0))
    values, marks = x[..., 0], x[..., 1]
    assert (marks.sum(1) == 2).all()
    torch.testing.assert_close((values * marks).sum(1, keepdim=True), y)
    assert values.min() >= -1 and values.max() <= 1
    positions = marks.nonzero()[:, 1].view(-1, 2)  # (N, 2), sorted per row
    if placement == "paper":  # both marks in the first T/2 - 1 steps, the first in the first 10
        assert (positions[:, 1] < 40 // 2 - 1).all() and (positions[:, 0] < 10).all()
    else:
        assert (positions[:, 0] < 20).all() and (positions[:, 1] >= 20).all()


def test_adding_variable_length_range_follows_the_paper():
    dm = AddingDataModule(seq_len=50, variable_length=True, **SMALL)
    _, _, lengths = dm.generate(2000, torch.Generator().manual_seed(0))
    assert int(lengths.min()) == 50 and int(lengths.max()) == 55


def test_copy_task_layout():
    dm = CopyDataModule(delay=6, num_symbols=4, copy_len=3, **SMALL)
    x, y, lengths = dm.generate(10, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (10, 12) and (lengths == 12).all()
    symbols = x[:, :3]
    assert ((symbols >= 1) & (symbols <= 4)).all()
    assert (x[:, 3:8] == 0).all() and (x[:, 8] == 5).all() and (x[:, 9:] == 0).all()
    assert (y[:, :9] == 0).all() and torch.equal(y[:, 9:], symbols)
    assert dm.model_kwargs() == {"vocab_size": 6, "num_classes": 5, "per_step": True}


def test_counting_windows_are_arithmetic_and_scaled_with_the_target_scaler():
    dm = CountingDataModule(window=3, max_step=3, **SMALL)
    dm.setup()
    kw = dm.model_kwargs()
    mean, std = kw["target_mean"][0], kw["target_std"][0]
    x = dm.splits["train"].x[..., 0] * std + mean  # (N, 3) original units
    y = dm.splits["train"].y[:, 0] * std + mean
    step = x[:, 1] - x[:, 0]
    torch.testing.assert_close(x[:, 2] - x[:, 1], step, atol=1e-3, rtol=0)
    torch.testing.assert_close(y - x[:, 2], step, atol=1e-3, rtol=0)


def test_regression_targets_are_standardised_on_the_training_split():
    dm = SineDataModule(seq_len=16, horizon=3, num_channels=2, **SMALL)
    dm.setup()
    y = dm.splits["train"].y.reshape(-1, 2)
    torch.testing.assert_close(y.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std(0), torch.ones(2), atol=1e-4, rtol=0)
    assert len(dm.model_kwargs()["target_std"]) == 2


def test_trivial_baselines():
    adding = AddingDataModule(seq_len=20, num_train=4096, num_test=2048)
    assert adding.trivial_baseline()["test/mse"] == pytest.approx(2 / 3, rel=0.1)  # Var(sum)
    copy = CopyDataModule(delay=20, copy_len=10, num_train=256, num_test=64)
    assert copy.trivial_baseline()["test/acc"] == pytest.approx(30 / 40)  # always "blank"


def test_dataset_gathers_a_batch_by_indexing_and_trims_per_step_targets():
    x = torch.arange(12.0).view(3, 4, 1)
    y = torch.tensor([[1, 2, IGNORE_INDEX, IGNORE_INDEX], [1, 2, 3, IGNORE_INDEX], [1, 2, 3, 4]])
    ds = SequenceDataset(x, y, torch.tensor([2, 3, 4]), per_step=True)
    bx, by, bl = ds.__getitems__([0, 1])
    assert bx.shape == (2, 3, 1) and by.shape == (2, 3) and bl.tolist() == [2, 3]
    loader = ds.loader(batch_size=2, shuffle=False, seed=0)
    batches = list(loader)
    assert [b[0].shape[1] for b in batches] == [3, 4]
    with pytest.raises(ValueError, match="same first dimension"):
        SequenceDataset(x, y[:2], torch.tensor([2, 3, 4]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seq_len": -5}, r"seq_len=-5: must be an integer >= 4"),
        ({"num_train": 0}, r"num_train=0: must be an integer >= 1"),
        ({"placement": "middle"}, r"placement='middle': must be one of halves, paper"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AddingDataModule(**kwargs)


def test_shuffling_is_seeded():
    first = [b[1] for b in AddingDataModule(seq_len=10, seed=1, **SMALL).train_dataloader()]
    again = [b[1] for b in AddingDataModule(seq_len=10, seed=1, **SMALL).train_dataloader()]
    for a, b in zip(first, again, strict=True):
        torch.testing.assert_close(a, b)
