"""Missing values (NaN) in inputs: never propagated silently.

Policies, chosen per datamodule with ``missing=``:

- ``"error"`` (default): stop with a message naming the file, the row or sequence (and step) and
  the column.
- ``"mask"``: impute (``impute="ffill"`` carries the last observed value forward, ``"zero"``
  puts 0 — the training mean once standardised) and append one missing-indicator channel per
  input channel (1 where the value was missing), so the LSTM can learn from the gaps.
- ``"drop"``: drop the rows (time series) or sequences that hold a missing value.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lstmkit._validation import check_choice

MISSING_POLICIES = ("error", "mask", "drop")
IMPUTATIONS = ("ffill", "zero")


def check_policy(missing: str, impute: str) -> None:
    check_choice("missing", missing, MISSING_POLICIES)
    check_choice("impute", impute, IMPUTATIONS)


def first_missing(x: Tensor) -> tuple[int, ...] | None:
    """Index of the first NaN of ``x`` in row-major order, or None if there is none."""
    nan = torch.isnan(x).reshape(-1)
    if not bool(nan.any()):
        return None
    flat = int(nan.to(torch.uint8).argmax())
    return tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), x.shape))


def forward_fill(x: Tensor) -> Tensor:
    """Carry the last observed value forward along the time axis (``dim=-2``).

    Args:
        x: ``(..., T, C)`` with NaN where missing.

    Returns:
        ``(..., T, C)`` without NaN; values missing before the first observation become 0.
    """
    nan = torch.isnan(x)
    steps = torch.arange(x.shape[-2], device=x.device).view(-1, 1).expand_as(x)  # (..., T, C)
    last = torch.where(nan, torch.full_like(steps, -1), steps).cummax(dim=-2).values
    filled = x.gather(-2, last.clamp_min(0))
    return torch.where(last < 0, torch.zeros_like(x), filled)


def mask_missing(x: Tensor, impute: str) -> Tensor:
    """Impute NaN and append the missing indicators: ``(..., T, C)`` -> ``(..., T, 2C)``."""
    indicator = torch.isnan(x).to(x.dtype)  # (..., T, C)
    filled = forward_fill(x) if impute == "ffill" else torch.nan_to_num(x, nan=0.0)
    return torch.cat([filled, indicator], dim=-1)  # (..., T, 2C)


__all__ = [
    "IMPUTATIONS",
    "MISSING_POLICIES",
    "check_policy",
    "first_missing",
    "forward_fill",
    "mask_missing",
]
