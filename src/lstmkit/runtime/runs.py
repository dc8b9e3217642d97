"""What ``lstmkit-train`` and ``lstmkit-eval`` share: building the pieces from a config and
writing the run folder (resolved config, ``metrics.json``, plots) and the final summary.

Imported inside the entry points' task functions: it pulls in Lightning.
"""

from __future__ import annotations

import contextlib
import json
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningDataModule, LightningModule, Trainer
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from lstmkit._logging import get_logger
from lstmkit.runtime.config_checks import ConfigError, instantiate_checked

log = get_logger(__name__)


@contextlib.contextmanager
def expected_warnings_ignored() -> Iterator[None]:
    """Silence Lightning warnings that a run folder shared with Hydra makes expected."""
    with warnings.catch_warnings():
        # the CSV logger writes into the run folder, where Hydra's files already are
        warnings.filterwarnings("ignore", message=r"Experiment logs directory .* is not empty")
        yield


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """``torch.set_num_threads(num_threads)`` inside the block (None: leave torch's default)."""
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def instantiate_group(cfg: DictConfig | None, group: str) -> list[Any]:
    """Instantiate every entry with a ``_target_`` in a group such as ``callbacks``/``logger``."""
    if not cfg:
        return []
    objects = []
    for key, node in cfg.items():
        if isinstance(node, DictConfig) and "_target_" in node:
            log.info("Instantiating %s <%s>", group, node._target_)
            objects.append(instantiate_checked(node, f"{group}.{key}"))
    return objects


def task_kind(target: str) -> str:
    """``"classification"``, ``"regression"`` or ``"seq2seq"`` for a task class path."""
    from hydra.utils import get_class

    from lstmkit.tasks import Seq2SeqLSTM, SequenceClassifier, SequenceRegressor

    try:
        cls = get_class(target)
    except Exception as err:  # hydra raises ImportError or ValueError
        raise ConfigError(f"model._target_={target!r} cannot be imported: {err}") from err
    if issubclass(cls, SequenceClassifier):
        return "classification"
    if issubclass(cls, SequenceRegressor):
        return "regression"
    if issubclass(cls, Seq2SeqLSTM):
        return "seq2seq"
    return "unknown"


def check_fit(kind: str, datamodule: LightningDataModule, model_name: str, data_name: str) -> None:
    """A classifier needs class labels and a regressor real targets: say which model fits."""
    data_kind = getattr(datamodule, "task", None)
    if kind == "seq2seq" and data_kind == "regression":
        return  # real-valued decoding of the target steps (Seq2SeqLSTM with output_size)
    if kind != "unknown" and data_kind and kind != data_kind:
        wanted = {"classification": "classifier", "seq2seq": "seq2seq"}.get(data_kind, "regressor")
        raise ConfigError(
            f"model={model_name} does not fit data={data_name} ({data_kind} targets): "
            f"choose model={wanted}"
        )


def check_forecast_rows(target: str, datamodule: LightningDataModule, data_name: str) -> None:
    """An autoregressive forecaster reads the forecast rows' covariates, which only data with
    ``future_covariates=true`` gives; any other task would read those rows as the past."""
    from hydra.utils import get_class

    from lstmkit.tasks import AutoregressiveForecaster

    feeds_back = issubclass(get_class(target), AutoregressiveForecaster)
    future = bool(getattr(datamodule, "future_covariates", False))
    if feeds_back and not future:
        raise ConfigError(
            f"model=autoregressive needs each window's forecast rows (their covariates), "
            f"which data={data_name} gives with data.future_covariates=true: set it (a "
            "time-series datamodule: csv, airline)"
        )
    if future and not feeds_back:
        raise ConfigError(
            "data.future_covariates=true appends the forecast rows to every window, which "
            "only model=autoregressive reads: choose model=autoregressive, or set "
            "data.future_covariates=false"
        )


