"""Classify noisy waveforms of variable length by shape."""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from lstmkit._validation import check_float, check_int
from lstmkit.data.base import TWO_PI, Batch, SyntheticDataModule, pad_after_lengths, uniform


class WaveformDataModule(SyntheticDataModule):
    """One waveform per sequence — sine, square, triangle or sawtooth — with random period,
    phase and amplitude, plus Gaussian noise; the label is the shape (many-to-one).

    Batches: ``x`` ``(B, T, 1)``, ``y`` ``(B,)`` int64 in ``[0, 4)``, ``lengths`` in
    ``[min_len, max_len]``.

    Args:
        min_len, max_len: range of sequence lengths.
        min_period, max_period: range of the periods, in steps.
        noise_std: standard deviation of the noise.
        **kwargs: split sizes, ``batch_size``, ``seed``, ``num_workers``.
    """

    task = "classification"
    class_names: ClassVar[tuple[str, ...]] = ("sine", "square", "triangle", "sawtooth")

    def __init__(
        self,
        min_len: int = 24,
        max_len: int = 48,
        min_period: float = 6.0,
        max_period: float = 16.0,
        noise_std: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._save_hparams()
        self.min_len = check_int("min_len", min_len)
        self.max_len = check_int("max_len", max_len, minimum=self.min_len)
        self.min_period = check_float("min_period", min_period, low=2.0)
        self.max_period = check_float("max_period", max_period, low=self.min_period)
        self.noise_std = check_float("noise_std", noise_std, low=0.0)

    @property
    def input_kwargs(self) -> dict[str, int]:
        return {"input_size": 1}

    def target_kwargs(self) -> dict[str, Any]:
        return {"num_classes": len(self.class_names)}

    def generate(self, n: int, generator: torch.Generator) -> Batch:
        t = torch.arange(self.max_len, dtype=torch.float32)  # (T,)
        period = uniform(generator, (n, 1), self.min_period, self.max_period)
        phase = uniform(generator, (n, 1), 0.0, 1.0)
        amplitude = uniform(generator, (n, 1), 0.5, 1.5)
        cycle = torch.remainder(t / period + phase, 1.0)  # (N, T) position in the cycle
        shapes = torch.stack(
            [
                torch.sin(TWO_PI * cycle),  # sine
                torch.where(cycle < 0.5, 1.0, -1.0),  # square
                4.0 * (cycle - 0.5).abs() - 1.0,  # triangle
                2.0 * cycle - 1.0,  # sawtooth
            ]
        )  # (4, N, T)
        y = torch.randint(0, len(self.class_names), (n,), generator=generator)
        wave = shapes[y, torch.arange(n)] * amplitude  # (N, T)
        wave = wave + self.noise_std * torch.randn(wave.shape, generator=generator)
        lengths = torch.randint(self.min_len, self.max_len + 1, (n,), generator=generator)
        return pad_after_lengths(wave.unsqueeze(-1), lengths), y, lengths
