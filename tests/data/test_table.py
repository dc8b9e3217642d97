"""data=table: long-format tables of many sequences, checked against hand-built references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from helpers_data import SMALL_RUN

from lstmkit._errors import DataFileError
from lstmkit.data import LabelTableDataModule, PanelDataModule, TableDataModule
from lstmkit.forecast_metrics import naive_scale, seasonal_naive, window_errors

LENGTHS = {"a": 30, "b": 12, "c": 25}


def panel_frame(lengths=LENGTHS, seed=0) -> pd.DataFrame:
    """Series ``id`` with value ``y`` = level + noise (a different level per id), a covariate
    ``x``, static ``kind`` (categorical) and ``size`` (numeric); rows shuffled."""
    rng = np.random.default_rng(seed)
    parts = []
    for i, (name, n) in enumerate(lengths.items()):
        t = np.arange(n)
        parts.append(
            pd.DataFrame(
                {
                    "id": name,
                    "t": t,
                    "y": 10.0 * (i + 1) + np.sin(t / 3.0) * (i + 1) + 0.1 * rng.standard_normal(n),
                    "x": rng.standard_normal(n),
                    "kind": "AB"[i % 2],
                    "size": float(i + 1),
                }
            )
        )
    return pd.concat(parts).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def _write(frame, path):
    frame.to_csv(path, index=False) if str(path).endswith(".csv") else frame.to_parquet(path)
    return str(path)


def _all(ds):
    return ds.__getitems__(list(range(len(ds))))


def test_windows_equal_a_per_series_reference_and_never_cross_ids(tmp_path):
    frame = panel_frame()
    path = _write(frame, tmp_path / "p.csv")
    window, horizon = 6, 3
    dm = PanelDataModule(path, id="id", time="t", target="y", features=["x"], window=window,
                         horizon=horizon, stride=2)  # fmt: skip
    dm.setup()
    for split in ("train", "val", "test"):
        ref_x, ref_y = [], []
        for name in dm.series_keys:  # the datamodule's series order
            s = frame[frame.id == name].sort_values("t")[["y", "x"]].to_numpy(np.float64)
            n = len(s)
            train_end = n - 2 * horizon  # val_steps = test_steps = horizon
            mean, std = s[:train_end].mean(0), s[:train_end].std(0)
            z = (s - mean) / std
            lo, hi = {"train": (0, train_end), "val": (train_end, n - horizon),
                      "test": (n - horizon, n)}[split]  # fmt: skip
            stride = 2 if split == "train" else 1
            t = max(lo, window)
            while t + horizon <= hi:
                ref_x.append(z[t - window : t])
                ref_y.append(z[t : t + horizon, :1])
                t += stride
        x, y, lengths = _all(dm.splits[split])
        assert len(x) == len(ref_x)
        torch.testing.assert_close(x[..., :2], torch.tensor(np.stack(ref_x), dtype=torch.float32))
        torch.testing.assert_close(y, torch.tensor(np.stack(ref_y), dtype=torch.float32))
        assert (lengths == window).all()


def test_split_sizes_per_series_and_the_short_series_rules(tmp_path):
    path = _write(panel_frame(), tmp_path / "p.parquet")
    kw = {"id": "id", "time": "t", "target": "y", "window": 8, "horizon": 3}
    skip = PanelDataModule(path, **kw)
    skip.setup()
    # training parts: a 24, b 6, c 19 rows; full windows need targets at rows >= 8
    # train: a 8..21 (14), b none, c 8..16 (9); val: a, c (b's row 6 < 8); test: a, b, c
    assert {k: len(v) for k, v in skip.splits.items()} == {"train": 23, "val": 2, "test": 3}
    pad = PanelDataModule(path, **kw, short_series="pad", min_window=2)
    pad.setup()
    # targets from row 2: a 2..21 (20), b 2..3 (2), c 2..16 (15)
    assert len(pad.splits["train"]) == 37
    _, _, lengths = _all(pad.splits["train"])
    assert lengths.min() == 2 and lengths.max() == 8  # short inputs: variable lengths
    x, _, lengths = pad.splits["train"].__getitems__([0])
    assert lengths.item() == 2 and (x[0, 2:] == 0).all()  # zeros after the length


def test_per_series_scaling_is_fitted_on_each_series_training_part(tmp_path):
    frame = panel_frame()
    path = _write(frame, tmp_path / "p.csv")
    for scaler in ("standard", "minmax", "mean"):
        dm = PanelDataModule(path, id="id", time="t", target="y", window=4, horizon=2,
                             scaler=scaler)  # fmt: skip
        dm.setup()
        for s, name in enumerate(dm.series_keys):
            y = frame[frame.id == name].sort_values("t")["y"].to_numpy(np.float64)[:-4]
            expected = {
                "standard": (y.mean(), y.std()),
                "minmax": (y.min(), y.max() - y.min()),
                "mean": (0.0, np.abs(y).mean()),
            }[scaler]
            np.testing.assert_allclose(
                [dm.fitted["center"][s][0], dm.fitted["scale"][s][0]], expected, rtol=1e-5
            )
    # a change in the held-out rows changes no statistic
    changed = frame.copy()
    changed.loc[changed.t >= 20, "y"] *= 1000.0
    a = PanelDataModule(path, id="id", time="t", target="y", window=4, horizon=2,
                        val_steps=3, test_steps=3)  # fmt: skip
    b = PanelDataModule(_write(changed, tmp_path / "q.csv"), id="id", time="t", target="y",
                        window=4, horizon=2, val_steps=3, test_steps=3)  # fmt: skip
    a.setup(), b.setup()
    # series b has 12 rows (training part 0..5), c 25 (0..18): untouched training parts
    for s, name in enumerate(a.series_keys):
        if name in ("b", "c"):
            assert a.fitted["center"][s] == b.fitted["center"][s]


def test_naive_scale_and_seasonal_naive_baseline_match_the_formulas(tmp_path):
    frame = panel_frame()
    path = _write(frame, tmp_path / "p.csv")
    dm = PanelDataModule(path, id="id", time="t", target="y", window=5, horizon=3, season=4)
    dm.setup()
    preds, truths, scales = [], [], []
    for s, name in enumerate(dm.series_keys):
        y = torch.tensor(frame[frame.id == name].sort_values("t")["y"].to_numpy())[:, None]
        train = y[:-6]
        scale = naive_scale(train, 4)
        np.testing.assert_allclose(dm.fitted["naive_scale"][s], scale.numpy(), rtol=1e-5)
        preds.append(seasonal_naive(y[:-3], 3, 4))
        truths.append(y[-3:])
        scales.append(scale)
    errors = window_errors(torch.stack(preds), torch.stack(truths), torch.stack(scales))
    base = dm.trivial_baseline()
    for name in ("mase", "smape", "mape", "rmse_series"):
        assert base[f"test/{name}"] == pytest.approx(float(errors[name].mean()), rel=1e-5)
    # seasonal naive by hand: the last 4 values, then again from the first of them
    assert seasonal_naive(torch.arange(10.0)[:, None], 6, 4)[:, 0].tolist() == [6, 7, 8, 9, 6, 7]


def test_static_covariates_holdout_and_the_task_sizes(tmp_path):
    frame = panel_frame({f"s{i}": 20 + i for i in range(10)})
    path = _write(frame, tmp_path / "p.csv")
    dm = PanelDataModule(path, id="id", time="t", target="y", window=4, horizon=2,
                         static_numeric=["size"], static_categorical=["kind"],
                         holdout_fraction=0.3)  # fmt: skip
    kwargs = dm.model_kwargs()
    # y + 1 numeric static + 1 category code + center/scale/naive of the target
    assert kwargs["input_size"] == 1 + 1 + 1 + 3 and kwargs["static_cardinalities"] == [2]
    assert kwargs["series_scale"] is True
    x, _, _ = _all(dm.splits["test"])
    held = {int(s) for s in dm.splits["test"].windows.series}
    trained = {int(s) for s in dm.splits["train"].windows.series}
    assert len(held) == 3 and not held & trained and len(x) == 3
    codes = x[:, 0, 2]
    kinds = [frame[frame.id == dm.series_keys[s]]["kind"].iloc[0] for s in sorted(held)]
    assert codes.tolist() == [float("AB".index(k)) for k in kinds]


def test_missing_values_follow_the_policies_without_crossing_series(tmp_path):
    frame = panel_frame()
    frame.loc[(frame.id == "c") & (frame.t == 0), "y"] = np.nan  # c's first value
    frame.loc[(frame.id == "a") & (frame.t == 10), "y"] = np.nan
    path = _write(frame, tmp_path / "p.csv")
    kw = {"id": "id", "time": "t", "target": "y", "window": 4, "horizon": 2}
    with pytest.raises(DataFileError, match=r"column 'y' of id 'a' \(step 10, time 10\)"):
        PanelDataModule(path, **kw).setup()
    masked = PanelDataModule(path, **kw, missing="mask")
    masked.setup()
    assert masked.model_kwargs()["input_size"] == 2 + 3  # value + indicator, then the scale
    x, y, _ = _all(masked.splits["train"])
    assert not torch.isnan(x).any() and not torch.isnan(y).any()
    # no window targets a's row 10: windows of a start their targets at 4..(24-2) but 9, 10
    ds = masked.splits["train"]
    series, _, t0 = ds.windows.all()
    a = masked.series_keys.tolist().index("a")
    rel = (t0[series == a] - ds.windows.explicit[series == a][:, 1]).tolist()
    assert 9 not in rel and 10 not in rel and 8 in rel and 11 in rel
    # series c starts with a gap: imputed 0, not series a/b's last value (ffill per series)
    c = masked.series_keys.tolist().index("c")
    row = int(np.r_[0, np.cumsum([LENGTHS[k] for k in masked.series_keys])][c])
    values = ds.values
    assert values[row, 0] == 0 and values[row, 1] == 1
    dropped = PanelDataModule(path, **kw, missing="drop")
    dropped.setup()
    assert sum(dropped.series_lengths) == sum(LENGTHS.values()) - 2


def test_bad_tables_stop_with_one_line(tmp_path):
    frame = panel_frame()
    path = _write(frame, tmp_path / "p.csv")
    before = (tmp_path / "p.csv").read_bytes()
    kw = {"id": "id", "time": "t", "target": "y", "window": 4, "horizon": 2}
    with pytest.raises(DataFileError, match="column 'series' not found"):
        PanelDataModule(path, **{**kw, "id": "series"}).setup()
    dup = pd.concat([frame, frame[(frame.id == "b") & (frame.t == 3)]])
    with pytest.raises(DataFileError, match="time 3 occurs twice for id 'b'"):
        PanelDataModule(_write(dup, tmp_path / "d.csv"), **kw).setup()
    varying = frame.copy()
    varying.loc[(varying.id == "c") & (varying.t == 5), "kind"] = "Z"
    with pytest.raises(DataFileError, match="static column 'kind' varies within id 'c'"):
        PanelDataModule(_write(varying, tmp_path / "v.csv"), **kw,
                        static_categorical=["kind"]).setup()  # fmt: skip
    with pytest.raises(DataFileError, match="no series has a valid train window"):
        PanelDataModule(path, **{**kw, "window": 40}).setup()
    with pytest.raises(ValueError, match=r"exactly one of label= .* neither"):
        TableDataModule(path=path, id="id")
    with pytest.raises(ValueError, match="window=5 is not read in label mode"):
        TableDataModule(path=path, id="id", label="kind", features=["x"], window=5)
    with pytest.raises(ValueError, match="test_steps=1: must be 0 or at least horizon=2"):
        PanelDataModule(path, **kw, test_steps=1)
    bad_time = frame.assign(t=frame.t.astype(str) + "x")
    with pytest.raises(
        DataFileError, match=r"cannot be read as dates or numbers: e.g. .*time_format"
    ):
        PanelDataModule(_write(bad_time, tmp_path / "t.csv"), **kw).setup()
    assert (tmp_path / "p.csv").read_bytes() == before  # the user's file is unchanged


def test_a_parquet_folder_reads_as_the_same_table(tmp_path):
    frame = panel_frame()
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, (_, part) in enumerate(frame.groupby("id")):
        part.to_parquet(folder / f"part-{i}.parquet")
    kw = {"id": "id", "time": "t", "target": "y", "window": 4, "horizon": 2}
    a = PanelDataModule(_write(frame, tmp_path / "p.parquet"), **kw)
    b = PanelDataModule(str(folder), **kw)
    a.setup(), b.setup()
    for split in ("train", "val", "test"):
        for u, v in zip(_all(a.splits[split]), _all(b.splits[split]), strict=True):
            torch.testing.assert_close(u, v)


def label_frame(n=40, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for i in range(n):
        length = int(rng.integers(5, 12))
        up = i % 2 == 1
        parts.append(pd.DataFrame({
            "case": i, "t": np.arange(length)[::-1],  # rows in reverse time order
            "v": (1.0 if up else -1.0) + 0.3 * rng.standard_normal(length),
            "w": rng.standard_normal(length), "label": "up" if up else "down",
        }))  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def test_label_mode_gives_each_id_one_sequence_in_time_order(tmp_path):
    frame = label_frame()
    path = _write(frame, tmp_path / "l.parquet")
    dm = LabelTableDataModule(path, id="case", time="t", features=["v", "w"], label="label")
    dm.setup()
    sizes = [len(dm.splits[s]) for s in ("train", "val", "test")]
    assert sizes == [28, 6, 6]  # the seeded split by id, 15 % / 15 %
    raw = frame.sort_values(["case", "t"])
    # reconstruct one training sequence from the standardised inputs
    mean, std = np.array(dm.fitted["input_mean"]), np.array(dm.fitted["input_std"])
    x, y, lengths = _all(dm.splits["train"])
    match = 0
    for i in range(len(x)):
        seq = x[i, : lengths[i]].numpy() * std + mean
        for _case, group in raw.groupby("case"):
            values = group[["v", "w"]].to_numpy()
            if len(values) == len(seq) and np.allclose(values, seq, atol=1e-5):
                assert ["down", "up"][int(y[i])] == group["label"].iloc[0]
                match += 1
    assert match == len(x)
    labels = frame.groupby("case")["label"].first().reset_index()
    _write(labels, tmp_path / "labels.csv")
    from_file = LabelTableDataModule(_write(frame.drop(columns="label"), tmp_path / "n.csv"),
                                     id="case", time="t", features=["v", "w"],
                                     label_path=str(tmp_path / "labels.csv"))  # fmt: skip
    from_file.setup()
    torch.testing.assert_close(_all(from_file.splits["test"])[1], _all(dm.splits["test"])[1])
    varying = frame.copy()
    varying.loc[3, "label"] = "up"
    with pytest.raises(DataFileError, match="label 'label' varies within id 0"):
        LabelTableDataModule(_write(varying, tmp_path / "x.csv"), id="case", time="t",
                             features=["v"], label="label").setup()  # fmt: skip


@pytest.mark.slow
def test_train_and_predict_a_panel_with_quantiles(cfg_factory, tmp_path):
    from lstmkit.cli.predict import predict
    from lstmkit.cli.train import train

    frame = panel_frame()
    frame["t"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(frame["t"] * 7, unit="D")
    path = _write(frame, tmp_path / "p.csv")
    cfg = cfg_factory(
        "data=table", f"data.path={path}", "data.id=id", "data.time=t", "data.target=y",
        "data.window=6", "data.horizon=3", "data.static_categorical=[kind]", "model=regressor",
        "model.loss=quantile", "model.quantiles=[0.1,0.5,0.9]", *SMALL_RUN,
        "trainer.max_epochs=2", shrink=False,
    )  # fmt: skip
    result = train(cfg)
    for key in ("test/mase", "test/smape", "test/pinball", "test/coverage",
                "baseline/mase"):  # fmt: skip
        assert np.isfinite(result[key])
    out = predict(result["best_model_path"], path, tmp_path / "pred.csv")
    assert list(out.columns) == ["id", "time", "step", "pred_y", "pred_y_q0.1", "pred_y_q0.5",
                                 "pred_y_q0.9"]  # fmt: skip
    assert len(out) == 3 * 3  # every series, the 3 steps past its end
    last = frame.groupby("id")["t"].max()
    for name, rows in out.groupby("id"):
        expected = [last[name] + pd.Timedelta(days=7 * k) for k in (1, 2, 3)]
        assert list(pd.to_datetime(rows["time"])) == expected
    assert (out["pred_y_q0.1"] <= out["pred_y_q0.5"]).all()
    assert (out["pred_y_q0.5"] <= out["pred_y_q0.9"]).all()
    np.testing.assert_allclose(out["pred_y"], out["pred_y_q0.5"])


def test_a_streamed_parquet_folder_gives_the_same_windows_one_file_at_a_time(tmp_path):
    lengths = {f"s{i}": 15 + 2 * i for i in range(9)}
    frame = panel_frame(lengths)
    folder = tmp_path / "parts"
    folder.mkdir()
    ids = sorted(lengths)
    for k in range(3):  # three files of three series each
        frame[frame.id.isin(ids[3 * k : 3 * k + 3])].to_parquet(folder / f"part-{k}.parquet")
    kw = {"id": "id", "time": "t", "target": "y", "window": 5, "horizon": 2, "batch_size": 4}
    memory = PanelDataModule(str(folder), **kw)
    stream = PanelDataModule(str(folder), **kw, stream=True)
    memory.setup(), stream.setup()
    np.testing.assert_allclose(stream.fitted["center"], memory.fitted["center"])
    assert stream.trivial_baseline() == pytest.approx(memory.trivial_baseline())
    for split in ("val", "test"):
        for u, v in zip(_all(memory.splits[split]), _all(stream.splits[split]), strict=True):
            torch.testing.assert_close(u, v)
    # one epoch of streamed training windows = the in-memory training windows, reordered
    streamed = [b for b in stream.train_dataloader()]
    assert all(len(b[0]) <= 4 for b in streamed)
    x_stream = torch.cat([b[0] for b in streamed])
    x_memory = _all(memory.splits["train"])[0]
    assert len(x_stream) == len(x_memory)
    key = lambda x: sorted(map(tuple, x.flatten(1).round(decimals=5).tolist()))  # noqa: E731
    assert key(x_stream) == key(x_memory)
    # never more than one file's rows in memory: the largest file has 3 series
    largest = max(sum(lengths[i] for i in ids[3 * k : 3 * k + 3]) for k in range(3))
    assert stream.splits["train"].max_rows_in_memory == largest
    frame.to_parquet(folder / "again.parquet")  # the same ids in a second file
    with pytest.raises(DataFileError, match="also appears in an earlier file"):
        PanelDataModule(str(folder), **kw, stream=True).setup()


def _long_table(seqs, labels, path):
    """UCR/UEA sequences ``[(T_i, C)]`` as a long table: case, t, c0.., label."""
    parts = []
    for i, (seq, label) in enumerate(zip(seqs, labels, strict=True)):
        part = pd.DataFrame(seq, columns=[f"c{k}" for k in range(seq.shape[1])])
        part.insert(0, "t", np.arange(len(seq)))
        part.insert(0, "case", i)
        part["label"] = str(label)
        parts.append(part)
    pd.concat(parts, ignore_index=True).sample(frac=1.0, random_state=0).to_parquet(path)


def test_basic_motions_as_a_long_table_gives_the_ts_paths_tensors(tmp_path):
    """The same split, scaling and tensors as data=sequences on the archive's .ts files, so
    training on either gives the same model (the accuracy figures are in docs/tables.md)."""
    pytest.importorskip("aeon")
    from pathlib import Path

    import aeon

    from lstmkit.data import SequencesDataModule
    from lstmkit.data.files import read_sequences

    folder = Path(aeon.__file__).parent / "datasets" / "data" / "BasicMotions"
    train_ts, test_ts = folder / "BasicMotions_TRAIN.ts", folder / "BasicMotions_TEST.ts"
    for ts, name in ((train_ts, "train"), (test_ts, "test")):
        _long_table(*read_sequences(str(ts)), tmp_path / f"{name}.parquet")
    ts = SequencesDataModule(str(train_ts), test_path=str(test_ts))
    table = LabelTableDataModule(
        str(tmp_path / "train.parquet"), id="case", time="t",
        features=[f"c{k}" for k in range(6)], label="label",
        test_path=str(tmp_path / "test.parquet"),
    )  # fmt: skip
    ts.setup(), table.setup()
    assert table.fitted["class_names"] == ts.fitted["class_names"]
    for split in ("train", "val", "test"):
        for u, v in zip(_all(ts.splits[split]), _all(table.splits[split]), strict=True):
            torch.testing.assert_close(u, v)


def test_m1_yearly_is_the_archives_protocol(tmp_path):
    """181 series, one test window each (the last 6 values); the naive baseline's MASE equals
    a plain numpy computation of the archive's formula."""
    pytest.importorskip("aeon")
    from aeon.datasets import load_forecasting

    from lstmkit.data import MonashDataModule

    dm = MonashDataModule(window=8, horizon=6, val_steps=0, short_series="pad", min_window=2)
    dm.setup()
    assert len(dm.splits["test"]) == 181 and "val" not in dm.splits
    raw = load_forecasting("m1_yearly_dataset")
    mase = []
    for values in raw["series_value"]:
        y = np.asarray(values, dtype=np.float64)
        train, test = y[:-6], y[-6:]
        scale = np.mean(np.abs(np.diff(train)))
        mase.append(np.mean(np.abs(test - train[-1])) / scale)
    assert dm.trivial_baseline()["test/mase"] == pytest.approx(np.mean(mase), rel=1e-5)


