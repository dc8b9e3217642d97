"""Addition as characters: ``"535+61"`` -> ``"596"``, a sequence-to-sequence task."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from lstmkit._validation import check_int
from lstmkit.data.base import IGNORE_INDEX, Batch, SyntheticDataModule

#: Token ids shared by inputs and outputs: pad, begin, end, the digits, ``+``.
PAD, BOS, EOS = 0, 1, 2
DIGIT0 = 3
PLUS = DIGIT0 + 10
VOCAB = ("<pad>", "<bos>", "<eos>", *"0123456789", "+")


def _digits(n: Tensor, width: int) -> tuple[Tensor, Tensor]:
    """Decimal digits of non-negative ints, left-aligned: ``(N, width)`` digits and ``(N,)`` counts.

    Positions past each number's count hold 0 (callers mask them).
    """
    count = torch.ones_like(n)
    for k in range(1, width):
        count += (n >= 10**k).long()
    position = torch.arange(width).unsqueeze(0)  # (1, W)
    power = (count.unsqueeze(1) - 1 - position).clamp_min(0)  # (N, W): 10^power of each digit
    digits = (n.unsqueeze(1) // (10**power)) % 10
    return torch.where(position < count.unsqueeze(1), digits, torch.zeros_like(digits)), count


def encode_sum(a: Tensor, b: Tensor, num_digits: int) -> Batch:
    """Token ids of ``"a+b"`` ``(N, 2D+1)``, of ``"a+b"``'s sum then ``<eos>`` ``(N, D+2)``
    (``IGNORE_INDEX`` after), and the input lengths ``(N,)``."""
    da, na = _digits(a, num_digits)  # (N, D), (N,)
    db, nb = _digits(b, num_digits)
    ds, ns = _digits(a + b, num_digits + 1)  # (N, D+1), (N,)
    n, width = len(a), 2 * num_digits + 1
    p = torch.arange(width).unsqueeze(0).expand(n, width)  # (N, 2D+1) positions
    na_ = na.unsqueeze(1)
    from_a = da.gather(1, p.clamp_max(num_digits - 1)) + DIGIT0
    from_b = db.gather(1, (p - na_ - 1).clamp(0, num_digits - 1)) + DIGIT0
    x = torch.where(p < na_, from_a, torch.where(p == na_, PLUS, from_b))
    lengths = na + nb + 1
    x = torch.where(p < lengths.unsqueeze(1), x, torch.full_like(x, PAD))
    q = torch.arange(num_digits + 2).unsqueeze(0)  # (1, D+2)
    y = torch.cat([ds + DIGIT0, torch.zeros(n, 1, dtype=torch.long)], dim=1)  # (N, D+2)
    y = torch.where(q < ns.unsqueeze(1), y, torch.where(q == ns.unsqueeze(1), EOS, IGNORE_INDEX))
    return x, y, lengths


def decode_tokens(tokens: Tensor | list[int]) -> str:
    """Token ids -> characters, stopping at ``<eos>``; ``<pad>``/``<bos>``/ignored ids skipped."""
    chars = []
    for t in torch.as_tensor(tokens).tolist():
        if t == EOS:
            break
        if 0 <= t < len(VOCAB) and t not in (PAD, BOS):
            chars.append(VOCAB[t])
    return "".join(chars)


class AdditionDataModule(SyntheticDataModule):
    """Add two numbers written as characters: ``"535+61"`` -> ``"596"``.

    Each operand is drawn uniformly from ``[0, 10**num_digits)``, so inputs have 3 to
    ``2 * num_digits + 1`` tokens and outputs 1 to ``num_digits + 1`` digits plus ``<eos>``:
    the output length differs from the input's and depends on the values.

    Token ids (inputs and outputs share them): ``0`` pad, ``1`` ``<bos>``, ``2`` ``<eos>``,
    ``3..12`` the digits, ``13`` ``+``.

    Batches: ``x`` ``(B, T)`` int64 padded with 0, ``y`` ``(B, num_digits + 2)`` int64 (the
    sum's digits, ``<eos>``, then ``IGNORE_INDEX``), ``lengths`` ``(B,)`` of ``x``.

    Args:
        num_digits: maximum digits of each operand.
        **kwargs: split sizes, ``batch_size``, ``seed``, ``num_workers``.
    """

    task = "seq2seq"
    vocab: ClassVar[tuple[str, ...]] = VOCAB

    def __init__(self, num_digits: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._save_hparams()
        self.num_digits = check_int("num_digits", num_digits)

    @property
    def input_kwargs(self) -> dict[str, int]:
        return {"vocab_size": len(VOCAB)}

    def target_kwargs(self) -> dict[str, Any]:
        return {
            "num_classes": len(VOCAB),
            "padding_idx": PAD,
            "bos_index": BOS,
            "eos_index": EOS,
            "max_output_len": self.num_digits + 2,
        }

    def generate(self, n: int, generator: torch.Generator) -> Batch:
        high = 10**self.num_digits
        a = torch.randint(0, high, (n,), generator=generator)
        b = torch.randint(0, high, (n,), generator=generator)
        return encode_sum(a, b, self.num_digits)

    @property
    def baseline_description(self) -> str:
        return "always predict the most frequent training token at each output position"

    def _compute_baseline(
        self, y_train: Tensor, y_test: Tensor, lengths: Tensor
    ) -> dict[str, float]:
        # per-position mode of the training targets (IGNORE_INDEX counts as its own value)
        shifted = y_train.clamp_min(-1) + 1  # IGNORE_INDEX -> 0
        counts = torch.stack(
            [torch.bincount(col, minlength=len(VOCAB) + 1) for col in shifted.T]
        )  # (L, V+1)
        mode = counts.argmax(1) - 1  # (L,)
        mode = torch.where(mode < 0, IGNORE_INDEX, mode)
        pred = mode.unsqueeze(0).expand_as(y_test)
        valid = y_test != IGNORE_INDEX
        correct = (pred == y_test) | ~valid
        return {
            "test/token_acc": ((pred == y_test) & valid).sum().item() / valid.sum().item(),
            "test/exact_match": correct.all(1).double().mean().item(),
        }
