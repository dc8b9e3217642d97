"""The adding problem (Hochreiter & Schmidhuber 1997, experiment 4)."""

from __future__ import annotations

from typing import Any

import torch

from lstmkit._validation import check_bool, check_choice, check_int
from lstmkit.data.base import Batch, SyntheticDataModule, pad_after_lengths, uniform

PLACEMENTS = ("halves", "paper")


class AddingDataModule(SyntheticDataModule):
    """Two channels per step: a value in ``[-1, 1]`` and a marker in ``{0, 1}``. Two steps are
    marked and the target is the sum of the two marked values, read after the whole sequence.

    ``placement="paper"`` marks as Hochreiter & Schmidhuber did: the first mark among the first
    10 steps, the second among the first ``T/2 - 1``, so both lie at least ``T/2`` steps before
    the end. ``placement="halves"`` (the default; Le et al. 2015, Arjovsky et al. 2016) marks one
    step in each half: the model can first learn to add the later value, and then the earlier
    one, which shortens the initial plateau from thousands of steps to hundreds.

    Always predicting the mean scores an MSE of about ``2/3`` (the variance of the sum); the
    original paper counts a sequence as solved when the absolute error is below 0.04.

    Batches: ``x`` ``(B, T, 2)``, ``y`` ``(B, 1)``, ``lengths`` ``(B,)``; with
    ``variable_length`` each length is drawn from ``[T, T + T // 10]`` as in the paper.

    Args:
        seq_len: ``T``, the (minimum) sequence length, at least 4.
        placement: ``"halves"`` or ``"paper"`` (see above).
        variable_length: draw lengths from ``[T, T + T // 10]`` instead of exactly ``T``.
        **kwargs: split sizes, ``batch_size``, ``seed``, ``num_workers``.
    """

    task = "regression"

    def __init__(
        self,
        seq_len: int = 50,
        placement: str = "halves",
        variable_length: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._save_hparams()
        self.seq_len = check_int("seq_len", seq_len, minimum=4)
        self.placement = check_choice("placement", placement, PLACEMENTS)
        self.variable_length = check_bool("variable_length", variable_length)

    @property
    def input_kwargs(self) -> dict[str, int]:
        return {"input_size": 2}

    def target_kwargs(self) -> dict[str, Any]:
        return {"output_size": 1, "horizon": 1}

    def generate(self, n: int, generator: torch.Generator) -> Batch:
        t = self.seq_len
        max_len = t + t // 10 if self.variable_length else t
        if self.variable_length:
            lengths = torch.randint(t, max_len + 1, (n,), generator=generator)
        else:
            lengths = torch.full((n,), t, dtype=torch.long)
        values = uniform(generator, (n, max_len), -1.0, 1.0)  # (N, T)
        half = t // 2
        if self.placement == "paper":  # first in [0, min(10, T/2 - 1)), second in [0, T/2 - 1)
            first = torch.randint(0, min(10, half - 1), (n,), generator=generator)
            second = torch.randint(0, half - 2, (n,), generator=generator)
            second = second + (second >= first).long()  # distinct from first, still < T/2 - 1
        else:  # one in [0, T/2), one in [T/2, T)
            first = torch.randint(0, half, (n,), generator=generator)
            second = torch.randint(half, t, (n,), generator=generator)
        marks = torch.zeros(n, max_len)
        rows = torch.arange(n)
        marks[rows, first] = 1.0
        marks[rows, second] = 1.0
        y = (values[rows, first] + values[rows, second]).unsqueeze(1)  # (N, 1)
        x = pad_after_lengths(torch.stack([values, marks], dim=-1), lengths)  # (N, T, 2)
        return x, y, lengths
