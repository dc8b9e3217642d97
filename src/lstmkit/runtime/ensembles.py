"""Deep ensembles of forecasters: train one config with several seeds, average the forecasts.

A single small LSTM trained on a short series (Airline: 84 training windows, a 12-month
validation year) lands on a different solution for every seed, and picking its checkpoint on
so few validation points adds to that spread. Averaging the forecasts of ``N`` members that
differ only by their seed (a deep ensemble, Lakshminarayanan et al. 2017) removes most of this
model variance without looking at the test split: the members, their checkpoints and the
average are all fixed before testing.

    lstmkit-ensemble experiment=reference_airline model.encoder.backend=custom \
        trainer=cpu                      # ensemble.size members, seeds seed .. seed+size-1

The command (:mod:`lstmkit.cli.ensemble`, a thin shell) trains the members with
:func:`lstmkit.runtime.training.train` (each an ordinary run folder,
``<run>/seed_<s>/``), then writes ``<run>/ensemble.json`` (every member's validation and test
figures beside the ensemble's) and the ensemble's ``<run>/predictions.png``. The settings
``ensemble.size`` and ``ensemble.space`` come from the config (``experiment=reference_airline``
sets them; elsewhere the defaults 5 and ``log`` apply, or pass ``+ensemble.size=10``).

Forecasts are averaged in ``space="log"`` (the geometric mean, ``exp(mean(log p))``) or
``space="value"`` (the arithmetic mean). ``log`` is the natural choice for models trained on a
log-scale target (``data.log_target``): each member estimates the log of the value, so the
average of what they estimate is taken on that scale, and a member's relative error counts the
same whatever the series' level.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lstmkit._logging import get_logger
from lstmkit.runtime.config_checks import ConfigError

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = get_logger(__name__)

SPACES = ("log", "value")
#: torchmetrics' ``MeanAbsolutePercentageError`` clamps ``|target|`` to this.
MAPE_EPS = 1.17e-06
DEFAULT_SIZE = 5
DEFAULT_SPACE = "log"


def member_seeds(seed: int, size: int) -> list[int]:
    """The members' seeds: ``seed, seed + 1, ..., seed + size - 1`` (the first member is the
    single run of the same config and seed)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"ensemble.size={size!r} is not allowed: must be an integer >= 1")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed={seed!r}: an ensemble needs an integer seed")
    return [seed + k for k in range(size)]


def average_forecasts(preds: Any, space: str = DEFAULT_SPACE) -> Any:
    """Average member forecasts ``(N, ...)`` over the first dimension -> ``(...)``.

    Args:
        preds: a tensor ``(N, ...)`` or a sequence of ``N`` equally shaped tensors, in the
            target's original units.
        space: ``"log"``: ``exp(mean(log p))`` (every value must be > 0); ``"value"``:
            ``mean(p)``.
    """
    import torch

    if space not in SPACES:
        raise ConfigError(f"ensemble.space={space!r} is not allowed: choose one of log, value")
    stacked = preds if isinstance(preds, torch.Tensor) else torch.stack(list(preds))
    if stacked.dim() == 0 or len(stacked) == 0:
        raise ValueError("average_forecasts: no member forecasts")
    if space == "value":
        return stacked.mean(0)
    if not bool((stacked > 0).all()):
        raise ValueError("average_forecasts(space='log'): every forecast must be > 0")
    return stacked.log().mean(0).exp()


def mape(pred: Any, target: Any) -> float:
    """Mean absolute percentage error as a fraction, as ``test/mape`` (torchmetrics):
    ``mean(|pred - target| / max(|target|, 1.17e-6))`` over all values."""
    error = (pred - target).abs() / target.abs().clamp_min(MAPE_EPS)
    return float(error.double().mean())


def predict_split(model: Any, datamodule: Any, split: str = "test") -> dict[str, Any]:
    """``{"pred", "target"}`` of one split (``"val"`` or ``"test"``) in original units."""
    import torch

    loaders = {"val": datamodule.val_dataloader, "test": datamodule.test_dataloader}
    if split not in loaders:
        raise ValueError(f"split={split!r}: choose val or test")
    model.eval()
    outputs: dict[str, list[Any]] = {}
    with torch.no_grad():
        for batch in loaders[split]():
            batch = [t.to(model.device) for t in batch]
            for key, value in model.predict_step(batch, 0).items():
                outputs.setdefault(key, []).append(value.cpu())
    return {key: torch.cat(values) for key, values in outputs.items()}


def last_step(values: Any) -> Any:
    """The last horizon step of forecasts ``(N, H, O)`` -> ``(N, O)`` (each forecast at its
    full lead time; what ``mape_last`` scores)."""
    return values[:, -1]


