"""Train-time augmentation of whole batches: Gaussian noise and random step dropout."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from lstmkit._validation import check_float

Batch = tuple[Tensor, Tensor, Tensor]


class AugmentedDataset(Dataset):
    """Wraps a dataset whose ``__getitems__`` returns batches ``(x, y, lengths)``.

    - ``noise_std``: add ``N(0, noise_std²)`` to the value channels at valid steps (float
      inputs, which are standardised, so the scale is in standard deviations).
    - ``step_dropout``: each valid step is dropped with this probability: value channels set to
      0 and, when the data carries missing-indicator channels, those set to 1 (the step looks
      missing); token inputs get ``drop_token`` instead.

    Args:
        dataset: the training split.
        noise_std, step_dropout: strengths (0 turns each off).
        seed: seed of the augmentation's own generator.
        value_channels: number of leading channels holding values (the rest are missing
            indicators); None: all channels.
        drop_token: token id written at dropped steps of integer inputs (e.g. ``<unk>``).
    """

    def __init__(
        self,
        dataset: Dataset,
        noise_std: float = 0.0,
        step_dropout: float = 0.0,
        seed: int = 0,
        value_channels: int | None = None,
        drop_token: int | None = None,
    ) -> None:
        self.dataset = dataset
        self.noise_std = check_float("noise_std", noise_std, low=0.0)
        self.step_dropout = check_float(
            "step_dropout", step_dropout, low=0.0, high=1.0, high_inclusive=False
        )
        self.value_channels = value_channels
        self.drop_token = drop_token
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Batch:
        x, y, lengths = self.__getitems__([index])
        return x[0], y[0], lengths[0]

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        x, y, lengths = self.dataset.__getitems__(indices)
        valid = torch.arange(x.shape[1]) < lengths.unsqueeze(1)  # (B, T)
        if x.is_floating_point():
            x = x.clone()
            c = x.shape[-1] if self.value_channels is None else self.value_channels
            if self.noise_std > 0:
                noise = torch.randn(x[..., :c].shape, generator=self.generator)  # (B, T, c)
                x[..., :c] += self.noise_std * noise * valid.unsqueeze(-1)
            if self.step_dropout > 0:
                drop = (
                    torch.rand(valid.shape, generator=self.generator) < self.step_dropout
                ) & valid
                x[..., :c] = x[..., :c].masked_fill(drop.unsqueeze(-1), 0.0)
                if c < x.shape[-1]:
                    x[..., c:] = x[..., c:].masked_fill(drop.unsqueeze(-1), 1.0)
        elif self.step_dropout > 0:  # token ids (B, T)
            drop = (torch.rand(valid.shape, generator=self.generator) < self.step_dropout) & valid
            x = x.masked_fill(drop, 0 if self.drop_token is None else self.drop_token)
        return x, y, lengths


__all__ = ["AugmentedDataset"]
