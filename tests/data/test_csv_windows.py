"""CSV/Parquet time series: windows equal a hand-built reference, no leakage, strided views."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from helpers_data import write_series

from lstmkit.data import CSVDataModule
from lstmkit.data.timeseries import window_starts


@pytest.mark.parametrize(("window", "horizon", "stride"), [(4, 1, 1), (5, 3, 2), (7, 2, 5)])
def test_windows_and_targets_equal_a_hand_built_reference(tmp_path, window, horizon, stride):
    frame = write_series(tmp_path / "s.csv", n=120)
    dm = CSVDataModule(
        str(tmp_path / "s.csv"), target="y", features=["x1"], time="time",
        window=window, horizon=horizon, stride=stride, val_fraction=0.2, test_fraction=0.2,
    )  # fmt: skip
    dm.setup()
    values = frame[["y", "x1"]].to_numpy(np.float64)  # time order (the file is shuffled)
    n_train, n_val = 72, 24
    mean, std = values[:n_train].mean(0), values[:n_train].std(0)
    scaled = (values - mean) / std
    bounds = {
        "train": (0, n_train),
        "val": (n_train, n_train + n_val),
        "test": (n_train + n_val, 120),
    }
    for split, (begin, end) in bounds.items():
        ref_x, ref_y = [], []
        t = max(begin, window)
        while t + horizon <= end:  # every window whose targets lie in [begin, end)
            ref_x.append(scaled[t - window : t])
            ref_y.append(scaled[t : t + horizon, :1])
            t += stride
        ds = dm.splits[split]
        x, y, lengths = ds.__getitems__(list(range(len(ds))))
        assert len(ds) == len(ref_x)
        torch.testing.assert_close(x, torch.tensor(np.stack(ref_x), dtype=torch.float32))
        ref = torch.tensor(np.stack(ref_y), dtype=torch.float32)  # (M, H, 1)
        torch.testing.assert_close(y, ref[:, 0] if horizon == 1 else ref)
        assert (lengths == window).all()


def test_scaler_comes_from_the_training_rows_only(tmp_path):
    frame = write_series(tmp_path / "a.csv", n=100)
    kw = {"target": "y", "features": ["x1"], "time": "time", "window": 5}
    a = CSVDataModule(str(tmp_path / "a.csv"), **kw)
    a.setup()
    frame.loc[70:, ["y", "x1"]] *= 1000.0  # change only validation and test rows
    frame.to_csv(tmp_path / "b.csv", index=False)
    b = CSVDataModule(str(tmp_path / "b.csv"), **kw)
    b.setup()
    assert a.fitted["input_mean"] == b.fitted["input_mean"]
    assert a.fitted["target_std"] == b.fitted["target_std"]
    np.testing.assert_allclose(a.fitted["input_mean"], frame[["y", "x1"]][:70].mean(), rtol=1e-6)
    torch.testing.assert_close(
        a.splits["train"].__getitems__([0, 5])[0], b.splits["train"].__getitems__([0, 5])[0]
    )
    assert a.model_kwargs()["target_mean"] == a.fitted["target_mean"]


def test_splits_are_chronological_and_targets_stay_in_their_split(tmp_path):
    write_series(tmp_path / "s.csv", n=100)
    dm = CSVDataModule(str(tmp_path / "s.csv"), target="y", time="time", window=6, horizon=3)
    dm.setup()
    last_target = {}
    for split, (begin, end) in {"train": (0, 70), "val": (70, 85), "test": (85, 100)}.items():
        ds = dm.splits[split]
        first_targets = ds.start_of(torch.arange(len(ds))) + 6
        assert first_targets.min() >= begin and first_targets.max() + 3 <= end
        last_target[split] = int(first_targets.max()) + 2
    assert last_target["train"] < 70 <= last_target["val"] < 85 <= last_target["test"]


def test_windows_are_views_of_the_series(tmp_path):
    write_series(tmp_path / "s.csv", n=300)
    dm = CSVDataModule(str(tmp_path / "s.csv"), target="y", features=["x1"], window=16)
    dm.setup()
    ds = dm.splits["train"]
    series = ds.inputs
    assert ds.x.untyped_storage().data_ptr() == series.untyped_storage().data_ptr()
    assert ds.y.untyped_storage().data_ptr() == series.untyped_storage().data_ptr()
    assert ds.lengths.stride() == (0,)  # no per-window storage
    assert window_starts(0, 70, 16, 1, 1) == (0, 1, 54)


def test_parquet_and_csv_give_the_same_windows(tmp_path):
    frame = write_series(tmp_path / "s.csv", n=80)
    frame.to_parquet(tmp_path / "s.parquet")
    kw = {"target": "y", "time": "time", "window": 4, "horizon": 2}
    a, b = (
        CSVDataModule(str(tmp_path / "s.csv"), **kw),
        CSVDataModule(str(tmp_path / "s.parquet"), **kw),
    )
    a.setup()
    b.setup()
    torch.testing.assert_close(
        a.splits["test"].__getitems__([0, 1]), b.splits["test"].__getitems__([0, 1])
    )


def test_baseline_and_sizes(tmp_path):
    write_series(tmp_path / "s.csv", n=100)
    dm = CSVDataModule(str(tmp_path / "s.csv"), target=["y", "x1"], window=4, horizon=2)
    kwargs = dm.model_kwargs()
    assert kwargs["input_size"] == 2 and kwargs["output_size"] == 2 and kwargs["horizon"] == 2
    assert set(dm.trivial_baseline()) == {"test/mse", "test/mae", "test/mase"}
    x, y, _ = next(iter(dm.train_dataloader()))
    assert x.shape[1:] == (4, 2) and y.shape[1:] == (2, 2)
    assert pd.api.types.is_float_dtype(pd.Series(kwargs["target_mean"]))
