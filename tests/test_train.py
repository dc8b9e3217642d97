"""``train(cfg)`` and ``evaluate(cfg)`` end to end on the real configs, shrunk to CPU-tiny."""

from __future__ import annotations

import json

import pytest

from lstmkit.cli.evaluate import evaluate
from lstmkit.cli.train import train
from lstmkit.runtime.config_checks import ConfigError

PAIRS = [
    ("adding", "regressor"),
    ("sine", "regressor"),
    ("counting", "regressor"),
    ("copy", "classifier"),
    ("waveform", "classifier"),
]


@pytest.mark.parametrize("backend", ["custom", "cudnn"])
@pytest.mark.parametrize(("data", "model"), PAIRS)
def test_fast_dev_run_every_datamodule_and_task(cfg_factory, data, model, backend):
    cfg = cfg_factory(
        f"data={data}", f"model={model}", f"model/encoder={backend}", "+trainer.fast_dev_run=true"
    )
    metrics = train(cfg)
    assert "test/loss" in metrics
    assert ("test/acc" if model == "classifier" else "test/mse") in metrics


def test_a_run_folder_holds_everything(cfg_factory, tmp_path):
    cfg = cfg_factory("data=waveform", "model=classifier", "trainer.max_epochs=2")
    metrics = train(cfg)
    run = tmp_path / "run"
    for name in ("config.yaml", "metrics.csv", "metrics.json", "learning_curves.png",
                 "confusion_matrix.png", "checkpoints/best.ckpt", "checkpoints/last.ckpt"):  # fmt: skip
        assert (run / name).is_file(), name
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["test"]["test/acc"] == pytest.approx(metrics["test/acc"])
    assert saved["baseline"]["test/acc"] == pytest.approx(metrics["baseline/acc"])
    assert "${" not in (run / "config.yaml").read_text()  # resolved

    # lstmkit-eval on the best checkpoint: same test metrics, datamodule rebuilt from it
    eval_cfg = cfg_factory(f"ckpt_path={run}/checkpoints/best.ckpt", name="eval", subdir="eval")
    result = evaluate(eval_cfg)
    assert result["test/acc"] == pytest.approx(metrics["test/acc"])
    assert (tmp_path / "eval" / "metrics.json").is_file()
    assert (tmp_path / "eval" / "confusion_matrix.png").is_file()


def test_regression_run_plots_predictions(cfg_factory, tmp_path):
    train(cfg_factory("data=sine", "model=regressor", "model/encoder=custom"))
    assert (tmp_path / "run" / "predictions.png").is_file()


def test_same_seed_gives_identical_metrics(cfg_factory):
    overrides = ("data=adding", "data.seq_len=12", "trainer.max_epochs=2", "model.dropout=0.2")
    first = train(cfg_factory(*overrides, subdir="a"))
    second = train(cfg_factory(*overrides, subdir="b"))
    keys = [k for k in first if k.startswith("test/")]
    assert keys
    assert {k: first[k] for k in keys} == {k: second[k] for k in keys}


def test_resume_from_last_checkpoint_finishes(cfg_factory, tmp_path):
    train(cfg_factory("data=counting", "trainer.max_epochs=1", subdir="first"))
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    assert last.is_file()
    resumed = cfg_factory(
        "data=counting", "trainer.max_epochs=3", f"ckpt_path={last}", subdir="resumed"
    )
    metrics = train(resumed)
    saved = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    assert saved["epochs"] == 3
    assert "test/mse" in metrics


def test_a_classifier_on_regression_data_is_refused(cfg_factory):
    with pytest.raises(
        ConfigError, match=r"model=classifier does not fit data=sine .*model=regressor"
    ):
        train(cfg_factory("data=sine", "model=classifier"))


def test_variants_and_schedulers_compose_and_run(cfg_factory):
    cfg = cfg_factory(
        "model/encoder=layernorm", "model/scheduler=plateau", "model/optimizer=adamw",
        "model.pooling=mean", "model.head_hidden_size=8", "+trainer.fast_dev_run=true",
    )  # fmt: skip
    assert "test/loss" in train(cfg)