#: ``patience: auto``: early stopping waits this many optimizer steps without a better
#: ``val/loss``, counted in epochs and kept within PATIENCE_EPOCHS. Few batches an epoch (a small
#: dataset) means many epochs of patience; a large dataset stops after 10 flat epochs.
PATIENCE_STEPS = 300
PATIENCE_EPOCHS = (10, 50)
#: the plateau scheduler's ``patience: auto``: this fraction of the early-stopping patience,
#: so the learning rate is halved about twice before training stops
LR_PATIENCE_FRACTION = 1 / 3


def auto_patience(batches_per_epoch: int) -> tuple[int, int]:
    """``(early-stopping patience, learning-rate plateau patience)`` in epochs for a training
    split of ``batches_per_epoch`` batches (the rule of ``patience: auto``).

    >>> auto_patience(32), auto_patience(2)
    ((10, 3), (50, 16))
    """
    low, high = PATIENCE_EPOCHS
    stop = min(high, max(low, math.ceil(PATIENCE_STEPS / max(1, batches_per_epoch))))
    return stop, max(2, int(stop * LR_PATIENCE_FRACTION))


def resolve_auto_patience(cfg: DictConfig, datamodule: LightningDataModule) -> None:
    """Replace ``patience: auto`` in the early-stopping callbacks and the plateau scheduler
    (``model.scheduler``) by :func:`auto_patience` of the training split, in place: the run's
    ``config.yaml`` records the values used."""
    nodes = [
        (f"callbacks.{name}", node, 0)
        for name, node in (cfg.get("callbacks") or {}).items()
        if isinstance(node, DictConfig) and node.get("patience") == "auto"
    ]
    scheduler = OmegaConf.select(cfg, "model.scheduler")
    if isinstance(scheduler, DictConfig) and scheduler.get("patience") == "auto":
        nodes.append(("model.scheduler", scheduler, 1))
    if not nodes:
        return
    batches = len(datamodule.train_dataloader())
    values = auto_patience(batches)
    for key, node, which in nodes:
        with open_dict(node):
            node.patience = values[which]
        log.info(
            "%s.patience=auto: %d epochs (%d training batches an epoch)",
            key,
            values[which],
            batches,
        )


def has_validation(datamodule: LightningDataModule) -> bool:
    """Whether the datamodule has a validation split (``val_fraction=0`` gives none)."""
    splits = getattr(datamodule, "splits", None)
    return not isinstance(splits, dict) or not splits or "val" in splits


def logged_metrics(model: LightningModule) -> set[str]:
    """The names a task logs (``val/loss``, ``val/mse``, ``train/loss_epoch``, ...)."""
    names = {"train/loss_step", "train/loss_epoch"}
    for stage in ("train", "val", "test"):
        names.add(f"{stage}/loss")
        metrics = getattr(model, f"{stage}_metrics", None)
        if metrics is not None:
            names.update(str(k) for k in metrics.keys(keep_base=False))  # "val/mse"
    if type(model).__name__ == "Seq2SeqLSTM":
        names.add("train/teacher_forcing")
    return names


def adapt_callbacks(
    cfg: DictConfig | None, model: LightningModule, validation: bool
) -> DictConfig | None:
    """The callbacks config checked against what the task logs, and adapted to a run without
    a validation split.

    Every ``monitor`` must name a metric the task logs (else a ConfigError listing them).
    Without a validation split, callbacks that monitor a ``val/`` metric are left out (early
    stopping; the best-checkpoint callback, whose job ``last_checkpoint`` then does: the
    final weights are tested) and of several checkpoint callbacks without a monitor only the
    last is kept (Lightning refuses two with the same state).
    """
    if not cfg:
        return cfg
    logged = logged_metrics(model)
    cfg = cfg.copy()
    for name, node in list(cfg.items()):
        monitor = node.get("monitor") if isinstance(node, DictConfig) else None
        if monitor is None:
            continue
        if str(monitor) not in logged:
            allowed = sorted(m for m in logged if validation or not m.startswith("val/"))
            raise ConfigError(
                f"callbacks.{name}.monitor={monitor!r} is not a metric this task logs: choose "
                f"one of {', '.join(allowed)} (or null)"
            )
        if not validation and str(monitor).startswith("val/"):
            log.info(
                "No validation split: callbacks.%s (monitor=%s) left out; the final weights "
                "are tested",
                name,
                monitor,
            )
            with open_dict(cfg):
                del cfg[name]
    if not validation:
        unmonitored = [
            name
            for name, node in cfg.items()
            if isinstance(node, DictConfig)
            and str(node.get("_target_", "")).endswith("ModelCheckpoint")
            and node.get("monitor") is None
        ]
        with open_dict(cfg):
            for name in unmonitored[:-1]:
                del cfg[name]
    return cfg


