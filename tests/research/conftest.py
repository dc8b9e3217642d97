"""A tiny trained run shared by the research-tool tests (gate inspection, robustness, export)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra

from run_helpers import compose_config


@pytest.fixture(scope="session")
def adding_run(tmp_path_factory) -> Path:
    """``lstmkit-train`` on the adding problem (T=20, 3 epochs): the run's best checkpoint."""
    from lstmkit.cli.train import train

    run_dir = tmp_path_factory.mktemp("adding_run")
    cfg = compose_config(
        run_dir,
        [
            "data.seq_len=20",
            "data.num_train=1024",
            "data.num_val=64",
            "data.num_test=128",
            "data.batch_size=32",
            "model.encoder.hidden_size=16",
            "model.encoder.backend=cudnn",
            "trainer.max_epochs=3",
            "plots=false",
        ],
        shrink=True,
    )
    result = train(cfg)
    GlobalHydra.instance().clear()
    return Path(result["best_model_path"])
