"""Robustness of a trained task: test metrics under Gaussian noise, missing steps and truncation.

Each perturbation is applied to the test split's batches, with its own seeded generator, and
the task's own ``test_step`` computes the metrics, so level 0 (no noise, nothing missing, the
whole sequence) gives exactly the plain test metrics.

- ``noise``: float inputs get ``x + level * N(0, 1)`` at valid steps (inputs are standardised
  by most datamodules, so ``level`` is in standard deviations); token inputs have each token
  replaced by a uniformly drawn one with probability ``level``.
- ``missing``: each valid step is missing with probability ``level``. Data with a missing-value
  policy ``missing="mask"`` gets what its policy does with a gap (imputation ``ffill``/``zero``
  and the missing-indicator channels set to 1); other float data gets the step zeroed, token
  data the padding token.
- ``truncate``: only the first ``ceil(level * length)`` steps of each sequence are kept
  (``level`` = 1 is the whole sequence); per-step labels past the new end are ignored.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lstmkit._logging import get_logger
from lstmkit.data.missing import forward_fill

log = get_logger(__name__)

PERTURBATIONS = ("noise", "missing", "truncate")
#: The level that leaves the data unchanged, per perturbation.
CLEAN_LEVEL = {"noise": 0.0, "missing": 0.0, "truncate": 1.0}
IGNORE_INDEX = -100

Batch = tuple[Tensor, Tensor, Tensor]


def _valid(lengths: Tensor, steps: int) -> Tensor:
    return torch.arange(steps, device=lengths.device) < lengths.unsqueeze(1)  # (B, T)


def perturb(
    batch: Batch,
    kind: str,
    level: float,
    generator: torch.Generator,
    *,
    vocab_size: int | None = None,
    padding_idx: int = 0,
    missing_policy: str | None = None,
    impute: str = "ffill",
    per_step_targets: bool = False,
) -> Batch:
    """One perturbed batch ``(x, y, lengths)`` (see the module doc); the clean level returns
    the batch unchanged."""
    if kind not in PERTURBATIONS:
        raise ValueError(f"perturbation={kind!r}: must be one of {', '.join(PERTURBATIONS)}")
    x, y, lengths = batch
    if level == CLEAN_LEVEL[kind]:
        return batch
    tokens = not torch.is_floating_point(x)
    steps = x.shape[1]
    valid = _valid(lengths, steps)  # (B, T)
    if kind == "truncate":
        new_lengths = torch.ceil(lengths.double() * level).long().clamp(1, None)
        new_lengths = torch.minimum(new_lengths, lengths)
        keep = _valid(new_lengths, steps)
        x = x * keep.view(*keep.shape, *([1] * (x.dim() - 2))).to(x.dtype)
        if per_step_targets and y.shape[:2] == x.shape[:2]:
            y = torch.where(keep, y, torch.full_like(y, IGNORE_INDEX))
        return x, y, new_lengths
    draw = torch.rand(valid.shape, generator=generator).to(x.device)  # (B, T)
    hit = (draw < level) & valid  # (B, T)
    if kind == "noise":
        if tokens:
            if vocab_size is None:
                raise ValueError("noise on token inputs needs the model's vocab_size")
            random = torch.randint(0, vocab_size, x.shape, generator=generator).to(x.device)
            return torch.where(hit, random, x), y, lengths
        channels = x.shape[-1] // 2 if missing_policy == "mask" else x.shape[-1]
        noise = torch.randn(x.shape, generator=generator).to(x.device) * level
        noise[..., channels:] = 0.0  # never on missing-indicator channels
        return x + noise * valid.unsqueeze(-1), y, lengths
    # missing
    if tokens:
        return torch.where(hit, torch.full_like(x, padding_idx), x), y, lengths
    if missing_policy == "mask":
        channels = x.shape[-1] // 2
        values, indicators = x[..., :channels], x[..., channels:]
        gaps = hit.unsqueeze(-1).expand_as(values)
        values = values.masked_fill(gaps, float("nan"))
        values = forward_fill(values) if impute == "ffill" else torch.nan_to_num(values, nan=0.0)
        indicators = torch.where(gaps, torch.ones_like(indicators), indicators)
        return torch.cat([values, indicators], dim=-1) * valid.unsqueeze(-1), y, lengths
    return x.masked_fill(hit.unsqueeze(-1), 0.0), y, lengths


class PerturbedLoader:
    """Iterates a loader's batches through ``fn(batch, generator)`` with a fresh seeded
    generator per pass."""

    def __init__(self, loader: Any, fn: Callable[[Batch, torch.Generator], Batch], seed: int):
        self.loader, self.fn, self.seed = loader, fn, seed

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Batch]:
        generator = torch.Generator().manual_seed(self.seed)
        for batch in self.loader:
            yield self.fn(tuple(batch), generator)


def default_levels() -> dict[str, list[float]]:
    return {
        "noise": [0.0, 0.1, 0.25, 0.5, 1.0],
        "missing": [0.0, 0.1, 0.25, 0.5],
        "truncate": [1.0, 0.75, 0.5, 0.25],
    }


def evaluate_robustness(
    model: Any,
    datamodule: Any,
    levels: dict[str, Sequence[float]] | None = None,
    seed: int = 0,
    trainer: Any = None,
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Test ``model`` on ``datamodule``'s test split at every level of every perturbation.

    Returns:
        ``(rows, clean)``: rows ``{"perturbation", "level", "test/loss", ...}`` in order, and
        the plain test metrics (``trainer.test`` on the untouched datamodule).
    """
    import lightning.pytorch as pl

    from lstmkit.runtime.runs import tensor_metrics

    levels = default_levels() if levels is None else {k: list(v) for k, v in levels.items()}
    for kind, values in levels.items():
        if kind not in PERTURBATIONS:
            raise ValueError(f"levels.{kind}: unknown perturbation; choose {PERTURBATIONS}")
        for value in values:
            high = 1.0
            low = 0.0 if kind != "truncate" else 1e-9
            if kind == "noise" and not _token_inputs(datamodule):
                high = math.inf
            if not low <= float(value) <= high:
                raise ValueError(f"levels.{kind}: {value!r} must lie in [{low:g}, {high:g}]")
    if trainer is None:
        trainer = pl.Trainer(
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
        )
    datamodule.setup("test")
    trainer.test(model, datamodule=datamodule, verbose=False)
    clean = {k: v for k, v in tensor_metrics(trainer.callback_metrics).items() if "test/" in k}
    hp = model.hparams
    options = {
        "vocab_size": hp.get("vocab_size"),
        "padding_idx": hp.get("padding_idx") or 0,
        "missing_policy": getattr(datamodule, "missing", None),
        "impute": getattr(datamodule, "impute", "ffill"),
        "per_step_targets": bool(getattr(model, "per_step", False))
        and not hasattr(model, "generate"),
    }
    rows = []
    for k, (kind, values) in enumerate(levels.items()):
        for j, level in enumerate(values):
            level = float(level)
            if level == CLEAN_LEVEL[kind]:
                metrics = dict(clean)
            else:

                def fn(batch: Batch, gen: torch.Generator, kind=kind, level=level) -> Batch:
                    return perturb(batch, kind, level, gen, **options)

                loader = PerturbedLoader(datamodule.test_dataloader(), fn, seed + 1000 * k + j)
                trainer.test(model, dataloaders=loader, verbose=False)
                metrics = {
                    key: v
                    for key, v in tensor_metrics(trainer.callback_metrics).items()
                    if "test/" in key
                }
            rows.append({"perturbation": kind, "level": level, **metrics})
            log.info("robustness %s=%g: %s", kind, level, metrics)
    return rows, clean


def _token_inputs(datamodule: Any) -> bool:
    kwargs = datamodule.model_kwargs() if hasattr(datamodule, "model_kwargs") else {}
    return kwargs.get("vocab_size") is not None


def main_metrics(columns: Sequence[str]) -> list[str]:
    """``test/loss`` and the task's headline metric, for the degradation plot."""
    chosen = [c for c in ("test/loss",) if c in columns]
    for name in ("test/acc", "test/exact_match", "test/token_acc", "test/mae"):
        if name in columns:
            chosen.append(name)
            break
    return chosen


def write_csv(rows: list[dict[str, Any]], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


__all__ = [
    "CLEAN_LEVEL",
    "PERTURBATIONS",
    "PerturbedLoader",
    "default_levels",
    "evaluate_robustness",
    "main_metrics",
    "perturb",
    "write_csv",
]
