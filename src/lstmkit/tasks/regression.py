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
    SymmetricMeanAbsolutePercentageError,
)

from lstmkit._validation import check_bool, check_choice, check_float, check_int
from lstmkit.tasks.base import Batch, SequenceTask, plain_hparams
from lstmkit.tasks.panel import PanelInputs, WindowErrorMean, panel_kwargs, rescale
from lstmkit.tasks.probabilistic import (
    GAUSSIAN_QUANTILES,
    PROBABILISTIC,
    IntervalCoverage,
    PinballLoss,
    check_quantiles,
    gaussian_nll,
    gaussian_params,
    gaussian_quantiles,
    monotone_quantiles,
    pinball_loss,
)

LOSSES = ("mse", "mae", "huber", *PROBABILISTIC)


class LastStepMAPE(MeanAbsolutePercentageError):
    """MAPE of the last of ``horizon`` forecast steps. Takes the flattened ``(B * H * O,)``
    predictions and targets the other metrics take."""

    def __init__(self, horizon: int, outputs: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.horizon, self.outputs = horizon, outputs

    def update(self, preds: Tensor, target: Tensor) -> None:
        shape = (-1, self.horizon, self.outputs)
        super().update(preds.reshape(shape)[:, -1], target.reshape(shape)[:, -1])


def auto_flag(name: str, value: bool | str, auto: bool) -> bool:
    """A boolean option that may be ``"auto"`` (then ``auto``)."""
    if value == "auto":
        return auto
    if not isinstance(value, bool):
        raise ValueError(f"{name}={value!r}: must be true, false or 'auto'")
    return value


class SequenceRegressor(SequenceTask):
    """Predict ``output_size`` values for each of the next ``horizon`` steps from a sequence.

    Targets are ``(B, output_size)`` if ``horizon == 1`` else ``(B, horizon, output_size)``,
    standardised by the data (``(y - target_mean) / target_std``, after a log when
    ``log_target``). The loss is computed on the standardised values; metrics (MSE, MAE, RMSE,
    R², MAPE over all outputs) and :meth:`predict_step` are in the target's original units.

    Residual forecasting (``residual=True``): the prediction is the last observed value of
    each target (input channel ``target_channels[o]`` at each sequence's last valid step,
    ``lengths - 1``) plus the head's output, so the network learns the change rather than the
    level (which a trending series may take beyond the training range). The same last value is
    added to every one of the ``horizon`` steps. The target channels must hold the targets in
    the targets' scaling, as the forecasting datamodules give them (``target_channels`` comes
    from ``model_kwargs()``). ``relative_inputs=True`` also removes that last value from the
    target input channels, so the whole model becomes invariant to the series' level
    (scale-invariant with a log-scale target).

    Args:
        encoder: ``lstmkit.nn.build_lstm`` keyword arguments (``backend``, ``hidden_size``,
            ...), as a mapping or a ``functools.partial(build_lstm, ...)``.
        input_size: features per step (float inputs ``(B, T, C)``).
        output_size: target channels per step.
        horizon: future steps predicted at once (direct multi-step forecasting).
        target_mean, target_std: the data's target scaling, ``output_size`` values each
            (None: no scaling).
        log_target: the data modelled ``log(target)``: predictions and metrics are
            exponentiated back (after de-standardising) to original units.
        target_channels: for each output, the input channel holding its past values in the
            targets' scaling (``output_size`` ints), or None when the inputs hold no targets;
            given by the data.
        residual: predict ``last observed value + head output`` (needs ``target_channels``);
            ``"auto"`` (the default): on when the data gives ``target_channels`` (a forecast
            from past targets) and the task trains on whole sequences, else off.
        relative_inputs: feed the encoder the target channels minus their last observed value
            (level-free windows: the network sees the shape of the recent past, not its
            level, so it does not have to extrapolate to levels never seen in training);
            needs ``target_channels``; ``"auto"`` as for ``residual``. The two defaults
            together start every forecast from the naive one (the last value) and keep a
            trending series inside the levels the network was trained on.
        mase_scale: the in-sample MAE of the (seasonal) naive forecast of each target on
            the training rows (``output_size`` values, original units), or None; given by
            the time-series datamodules. Adds the ``mase`` metric (MAE / scale, averaged).
        vocab_size, embedding_dim, padding_idx: token inputs through an embedding.
        pooling: ``"last"``, ``"mean"`` or ``"max"`` over valid steps.
        frontend: a convolutional front end before the encoder (``lstmkit.nn.ConvFrontEnd``
            arguments: ``channels``, ``kernel_size``, ``stride``, ``num_layers``, ``norm``,
            ``dropout``), which shortens long sequences about ``stride ** num_layers``-fold;
            None (default): off. Not with ``tbptt_steps`` or ``stateful``.
        head_hidden_size: 0 for a linear head, else the width of a one-hidden-layer MLP.
        dropout: dropout before each head layer.
        loss: ``"mse"``, ``"mae"``, ``"huber"``, or a probabilistic forecast (see
            :mod:`lstmkit.tasks.probabilistic`): ``"quantile"`` (monotone quantiles, pinball
            loss; the point forecast is the median) or ``"gaussian"`` (mean and standard
            deviation, Gaussian likelihood; the point forecast is the mean).
        huber_delta: the Huber loss's ``delta`` (in standardised units).
        quantiles: with ``loss="quantile"``, increasing levels in (0, 1), e.g.
            ``[0.1, 0.5, 0.9]``.
        series_scale, static_cardinalities, static_embedding_dims: panel inputs (many series,
            from ``data=table``; see :mod:`lstmkit.tasks.panel`): per-window scale channels
            (forecasts and metrics back in each series' original units; adds MASE, sMAPE and
            per-series RMSE) and static categories learned as embeddings; given by the data.
        optimizer: a partial taking the parameters (Hydra ``_partial_: true``); default Adam.
        scheduler: a partial taking the optimizer, or None; stepped on ``val/loss`` each epoch.
        tbptt_steps: truncated BPTT: chunks of this many steps, state carried detached
            (see :mod:`lstmkit.tasks.tbptt`); None trains through whole sequences.
        stateful: carry the final state of each batch into the next (consecutive windows
            of one long series, ``lstmkit.data.StreamDataModule``).
        compile: ``torch.compile`` the model in place when fitting starts (state-dict keys
            unchanged); the custom core is one operator in the graph (cuDNN: a graph break).

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
        log_target: bool = False,
        target_channels: Sequence[int] | None = None,
        residual: bool | str = "auto",
        relative_inputs: bool | str = "auto",
        mase_scale: Sequence[float] | None = None,
        vocab_size: int | None = None,
        embedding_dim: int | None = None,
        padding_idx: int | None = None,
        frontend: Mapping[str, Any] | None = None,
        pooling: str = "last",
        head_hidden_size: int = 0,
        dropout: float = 0.0,
        loss: str = "mse",
        huber_delta: float = 1.0,
        quantiles: Sequence[float] | None = None,
        series_scale: bool = False,
        static_cardinalities: Sequence[int] | None = None,
        static_embedding_dims: Sequence[int] | None = None,
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
        self.quantile_levels = check_quantiles(quantiles) if loss == "quantile" else []
        self.probabilistic = loss in PROBABILISTIC
        if (self.probabilistic or series_scale) and (tbptt_steps is not None or stateful):
            raise ValueError(
                f"loss={loss!r} / series_scale need whole windows: set tbptt_steps=null and "
                "stateful=false"
            )
        mean = torch.zeros(output_size) if target_mean is None else torch.as_tensor(target_mean)
        std = torch.ones(output_size) if target_std is None else torch.as_tensor(target_std)
        for name, value in (("target_mean", mean), ("target_std", std)):
            if value.shape != (output_size,):
                raise ValueError(f"{name}={value.tolist()}: needs output_size={output_size} values")
        self.register_buffer("target_mean", mean.float(), persistent=False)
        self.register_buffer("target_std", std.float(), persistent=False)
        self.log_target = check_bool("log_target", log_target)
        # "auto": on when the data feeds the past targets (a forecast), off otherwise
        feeds_targets = target_channels is not None and vocab_size is None
        whole = tbptt_steps is None and not stateful
        self.residual = auto_flag("residual", residual, feeds_targets and whole)
        self.relative_inputs = auto_flag(
            "relative_inputs", relative_inputs, feeds_targets and whole
        )
        channels = self._check_residual(
            target_channels, input_size, vocab_size, tbptt_steps, stateful
        )
        self.register_buffer("target_channels", channels, persistent=False)
        scale = torch.zeros(0) if mase_scale is None else torch.as_tensor(mase_scale).float()
        if mase_scale is not None and scale.shape != (output_size,):
            raise ValueError(f"mase_scale={scale.tolist()}: needs output_size={output_size} values")
        self.register_buffer("mase_scale", scale, persistent=False)
        self.panel = PanelInputs(int(input_size or 1), output_size, **panel_kwargs(self.hparams))
        if self.panel.active and vocab_size is not None:
            raise ValueError("series_scale / static_cardinalities need float inputs, not tokens")
        self._side: Tensor | None = None  # the current batch's per-window scale (panel data)
        self._build(
            out_features=self.head_outputs(),
            encoder_input=self.panel.encoder_input if self.panel.active else None,
        )

    @property
    def scores_mase(self) -> bool:
        """Whether the data gave ``mase_scale`` (panel data scores MASE per series instead)."""
        return len(self.mase_scale) > 0 and not self.panel.side

    @property
    def params_per_value(self) -> int:
        """Head outputs per forecast value: ``Q`` quantiles, 2 (mean, std) or 1."""
        if self.hparams.loss == "quantile":
            return len(self.quantile_levels)
        return 2 if self.hparams.loss == "gaussian" else 1

    def head_outputs(self) -> int:
        """The head's output features: every horizon step's targets at once."""
        return self.horizon * self.output_size * self.params_per_value

    def _check_residual(
        self,
        target_channels: Sequence[int] | None,
        input_size: int | None,
        vocab_size: int | None,
        tbptt_steps: int | None,
        stateful: bool,
    ) -> Tensor:
        """The checked ``target_channels`` as an ``(O,)`` long tensor (empty when None)."""
        options = [n for n in ("residual", "relative_inputs") if getattr(self, n)]
        if target_channels is None:
            if options:
                kind = "token inputs" if vocab_size is not None else "its inputs"
                raise ValueError(
                    f"{options[0]}=True uses the last observed target value, but the data has "
                    f"no target channels among {kind} (target_channels=None, e.g. a time "
                    f"series with include_target=false): set {options[0]}=false, or "
                    "include_target=true in the data"
                )
            return torch.zeros(0, dtype=torch.long)
        channels = [int(c) for c in target_channels]
        if len(channels) != self.output_size:
            raise ValueError(
                f"target_channels={channels}: needs output_size={self.output_size} channels"
            )
        bad = [c for c in channels if c < 0 or (input_size is not None and c >= input_size)]
        if bad or (vocab_size is not None and options):
            raise ValueError(
                f"target_channels={channels}: not input channels of the "
                f"{'token' if vocab_size is not None else f'input_size={input_size}'} inputs"
            )
        if options and (tbptt_steps is not None or stateful):
            raise ValueError(
                f"{options[0]}=True needs whole sequences: set tbptt_steps=null and stateful=false"
            )
        return torch.tensor(channels, dtype=torch.long)

    def make_metrics(self) -> MetricCollection:
        """MSE, MAE, RMSE, R² and MAPE over every output; with ``horizon > 1`` also
        ``mape_last``: the MAPE of the last horizon step alone (every forecast at its full
        lead time, as a backtest with ``last_points_only`` scores it). A probabilistic loss
        adds ``pinball`` (mean pinball loss over the quantiles) and ``coverage`` (share of
        targets between the lowest and highest quantile); panel data adds ``mase``, ``smape``
        and ``rmse_series`` (each series' forecast scored, then averaged)."""
        metrics = {
            "mse": MeanSquaredError(),
            "mae": MeanAbsoluteError(),
            "rmse": MeanSquaredError(squared=False),
            "r2": R2Score(),
            "mape": MeanAbsolutePercentageError(),
        }
        extra = self.probabilistic or self.panel.side or self.scores_mase
        if self.probabilistic:
            metrics["pinball"] = PinballLoss(self.quantile_levels or GAUSSIAN_QUANTILES)
            metrics["coverage"] = IntervalCoverage()
        if self.panel.side:
            metrics["mase"] = WindowErrorMean("mase")
            metrics["smape"] = SymmetricMeanAbsolutePercentageError()
            metrics["rmse_series"] = WindowErrorMean("rmse_series")
        elif self.scores_mase:
            metrics["mase"] = WindowErrorMean("mase")
        if self.horizon == 1:
            return MetricCollection(metrics, compute_groups=not extra)
        metrics["mape_last"] = LastStepMAPE(self.horizon, self.output_size)
        # no compute groups: mape and mape_last share a state layout, not their values
        return MetricCollection(metrics, compute_groups=False)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """Standardised predictions, ``(B, O)`` or ``(B, horizon, O)``; with ``residual``
        the last observed target values plus the head's output. Probabilistic losses add a
        last axis: ``Q`` monotone quantiles, or ``(mean, raw std)`` for ``"gaussian"``.

        Args:
            x: ``(B, T, C)`` features (or ``(B, T)`` token ids).
            lengths: ``(B,)`` valid steps per sequence; None when all fill ``T``.
        """
        if self.panel.active:  # category codes -> embeddings; keep the per-window scale
            x, self._side = self.panel(x)
        needs_last = self.residual or self.relative_inputs
        last = self.last_values(x, lengths) if needs_last else None  # (B, O)
        if self.relative_inputs:  # target channels minus their last value, at every step
            shift = last.unsqueeze(1).expand(-1, x.shape[1], -1)  # (B, T, O)
            x = x.index_add(-1, self.target_channels, -shift)
        out = self.head(self.features(x, lengths))  # (B, H*O*P)
        last = last if self.residual else None
        if self.probabilistic:
            return self._distribution(out, last)
        if self.horizon == 1:
            return out if last is None else out + last
        out = out.view(-1, self.horizon, self.output_size)  # (B, H, O)
        return out if last is None else out + last.unsqueeze(1)

    def _distribution(self, out: Tensor, last: Tensor | None) -> Tensor:
        """Head outputs ``(B, H*O*P)`` -> ``(B, [H,] O, P)``: monotone quantiles, or the
        mean and raw std; ``last`` ``(B, O)`` (residual) shifts the quantiles / the mean."""
        out = out.view(-1, self.horizon, self.output_size, self.params_per_value)
        if self.hparams.loss == "quantile":
            out = monotone_quantiles(out)
            if last is not None:
                out = out + last[:, None, :, None]
        elif last is not None:
            out = torch.cat([out[..., :1] + last[:, None, :, None], out[..., 1:]], dim=-1)
        return out[:, 0] if self.horizon == 1 else out

    def point(self, out: Tensor) -> Tensor:
        """The point forecast of :meth:`forward`'s output: the median quantile, the mean, or
        the output itself; ``(B, [H,] O)``."""
        if self.hparams.loss == "quantile":
            levels = torch.tensor(self.quantile_levels)
            return out[..., int((levels - 0.5).abs().argmin())]
        return out[..., 0] if self.hparams.loss == "gaussian" else out

    def quantile_values(self, out: Tensor) -> Tensor:
        """Quantiles ``(B, [H,] O, Q)`` in original units (``GAUSSIAN_QUANTILES`` for a
        Gaussian head) of a probabilistic :meth:`forward` output."""
        if self.hparams.loss == "gaussian":
            mean, std = gaussian_params(out)
            out = gaussian_quantiles(mean, std, GAUSSIAN_QUANTILES)
        # each quantile maps to original units like a point (an increasing map keeps order)
        return self.inverse_transform(out.movedim(-1, 1)).movedim(1, -1)

    def last_values(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The targets' input channels at each sequence's last valid step: ``(B, T, C)`` ->
        ``(B, O)`` (step ``lengths - 1``, or ``T - 1`` when ``lengths`` is None)."""
        values = x[..., self.target_channels]  # (B, T, O)
        if lengths is None:
            return values[:, -1]
        last = (lengths.to(x.device).long() - 1).clamp_min(0)  # (B,)
        return values[torch.arange(len(x), device=x.device), last]  # (B, O)

    def inverse_transform(self, y: Tensor) -> Tensor:
        """Standardised values ``(..., O)`` -> original units (``exp`` after de-standardising
        when ``log_target``). With panel data (``series_scale``) each window ``(B, ..., O)``
        uses its own series' scale, from the batch last passed to :meth:`forward`."""
        if self._side is not None and self.panel.side:
            y = rescale(y, self._side)
        else:
            y = y * self.target_std + self.target_mean
        return y.exp() if self.log_target else y

    def compute_loss(self, out: Tensor, y: Tensor, lengths: Tensor | None) -> Tensor:
        if not isinstance(y, Tensor) or not y.is_floating_point():
            what = y.dtype if isinstance(y, Tensor) else type(y).__name__
            raise TypeError(f"y has dtype {what}: regression targets must be a float tensor")
        if self.hparams.loss == "quantile":
            levels = torch.tensor(self.quantile_levels, device=out.device, dtype=out.dtype)
            return pinball_loss(out, y, levels)
        if self.hparams.loss == "gaussian":
            return gaussian_nll(out, y)
        if y.shape != out.shape:
            raise ValueError(
                f"y has shape {tuple(y.shape)}: targets must have the model's output shape "
                f"{tuple(out.shape)} ((batch, output_size) for horizon=1, else (batch, horizon, "
                f"output_size); output_size={self.output_size}, horizon={self.horizon})"
            )
        if self.hparams.loss == "mse":
            return F.mse_loss(out, y)
        if self.hparams.loss == "mae":
            return F.l1_loss(out, y)
        return F.huber_loss(out, y, delta=self.hparams.huber_delta)

    def metric_inputs(
        self, out: Tensor, y: Tensor, lengths: Tensor | None
    ) -> tuple[Tensor, Tensor] | dict[str, Tensor]:
        """``(preds, target)`` flattened in original units; with a probabilistic loss or
        panel data, keyword arguments for the collection (each metric takes its own):
        ``preds``, ``target``, ``quantile_preds``/``target_values`` and
        ``pred_windows``/``target_windows``/``naive``."""
        pred, target = self.inverse_transform(self.point(out)), self.inverse_transform(y)
        if not (self.probabilistic or self.panel.side or self.scores_mase):
            return pred.reshape(-1), target.reshape(-1)
        inputs = {"preds": pred.reshape(-1), "target": target.reshape(-1)}
        if self.probabilistic:
            inputs |= {"quantile_preds": self.quantile_values(out), "target_values": target}
        if self.panel.side:
            windows = (len(y), -1, self.output_size)  # (B, H, O)
            inputs |= {
                "pred_windows": pred.reshape(windows),
                "target_windows": target.reshape(windows),
                "naive": self._side[:, 2],
            }
        elif self.scores_mase:
            windows = (len(y), -1, self.output_size)  # (B, H, O)
            inputs |= {
                "pred_windows": pred.reshape(windows),
                "target_windows": target.reshape(windows),
                "naive": self.mase_scale.expand(len(y), -1),
            }
        return inputs

    def predict_step(self, batch: Batch, batch_idx: int = 0) -> dict[str, Tensor]:
        """``{"pred"}`` in original units and, when the batch has targets, ``"target"``."""
        x, y, lengths = batch if len(batch) == 3 else (batch[0], None, batch[-1])
        out = self(x, lengths)
        result = {"pred": self.inverse_transform(self.point(out))}
        if self.probabilistic:
            result["quantiles"] = self.quantile_values(out)  # (B, [H,] O, Q)
            levels = self.quantile_levels or list(GAUSSIAN_QUANTILES)
            result["quantile_levels"] = torch.tensor(levels).expand(len(x), -1)  # (B, Q)
        if self.hparams.loss == "gaussian":
            _, std = gaussian_params(out)  # (B, [H,] O), standardised
            if self.panel.side:
                scale = self._side[:, 1].view(len(x), *([1] * (std.dim() - 2)), -1)
            else:
                scale = self.target_std
            result["std"] = std * scale  # original units (log units with log_target)
        if y is not None:
            result["target"] = self.inverse_transform(y)
        return result
