"""Probabilistic forecasts: a quantile head (pinball loss) and a Gaussian likelihood head.

``loss="quantile"``: the head gives ``Q`` values per forecast step and output, made monotone
(:func:`monotone_quantiles`: the lowest, then softplus increments), trained with the pinball
(quantile) loss averaged over the quantiles; the point forecast is the median (the quantile
nearest 0.5). ``loss="gaussian"``: the head gives a mean and a softplus-positive standard
deviation, trained with the Gaussian negative log-likelihood; the point forecast is the mean.

Both scale back to original units by the same affine map as point forecasts (a positive
scale keeps the quantiles in order; with a log-scale target the exponential does too, and the
Gaussian becomes a log-normal whose median, not mean, is ``exp(mean)``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import Metric

#: Losses that predict a distribution instead of a point.
PROBABILISTIC = ("quantile", "gaussian")
#: The quantiles a Gaussian head is scored at (pinball loss, coverage of the 10-90 % interval).
GAUSSIAN_QUANTILES = (0.1, 0.5, 0.9)


def check_quantiles(quantiles: Sequence[float] | None) -> list[float]:
    """Quantiles strictly inside (0, 1), strictly increasing, at least one; else ValueError."""
    if not quantiles:
        raise ValueError("loss=quantile needs quantiles, e.g. quantiles=[0.1,0.5,0.9]")
    values = [float(q) for q in quantiles]
    bad = [q for q in values if not 0.0 < q < 1.0]
    if bad:
        raise ValueError(f"quantiles={values}: {bad[0]} is outside (0, 1); use e.g. [0.1,0.5,0.9]")
    if any(b <= a for a, b in itertools.pairwise(values)):
        raise ValueError(f"quantiles={values}: must be strictly increasing, e.g. [0.1,0.5,0.9]")
    return values


def monotone_quantiles(raw: Tensor) -> Tensor:
    """``(..., Q)`` unconstrained -> ``(..., Q)`` non-decreasing: the first value, then
    cumulative softplus increments (so no two quantiles ever cross)."""
    if raw.shape[-1] == 1:
        return raw
    steps = F.softplus(raw[..., 1:])  # (..., Q - 1) > 0
    return torch.cat([raw[..., :1], raw[..., :1] + steps.cumsum(-1)], dim=-1)


def pinball_loss(pred: Tensor, target: Tensor, quantiles: Tensor) -> Tensor:
    """Mean pinball loss: ``pred`` ``(..., Q)``, ``target`` ``(...)``, ``quantiles`` ``(Q,)``.

    ``max(q (y - f), (q - 1)(y - f))`` averaged over every value and quantile."""
    diff = target.unsqueeze(-1) - pred  # (..., Q)
    return torch.maximum(quantiles * diff, (quantiles - 1) * diff).mean()


def gaussian_params(raw: Tensor) -> tuple[Tensor, Tensor]:
    """``(..., 2)`` -> mean ``(...)`` and a positive standard deviation ``(...)``."""
    return raw[..., 0], F.softplus(raw[..., 1]) + 1e-4


def gaussian_nll(raw: Tensor, target: Tensor) -> Tensor:
    """Gaussian negative log-likelihood (constant dropped) of ``target`` ``(...)``."""
    mean, std = gaussian_params(raw)
    return F.gaussian_nll_loss(mean, target, std.pow(2), full=False)


def gaussian_quantiles(mean: Tensor, std: Tensor, quantiles: Sequence[float]) -> Tensor:
    """The Normal's quantiles: ``(...)`` mean and std -> ``(..., Q)``."""
    q = torch.tensor(list(quantiles), dtype=mean.dtype, device=mean.device)
    z = torch.special.ndtri(q)  # (Q,)
    return mean.unsqueeze(-1) + std.unsqueeze(-1) * z


class PinballLoss(Metric):
    """Mean pinball loss of quantile forecasts in original units.

    ``update(quantile_preds=(..., Q), target_values=(...))``; the other keyword arguments a
    :class:`~torchmetrics.MetricCollection` passes are ignored.
    """

    full_state_update = False

    def __init__(self, quantiles: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("quantiles", torch.tensor(list(quantiles)), persistent=False)
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, quantile_preds: Tensor, target_values: Tensor) -> None:
        loss = pinball_loss(quantile_preds.double(), target_values.double(), self.quantiles)
        n = target_values.numel()
        self.total += loss * n
        self.count += n

    def compute(self) -> Tensor:
        return self.total / self.count.clamp_min(1)


class IntervalCoverage(Metric):
    """Share of targets inside the interval from the lowest to the highest quantile (its
    nominal coverage is ``q_max - q_min``, e.g. 0.8 for [0.1, 0.9])."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("inside", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, quantile_preds: Tensor, target_values: Tensor) -> None:
        low, high = quantile_preds[..., 0], quantile_preds[..., -1]
        self.inside += ((target_values >= low) & (target_values <= high)).sum()
        self.count += target_values.numel()

    def compute(self) -> Tensor:
        return self.inside.double() / self.count.clamp_min(1)


__all__ = [
    "GAUSSIAN_QUANTILES",
    "PROBABILISTIC",
    "IntervalCoverage",
    "PinballLoss",
    "check_quantiles",
    "gaussian_nll",
    "gaussian_params",
    "gaussian_quantiles",
    "monotone_quantiles",
    "pinball_loss",
]
