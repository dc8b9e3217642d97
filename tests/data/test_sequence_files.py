"""Labelled sequences from .npz and .ts; UCR/UEA .ts with unequal lengths; length bucketing."""

from __future__ import annotations

import numpy as np
import torch
from helpers_data import make_sequences, write_npz_objects, write_ts

from lstmkit.data import SequencesDataModule
from lstmkit.data.filebase import BucketBatchSampler
from lstmkit.data.files import read_ts


def test_ts_with_unequal_lengths_round_trips_to_the_right_lengths(tmp_path):
    seqs, y, lengths = make_sequences(n=12, channels=3)
    write_ts(tmp_path / "tiny_TRAIN.ts", seqs, y)
    read, labels = read_ts(tmp_path / "tiny_TRAIN.ts")
    assert [len(s) for s in read] == lengths.tolist()
    for a, b in zip(read, seqs, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert [str(v) for v in labels] == [str(v) for v in y]


def test_ts_train_and_test_files_feed_the_datamodule(tmp_path):
    seqs, y, lengths = make_sequences(n=60, channels=2)
    write_ts(tmp_path / "p_TRAIN.ts", seqs[:40], y[:40])
    write_ts(tmp_path / "p_TEST.ts", seqs[40:], y[40:])
    dm = SequencesDataModule(
        str(tmp_path / "p_TRAIN.ts"), test_path=str(tmp_path / "p_TEST.ts"), val_fraction=0.25
    )
    assert dm.model_kwargs() == {"input_size": 2, "num_classes": 2, "per_step": False}
    assert len(dm.splits["test"]) == 20 and len(dm.splits["train"]) == 30
    assert dm.splits["test"].lengths.tolist() == lengths[40:].tolist()
    x, _, n = dm.splits["test"].__getitems__(list(range(20)))
    assert x.shape == (20, int(lengths[40:].max()), 2)
    assert bool((x[torch.arange(x.shape[1]) >= n.unsqueeze(1)] == 0).all())  # padding is zero


def test_npz_object_array_and_padded_x_with_lengths_agree(tmp_path):
    seqs, y, lengths = make_sequences(n=40)
    write_npz_objects(tmp_path / "obj.npz", seqs, y)
    padded = np.zeros((40, int(lengths.max()), 2), np.float32)
    for i, s in enumerate(seqs):
        padded[i, : len(s)] = s
    np.savez(tmp_path / "pad.npz", x=padded, lengths=lengths, y=y)
    a = SequencesDataModule(str(tmp_path / "obj.npz"))
    b = SequencesDataModule(str(tmp_path / "pad.npz"))
    a.setup()
    b.setup()
    for split in ("train", "val", "test"):
        torch.testing.assert_close(
            a.splits[split].__getitems__([0, 1, 2]), b.splits[split].__getitems__([0, 1, 2])
        )
    assert a.fitted == b.fitted


def test_regression_targets_are_standardised_with_train_stats(tmp_path):
    seqs, _, lengths = make_sequences(n=50)
    y = np.stack([lengths * 2.0, -lengths.astype(float)], 1)  # (N, 2)
    write_npz_objects(tmp_path / "r.npz", seqs, y)
    dm = SequencesDataModule(str(tmp_path / "r.npz"), task="regression")
    kw = dm.model_kwargs()
    assert kw["output_size"] == 2 and kw["horizon"] == 1 and len(kw["target_std"]) == 2
    train = dm.splits["train"]
    torch.testing.assert_close(train.y.mean(0), torch.zeros(2), atol=1e-5, rtol=0)


def test_length_bucketing_batches_similar_lengths_and_covers_everything(tmp_path):
    lengths = torch.randint(1, 200, (1000,), generator=torch.Generator().manual_seed(0))
    sampler = BucketBatchSampler(lengths, batch_size=20, seed=0)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    spread = np.mean([int(lengths[b].max() - lengths[b].min()) for b in batches])
    assert spread < 20  # random batches of 20 would spread ~180
    seqs, y, _ = make_sequences(n=80)
    write_npz_objects(tmp_path / "s.npz", seqs, y)
    dm = SequencesDataModule(str(tmp_path / "s.npz"), bucket_by_length=True, batch_size=8)
    seen = sum(len(b[0]) for b in dm.train_dataloader())
    assert seen == len(dm.splits["train"])
