"""Training a config: fit ``cfg.model`` on ``cfg.data``, test the best checkpoint, fill the run
folder. What ``lstmkit-train`` (:mod:`lstmkit.cli.train`), its sweeps and ``lstmkit-ensemble``
run; importable as ``lstmkit.runtime.training.train`` (and ``lstmkit.cli.train.train``).

Heavy modules (torch, Lightning, torchmetrics) are imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lstmkit._logging import get_logger
from lstmkit.runtime.config_checks import check_config

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = get_logger(__name__)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit ``cfg.model`` on ``cfg.data`` with ``cfg.trainer``, test, and fill the run folder.

    The run folder (``cfg.paths.output_dir``) receives ``config.yaml`` (resolved),
    ``checkpoints/{best,last}.ckpt``, ``metrics.csv`` (CSV logger), ``metrics.json`` (final
    test metrics and the trivial baseline's) and PNG plots.

    Returns:
        ``{"test/...": float, ..., "baseline/...": float, "best_model_path": str}``; the test
        entries are empty if ``cfg.test`` is false.

    Raises:
        ConfigError: a bad value, before anything is trained.
    """
    from lstmkit._backend_names import BACKEND_NAMES
    from lstmkit.runtime import runs
    from lstmkit.runtime.override_checks import check_encoder

    check_config(cfg, backends=BACKEND_NAMES)
    check_encoder(cfg)  # the encoder's constructor: the one rule for its values
    _check_files(cfg)
    with runs.torch_threads(cfg.get("num_threads")), runs.expected_warnings_ignored():
        return _train(cfg)


def _train(cfg: DictConfig) -> dict[str, Any]:
    import lightning.pytorch as pl

    from lstmkit.runtime import runs
    from lstmkit.runtime.checkpoints import load_checkpoint, safe_globals
    from lstmkit.runtime.config_checks import instantiate_checked

    output_dir = Path(cfg.paths.output_dir)
    from lstmkit.runtime import determinism

    determinism.write_record(determinism.apply(cfg), output_dir)  # deterministic=true
    if cfg.get("seed") is not None:
        pl.seed_everything(cfg.seed, workers=True, verbose=False)

    log.info("Instantiating datamodule <%s>", cfg.data._target_)
    datamodule = instantiate_checked(cfg.data, "data")
    kind = runs.task_kind(cfg.model._target_)
    runs.check_fit(kind, datamodule, _choice("model"), _choice("data"))
    runs.check_forecast_rows(cfg.model._target_, datamodule, _choice("data"))
    data_kwargs = datamodule.model_kwargs() if hasattr(datamodule, "model_kwargs") else {}
    validation = runs.has_validation(datamodule)
    runs.adapt_to_no_validation(cfg, validation, chosen=_overridden("model/scheduler"))
    runs.resolve_auto_patience(cfg, datamodule)  # patience: auto, from the training split
    log.info("Instantiating model <%s> with %s from the data", cfg.model._target_, data_kwargs)
    model = instantiate_checked(cfg.model, "model", **data_kwargs)
    from lstmkit.tasks.tbptt import hand_over_gradient_clipping

    hand_over_gradient_clipping(model, cfg.trainer)  # tbptt_steps: the task clips itself

    if cfg.get("ckpt_path") and cfg.get("train", True):
        checkpoint = load_checkpoint(cfg.ckpt_path)
        runs.check_resume_fits(str(cfg.ckpt_path), checkpoint, model, data_kwargs)
    callbacks_cfg = runs.adapt_callbacks(cfg.get("callbacks"), model, validation)
    callbacks = runs.instantiate_group(callbacks_cfg, "callbacks")
    loggers = runs.instantiate_group(cfg.get("logger"), "logger")
    trainer = runs.build_trainer(cfg, callbacks, loggers)
    runs.save_resolved_config(cfg, output_dir)

    if cfg.get("train", True):
        log.info("Training (run folder: %s)", output_dir)
        with safe_globals():
            trainer.fit(
                model=model,
                datamodule=datamodule,
                ckpt_path=cfg.get("ckpt_path"),
                weights_only=True,  # untrusted checkpoints: see lstmkit.runtime.checkpoints
            )
    fit_metrics = runs.tensor_metrics(trainer.callback_metrics)
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    if cfg.get("train", True) and best:
        runs.restore_best(model, best)  # plots, predictions and the returned model: the best

    test_metrics: dict[str, float] = {}
    if not cfg.get("train", True) and cfg.get("ckpt_path"):
        best = str(cfg.ckpt_path)  # test only: the given checkpoint
    if cfg.get("test", True):
        log.info("Testing %s", best or "the final weights")
        with safe_globals():
            trainer.test(
                model=model,
                datamodule=datamodule,
                ckpt_path=best or None,
                verbose=False,
                weights_only=True,
            )
        test_metrics = runs.test_metrics(trainer)

    baseline, description = runs.trivial_baseline(datamodule)
    runs.write_metrics_json(
        output_dir,
        {
            "test": test_metrics,
            "fit": {k: v for k, v in fit_metrics.items() if not k.startswith("test/")},
            "baseline": {"description": description, **baseline},
            "best_model_path": best,
            "epochs": trainer.current_epoch,
        },
    )
    if cfg.get("plots", True) and not trainer.fast_dev_run:
        runs.make_plots(output_dir, kind, model, datamodule)

    result: dict[str, Any] = dict(test_metrics)
    result.update({f"baseline/{k.split('/', 1)[-1]}": v for k, v in baseline.items()})
    result["best_model_path"] = best
    # the last validation metrics and the best checkpoint's score, for sweeps (optimized_metric)
    result.update({k: v for k, v in fit_metrics.items() if k.startswith("val/")})
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None and checkpoint.monitor and checkpoint.best_model_score is not None:
        result[f"{checkpoint.monitor}_best"] = float(checkpoint.best_model_score)
    result["summary"] = runs.summary_lines(test_metrics, baseline, description)
    return result


