"""Missing values: never silently propagated; error names the place; mask trains and learns."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from helpers_data import make_sequences, write_npz_objects, write_series

from lstmkit._errors import DataFileError
from lstmkit.data import CSVDataModule, SequencesDataModule
from lstmkit.data.augment import AugmentedDataset
from lstmkit.data.base import SequenceDataset
from lstmkit.data.missing import forward_fill, mask_missing
from lstmkit.tasks import SequenceClassifier


def test_forward_fill_matches_a_loop():
    x = torch.tensor([[np.nan, 1.0], [2.0, np.nan], [np.nan, np.nan], [3.0, 4.0]])
    expected = torch.tensor([[0.0, 1.0], [2.0, 1.0], [2.0, 1.0], [3.0, 4.0]])
    torch.testing.assert_close(forward_fill(x), expected)
    masked = mask_missing(x.unsqueeze(0), "zero")[0]
    assert masked.shape == (4, 4)
    torch.testing.assert_close(masked[:, 2:], torch.isnan(x).float())
    assert not torch.isnan(masked).any()


def test_error_names_the_file_row_and_column(tmp_path):
    frame = write_series(tmp_path / "s.csv", n=60)
    frame.loc[17, "x1"] = np.nan
    frame.to_csv(tmp_path / "gap.csv", index=False)
    dm = CSVDataModule(str(tmp_path / "gap.csv"), target="y", features=["x1"], window=4)
    with pytest.raises(
        DataFileError, match=r"gap\.csv: missing value \(NaN\) at row 17, column 'x1'"
    ):
        dm.model_kwargs()


def test_error_names_the_sequence_step_and_channel(tmp_path):
    seqs, y, _ = make_sequences(n=30)
    seqs[7][2, 1] = np.nan
    write_npz_objects(tmp_path / "gap.npz", seqs, y)
    with pytest.raises(DataFileError, match=r"gap\.npz: .*sequence 7, step 2, channel 1"):
        SequencesDataModule(str(tmp_path / "gap.npz")).setup()


def test_drop_and_mask_on_a_series(tmp_path):
    frame = write_series(tmp_path / "s.csv", n=100)
    frame.loc[[10, 11, 40], "x1"] = np.nan
    frame.loc[50, "y"] = np.nan
    frame.to_csv(tmp_path / "gap.csv", index=False)
    kw = {"target": "y", "features": ["x1"], "time": "time", "window": 5}
    dropped = CSVDataModule(str(tmp_path / "gap.csv"), missing="drop", **kw)
    dropped.setup()
    assert len(dropped.splits["train"].inputs) == 96
    masked = CSVDataModule(str(tmp_path / "gap.csv"), missing="mask", **kw)
    assert masked.model_kwargs()["input_size"] == 4  # 2 values + 2 indicators
    series = masked.splits["train"].inputs
    assert not torch.isnan(series).any()
    assert series[10:12, 3].tolist() == [1.0, 1.0] and series[9, 3] == 0.0
    torch.testing.assert_close(series[10, 1], series[9, 1])  # forward filled
    starts = masked.splits["train"].start_of(torch.arange(len(masked.splits["train"])))
    assert not ((starts + 5) == 50).any()  # the window whose target is missing is left out


@pytest.mark.slow
def test_mask_trains_and_learns_with_many_gaps(tmp_path):
    seqs, y, _ = make_sequences(n=240, seed=1)
    rng = np.random.default_rng(0)
    for s in seqs:
        s[rng.random(s.shape) < 0.3] = np.nan  # 30% of the values missing
    write_npz_objects(tmp_path / "gaps.npz", seqs, y)
    dm = SequencesDataModule(str(tmp_path / "gaps.npz"), missing="mask", batch_size=32, seed=0)
    kwargs = dm.model_kwargs()
    assert kwargs["input_size"] == 4
    x = dm.splits["train"].x
    assert not torch.isnan(x).any()
    pl.seed_everything(0, verbose=False)
    model = SequenceClassifier({"backend": "cudnn", "hidden_size": 16}, pooling="mean", **kwargs)
    trainer = pl.Trainer(
        max_epochs=8, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(model, datamodule=dm)
    (metrics,) = trainer.test(model, datamodule=dm, verbose=False)
    assert metrics["test/acc"] > 0.85, metrics  # chance 0.5


def test_augmentation_adds_noise_and_drops_steps():
    x = torch.ones(64, 10, 2)
    x = torch.cat([x, torch.zeros(64, 10, 2)], -1)  # two value channels + two indicators
    ds = SequenceDataset(x, torch.zeros(64), torch.full((64,), 10))
    aug = AugmentedDataset(ds, noise_std=0.1, step_dropout=0.2, seed=0, value_channels=2)
    out, _, _ = aug.__getitems__(list(range(64)))
    dropped = out[..., 2] == 1.0
    assert 0.1 < dropped.float().mean() < 0.3
    assert (out[..., :2][dropped] == 0).all()
    assert 0.05 < (out[..., 0][~dropped] - 1).std() < 0.15
    tokens = SequenceDataset(torch.full((8, 50), 5), torch.zeros(8), torch.full((8,), 50))
    ids, _, _ = AugmentedDataset(tokens, step_dropout=0.5, drop_token=1).__getitems__(
        list(range(8))
    )
    assert set(ids.unique().tolist()) == {1, 5}