def adapt_to_no_validation(cfg: DictConfig, validation: bool, chosen: bool = False) -> None:
    """Without a validation split nothing reacts to ``val/loss``. A plateau scheduler
    (ReduceLROnPlateau) the user chose (``chosen``) is refused; the default one is left out,
    in place. The run then trains ``trainer.max_epochs`` epochs, which a warning states (early
    stopping is left out by :func:`adapt_callbacks`).

    Raises:
        ConfigError: ``chosen`` and the scheduler steps on ``val/loss``.
    """
    if validation:
        return
    target = str(OmegaConf.select(cfg, "model.scheduler._target_", default="") or "")
    if target.endswith("ReduceLROnPlateau"):
        if chosen:
            raise ConfigError(
                "model.scheduler=plateau steps on val/loss, but data.val_fraction=0 leaves no "
                "validation split: set data.val_fraction > 0, or model.scheduler=cosine or null"
            )
        log.info(
            "No validation split: model.scheduler (ReduceLROnPlateau on val/loss) left out; "
            "the learning rate stays fixed (model.scheduler=cosine decays it by epoch)"
        )
        with open_dict(cfg):
            cfg.model.scheduler = None
    if cfg.get("train", True):
        log.warning(
            "No validation split (data.val_fraction=0): nothing stops training early, so it "
            "runs trainer.max_epochs=%s epochs; set trainer.max_epochs to the budget you want",
            OmegaConf.select(cfg, "trainer.max_epochs", default=None),
        )


def check_resume_fits(
    ckpt_path: str, checkpoint: dict[str, Any], model: LightningModule, data_kwargs: dict
) -> None:
    """A checkpoint to resume from was trained on data of the same sizes as this run's."""
    saved = checkpoint.get("hyper_parameters", {})
    for key, value in data_kwargs.items():
        if key in ("target_mean", "target_std", "target_channels"):
            continue
        if key in saved and saved[key] is not None and saved[key] != value:
            raise ConfigError(
                f"ckpt_path={ckpt_path!r} was trained with {key}={saved[key]!r}, but this data "
                f"gives {key}={value!r}: resume on data of the same shape (columns, channels, "
                "classes), or start a new run without ckpt_path"
            )
    own = model.state_dict()
    for name, tensor in checkpoint.get("state_dict", {}).items():
        if name in own and tuple(own[name].shape) != tuple(tensor.shape):
            raise ConfigError(
                f"ckpt_path={ckpt_path!r} holds {name} of shape {tuple(tensor.shape)}, but the "
                f"model built for this config and data has {tuple(own[name].shape)}: resume "
                "with the run's own model and data settings, or start a new run"
            )


def restore_best(model: LightningModule, path: str) -> None:
    """Load the weights of the best checkpoint (``path``) into ``model`` after fitting."""
    from lstmkit.runtime.checkpoints import load_checkpoint

    model.load_state_dict(load_checkpoint(path)["state_dict"])
    log.info("Restored the best checkpoint's weights: %s", path)


def build_trainer(cfg: DictConfig, callbacks: list[Callback], loggers: list[Logger]) -> Trainer:
    return instantiate_checked(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False)


def save_resolved_config(cfg: DictConfig, output_dir: Path) -> None:
    """``config.yaml``: the composed config with every interpolation resolved."""
    if rank_zero_only.rank != 0:
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.pop("hydra", None)  # Hydra's own settings are in .hydra/ already
    plain = OmegaConf.to_container(cfg, resolve=True)
    (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(plain)))


def tensor_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in sorted(metrics.items()) if not k.endswith("_step")}