# --- learning: short runs must beat the trivial baseline by a wide margin -------------------


@pytest.mark.slow
def test_adding_problem_t50_learns(cfg_factory):
    """Adding problem, T=50: test MSE at least 10x below always predicting the mean (~0.67)."""
    cfg = cfg_factory(
        "data=adding", "data.seq_len=50", "data.num_train=4096", "data.num_val=256",
        "data.num_test=512", "data.batch_size=64", "model.encoder.hidden_size=64",
        "trainer.max_epochs=12",
    )  # fmt: skip
    metrics = train(cfg)
    assert metrics["baseline/mse"] > 0.6
    assert metrics["test/mse"] < metrics["baseline/mse"] / 10, metrics


@pytest.mark.slow
def test_sine_forecast_learns(cfg_factory):
    """Sine, 8 steps ahead: test MSE at least 5x below always predicting the mean."""
    cfg = cfg_factory(
        "data=sine", "data.num_train=4096", "data.num_val=256", "data.num_test=512",
        "data.batch_size=64", "model.encoder.hidden_size=64", "trainer.max_epochs=8",
    )  # fmt: skip
    metrics = train(cfg)
    assert metrics["test/mse"] < metrics["baseline/mse"] / 5, metrics


@pytest.mark.slow
def test_research_code_api_without_hydra(tmp_path):
    """The README's Python example, with tiny sizes."""
    import lightning.pytorch as pl

    from lstmkit.data import WaveformDataModule
    from lstmkit.tasks import SequenceClassifier

    data = WaveformDataModule(num_train=64, num_val=32, num_test=32, batch_size=16)
    model = SequenceClassifier({"backend": "cudnn", "hidden_size": 8}, **data.model_kwargs())
    trainer = pl.Trainer(
        max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False,
        default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(model, data)
    (result,) = trainer.test(model, data, verbose=False)
    assert set(result) == {"test/loss", "test/acc", "test/f1", "test/auroc"}


# ----------------------------------------------------------------- the budget from the data
def test_auto_patience_counts_optimizer_steps_in_epochs():
    from lstmkit.runtime.runs import auto_patience

    # 300 steps of patience, within 10..50 epochs; the plateau scheduler gets a third
    assert [auto_patience(b) for b in (1, 2, 6, 10, 32, 1000)] == [
        (50, 16), (50, 16), (50, 16), (30, 10), (10, 3), (10, 3)
    ]  # fmt: skip


def test_patience_auto_is_resolved_from_the_training_split(cfg_factory, tmp_path):
    """64 training sequences in batches of 16: 4 batches an epoch -> ceil(300 / 4) = 75,
    capped at 50 epochs; the plateau scheduler 16. The run's config.yaml records both."""
    from omegaconf import OmegaConf

    cfg = cfg_factory("data=waveform", "model=classifier")
    assert cfg.callbacks.early_stopping.patience == "auto"
    assert cfg.model.scheduler.patience == "auto"
    train(cfg)
    saved = OmegaConf.load(tmp_path / "run" / "config.yaml")
    assert saved.callbacks.early_stopping.patience == 50
    assert saved.model.scheduler.patience == 16


@pytest.mark.slow  # end to end through the configs; make test runs it
def test_without_validation_the_default_scheduler_is_left_out(cfg_factory, tmp_path, caplog):
    from omegaconf import OmegaConf

    series = tmp_path / "s.csv"
    series.write_text("y\n" + "\n".join(str(i % 7) for i in range(80)) + "\n")
    cfg = cfg_factory("data=csv", "model=regressor", f"data.path={series}", "data.target=y",
                      "data.val_fraction=0", "trainer=cpu", "trainer.max_epochs=1",
                      "model.encoder.hidden_size=8", "~callbacks.rich_progress_bar",
                      shrink=False)  # fmt: skip
    with caplog.at_level("WARNING"):
        train(cfg)
    assert OmegaConf.load(tmp_path / "run" / "config.yaml").model.scheduler is None
    assert "runs trainer.max_epochs=1 epochs" in caplog.text
