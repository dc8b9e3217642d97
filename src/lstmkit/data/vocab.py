"""Tokenisation and a vocabulary built on the training split (plain data, saved in checkpoints)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from lstmkit._validation import check_choice, check_int

PAD, UNK = "<pad>", "<unk>"
LEVELS = ("char", "word")
_WORD = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str, level: str, lowercase: bool = True) -> list[str]:
    """Characters, or words and punctuation marks (``"Hi, you!"`` -> ``hi , you !``)."""
    text = text.lower() if lowercase else text
    return list(text) if level == "char" else _WORD.findall(text)


class Vocabulary:
    """Token <-> id, with ``<pad>`` = 0 and ``<unk>`` = 1.

    Build with :meth:`build` on the training texts only; tokens seen fewer than ``min_freq``
    times, and those beyond ``max_size`` (most frequent first, ties alphabetical), map to
    ``<unk>``, as does every token the training split never saw.
    """

    pad_index, unk_index = 0, 1

    def __init__(self, tokens: Sequence[str]) -> None:
        if list(tokens[:2]) != [PAD, UNK]:
            raise ValueError(f"a vocabulary starts with {PAD!r}, {UNK!r}; got {list(tokens[:2])}")
        self.itos = list(tokens)
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(
        cls, token_lists: Iterable[Sequence[str]], min_freq: int = 1, max_size: int | None = None
    ) -> Vocabulary:
        check_int("min_freq", min_freq)
        if max_size is not None:
            check_int("max_size", max_size, minimum=3)
        counts = Counter(t for tokens in token_lists for t in tokens)
        ranked = sorted(
            (t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t)
        )
        if max_size is not None:
            ranked = ranked[: max_size - 2]
        return cls([PAD, UNK, *ranked])

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return [self.stoi.get(t, self.unk_index) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[i] for i in ids]


def check_level(level: str) -> str:
    return check_choice("level", level, LEVELS)


__all__ = ["LEVELS", "PAD", "UNK", "Vocabulary", "check_level", "tokenize"]