def _check_files(cfg: DictConfig) -> None:
    """Before anything is loaded: the run folder is writable and holds no other run, and a
    ``ckpt_path`` to resume from is a safe lstmkit checkpoint of the same task."""
    from omegaconf import OmegaConf, open_dict

    from lstmkit.runtime import guards
    from lstmkit.runtime.checkpoints import check_resume

    ckpt_path = cfg.get("ckpt_path")
    requeued = None if ckpt_path else guards.requeue_checkpoint(cfg.paths.output_dir)
    if requeued is not None:  # SLURM requeued this job into its own run folder: resume it
        log.info("Requeued job: resuming from %s", requeued)
        with open_dict(cfg):
            cfg.ckpt_path = ckpt_path = str(requeued)
    guards.check_output_dir(cfg.paths.output_dir)
    from lstmkit.runtime.distributed import is_launched_rank

    # a DDP worker (local rank > 0) joins the run folder its rank 0 has just started
    if cfg.get("train", True) and not is_launched_rank():
        guards.check_run_folder(cfg.paths.output_dir, ckpt_path)
    if ckpt_path:
        epoch_seed = OmegaConf.select(cfg, "callbacks.epoch_seed.seed", default=None)
        check_resume(ckpt_path, str(cfg.model._target_), resumable_loader=epoch_seed is not None)


def _overridden(group: str) -> bool:
    """Whether the command line chose ``group`` (``model/scheduler=plateau``), not a default."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return False
    overrides = HydraConfig.get().overrides.task
    return any(o.lstrip("+~").split("=", 1)[0] == group for o in overrides)


def _choice(group: str) -> str:
    """The config name chosen for a group (``data=sine`` -> ``"sine"``), or the group name."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        choice = HydraConfig.get().runtime.choices.get(group)
        if choice:
            return str(choice)
    return f"<{group}>"
