"""Forecasting noisy multi-frequency sine waves ``horizon`` steps ahead."""

from __future__ import annotations

from typing import Any

import torch

from lstmkit._validation import check_float, check_int
from lstmkit.data.base import TWO_PI, Batch, SyntheticDataModule, pad_after_lengths, uniform


class SineDataModule(SyntheticDataModule):
    """Each channel is a sum of ``num_components`` sines with random period, amplitude and phase,
    plus Gaussian noise; the model sees ``L`` steps and forecasts the next ``horizon``.

    Batches: ``x`` ``(B, T, C)``; ``y`` ``(B, C)`` if ``horizon == 1`` else ``(B, horizon, C)``;
    ``lengths`` ``(B,)`` (``T = seq_len``, or ``L`` in ``[min_len, seq_len]`` when ``min_len``
    is set, and then the target follows each sequence's own last step).

    Args:
        seq_len: input steps (the longest, when lengths vary).
        horizon: number of future values to forecast.
        min_len: shortest input when lengths vary; ``None`` for fixed length.
        num_channels: independent series per sample (= the task's ``output_size``).
        num_components: sines summed per channel.
        min_period, max_period: range of the periods, in steps.
        noise_std: standard deviation of the noise on inputs and targets.
        **kwargs: split sizes, ``batch_size``, ``seed``, ``num_workers``.
    """

    task = "regression"

    def __init__(
        self,
        seq_len: int = 48,
        horizon: int = 8,
        min_len: int | None = None,
        num_channels: int = 1,
        num_components: int = 2,
        min_period: float = 8.0,
        max_period: float = 32.0,
        noise_std: float = 0.05,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._save_hparams()
        self.seq_len = check_int("seq_len", seq_len)
        self.horizon = check_int("horizon", horizon)
        if min_len is not None:
            check_int("min_len", min_len)
            if min_len > seq_len:
                raise ValueError(f"min_len={min_len}: must be <= seq_len={seq_len}")
        self.min_len = min_len
        self.num_channels = check_int("num_channels", num_channels)
        self.num_components = check_int("num_components", num_components)
        self.min_period = check_float("min_period", min_period, low=2.0)
        self.max_period = check_float("max_period", max_period, low=self.min_period)
        self.noise_std = check_float("noise_std", noise_std, low=0.0)

    @property
    def input_kwargs(self) -> dict[str, int]:
        return {"input_size": self.num_channels}

    def target_kwargs(self) -> dict[str, Any]:
        return {"output_size": self.num_channels, "horizon": self.horizon}

    def generate(self, n: int, generator: torch.Generator) -> Batch:
        c, k, h = self.num_channels, self.num_components, self.horizon
        steps = self.seq_len + h
        t = torch.arange(steps, dtype=torch.float32)  # (S,)
        period = uniform(generator, (n, c, k, 1), self.min_period, self.max_period)
        amplitude = uniform(generator, (n, c, k, 1), 0.3, 1.0)
        phase = uniform(generator, (n, c, k, 1), 0.0, TWO_PI)
        series = (amplitude * torch.sin(TWO_PI * t / period + phase)).sum(2)  # (N, C, S)
        series = series.transpose(1, 2)  # (N, S, C)
        series = series + self.noise_std * torch.randn(series.shape, generator=generator)
        if self.min_len is None:
            lengths = torch.full((n,), self.seq_len, dtype=torch.long)
        else:
            lengths = torch.randint(self.min_len, self.seq_len + 1, (n,), generator=generator)
        future = lengths.unsqueeze(1) + torch.arange(h)  # (N, H) step index of each target
        y = series.gather(1, future.unsqueeze(-1).expand(n, h, c))  # (N, H, C)
        x = pad_after_lengths(series[:, : self.seq_len], lengths)  # (N, T, C)
        return x, (y[:, 0] if h == 1 else y), lengths
