"""Sequence regression: many-to-one, multi-output and multi-step (``horizon``) forecasting."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import (
    MeanAbsoluteError,
    MeanAbsolutePercentageError,
    MeanSquaredError,
    MetricCollection,
    R2Score,
)

from lstmkit._validation import check_choice, check_float, check_int
from lstmkit.tasks.base import Batch, SequenceTask, plain_hparams

LOSSES = ("mse", "mae", "huber")


class SequenceRegressor(SequenceTask):
    """Predict ``output_size`` values for each of the next ``horizon`` steps from a sequence.

    Targets are ``(B, output_size)`` if ``horizon == 1`` else ``(B, horizon, output_size)``,
    standardised by the data (``(y - target_mean) / target_std``). The loss is computed on the
    standardised values; metrics (MSE, MAE, RMSE, R², MAPE over all outputs) and
    :meth:`predict_step` are in the target's original units.

    Args:
        encoder: ``lstmkit.nn.build_lstm`` keyword arguments (``backend``, ``hidden_size``,
            ...), as a mapping or a ``functools.partial(build_lstm, ...)``.
        input_size: features per step (float inputs ``(B, T, C)``).
        output_size: target channels per step.
        horizon: future steps predicted at once (direct multi-step forecasting).
        target_mean, target_std: the data's target scaling, ``output_size`` values each
            (None: no scaling).
        vocab_size, embedding_dim, padding_idx: token inputs through an embedding.
        pooling: ``"last"``, ``"mean"`` or ``"max"`` over valid steps.
        head_hidden_size: 0 for a linear head, else the width of a one-hidden-layer MLP.
        dropout: dropout before each head layer.
        loss: ``"mse"``, ``"mae"`` or ``"huber"``.
        huber_delta: the Huber loss's ``delta`` (in standardised units).
        optimizer: a partial taking the parameters (Hydra ``_partial_: true``); default Adam.
        scheduler: a partial taking the optimizer, or None; stepped on ``val/loss`` each epoch.
        tbptt_steps: truncated BPTT: chunks of this many steps, state carried detached
            (see :mod:`lstmkit.tasks.tbptt`); None trains through whole sequences.
        stateful: carry the final state of each batch into the next (consecutive windows
            of one long series, ``lstmkit.data.StreamDataModule``).
        compile: ``torch.compile`` the model in place when fitting starts (state-dict keys
            unchanged); the LSTM core itself runs eager inside the compiled graph.

    Example:
        >>> model = SequenceRegressor({"backend": "cudnn", "hidden_size": 16}, input_size=1,
        ...                           output_size=2, horizon=3)
        >>> model(torch.randn(4, 10, 1)).shape
        torch.Size([4, 3, 2])
    """

    def __init__(
        self,
        encoder: Mapping[str, Any] | Any,
        input_size: int | None = None,
        output_size: int = 1,
        horizon: int = 1,
        target_mean: Sequence[float] | None = None,
        target_std: Sequence[float] | None = None,
        vocab_size: int | None = None,
        embedding_dim: int | None = None,
        padding_idx: int | None = None,
        pooling: str = "last",
        head_hidden_size: int = 0,
        dropout: float = 0.0,
        loss: str = "mse",
        huber_delta: float = 1.0,
        optimizer: Any = None,
        scheduler: Any = None,
        tbptt_steps: int | None = None,
        stateful: bool = False,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(plain_hparams(locals()))
        self.output_size = check_int("output_size", output_size)
        self.horizon = check_int("horizon", horizon)
        check_choice("loss", loss, LOSSES)
        check_float("huber_delta", huber_delta, low=0.0)
        mean = torch.zeros(output_size) if target_mean is None else torch.as_tensor(target_mean)
        std = torch.ones(output_size) if target_std is None else torch.as_tensor(target_std)
        for name, value in (("target_mean", mean), ("target_std", std)):
            if value.shape != (output_size,):
                raise ValueError(f"{name}={value.tolist()}: needs output_size={output_size} values")
        self.register_buffer("target_mean", mean.float(), persistent=False)
        self.register_buffer("target_std", std.float(), persistent=False)
        self._build(out_features=self.horizon * self.output_size)

    def make_metrics(self) -> MetricCollection:
        return MetricCollection(
            {
                "mse": MeanSquaredError(),
                "mae": MeanAbsoluteError(),
                "rmse": MeanSquaredError(squared=False),
                "r2": R2Score(),
                "mape": MeanAbsolutePercentageError(),
            }
        )

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Standardised predictions, ``(B, O)`` or ``(B, horizon, O)``."""
        out = self.head(self.features(x, lengths))  # (B, H*O)
        if self.horizon == 1:
            return out
        return out.view(-1, self.horizon, self.output_size)  # (B, H, O)

    def inverse_transform(self, y: Tensor) -> Tensor:
        """Standardised values ``(..., O)`` -> original units."""
        return y * self.target_std + self.target_mean

    def compute_loss(self, out: Tensor, y: Tensor, lengths: Tensor | None) -> Tensor:
        if self.hparams.loss == "mse":
            return F.mse_loss(out, y)
        if self.hparams.loss == "mae":
            return F.l1_loss(out, y)
        return F.huber_loss(out, y, delta=self.hparams.huber_delta)

    def metric_inputs(
        self, out: Tensor, y: Tensor, lengths: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        return self.inverse_transform(out).reshape(-1), self.inverse_transform(y).reshape(-1)

    def predict_step(self, batch: Batch, batch_idx: int = 0) -> dict[str, Tensor]:
        """``{"pred"}`` in original units and, when the batch has targets, ``"target"``."""
        x, y, lengths = batch if len(batch) == 3 else (batch[0], None, batch[-1])
        result = {"pred": self.inverse_transform(self(x, lengths))}
        if y is not None:
            result["target"] = self.inverse_transform(y)
        return result
