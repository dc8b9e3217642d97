"""The explainer's next-number example: windows of an arithmetic sequence -> the next value."""

from __future__ import annotations

from typing import Any

import torch

from lstmkit._validation import check_int
from lstmkit.data.base import Batch, SyntheticDataModule


class CountingDataModule(SyntheticDataModule):
    """Windows ``[a, a+d, ..., a+(n-1)d] -> a+nd`` of arithmetic sequences.

    ``[1, 2, 3] -> 4`` is the explainer's example (``window=3``, ``max_step=1``). Starts ``a`` are
    integers in ``[0, max_start]`` and steps ``d`` integers in ``[1, max_step]``. Inputs and
    targets share units, so both are standardised with the training targets' mean and std.

    Batches: ``x`` ``(B, window, 1)``, ``y`` ``(B, 1)``, ``lengths`` all ``window``.

    Args:
        window: ``n``, the number of values the model sees.
        max_start: largest first value ``a``.
        max_step: largest common difference ``d``.
        **kwargs: split sizes, ``batch_size``, ``seed``, ``num_workers``
            (see :class:`SyntheticDataModule`).
    """

    task = "regression"
    scale_inputs_like_targets = True

    def __init__(
        self, window: int = 3, max_start: int = 100, max_step: int = 1, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._save_hparams()
        self.window = check_int("window", window)
        self.max_start = check_int("max_start", max_start, minimum=0)
        self.max_step = check_int("max_step", max_step)

    @property
    def input_kwargs(self) -> dict[str, int]:
        return {"input_size": 1}

    def target_kwargs(self) -> dict[str, Any]:
        return {"output_size": 1, "horizon": 1}

    def generate(self, n: int, generator: torch.Generator) -> Batch:
        start = torch.randint(0, self.max_start + 1, (n, 1), generator=generator).float()
        step = torch.randint(1, self.max_step + 1, (n, 1), generator=generator).float()
        values = start + step * torch.arange(self.window + 1)  # (N, window + 1)
        x = values[:, : self.window, None]  # (N, window, 1)
        y = values[:, self.window :]  # (N, 1)
        return x, y, torch.full((n,), self.window, dtype=torch.long)
