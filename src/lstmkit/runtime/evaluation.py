"""Testing a checkpoint: rebuild its task (and, unless ``data=`` is given, its datamodule) from
the checkpoint alone, test it and fill the run folder. What ``lstmkit-eval``
(:mod:`lstmkit.cli.evaluate`) runs; importable as ``lstmkit.runtime.evaluation.evaluate`` (and
``lstmkit.cli.evaluate.evaluate``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lstmkit._logging import get_logger
from lstmkit.runtime.config_checks import ConfigError, check_config

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = get_logger(__name__)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test ``cfg.ckpt_path`` on ``cfg.data`` (or the checkpoint's own datamodule).

    Writes ``metrics.json`` (test metrics and the trivial baseline's), ``config.yaml`` and
    plots to ``cfg.paths.output_dir``; returns the test metrics like :func:`lstmkit.cli.train.train`.
    """
    from lstmkit.nn import BACKEND_NAMES
    from lstmkit.runtime import runs

    check_config(cfg, backends=BACKEND_NAMES)
    from lstmkit.runtime import guards  # never write into a folder that holds a run

    guards.check_output_dir(cfg.paths.output_dir)
    guards.check_run_folder(cfg.paths.output_dir, None)
    with runs.torch_threads(cfg.get("num_threads")), runs.expected_warnings_ignored():
        return _evaluate(cfg)


def _evaluate(cfg: DictConfig) -> dict[str, Any]:
    import lightning.pytorch as pl

    from lstmkit.runtime import runs
    from lstmkit.runtime.checkpoints import (
        datamodule_class,
        load_checkpoint,
        load_task,
        lstmkit_info,
    )
    from lstmkit.runtime.config_checks import instantiate_checked

    ckpt_path = Path(cfg.ckpt_path)
    if not ckpt_path.is_file():
        raise ConfigError(f"ckpt_path={str(ckpt_path)!r} is not a file: pass a .ckpt of a run")
    output_dir = Path(cfg.paths.output_dir)
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)

    # one safe read (weights_only=True, allow-listed classes): see lstmkit.runtime.checkpoints
    checkpoint = load_checkpoint(ckpt_path)
    info = lstmkit_info(checkpoint, ckpt_path)
    model = load_task(ckpt_path, checkpoint=checkpoint)
    task_cls = type(model)
    dm_cls = datamodule_class(checkpoint, ckpt_path)
    if cfg.get("data") is not None:
        datamodule = instantiate_checked(cfg.data, "data")
    elif dm_cls is not None:
        datamodule = dm_cls(**checkpoint.get("datamodule_hyper_parameters", {}))
    else:
        raise ConfigError("data is unset and the checkpoint names no datamodule: pass data=<name>")
    kind = runs.task_kind(info["task"])
    runs.check_fit(kind, datamodule, task_cls.__name__, type(datamodule).__name__)
    _check_sizes(model, datamodule)

    loggers = runs.instantiate_group(cfg.get("logger"), "logger")
    trainer = runs.build_trainer(cfg, [], loggers)
    runs.save_resolved_config(cfg, output_dir)
    log.info("Testing %s on %s", ckpt_path, type(datamodule).__name__)
    trainer.test(model=model, datamodule=datamodule, verbose=False)
    test_metrics = runs.test_metrics(trainer)
    baseline, description = runs.trivial_baseline(datamodule)
    runs.write_metrics_json(
        output_dir,
        {
            "test": test_metrics,
            "baseline": {"description": description, **baseline},
            "ckpt_path": str(ckpt_path),
        },
    )
    if cfg.get("plots", True):
        runs.make_plots(output_dir, kind, model, datamodule)
    result: dict[str, Any] = dict(test_metrics)
    result.update({f"baseline/{k.split('/', 1)[-1]}": v for k, v in baseline.items()})
    result["summary"] = runs.summary_lines(test_metrics, baseline, description)
    return result


def _check_sizes(model: Any, datamodule: Any) -> None:
    """The data must have the sizes the checkpoint's model was built for."""
    if not hasattr(datamodule, "model_kwargs"):
        return
    for key, value in datamodule.model_kwargs().items():
        if key in ("target_mean", "target_std"):
            continue  # evaluation keeps the model's own scaling
        expected = model.hparams.get(key)
        if expected is not None and expected != value:
            raise ConfigError(
                f"data gives {key}={value!r} but the checkpoint's model expects {key}={expected!r}"
            )