def test_parquet_columns_with_missing_values_read_as_nan(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from lstmkit.data.longtable import read_long_table

    table = pa.table({"id": pa.array([1, 1, 2, None], pa.int64()),
                      "y": pa.array([1.5, None, 2.0, 3.0], pa.float32()),
                      "name": ["a", "b", None, "d"]})  # fmt: skip
    pq.write_table(table, tmp_path / "m.parquet", row_group_size=2)
    frame = read_long_table(tmp_path / "m.parquet", ["id", "y", "name"])
    assert frame["id"].isna().tolist() == [False, False, False, True]
    assert frame["y"].isna().tolist() == [False, True, False, False]
    assert frame["name"].tolist()[:2] == ["a", "b"] and frame["name"].isna().tolist()[2]
    with pytest.raises(DataFileError, match="id column 'id' is empty at row 3"):
        PanelDataModule(str(tmp_path / "m.parquet"), id="id", target="y", window=1).setup()


@pytest.mark.slow
def test_train_and_predict_label_mode_names_each_id(cfg_factory, tmp_path):
    from lstmkit.cli.predict import predict
    from lstmkit.cli.train import train

    frame = label_frame(n=30)
    path = _write(frame, tmp_path / "l.csv")
    cfg = cfg_factory(
        "data=table", f"data.path={path}", "data.id=case", "data.time=t",
        "data.features=[v,w]", "data.label=label", "model=classifier", *SMALL_RUN,
        "trainer.max_epochs=2", shrink=False,
    )  # fmt: skip
    best = train(cfg)["best_model_path"]
    unlabelled = _write(frame.drop(columns="label"), tmp_path / "new.csv")
    out = predict(best, unlabelled, tmp_path / "pred.csv")
    assert list(out.columns[:3]) == ["case", "length", "pred"]
    assert out["case"].tolist() == list(range(30))
    assert out["length"].tolist() == frame.groupby("case").size().tolist()
    assert set(out["pred"]) <= {"down", "up"} and "label" not in out
    labelled = predict(best, path, tmp_path / "pred2.csv")
    assert labelled["label"].tolist() == frame.groupby("case")["label"].first().tolist()


def test_future_covariates_append_the_forecast_rows_with_their_targets_zeroed(tmp_path):
    from lstmkit.tasks import AutoregressiveForecaster

    frame = panel_frame()
    frame["t"] = pd.Timestamp("2000-01-01") + pd.to_timedelta(frame["t"], unit="D")
    path = _write(frame, tmp_path / "p.csv")
    dm = PanelDataModule(path, id="id", time="t", target="y", features=["x"], window=5,
                         horizon=3, calendar=["dayofweek"], future_covariates=True)  # fmt: skip
    dm.setup()
    x, y, lengths = _all(dm.splits["test"])
    assert x.shape[1] == 5 + 3 and (lengths == 8).all()
    assert (x[:, 5:, 0] == 0).all()  # the target channel of the forecast rows
    series = dm.splits["test"].windows.series
    for i, s in enumerate(series.tolist()):
        rows = frame[frame.id == dm.series_keys[s]].sort_values("t")
        n = len(rows)
        expected = rows["t"].dt.dayofweek.to_numpy()[n - 8 :]  # the window and forecast rows
        assert x[i, :, 2:9].argmax(-1).tolist() == expected.tolist()
        x_known = (rows["x"].to_numpy()[n - 8 :] - dm.fitted["center"][s][1]) / dm.fitted["scale"][
            s
        ][1]
        torch.testing.assert_close(x[i, :, 1], torch.tensor(x_known, dtype=torch.float32))
    model = AutoregressiveForecaster({"backend": "custom", "hidden_size": 8},
                                     **dm.model_kwargs())  # fmt: skip
    pred = model.predict_step((x, y, lengths))
    assert pred["pred"].shape == y.shape  # original units, one forecast per series
    with pytest.raises(ValueError, match=r"future_covariates=true .* short_series=skip"):
        PanelDataModule(path, id="id", target="y", future_covariates=True, short_series="pad")


def _dated(frame: pd.DataFrame, fmt: str) -> pd.DataFrame:
    """``frame`` with its step numbers turned into dates written as ``fmt`` from 2022-01-10
    (days 1-12 are ambiguous day/month pairs in 'US' and 'EU' text)."""
    dated = frame.copy()
    dates = pd.Timestamp("2022-01-10") + pd.to_timedelta(dated["t"] * 3, unit="D")
    dated["t"] = dates.dt.strftime(fmt)
    return dated


@pytest.mark.parametrize(
    ("fmt", "options"),
    [("%Y-%m-%d", {}), ("%m/%d/%Y", {"dayfirst": False}), ("%d/%m/%Y", {"dayfirst": True}),
     ("%d.%m.%Y", {"time_format": "%d.%m.%Y"})],
    ids=["iso", "us", "eu", "format"],
)  # fmt: skip
def test_text_dates_follow_the_time_rules_of_data_csv(tmp_path, fmt, options):
    """Shuffled rows with dates as text give the windows of the numeric time column."""
    kw = {"id": "id", "time": "t", "target": "y", "window": 6, "horizon": 2}
    numeric = PanelDataModule(_write(panel_frame(), tmp_path / "n.csv"), **kw)
    dated = PanelDataModule(_write(_dated(panel_frame(), fmt), tmp_path / "d.csv"), **kw, **options)
    numeric.setup(), dated.setup()
    for split in ("train", "val", "test"):
        for a, b in zip(_all(dated.splits[split]), _all(numeric.splits[split]), strict=True):
            torch.testing.assert_close(a, b)


def test_dates_that_read_two_ways_are_refused_naming_the_option(tmp_path):
    """Monthly dates on the 5th: 03/05/2022 is March 5th or May 3rd, for every row."""
    frame = panel_frame()
    frame["t"] = (pd.Timestamp("2022-01-05") + pd.DateOffset(months=1) * frame["t"]).map(
        lambda d: d.strftime("%m/%d/%Y")
    )
    path = _write(frame, tmp_path / "d.csv")
    kw = {"id": "id", "time": "t", "target": "y", "window": 6}
    with pytest.raises(DataFileError, match="dayfirst"):
        PanelDataModule(path, **kw).setup()
    PanelDataModule(path, **kw, dayfirst=False).setup()  # the option the message names
