"""One long series streamed as consecutive windows, for stateful training (Keras ``stateful``).

The series is cut into ``num_streams`` contiguous pieces laid side by side (the batch rows, as
in PyTorch's ``word_language_model``); batch ``i`` holds window ``i`` of every piece, so row
``b`` of batch ``i + 1`` continues row ``b`` of batch ``i``::

    series: a0 a1 a2 ... | b0 b1 b2 ... | ...          (T, C), num_streams pieces of S steps
    batch 0: [a0..a(w-1)]  [b0..b(w-1)] ...  -> targets a(w), b(w), ... (next `horizon` values)
    batch 1: [a(w)..a(2w-1)] ...

A task with ``stateful=True`` carries its state from one batch to the next; batches come in
order (no shuffling) and every batch has ``num_streams`` rows of ``window`` steps.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lstmkit._logging import get_logger
from lstmkit._validation import check_float, check_int
from lstmkit.data.base import TWO_PI, Batch, SequenceDataModule, uniform

log = get_logger(__name__)


class StreamDataset(Dataset):
    """Consecutive windows of ``num_streams`` parallel streams; item ``i`` is a whole batch.

    Args:
        streams: ``(B, S, C)`` standardised series, one contiguous piece per row.
        window: steps per batch.
        horizon: future values predicted after each window.
    """

    def __init__(self, streams: Tensor, window: int, horizon: int) -> None:
        self.streams, self.window, self.horizon = streams, window, horizon
        self.num_windows = (streams.shape[1] - horizon) // window
        if self.num_windows < 1:
            raise ValueError(
                f"a stream of {streams.shape[1]} steps holds no window of {window} steps plus "
                f"horizon {horizon}: lower num_streams or window, or lengthen the series"
            )
        self.lengths = torch.full((streams.shape[0],), window, dtype=torch.long)

    def __len__(self) -> int:
        return self.num_windows

    def __getitem__(self, index: int) -> Batch:
        start, end = index * self.window, (index + 1) * self.window
        x = self.streams[:, start:end]  # (B, w, C)
        y = self.streams[:, end : end + self.horizon]  # (B, h, C)
        return x, (y[:, 0] if self.horizon == 1 else y), self.lengths


class StreamDataModule(SequenceDataModule):
    """A long noisy sum of sines (or your own series), streamed in consecutive windows.

    Use with ``model.stateful=true`` (and optionally ``model.tbptt_steps`` to cut long windows).

    Args:
        series_len: steps of the synthetic training series (validation and test get
            ``series_len // 4`` each, continuing the same process).
        window: steps per batch (the truncation length of stateful training).
        num_streams: parallel pieces = rows of every batch.
        horizon: future values forecast after each window.
        num_channels: channels of the synthetic series.
        num_components: sines per channel; periods in ``[min_period, max_period]`` steps.
        noise_std: Gaussian noise added to every step.
        seed: seed of the synthetic series.
        series: your own ``(T,)`` or ``(T, C)`` series instead (split 80/10/10 in time).
    """

    def __init__(
        self,
        series_len: int = 20_000,
        window: int = 50,
        num_streams: int = 16,
        horizon: int = 1,
        num_channels: int = 1,
        num_components: int = 2,
        min_period: float = 10.0,
        max_period: float = 200.0,
        noise_std: float = 0.05,
        seed: int = 0,
        series: Tensor | None = None,
    ) -> None:
        # batch_size is num_streams here: every item of the loader is a whole batch
        super().__init__(batch_size=check_int("num_streams", num_streams), seed=seed, num_workers=0)
        self.save_hyperparameters(ignore=["series"])
        self.series_len = check_int("series_len", series_len)
        self.window = check_int("window", window)
        self.num_streams = check_int("num_streams", num_streams)
        self.horizon = check_int("horizon", horizon)
        self.num_channels = check_int("num_channels", num_channels)
        self.num_components = check_int("num_components", num_components)
        self.min_period = check_float("min_period", min_period, low=2.0)
        self.max_period = check_float("max_period", max_period, low=self.min_period)
        self.noise_std = check_float("noise_std", noise_std, low=0.0)
        if series is not None:
            series = torch.as_tensor(series, dtype=torch.float32)
            series = series.unsqueeze(-1) if series.dim() == 1 else series  # (T, C)
            self.num_channels = series.shape[1]
        self.series = series
        self.target_mean: Tensor | None = None
        self.target_std: Tensor | None = None

    def generate(self) -> dict[str, Tensor]:
        """The raw ``(T, C)`` train/val/test series."""
        if self.series is not None:
            n = len(self.series)
            a, b = int(0.8 * n), int(0.9 * n)
            return {"train": self.series[:a], "val": self.series[a:b], "test": self.series[b:]}
        g = torch.Generator().manual_seed(self.seed)
        c, k = self.num_channels, self.num_components
        period = uniform(g, (c, k), self.min_period, self.max_period)  # (C, K)
        amplitude = uniform(g, (c, k), 0.3, 1.0)
        phase = uniform(g, (c, k), 0.0, TWO_PI)
        extra = self.series_len // 4
        t = torch.arange(self.series_len + 2 * extra, dtype=torch.float32)  # (T,)
        waves = amplitude * torch.sin(TWO_PI * t[:, None, None] / period + phase)  # (T, C, K)
        series = waves.sum(-1) + self.noise_std * torch.randn(len(t), c, generator=g)  # (T, C)
        a, b = self.series_len, self.series_len + extra
        return {"train": series[:a], "val": series[a:b], "test": series[b:]}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        raw = self.generate()
        self.target_mean = raw["train"].mean(0)
        self.target_std = raw["train"].std(0).clamp_min(1e-8)
        err = raw["test"] - self.target_mean
        self._baseline = {"test/mse": err.pow(2).mean().item(), "test/mae": err.abs().mean().item()}
        for name, series in raw.items():
            scaled = (series - self.target_mean) / self.target_std  # (T, C)
            steps = len(scaled) // self.num_streams
            streams = scaled[: steps * self.num_streams].reshape(self.num_streams, steps, -1)
            self.splits[name] = StreamDataset(streams, self.window, self.horizon)  # (B, S, C)
        log.info(
            "%s: %d/%d/%d train/val/test batches of %d streams x %d steps",
            type(self).__name__,
            *(len(self.splits[s]) for s in ("train", "val", "test")),
            self.num_streams,
            self.window,
        )

    def _loader(self, split: str, *, shuffle: bool = False) -> DataLoader:
        self.setup()
        # batch_size=None: each item is already a whole batch, and the order is the point
        return DataLoader(self.splits[split], batch_size=None, shuffle=False)

    @property
    def input_kwargs(self) -> dict[str, int]:
        return {"input_size": self.num_channels}

    def target_kwargs(self) -> dict[str, Any]:
        return {"output_size": self.num_channels, "horizon": self.horizon}

    def target_scaling(self) -> dict[str, list[float]]:
        assert self.target_mean is not None and self.target_std is not None
        return {"target_mean": self.target_mean.tolist(), "target_std": self.target_std.tolist()}

    @property
    def baseline_description(self) -> str:
        return "always predict the training-series mean"
