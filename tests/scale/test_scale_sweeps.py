"""Hydra multirun through the submitit_local launcher, and a 3-trial Optuna sweep (tiny, CPU)."""

from __future__ import annotations

import json

import pytest
import yaml

from run_helpers import run_command

pytestmark = pytest.mark.slow

TINY = (
    "data.num_train=64",
    "data.num_val=32",
    "data.num_test=32",
    "data.seq_len=10",
    "model.encoder.hidden_size=8",
    "trainer=cpu",
    "trainer.max_epochs=1",
    "+trainer.enable_progress_bar=false",
    "~callbacks.rich_progress_bar",
    "~callbacks.model_summary",
    "plots=false",
)


def _multirun(tmp_path, *overrides):
    proc = run_command(
        ["lstmkit-train", "-m", *overrides, *TINY],
        cwd=tmp_path,
        env={"LSTMKIT_LOG_DIR": str(tmp_path / "out")},
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (sweep,) = (tmp_path / "out" / "train" / "multiruns").iterdir()
    return sweep, proc


def test_submitit_local_multirun_two_jobs(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep, _ = _multirun(tmp_path, "hydra/launcher=submitit_local", "data.seed=0,1")
    results = sorted(sweep.glob("*/metrics.json"))
    assert [p.parent.name for p in results] == ["0", "1"]
    seeds = {
        yaml.safe_load((p.parent / "config.yaml").read_text())["data"]["seed"] for p in results
    }
    assert seeds == {0, 1}
    for path in results:
        assert json.loads(path.read_text())["test"]["test/mse"] > 0
    assert (sweep / ".submitit").is_dir()


def test_optuna_sweep_three_trials(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sweep, _ = _multirun(
        tmp_path,
        "hparams_search=adding_optuna",
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.sampler.n_startup_trials=2",
        "test=false",
    )
    assert len(list(sweep.glob("*/config.yaml"))) == 3
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert "model.optimizer.lr" in best["best_params"]
    assert "model.encoder.hidden_size" not in best["best_params"]  # fixed on the command line
    # the value optimised is the best checkpoint's val/loss of one of the trials
    scores = []
    for trial in sweep.glob("*/metrics.json"):
        fit = json.loads(trial.read_text())["fit"]
        scores.append(fit["val/loss"])
    assert best["best_value"] == pytest.approx(min(scores), rel=1e-5)
