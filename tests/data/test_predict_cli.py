"""``lstmkit-predict`` reproduces the test-stage predictions of the same checkpoint."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from helpers_data import SMALL_RUN, make_sequences, write_npz_objects, write_series

from lstmkit.cli.predict import predict
from lstmkit.cli.train import train
from lstmkit.data import CSVDataModule, SequencesDataModule
from lstmkit.runtime import runs
from lstmkit.runtime.config_checks import ConfigError
from lstmkit.tasks import SequenceClassifier, SequenceRegressor
from run_helpers import HEAVY_MODULES, imported_modules, run_command


def _fit(cfg_factory, *overrides):
    cfg = cfg_factory(*overrides, *SMALL_RUN, "trainer.max_epochs=2", shrink=False)
    result = train(cfg)
    return result["best_model_path"]


@pytest.mark.slow
def test_predict_on_a_held_out_series_reproduces_the_test_stage(cfg_factory, tmp_path):
    frame = write_series(tmp_path / "series.csv", n=160)
    best = _fit(
        cfg_factory, "data=csv", f"data.path={tmp_path / 'series.csv'}", "data.target=y",
        "data.features=[x1]", "data.time=time", "data.window=8", "data.horizon=3",
    )  # fmt: skip
    assert torch.load(best, weights_only=True)["CSVDataModule"]["input_mean"]
    model = SequenceRegressor.load_from_checkpoint(best)
    dm = CSVDataModule(str(tmp_path / "series.csv"), target="y", features=["x1"], time="time",
                       window=8, horizon=3)  # fmt: skip
    dm.setup()
    expected = runs.predict(model, dm)  # (M, 3, 1) in original units
    test_begin = dm.split_rows["test"][0]
    frame.iloc[test_begin - 8 :].to_csv(tmp_path / "held_out.csv", index=False)
    out = predict(best, tmp_path / "held_out.csv", tmp_path / "pred.csv")
    m = len(expected["pred"])
    got = out[[f"pred_y_t+{h}" for h in (1, 2, 3)]].to_numpy()[:m]
    np.testing.assert_allclose(got, expected["pred"][:, :, 0].numpy(), rtol=1e-5, atol=1e-5)
    truth = out[[f"true_y_t+{h}" for h in (1, 2, 3)]].to_numpy()[:m]
    np.testing.assert_allclose(truth, expected["target"][:, :, 0].numpy(), rtol=1e-5, atol=1e-5)
    assert len(out) == len(frame) - test_begin + 1  # plus forecasts past the end of the file
    assert out["last_input_time"].iloc[0] == test_begin - 1
    with pytest.raises(ConfigError, match="exists: pass overwrite=true"):
        predict(best, tmp_path / "held_out.csv", tmp_path / "pred.csv")
    assert len(
        predict(best, tmp_path / "held_out.csv", tmp_path / "pred.csv", overwrite=True)
    ) == len(out)


def test_predict_on_a_test_file_of_sequences_reproduces_the_test_stage(cfg_factory, tmp_path):
    seqs, y, _ = make_sequences(n=90)
    labels = np.asarray(["down", "up"])[y]
    write_npz_objects(tmp_path / "train.npz", seqs[:60], labels[:60])
    write_npz_objects(tmp_path / "test.npz", seqs[60:], labels[60:])
    best = _fit(
        cfg_factory, "data=sequences", "model=classifier", f"data.path={tmp_path / 'train.npz'}",
        f"data.test_path={tmp_path / 'test.npz'}",
    )  # fmt: skip
    model = SequenceClassifier.load_from_checkpoint(best)
    dm = SequencesDataModule(str(tmp_path / "train.npz"), test_path=str(tmp_path / "test.npz"))
    dm.setup()
    expected = runs.predict(model, dm)
    out = predict(best, tmp_path / "test.npz")  # default output: test.predictions.csv
    assert (tmp_path / "test.predictions.csv").is_file()
    assert out["pred"].tolist() == [dm.class_names[i] for i in expected["pred"]]
    np.testing.assert_allclose(
        out[["prob_down", "prob_up"]].to_numpy(), expected["prob"].numpy(), atol=1e-6
    )
    assert out["label"].tolist() == labels[60:].tolist()


@pytest.mark.slow
def test_predict_text_and_the_command_line(cfg_factory, tmp_path):
    texts = ["good fine nice", "bad awful", "nice good", "awful terrible bad"] * 15
    labels = ["pos", "neg", "pos", "neg"] * 15
    pd.DataFrame({"text": texts, "label": labels}).to_csv(tmp_path / "reviews.csv", index=False)
    best = _fit(
        cfg_factory, "data=text", "model=classifier", f"data.path={tmp_path / 'reviews.csv'}"
    )
    pd.DataFrame({"text": ["good nice", "never seen words"]}).to_csv(
        tmp_path / "new.csv", index=False
    )
    proc = run_command(
        ["lstmkit-predict", f"ckpt_path={best}", f"input={tmp_path / 'new.csv'}", "output=p.csv"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    out = pd.read_csv(tmp_path / "p.csv")
    assert list(out.columns) == ["row", "num_tokens", "pred", "prob_neg", "prob_pos"]
    np.testing.assert_allclose(out[["prob_neg", "prob_pos"]].sum(axis=1), 1.0, atol=1e-5)
    again = run_command(
        ["lstmkit-predict", f"ckpt_path={best}", f"input={tmp_path / 'new.csv'}", "output=p.csv"],
        cwd=tmp_path,
    )
    assert again.returncode == 2 and "exists: pass overwrite=true" in again.stderr


def test_predict_help_imports_nothing_heavy(tmp_path):
    """``--help`` answers before torch, pandas or Lightning load (its latency:
    scripts/benchmark_latency.py); a checkpoint that is not there is refused in one line."""
    proc, imported = imported_modules(["lstmkit-predict", "--help"], cwd=tmp_path)
    assert proc.returncode == 0 and "ckpt_path=" in proc.stdout
    assert "lstmkit" in imported and not imported & set(HEAVY_MODULES)
    bad = run_command(
        ["lstmkit-predict", "ckpt_path=x.ckpt", f"input={tmp_path}/none.csv"], cwd=tmp_path
    )
    assert bad.returncode == 2 and "ckpt_path='x.ckpt' is not a file" in bad.stderr


def test_arguments_are_parsed_as_every_command_parses_its_overrides():
    """One grammar for all commands (Hydra's): typed values, ``null``, quoted texts; a path is
    kept as written even where it reads as a number; the signature of `predict` gives types."""
    from lstmkit.cli.predict import parse_args

    args = parse_args(
        ["ckpt_path=run/best.ckpt", "input=2024", "overwrite=true", "batch_size=8", "output=null"]
    )
    assert args == {
        "ckpt_path": "run/best.ckpt",
        "input_path": "2024",
        "overwrite": True,
        "batch_size": 8,
        "output": None,
    }
    assert parse_args(["ckpt_path=a.ckpt", "input='new, old.csv'"])["input_path"] == "new, old.csv"
    refused = {
        "foo=1": "'foo=1' is not an argument: use ckpt_path=, input=",
        "ckpt_pth=a.ckpt": "'ckpt_pth=a.ckpt' is not an argument: did you mean ckpt_path=a.ckpt?",
        "+output=a.csv": "'+output=a.csv' is not an argument: did you mean output=a.csv?",
        "batch_size=0": "batch_size=0: must be an integer >= 1",
        "batch_size=2.5": "batch_size=2.5 is not allowed: must be an integer",
        "overwrite=maybe": "overwrite='maybe' is not allowed: must be true or false",
        "input=a,b": "input=a,b is ambiguous",
        "input=a=b": "'input=a=b' is not a valid override",
    }
    for arg, message in refused.items():
        with pytest.raises(ConfigError) as err:
            parse_args(["ckpt_path=a.ckpt", arg] if not arg.startswith("ckpt") else [arg])
        assert str(err.value).startswith(message), (arg, str(err.value))
    with pytest.raises(ConfigError, match=r"^input is required: pass input=<path>$"):
        parse_args(["ckpt_path=a.ckpt"])


def test_predict_refuses_a_batch_size_below_one_before_reading_anything(tmp_path):
    with pytest.raises(ConfigError, match=r"^batch_size=0: must be an integer >= 1$"):
        predict(tmp_path / "none.ckpt", tmp_path / "none.csv", batch_size=0)
