"""Nothing overwritten: run folders, predictions and exports are only replaced on request."""

from __future__ import annotations

import pytest
from helpers_reliability import FILE_RUN, SYNTH_RUN, snapshot, train_tiny, write_series

from lstmkit.runtime.config_checks import ConfigError
from run_helpers import compose_config


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("finished")
    train_tiny(root / "run", SYNTH_RUN)
    return root / "run"


def test_a_run_never_writes_into_a_folder_holding_a_run(finished_run, tmp_path):
    from lstmkit.cli.evaluate import evaluate
    from lstmkit.cli.train import train

    before = snapshot(finished_run)
    cfg = compose_config(finished_run, SYNTH_RUN, shrink=False)
    with pytest.raises(ConfigError, match="already holds a run"):
        train(cfg)
    ckpt = finished_run / "checkpoints" / "best.ckpt"
    eval_cfg = compose_config(finished_run, [f"ckpt_path={ckpt}"], config_name="eval")
    with pytest.raises(ConfigError, match="already holds a run"):
        evaluate(eval_cfg)  # metrics.json of the run would be replaced
    assert snapshot(finished_run) == before


@pytest.mark.slow
def test_resuming_a_run_may_write_into_its_own_folder(tmp_path):
    from lstmkit.cli.train import train

    run = tmp_path / "run"
    train_tiny(run, SYNTH_RUN)
    last = run / "checkpoints" / "last.ckpt"
    cfg = compose_config(
        run, [*SYNTH_RUN, "trainer.max_epochs=2", f"ckpt_path={last}"], shrink=False
    )
    train(cfg)
    import torch

    assert torch.load(last, weights_only=True)["epoch"] == 1


@pytest.mark.slow
def test_a_requeued_slurm_job_resumes_its_own_folder(tmp_path, monkeypatch):
    """SLURM requeue reruns the same command into the same folder: it resumes, not refuses."""
    import torch

    from lstmkit.cli.train import train

    run = tmp_path / "run"
    train_tiny(run, SYNTH_RUN)
    again = [*SYNTH_RUN, "trainer.max_epochs=2"]
    with pytest.raises(ConfigError, match="already holds a run"):
        train(compose_config(run, again, shrink=False))
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    train(compose_config(run, again, shrink=False))
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1


def test_predictions_are_replaced_only_with_overwrite(tmp_path):
    from lstmkit.cli.predict import predict

    write_series(tmp_path / "s.csv")
    best = train_tiny(
        tmp_path / "run",
        (
            "data=csv",
            f"data.path={tmp_path / 's.csv'}",
            "data.target=y",
            "data.window=4",
            *FILE_RUN,
        ),
    )
    out = tmp_path / "mine.csv"
    out.write_text("precious\n")
    with pytest.raises(ConfigError, match="overwrite=true"):
        predict(best, tmp_path / "s.csv", out)
    assert out.read_text() == "precious\n"
    frame = predict(best, tmp_path / "s.csv", out, overwrite=True)
    assert len(frame) > 0 and out.read_text() != "precious\n"


def test_exports_are_replaced_only_with_overwrite(finished_run, tmp_path):
    onnx_export = pytest.importorskip("lstmkit.research.onnx_export")
    pytest.importorskip("onnx")
    from lstmkit.runtime.checkpoints import load_task

    model = load_task(finished_run / "checkpoints" / "best.ckpt")
    (tmp_path / "model.onnx").write_bytes(b"mine")
    with pytest.raises(onnx_export.ExportError, match="overwrite=true"):
        onnx_export.export_onnx(model, tmp_path, ("full",))
    assert (tmp_path / "model.onnx").read_bytes() == b"mine"
