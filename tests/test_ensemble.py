"""``lstmkit.cli.ensemble``: seeds, forecast averaging, MAPE and a tiny trained ensemble."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torchmetrics import MeanAbsolutePercentageError

from lstmkit.cli.ensemble import (
    average_forecasts,
    ensemble_figures,
    mape,
    member_seeds,
    summary_lines,
    train_ensemble,
)
from lstmkit.runtime.config_checks import ConfigError


def test_member_seeds_start_at_the_config_seed():
    assert member_seeds(42, 5) == [42, 43, 44, 45, 46]
    assert member_seeds(0, 1) == [0]
    for bad in (0, -1, True, 2.0):
        with pytest.raises(ConfigError, match=r"ensemble\.size"):
            member_seeds(42, bad)
    with pytest.raises(ConfigError, match="integer seed"):
        member_seeds(None, 3)


def test_log_space_average_is_the_geometric_mean():
    preds = torch.tensor([[100.0, 400.0], [400.0, 100.0]])
    # exp((log 100 + log 400) / 2) = sqrt(100 * 400) = 200
    assert average_forecasts(preds, "log").tolist() == pytest.approx([200.0, 200.0])
    assert average_forecasts(preds, "value").tolist() == pytest.approx([250.0, 250.0])
    # a sequence of tensors is stacked; three members: cube root of 1 * 8 * 27 = 6
    members = [torch.tensor([1.0]), torch.tensor([8.0]), torch.tensor([27.0])]
    assert average_forecasts(members, "log").item() == pytest.approx(6.0)
    assert average_forecasts(members, "value").item() == pytest.approx(12.0)


def test_average_forecasts_refuses_bad_input():
    with pytest.raises(ValueError, match="must be > 0"):
        average_forecasts(torch.tensor([[1.0], [-1.0]]), "log")
    with pytest.raises(ConfigError, match="choose one of log, value"):
        average_forecasts(torch.ones(2, 1), "median")
    with pytest.raises(ValueError, match="no member"):
        average_forecasts(torch.ones(0, 3), "value")


def test_mape_is_a_fraction_like_torchmetrics():
    pred, target = torch.tensor([110.0, 90.0, 120.0]), torch.tensor([100.0, 100.0, 200.0])
    # (0.1 + 0.1 + 0.4) / 3 = 0.2
    assert mape(pred, target) == pytest.approx(0.2)
    reference = MeanAbsolutePercentageError()(pred, target)
    assert mape(pred, target) == pytest.approx(float(reference))


class _ScaledModel:
    """Predicts ``factor * x`` (the batch's inputs are the targets): a known member error."""

    device = torch.device("cpu")

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def eval(self) -> None:
        pass

    def predict_step(self, batch, batch_idx=0):
        x, y, _ = batch
        return {"pred": x * self.factor, "target": y}


class _TwoSplits:
    def __init__(self) -> None:
        self.val = [(torch.tensor([[100.0]]), torch.tensor([[100.0]]), torch.tensor([1]))]
        self.test = [
            (torch.tensor([[200.0]]), torch.tensor([[200.0]]), torch.tensor([1])),
            (torch.tensor([[400.0]]), torch.tensor([[400.0]]), torch.tensor([1])),
        ]

    def setup(self, stage=None) -> None:
        pass

    def val_dataloader(self):
        return self.val

    def test_dataloader(self):
        return self.test


def test_ensemble_figures_report_every_member_and_the_average():
    models = [_ScaledModel(1.1), _ScaledModel(0.9)]
    log = ensemble_figures(models, _TwoSplits(), space="log")
    for split in ("val", "test"):
        assert log[f"{split}/member_mape"] == pytest.approx([0.1, 0.1])
        # geometric mean: sqrt(1.1 * 0.9) = sqrt(0.99): error 1 - 0.994987 = 0.0050126
        assert log[f"{split}/mape"] == pytest.approx(1 - math.sqrt(0.99), rel=1e-4)  # float32
    assert log["test/pred"].reshape(-1).tolist() == pytest.approx(
        [200 * math.sqrt(0.99), 400 * math.sqrt(0.99)], rel=1e-6
    )
    value = ensemble_figures(models, _TwoSplits(), space="value")
    assert value["test/mape"] == pytest.approx(0.0, abs=1e-7)  # (1.1 + 0.9) / 2 = 1


def test_train_ensemble_trains_one_run_per_seed(cfg_factory, tmp_path):
    # sine values can be negative: average the values (the log needs positive forecasts)
    cfg = cfg_factory("data=sine", "model=regressor", "model/encoder=custom", "plots=false")
    result = train_ensemble(cfg, tmp_path / "ens", size=2, space="value")
    assert result["seeds"] == [42, 43]
    for seed, member in zip(result["seeds"], result["members"], strict=True):
        folder = tmp_path / "ens" / f"seed_{seed}"
        assert (folder / "metrics.json").is_file() and (folder / "config.yaml").is_file()
        assert f"seed: {seed}" in (folder / "config.yaml").read_text()
        assert member["best_model_path"].startswith(str(folder))
    # each member's recomputed test MAPE is the run's own test/mape (torchmetrics)
    assert result["test/member_mape"] == pytest.approx(
        [m["test/mape"] for m in result["members"]], rel=1e-4
    )
    assert result["test/member_mape"][0] != result["test/member_mape"][1]  # different seeds
    # |mean(p) - t| <= mean(|p - t|): the value-space average is never worse than the members'
    # mean error
    mean_member = sum(result["test/member_mape"]) / 2
    assert result["test/mape"] <= mean_member + 1e-9
    stored = json.loads((tmp_path / "ens" / "ensemble.json").read_text())
    assert stored["seeds"] == [42, 43] and stored["space"] == "value"
    assert stored["test/mape"] == pytest.approx(result["test/mape"])
    assert len(stored["test/pred"]) == len(stored["test/target"]) > 0
    lines = summary_lines(result)
    assert lines[0] == "Ensemble of 2 seeds, forecasts averaged in value space"
    # data=sine forecasts several steps: the last step's MAPE has its own columns
    assert lines[1].split() == [
        "member",
        "val/mape",
        "val/mape_last",
        "test/mape",
        "test/mape_last",
    ]
    assert result["test/member_mape_last"][0] != result["test/member_mape"][0]
    assert lines[2].split()[:2] == ["seed", "42"] and lines[-1].split()[0] == "ensemble"
