"""Autoregressive forecasting: every forecast is fed back as the next step's input.

The recurrent forecaster of darts' ``RNNModel`` and of DeepAR's point forecast. Step ``t``
reads the target's value at ``t - 1`` and the covariates of step ``t`` (a calendar, a planned
price: values known in advance) and predicts the target at ``t``:

- training (teacher forcing): the whole window and horizon run in one pass, every step fed the
  true previous value, and the loss covers every step's prediction;
- forecasting (validation, test, ``predict_step``): the encoder reads the window (the true
  past), then runs the ``horizon`` steps one at a time, each fed the forecast of the step
  before, carrying its state.

The data must give each window its forecast rows' covariates: ``x`` ``(B, window + horizon,
C)`` with the targets zeroed in the last ``horizon`` rows, as a time-series datamodule does
with ``future_covariates=True``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lstmkit.tasks.base import Batch
from lstmkit.tasks.regression import SequenceRegressor


class AutoregressiveForecaster(SequenceRegressor):
    """Forecast ``horizon`` steps one at a time, each step fed the forecast before it.

    Takes :class:`SequenceRegressor`'s arguments (``encoder``, ``horizon``, ``target_mean``,
    ``target_std``, ``log_target``, ``target_channels``, ``head_hidden_size``, ``dropout``,
    ``loss``, ``optimizer``, ...); its metrics, ``predict_step`` and scaling are the same. The
    head maps each step's encoder output to the ``output_size`` targets of that step.
    ``target_channels`` (from the data) names the input channels the previous values go into.
    Not available here: ``residual``, ``relative_inputs``, token inputs, truncated BPTT,
    ``stateful``, a convolutional ``frontend``, and a bidirectional encoder (a forecast may
    not read its own future).

    Batches: ``x`` ``(B, W + H, C)`` (the window, then the ``H = horizon`` forecast rows with
    their covariates and zeros in the target channels), ``y`` ``(B, H, O)`` (``(B, O)`` when
    ``H == 1``). The train metrics are of the teacher-forced one-step predictions of the
    forecast rows; validation and test metrics are of the fed-back forecasts.

    Example:
        >>> model = AutoregressiveForecaster({"backend": "custom", "hidden_size": 8},
        ...                                  input_size=3, horizon=4, target_channels=[0])
        >>> model(torch.randn(2, 10 + 4, 3)).shape  # window 10, horizon 4
        torch.Size([2, 4, 1])
    """

    #: Forecasts are fed back in a data-dependent loop (ONNX export refuses such a task).
    feeds_back_forecasts = True

    def __init__(self, encoder: Any, **kwargs: Any) -> None:
        if kwargs.get("frontend") is not None:
            raise ValueError(
                f"frontend={kwargs['frontend']!r}: AutoregressiveForecaster predicts every step "
                "of the window and feeds each forecast back as the next input step, which a "
                "front end that shortens the sequence cannot do; set frontend=null, or use "
                "model=regressor (direct multi-step forecasts) with model/frontend=conv"
            )
        for name in ("residual", "relative_inputs"):  # "auto" (the regressor's default): off
            kwargs[name] = False if kwargs.get(name, "auto") == "auto" else kwargs[name]
        for name in ("residual", "relative_inputs", "vocab_size", "tbptt_steps", "stateful"):
            if kwargs.get(name) not in (None, False):
                raise ValueError(
                    f"{name}={kwargs[name]!r}: AutoregressiveForecaster feeds its forecasts "
                    f"back step by step and does not support {name}; leave it unset"
                )
        if kwargs.get("loss") in ("quantile", "gaussian"):
            raise ValueError(
                "AutoregressiveForecaster feeds point forecasts back: it does not support "
                "loss=quantile/gaussian; use model=regressor"
            )
        super().__init__(encoder, **kwargs)
        if self.num_directions != 1:
            raise ValueError(
                "encoder.bidirectional=true: an autoregressive forecast may not read its own "
                "future; use a unidirectional encoder"
            )
        if len(self.target_channels) != self.output_size:
            raise ValueError(
                "target_channels=None: the forecaster feeds its forecasts back into the "
                "target's input channels, so past target values must be inputs "
                "(data.include_target=true)"
            )

    def head_outputs(self) -> int:
        return self.output_size  # one step's targets

    # ----------------------------------------------------------------- the two passes
    def step_inputs(self, x: Tensor, values: Tensor) -> Tensor:
        """What steps ``1 .. S-1`` read: each row's covariates with the previous row's target
        values in the target channels. ``x`` ``(B, S, C)``, ``values`` ``(B, S, O)`` ->
        ``(B, S - 1, C)``."""
        return x[:, 1:].index_copy(-1, self.target_channels, values[:, :-1])

    def teacher_forced(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """One pass over window and horizon, every step fed the true previous value.

        Returns:
            ``(predictions, targets)``, both ``(B, W + H - 1, O)``, standardised: the
            one-step prediction of every row after the first, and that row's true value.
        """
        context = self._context(x)
        future = y if y.dim() == 3 else y.unsqueeze(1)  # (B, H, O)
        known = x[:, :context].index_select(-1, self.target_channels)  # (B, W, O)
        values = torch.cat([known, future.to(x.dtype)], dim=1)  # (B, S, O)
        output, _ = self.encoder(self.step_inputs(x, values))  # (B, S - 1, H)
        return self.head(output), values[:, 1:]

    def forecast(self, x: Tensor) -> Tensor:
        """The fed-back forecast of the ``horizon`` rows, standardised: ``(B, H, O)``
        (``(B, O)`` when ``horizon == 1``). Only the window's target values are read."""
        context = self._context(x)
        channels = self.target_channels
        known = x[:, :context].index_select(-1, channels)  # (B, W, O)
        # rows 1 .. W: the last one reads the last known value and the first forecast row's
        # covariates, and predicts that row
        output, state = self.encoder(self.step_inputs(x[:, : context + 1], _pad_row(known)))
        pred = self.head(output[:, -1])  # (B, O)
        preds = [pred]
        for k in range(context + 1, x.shape[1]):
            step = x[:, k : k + 1].index_copy(-1, channels, pred.unsqueeze(1))  # (B, 1, C)
            output, state = self.encoder(step, state)
            pred = self.head(output[:, -1])
            preds.append(pred)
        out = torch.stack(preds, dim=1)  # (B, H, O)
        return out[:, 0] if self.horizon == 1 else out

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The forecast (see :meth:`forecast`); ``lengths`` must be None or all ``W + H``."""
        self._check_full(x, lengths)
        if self.panel.active:  # panel data: per-window scale off, category embeddings on
            x, self._side = self.panel(x)
        return self.forecast(x)

    # ----------------------------------------------------------------- the shared step
    def _shared_step(self, batch: Batch, stage: str) -> Tensor:
        x, y, lengths = batch
        self._check_full(x, lengths)
        if self.panel.active:  # panel data: per-window scale off, category embeddings on
            x, self._side = self.panel(x)
        if stage == "train":
            out, target = self.teacher_forced(x, y)
            loss = self.compute_loss(out, target, None)
            forecast = out[:, -self.horizon :].reshape(y.shape)  # one-step, teacher-forced
        else:
            forecast = self.forecast(x)
            loss = self.compute_loss(forecast, y, None)
        metrics = getattr(self, f"{stage}_metrics")
        with torch.no_grad():
            inputs = self.metric_inputs(forecast.detach(), y, lengths)
            metrics.update(**inputs) if isinstance(inputs, dict) else metrics.update(*inputs)
        self.log_step(stage, loss, metrics, len(x))
        return loss

    def _context(self, x: Tensor) -> int:
        context = x.shape[1] - self.horizon
        if x.dim() != 3 or context < 1:
            raise ValueError(
                f"AutoregressiveForecaster needs inputs (B, window + horizon, C) with a window "
                f"of at least 1 step; got {tuple(x.shape)} with horizon={self.horizon}: give "
                "the data future_covariates=true (data.future_covariates=true)"
            )
        return context

    def _check_full(self, x: Tensor, lengths: Tensor | None) -> None:
        if lengths is not None and bool((lengths != x.shape[1]).any()):
            raise ValueError(
                f"AutoregressiveForecaster forecasts from full windows: every length must be "
                f"{x.shape[1]} (window + horizon), got {sorted(set(lengths.tolist()))}"
            )


def _pad_row(values: Tensor) -> Tensor:
    """``(B, W, O)`` -> ``(B, W + 1, O)``: a zero row after the last, which
    :meth:`AutoregressiveForecaster.step_inputs` drops (it shifts values by one step)."""
    return torch.cat([values, values.new_zeros(values[:, :1].shape)], dim=1)


__all__ = ["AutoregressiveForecaster"]
