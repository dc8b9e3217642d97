"""The console scripts in subprocesses: bad overrides end with one clear line; a tiny run."""

from __future__ import annotations

import json

import pytest

from lstmkit.runtime.config_checks import EXIT_CONFIG_ERROR
from run_helpers import REPO, SHRINK, TINY_DATA, TINY_MODEL, run_command

BAD_OVERRIDES = [
    (["model.encoder.backend=foo"],
     "model.encoder.backend='foo' is not allowed: choose one of auto, custom, cudnn"),
    (["model.encoder.hidden_size=???"],
     "model.encoder.hidden_size is required but unset ('???')"),
    (["data.seq_len=-5"], "data.seq_len=-5 is not allowed: must be an integer >= 1"),
    (["data=foo"], "data='foo' is not a config: choose one of adding, "),
    (["model/encoder=lstm"], "model/encoder='lstm' is not a config: choose one of auto, "),
    (["model=classifier"], "model=classifier does not fit data=adding (regression targets)"),
    (["model/encoder=cudnn", "+model.encoder.layer_norm=true"], "cannot honour layer_norm"),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("overrides", "expected"), BAD_OVERRIDES, ids=lambda v: str(v)[:40])
def test_bad_override_ends_with_one_clear_line(tmp_path, overrides, expected):
    result = run_command(["lstmkit-train", f"paths.log_dir={tmp_path}", *overrides], tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == EXIT_CONFIG_ERROR, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("lstmkit-train: error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert not list(tmp_path.rglob("*.ckpt"))  # stopped before training


def test_eval_without_checkpoint_names_the_key(tmp_path):
    result = run_command(["lstmkit-eval", f"paths.log_dir={tmp_path}"], tmp_path)
    assert result.returncode == EXIT_CONFIG_ERROR
    assert result.stderr.strip() == (
        "lstmkit-eval: error: ckpt_path is required but unset ('???'): "
        "pass ckpt_path=<a checkpoint path>"
    )


@pytest.mark.slow
def test_full_trace_with_hydra_full_error(tmp_path):
    result = run_command(
        ["lstmkit-train", f"paths.log_dir={tmp_path}", "data.seq_len=-5"],
        tmp_path,
        env={"HYDRA_FULL_ERROR": "1"},
    )
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "ConfigError" in result.stderr


@pytest.mark.slow
def test_train_then_eval_from_the_command_line(tmp_path):
    shrink = [o for o in (*SHRINK, *TINY_DATA, *TINY_MODEL)]
    train = run_command(["lstmkit-train", f"paths.log_dir={tmp_path}", *shrink], tmp_path)
    assert train.returncode == 0, train.stderr[-2000:]
    assert "Trivial baseline: always predict the training-target mean" in train.stdout
    (run,) = (tmp_path / "train" / "runs").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert "test/mse" in metrics["test"] and "test/mse" in metrics["baseline"]
    evaluate = run_command(
        ["python", "-m", "lstmkit.cli.evaluate", f"paths.log_dir={tmp_path}",
         f"ckpt_path={run}/checkpoints/last.ckpt"],
        tmp_path,
    )  # fmt: skip
    assert evaluate.returncode == 0, evaluate.stderr[-2000:]
    assert "test/mse" in evaluate.stdout


def test_every_command_is_a_console_script():
    """Each module of ``lstmkit.cli`` is a console script (``[project.scripts]``) with a
    ``main``, and every console script is one of them."""
    import importlib

    tomllib = pytest.importorskip("tomllib")
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    modules = sorted(
        path.stem for path in (REPO / "src" / "lstmkit" / "cli").glob("*.py")
        if path.stem != "__init__"
    )  # fmt: skip
    assert sorted(scripts.values()) == sorted(f"lstmkit.cli.{m}:main" for m in modules)
    for module in modules:
        assert callable(importlib.import_module(f"lstmkit.cli.{module}").main), module
