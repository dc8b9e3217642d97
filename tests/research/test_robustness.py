"""Robustness evaluation: perturbations, the clean limit, the CSV and the command."""

from __future__ import annotations

import csv

import lightning.pytorch as pl
import pytest
import torch
from hydra.core.global_hydra import GlobalHydra

from lstmkit.data import AddingDataModule
from lstmkit.research.robustness import evaluate_robustness, perturb
from lstmkit.runtime.checkpoints import load_task
from run_helpers import compose_config


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def test_clean_levels_leave_the_batch_alone():
    batch = (torch.randn(3, 5, 2), torch.randn(3, 1), torch.tensor([5, 4, 2]))
    for kind, level in (("noise", 0.0), ("missing", 0.0), ("truncate", 1.0)):
        assert perturb(batch, kind, level, _gen()) is batch


def test_noise_and_missing_touch_valid_steps_only():
    x = torch.ones(4, 6, 2)
    x[1, 3:] = 0.0  # sequence 1 has 3 steps
    batch = (x, torch.zeros(4, 1), torch.tensor([6, 3, 6, 6]))
    noisy, _, _ = perturb(batch, "noise", 0.5, _gen())
    assert (noisy[1, 3:] == 0).all() and not torch.equal(noisy[0], x[0])
    gaps, _, _ = perturb(batch, "missing", 0.5, _gen())
    zeroed = (gaps == 0).all(-1)  # whole steps zeroed
    assert 0 < zeroed[:, :3].sum() < 12 and (gaps[gaps != 0] == 1).all()


def test_missing_follows_the_mask_policy():
    values = torch.arange(1.0, 7.0).view(1, 6, 1)  # one channel, 6 steps
    x = torch.cat([values, torch.zeros_like(values)], dim=-1)  # + its missing indicator
    batch = (x, torch.zeros(1, 1), torch.tensor([6]))
    out, _, _ = perturb(batch, "missing", 0.5, _gen(), missing_policy="mask", impute="ffill")
    gaps = out[0, :, 1] == 1
    assert gaps.any()
    for t in torch.nonzero(gaps).flatten().tolist():  # carried forward from the last observed
        observed = [s for s in range(t) if not gaps[s]]
        assert out[0, t, 0] == (values[0, observed[-1], 0] if observed else 0.0)


def test_tokens_and_truncation_of_per_step_labels():
    x = torch.randint(1, 9, (2, 8))
    y = torch.randint(0, 3, (2, 8))
    batch = (x, y, torch.tensor([8, 4]))
    noisy, _, _ = perturb(batch, "noise", 1.0, _gen(), vocab_size=50)
    assert (noisy != x).float().mean() > 0.5  # replaced by draws from 50 tokens
    short_x, short_y, lengths = perturb(batch, "truncate", 0.5, _gen(), per_step_targets=True)
    assert lengths.tolist() == [4, 2]
    assert (short_x[0, 4:] == 0).all() and (short_y[0, 4:] == -100).all()
    assert torch.equal(short_y[0, :4], y[0, :4])


@pytest.fixture(scope="module")
def trained_adding():
    """A regressor trained for 4 epochs on the adding problem (T=20): far from the mean."""
    from lstmkit.tasks import SequenceRegressor

    pl.seed_everything(0, verbose=False)
    dm = AddingDataModule(seq_len=20, num_train=2048, num_val=64, num_test=256, batch_size=64)
    model = SequenceRegressor(
        {"backend": "cudnn", "hidden_size": 32},
        optimizer={"_target_": "torch.optim.Adam", "lr": 1e-2},
        **dm.model_kwargs(),
    )
    pl.Trainer(
        max_epochs=4,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    ).fit(model, dm)
    return model.eval(), dm


@pytest.mark.slow
def test_clean_limit_equals_the_test_metric_and_degrades_monotonically(trained_adding):
    model, dm = trained_adding
    plain = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    expected = plain.test(model, dm, verbose=False)[0]
    levels = {"noise": [0.0, 0.5, 1.0, 2.0], "missing": [0.0, 0.25, 0.5], "truncate": [1.0, 0.5]}
    rows, clean = evaluate_robustness(model, dm, levels, seed=0)
    assert clean["test/mse"] == expected["test/mse"]
    by_kind = {}
    for row in rows:
        by_kind.setdefault(row["perturbation"], []).append(row)
    for kind, part in by_kind.items():
        assert part[0]["test/mse"] == expected["test/mse"], kind  # clean level: the same number
        mse = [r["test/mse"] for r in part]
        assert mse == sorted(mse), (kind, mse)  # more perturbation, more error
    assert by_kind["noise"][-1]["test/mse"] > 2 * expected["test/mse"]


def test_lstmkit_robustness_writes_csv_and_plot(adding_run, tmp_path):
    from lstmkit.cli.robustness import robustness

    cfg = compose_config(
        tmp_path,
        [f"ckpt_path={adding_run}", "noise=[0,1]", "missing=[0,0.5]", "truncate=[1,0.5]"],
        "robustness",
        shrink=False,
    )
    result = robustness(cfg)
    GlobalHydra.instance().clear()
    with open(result["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert [(r["perturbation"], float(r["level"])) for r in rows] == [
        ("noise", 0.0),
        ("noise", 1.0),
        ("missing", 0.0),
        ("missing", 0.5),
        ("truncate", 1.0),
        ("truncate", 0.5),
    ]
    assert {"test/mse", "test/mae", "test/loss"} <= set(rows[0])
    model = load_task(adding_run)
    plain = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    from lstmkit.research.loading import load_run

    _, dm = load_run(adding_run)
    expected = plain.test(model, dm, verbose=False)[0]["test/mse"]
    assert float(rows[0]["test/mse"]) == pytest.approx(expected, rel=1e-6)
    assert (tmp_path / "robustness.png").is_file()