def test_metrics(trainer: Trainer) -> dict[str, float]:
    """The ``test/`` metrics of the trainer's last test run, as floats."""
    return {
        k: v for k, v in tensor_metrics(trainer.callback_metrics).items() if k.startswith("test/")
    }


def trivial_baseline(datamodule: LightningDataModule) -> tuple[dict[str, float], str]:
    """``(test metrics, description)`` of the datamodule's naive baseline (empty if none)."""
    baseline = datamodule.trivial_baseline() if hasattr(datamodule, "trivial_baseline") else {}
    return baseline, getattr(datamodule, "baseline_description", "")


@torch.no_grad()
def predict(model: LightningModule, datamodule: LightningDataModule) -> dict[str, torch.Tensor]:
    """Run ``predict_step`` over the test split; concatenated outputs (original units)."""
    model.eval()
    outputs: dict[str, list[torch.Tensor]] = {}
    for batch in datamodule.test_dataloader():
        batch = [t.to(model.device) for t in batch]
        for key, value in model.predict_step(batch, 0).items():
            outputs.setdefault(key, []).append(value.cpu())
    return {key: torch.cat(values) for key, values in outputs.items()}


def make_plots(
    output_dir: Path, kind: str, model: LightningModule, datamodule: LightningDataModule
) -> list[Path]:
    """Learning curves (when ``metrics.csv`` exists) and predictions vs truth or a confusion
    matrix on the test split."""
    if rank_zero_only.rank != 0:
        return []
    from lstmkit.runtime import plots

    saved = []
    metrics_csv = output_dir / "metrics.csv"
    if metrics_csv.is_file():
        path = plots.plot_learning_curves(metrics_csv, output_dir / "learning_curves.png")
        saved += [path] if path else []
    out = predict(model, datamodule)
    real_valued = kind == "seq2seq" and "pred" in out and out["pred"].is_floating_point()
    if "target" in out and (kind == "regression" or real_valued):
        interval = None
        if "quantiles" in out:  # a probabilistic forecast: its lowest-highest quantile band
            levels = out["quantile_levels"][0].tolist()
            label = f"{levels[0]:g}-{levels[-1]:g} quantiles"
            interval = (out["quantiles"][..., 0], out["quantiles"][..., -1], label)
        saved.append(
            plots.plot_predictions(
                out["pred"],
                out["target"],
                output_dir / "predictions.png",
                consecutive=getattr(datamodule, "consecutive_windows", False),
                interval=interval,
            )
        )
    elif "target" in out and kind == "seq2seq" and out["pred"].dim() == 2:
        saved.append(
            plots.plot_sequence_accuracy(out["pred"], out["target"], output_dir / "sequences.png")
        )
    elif "target" in out and kind == "classification":
        names = getattr(datamodule, "class_names", None)
        saved.append(
            plots.plot_confusion_matrix(
                out["pred"],
                out["target"],
                int(model.hparams.num_classes),
                output_dir / "confusion_matrix.png",
                class_names=list(names) if names else None,
            )
        )
    return saved


def write_metrics_json(output_dir: Path, payload: dict[str, Any]) -> Path | None:
    if rank_zero_only.rank != 0:
        return None
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "metrics.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path


def summary_lines(
    test: dict[str, float], baseline: dict[str, float], description: str
) -> list[str]:
    """Human-readable test metrics next to the trivial baseline's."""
    lower_is_better = (
        "loss",
        "mse",
        "mae",
        "rmse",
        "mape",
        "mase",
        "smape",
        "rmse_series",
        "pinball",
    )
    lines = [f"Trivial baseline: {description}"]
    lines.append(f"  {'metric':<17} {'model':>12} {'baseline':>12}")
    for key, value in sorted(test.items()):
        base = baseline.get(key)
        row = f"  {key:<17} {value:>12.4g}"
        if base is not None and math.isfinite(base):
            row += f" {base:>12.4g}"
            name = key.rsplit("/", 1)[-1]
            if name in lower_is_better and value > 0:
                row += f"   ({base / value:.1f}x lower)"
            elif name == "acc":
                row += f"   ({value - base:+.3f})"
        lines.append(row)
    return lines