def ensemble_figures(
    models: Sequence[Any],
    datamodule: Any,
    splits: Sequence[str] = ("val", "test"),
    space: str = DEFAULT_SPACE,
) -> dict[str, Any]:
    """Each member's and the ensemble's MAPE on each split the data has (no ``val`` with
    ``val_fraction=0``).

    Returns:
        ``{"<split>/mape": ensemble, "<split>/member_mape": [one per model],
        "<split>/pred": ensemble forecasts, "<split>/target": truth}`` for every split; for
        multi-step forecasts ``(N, H, O)`` also ``"<split>/mape_last"`` and
        ``"<split>/member_mape_last"``, of the last horizon step alone.
    """
    if not models:
        raise ValueError("ensemble_figures: no models")
    datamodule.setup("test")
    figures: dict[str, Any] = {}
    available = getattr(datamodule, "splits", None)  # None: assume every split exists
    for split in splits:
        if available is not None and split not in available:
            continue
        outs = [predict_split(model, datamodule, split) for model in models]
        target = outs[0]["target"]
        pred = average_forecasts([o["pred"] for o in outs], space)
        figures[f"{split}/mape"] = mape(pred, target)
        figures[f"{split}/member_mape"] = [mape(o["pred"], target) for o in outs]
        if pred.dim() == 3 and pred.shape[1] > 1:
            figures[f"{split}/mape_last"] = mape(last_step(pred), last_step(target))
            figures[f"{split}/member_mape_last"] = [
                mape(last_step(o["pred"]), last_step(target)) for o in outs
            ]
        figures[f"{split}/pred"] = pred
        figures[f"{split}/target"] = target
    return figures


def ensemble_settings(cfg: DictConfig) -> tuple[int, str]:
    """``(size, space)`` from ``cfg.ensemble`` (defaults 5 and ``"log"``)."""
    node = cfg.get("ensemble") or {}
    size, space = node.get("size", DEFAULT_SIZE), node.get("space", DEFAULT_SPACE)
    member_seeds(0, size)  # checks size
    if space not in SPACES:
        raise ConfigError(f"ensemble.space={space!r} is not allowed: choose one of log, value")
    return int(size), str(space)


def train_ensemble(
    cfg: DictConfig,
    run_dir: str | Path,
    size: int | None = None,
    space: str | None = None,
    train_fn: Any = None,
) -> dict[str, Any]:
    """Train ``size`` members of ``cfg`` (seeds ``cfg.seed .. cfg.seed + size - 1``) into
    ``run_dir/seed_<s>/``, test each member's best checkpoint and the average of their
    forecasts; write ``run_dir/ensemble.json``.

    Args:
        cfg: a composed ``train`` config (``paths.output_dir`` is replaced per member).
        run_dir: the ensemble's folder.
        size, space: override ``cfg.ensemble.size`` / ``cfg.ensemble.space``.
        train_fn: the training function (default :func:`lstmkit.runtime.training.train`).

    Returns:
        ``{"seeds", "space", "members": [train()'s result per member], "val/mape",
        "val/member_mape", "test/mape", "test/member_mape", "test/rmse", "epochs"}``.
    """
    from hydra.utils import instantiate
    from omegaconf import open_dict

    from lstmkit.runtime.checkpoints import load_task

    if train_fn is None:
        from lstmkit.runtime.training import train as train_fn
    default_size, default_space = ensemble_settings(cfg)
    size = default_size if size is None else size
    space = default_space if space is None else space
    seeds = member_seeds(cfg.get("seed"), size)
    run_dir = Path(run_dir)
    members, models = [], []
    for seed in seeds:
        member_cfg = copy.deepcopy(cfg)
        with open_dict(member_cfg):
            member_cfg.seed = seed
            member_cfg.paths.output_dir = str(run_dir / f"seed_{seed}")
        log.info("Ensemble member seed=%d (%d of %d)", seed, len(members) + 1, size)
        result = train_fn(member_cfg)
        best = result.get("best_model_path")
        if not best:
            raise ConfigError(
                "an ensemble member left no best checkpoint (callbacks.model_checkpoint)"
            )
        members.append(result)
        models.append(load_task(best))
    datamodule = instantiate(cfg.data)
    figures = ensemble_figures(models, datamodule, space=space)
    pred, target = figures["test/pred"], figures["test/target"]
    rmse = float(((pred - target) ** 2).double().mean().sqrt())
    epochs = [_epochs(Path(m["best_model_path"]).parents[1]) for m in members]
    scores = {
        k: v for k, v in figures.items() if "mape" in k
    }  # {val,test}/[member_]mape[_last]: the splits and steps the data has
    summary = {
        "seeds": seeds,
        "space": space,
        **scores,
        "test/rmse": rmse,
        "epochs": epochs,
        "member_dirs": [str(run_dir / f"seed_{s}") for s in seeds],
        "test/pred": pred.reshape(-1).tolist(),
        "test/target": target.reshape(-1).tolist(),
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "ensemble.json").write_text(json.dumps(summary, indent=2) + "\n")
    if cfg.get("plots", True):
        from lstmkit.runtime import plots

        consecutive = getattr(datamodule, "consecutive_windows", False)
        plots.plot_predictions(pred, target, run_dir / "predictions.png", consecutive=consecutive)
    return {**summary, "members": members}


def _epochs(member_dir: Path) -> int:
    try:
        return int(json.loads((member_dir / "metrics.json").read_text()).get("epochs", 0))
    except (OSError, ValueError):
        return 0


def summary_lines(result: Mapping[str, Any]) -> list[str]:
    """The ensemble's and each member's MAPE, one line each."""
    lines = [
        f"Ensemble of {len(result['seeds'])} seeds, forecasts averaged in {result['space']} space"
    ]
    keys = [k for k in ("val/mape", "val/mape_last", "test/mape", "test/mape_last") if k in result]
    lines.append(f"  {'member':<10}" + "".join(f" {k:>14}" for k in keys))
    for i, seed in enumerate(result["seeds"]):
        members = [result[k.replace("/", "/member_")][i] for k in keys]
        lines.append(f"  seed {seed:<5}" + "".join(f" {m:>14.2%}" for m in members))
    lines.append(f"  {'ensemble':<10}" + "".join(f" {result[k]:>14.2%}" for k in keys))
    return lines
