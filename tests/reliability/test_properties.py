"""Property tests (hypothesis) for windowing and collation invariants.

The core LSTMs' properties against ``torch.nn.LSTM`` live in ``tests/nn``; here: the CSV
datamodule's windows on a series whose value is its row number (so every window can be decoded
back to row numbers), the padded batches of variable-length sequences, the bucketing batch
sampler and the epoch shuffle behind exact resume.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmkit._errors import DataFileError
from lstmkit.data import CSVDataModule
from lstmkit.data.base import SequenceDataset
from lstmkit.data.filebase import BucketBatchSampler, split_counts
from lstmkit.data.sequences import pad
from lstmkit.runtime.callbacks import EpochShuffle, epoch_seed

SETTINGS = settings(max_examples=40, deadline=None)


@SETTINGS
@given(
    n=st.integers(8, 90),
    window=st.integers(1, 12),
    horizon=st.integers(1, 4),
    stride=st.integers(1, 5),
)
def test_csv_windows_are_consecutive_rows_in_their_own_split(n, window, horizon, stride):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.csv"
        pd.DataFrame({"y": np.arange(n, dtype=float)}).to_csv(path, index=False)
        dm = CSVDataModule(
            str(path), target="y", window=window, horizon=horizon, stride=stride,
            val_fraction=0.2, test_fraction=0.2,
        )  # fmt: skip
        n_train, n_val, _ = split_counts(n, 0.2, 0.2)
        try:
            dm.setup()
        except DataFileError as err:  # too short: a clear error naming the window, never junk
            assert "window" in str(err) and str(path) in str(err)
            assert n_train < window + horizon or n - n_train < horizon + 1 or n_val < horizon
            return
    mean, std = dm.state_dict()["input_mean"][0], dm.state_dict()["input_std"][0]
    bounds = {
        "train": (0, n_train),
        "val": (n_train, n_train + n_val),
        "test": (n_train + n_val, n),
    }
    for split, (begin, end) in bounds.items():
        ds = dm.splits[split]
        if len(ds) == 0:
            continue
        x, y, lengths = ds.__getitems__(list(range(len(ds))))  # (N, W, 1), (N, [H,] 1), (N,)
        y = y[:, None] if horizon == 1 else y  # horizon 1: (N, 1) -> (N, 1, 1)
        rows_x = torch.round(x[..., 0].double() * std + mean).long()  # back to row numbers
        rows_y = torch.round(y[..., 0].double() * std + mean).long()
        assert (lengths == window).all()
        first_target = rows_y[:, 0]
        # inputs are the `window` rows right before the targets, targets `horizon` rows on
        assert torch.equal(rows_x, first_target[:, None] - window + torch.arange(window))
        assert torch.equal(rows_y, first_target[:, None] + torch.arange(horizon))
        # targets inside the split (no leakage), windows `stride` apart, none missing
        assert int(first_target.min()) >= begin and int(rows_y.max()) < end
        assert (first_target.diff() == stride).all()
        assert int(first_target[0]) == max(begin, window)
        assert int(first_target[-1]) + stride + horizon > end


@st.composite
def ragged(draw):
    channels = draw(st.integers(1, 3))
    lengths = draw(st.lists(st.integers(1, 12), min_size=1, max_size=8))
    seqs = [np.random.default_rng(i).standard_normal((t, channels)).astype(np.float32) + 1.0
            for i, t in enumerate(lengths)]  # fmt: skip
    return seqs


@SETTINGS
@given(seqs=ragged(), data=st.data())
def test_padding_collation_keeps_values_lengths_and_zero_padding(seqs, data):
    x, lengths = pad(seqs)  # (N, T_max, C), (N,)
    ds = SequenceDataset(x, torch.arange(len(seqs)), lengths)
    indices = data.draw(st.lists(st.integers(0, len(seqs) - 1), min_size=1, max_size=10))
    bx, by, blen = ds.__getitems__(indices)
    assert bx.shape[1] == max(len(seqs[i]) for i in indices)  # trimmed to the batch's longest
    for row, i in enumerate(indices):
        t = len(seqs[i])
        assert int(blen[row]) == t and int(by[row]) == i
        torch.testing.assert_close(bx[row, :t], torch.from_numpy(seqs[i]), rtol=0, atol=0)
        assert (bx[row, t:] == 0).all()


@SETTINGS
@given(
    lengths=st.lists(st.integers(1, 30), min_size=1, max_size=200),
    batch_size=st.integers(1, 16),
    seed=st.integers(0, 2**16),
)
def test_bucket_batches_cover_every_index_once_per_epoch(lengths, batch_size, seed):
    sampler = BucketBatchSampler(torch.tensor(lengths), batch_size, seed)
    for _ in range(2):  # two epochs
        batches = list(sampler)
        assert len(batches) == len(sampler)
        assert all(1 <= len(b) <= batch_size for b in batches)
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))


@SETTINGS
@given(n=st.integers(1, 300), seed=st.integers(0, 10**6), epoch=st.integers(0, 1000))
def test_epoch_shuffle_is_a_permutation_fixed_by_seed_and_epoch(n, seed, epoch):
    s = epoch_seed(seed, epoch)
    first = list(EpochShuffle(n, s))
    assert sorted(first) == list(range(n))
    assert list(EpochShuffle(n, s)) == first  # the same order whenever it is drawn
    assert epoch_seed(seed, epoch) != epoch_seed(seed, epoch + 1)
