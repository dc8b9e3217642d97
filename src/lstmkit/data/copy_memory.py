"""The copy-memory task (Arjovsky, Shah & Bengio 2016): recall symbols after a long delay."""

from __future__ import annotations

from typing import Any

import torch

from lstmkit._validation import check_int
from lstmkit.data.base import Batch, SyntheticDataModule


class CopyDataModule(SyntheticDataModule):
    """Input: ``copy_len`` symbols, ``delay - 1`` blanks, a delimiter, ``copy_len`` blanks.
    Target at every step: blank, except the last ``copy_len`` steps which repeat the symbols.

    Token ids: ``0`` blank, ``1..num_symbols`` symbols, ``num_symbols + 1`` delimiter, so the
    task gets ``vocab_size = num_symbols + 2`` and ``num_classes = num_symbols + 1``. A model
    without memory predicts blanks and then guesses, a cross-entropy of
    ``copy_len * log(num_symbols) / (delay + 2 * copy_len)`` per step.

    Batches: ``x`` ``(B, T)`` int64, ``y`` ``(B, T)`` int64 per-step labels, ``lengths`` all
    ``T = delay + 2 * copy_len``.

    Args:
        delay: ``T`` in the paper, the number of steps between the symbols and the delimiter+1.
        num_symbols: categories the symbols are drawn from (8 in the paper).
        copy_len: symbols to remember (10 in the paper).
        **kwargs: split sizes, ``batch_size``, ``seed``, ``num_workers``.
    """

    task = "classification"
    per_step = True

    def __init__(
        self, delay: int = 20, num_symbols: int = 8, copy_len: int = 10, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._save_hparams()
        self.delay = check_int("delay", delay)
        self.num_symbols = check_int("num_symbols", num_symbols)
        self.copy_len = check_int("copy_len", copy_len)

    @property
    def seq_len(self) -> int:
        return self.delay + 2 * self.copy_len

    @property
    def input_kwargs(self) -> dict[str, int]:
        return {"vocab_size": self.num_symbols + 2}

    def target_kwargs(self) -> dict[str, Any]:
        return {"num_classes": self.num_symbols + 1}

    def generate(self, n: int, generator: torch.Generator) -> Batch:
        k, t = self.copy_len, self.seq_len
        symbols = torch.randint(1, self.num_symbols + 1, (n, k), generator=generator)  # (N, K)
        x = torch.zeros(n, t, dtype=torch.long)
        x[:, :k] = symbols
        x[:, self.delay + k - 1] = self.num_symbols + 1  # delimiter
        y = torch.zeros(n, t, dtype=torch.long)
        y[:, -k:] = symbols
        return x, y, torch.full((n,), t, dtype=torch.long)
