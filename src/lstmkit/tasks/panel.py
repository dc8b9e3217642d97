"""What a task needs for many series at once (a panel): per-series scale and static categories.

Panel datamodules (``lstmkit.data.TableDataModule`` in ``target`` mode) keep the batch
contract ``(x, y, lengths)`` and put the per-series extras in trailing input channels, constant
along time, which :class:`PanelInputs` takes off before the encoder:

``x`` ``(B, T, C)`` = ``[ values (C_v) | category codes (K) | center, scale, naive (3 O) ]``

- ``K = len(static_cardinalities)`` integer codes of the series' static categories, each
  turned into a learned embedding (``nn.Embedding``) and appended to the values;
- with ``series_scale``, ``3 O`` channels per window: each target's per-series ``center`` and
  ``scale`` (``y_scaled = (y - center) / scale``) and the series' in-sample seasonal-naive MAE
  (for MASE). The task returns forecasts to original units with them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from lstmkit.forecast_metrics import window_errors


def embedding_dim_for(cardinality: int) -> int:
    """A default embedding width: half the categories, at most 16 (fastai's rule, capped)."""
    return int(min(16, max(1, (cardinality + 1) // 2)))


class PanelInputs(nn.Module):
    """Split ``(B, T, C)`` panel inputs into encoder inputs and the per-window scale.

    Args:
        input_size: ``C``, every channel the data gives.
        output_size: ``O`` target channels.
        static_cardinalities: categories of each static categorical column (codes ``0..k-1``).
        series_scale: whether the last ``3 O`` channels are ``center, scale, naive``.
        embedding_dims: width of each category's embedding (default :func:`embedding_dim_for`).
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        static_cardinalities: Sequence[int] = (),
        series_scale: bool = False,
        embedding_dims: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        cards = [int(c) for c in static_cardinalities]
        dims = [embedding_dim_for(c) for c in cards] if embedding_dims is None else embedding_dims
        if len(dims) != len(cards):
            raise ValueError(
                f"static_embedding_dims={list(dims)}: needs one width per static category "
                f"({len(cards)})"
            )
        self.side = 3 * output_size if series_scale else 0
        self.num_codes = len(cards)
        self.num_values = input_size - self.side - self.num_codes
        if self.num_values < 1:
            raise ValueError(
                f"input_size={input_size} leaves no value channels after {self.num_codes} "
                f"category codes and {self.side} scale channels"
            )
        self.output_size = output_size
        self.embeddings = nn.ModuleList(
            nn.Embedding(c, int(d)) for c, d in zip(cards, dims, strict=True)
        )
        self.encoder_input = self.num_values + sum(int(d) for d in dims)

    @property
    def active(self) -> bool:
        return bool(self.side or self.num_codes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """``(B, T, C)`` -> encoder inputs ``(B, T, C')`` and the scale ``(B, 3, O)`` (or None:
        rows ``center``, ``scale``, ``naive``), read at step 0."""
        values = x[..., : self.num_values]
        if self.num_codes:
            codes = x[..., self.num_values : self.num_values + self.num_codes].long()  # (B, T, K)
            embedded = [emb(codes[..., k]) for k, emb in enumerate(self.embeddings)]
            values = torch.cat([values, *embedded], dim=-1)  # (B, T, C_v + sum dims)
        side = None
        if self.side:
            side = x[:, 0, -self.side :].reshape(len(x), 3, self.output_size)  # (B, 3, O)
        return values, side


def rescale(y: Tensor, side: Tensor) -> Tensor:
    """Per-window scaled values ``(B, ..., O)`` -> original units with ``side`` ``(B, 3, O)``;
    a trailing quantile axis ``(B, ..., O, Q)`` is handled by the caller moving it first."""
    shape = (len(y),) + (1,) * (y.dim() - 2) + (y.shape[-1],)
    return y * side[:, 1].reshape(shape) + side[:, 0].reshape(shape)


class WindowErrorMean(Metric):
    """One per-window forecast error averaged over windows (one window per series on a
    per-series test split), in original units: ``"mase"`` (needs each series' naive scale)
    or ``"rmse_series"``. See :mod:`lstmkit.forecast_metrics` for the formulas; sMAPE and
    MAPE averaged over equal-horizon windows equal torchmetrics' over all values.

    ``update(pred_windows=(B, H, O), target_windows=(B, H, O), naive=(B, O))``; the other
    keyword arguments a :class:`~torchmetrics.MetricCollection` passes are ignored.
    """

    full_state_update = False

    def __init__(self, name: str) -> None:
        super().__init__()
        if name not in ("mase", "rmse_series"):
            raise ValueError(f"name={name!r}: must be 'mase' or 'rmse_series'")
        self.name = name
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("windows", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, pred_windows: Tensor, target_windows: Tensor, naive: Tensor) -> None:
        errors = window_errors(pred_windows, target_windows, naive)
        self.total += errors[self.name].sum()
        self.windows += len(pred_windows)

    def compute(self) -> Tensor:
        return self.total / self.windows.clamp_min(1)


def panel_kwargs(hparams: Any) -> dict[str, Any]:
    """The :class:`PanelInputs` arguments among a task's hyperparameters."""
    return {
        "static_cardinalities": hparams.get("static_cardinalities") or (),
        "series_scale": bool(hparams.get("series_scale", False)),
        "embedding_dims": hparams.get("static_embedding_dims"),
    }


__all__ = ["PanelInputs", "WindowErrorMean", "embedding_dim_for", "panel_kwargs", "rescale"]
