"""Text classification from a CSV/Parquet file with a text column and a label column."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from lstmkit._errors import DataFileError
from lstmkit._validation import check_int
from lstmkit.data.base import SequenceDataset
from lstmkit.data.filebase import (
    Encoded,
    FileDataModule,
    classification_baseline,
    encode_labels,
    split_counts,
)
from lstmkit.data.files import check_file, read_table, table_columns
from lstmkit.data.sequences import format_sequence_predictions
from lstmkit.data.vocab import Vocabulary, check_level, tokenize


class TextDataModule(FileDataModule):
    """Texts -> token ids ``(B, T)`` (``<pad>`` = 0) for a classifier with an embedding.

    The vocabulary is built on the training split only (``min_freq``, ``max_size``); it is part
    of :meth:`state_dict`, so checkpoints carry it and ``lstmkit-predict`` encodes new texts
    the same way. An empty text becomes one ``<unk>`` token.

    Missing values: a missing text stops the run (``missing="error"``), drops the row
    (``"drop"``) or becomes an empty text (``"mask"``); a missing label always stops the run
    unless ``missing="drop"``.

    Example:
        >>> dm = TextDataModule("reviews.csv", text_column="review", label_column="stars",
        ...                     level="word", min_freq=2)  # doctest: +SKIP

    Args:
        path: CSV/Parquet file (all the data, or the training part when ``test_path`` is set).
        text_column, label_column: column names.
        test_path: a separate test file with the same columns, or None.
        level: ``"char"`` or ``"word"`` tokens.
        lowercase: lowercase before tokenising.
        min_freq: least count in the training split for a token to get its own id.
        max_size: largest vocabulary, ``<pad>`` and ``<unk>`` included; None: no limit.
        max_length: keep the first ``max_length`` tokens of each text; None: all.
        **kwargs: split fractions, ``batch_size``, ``seed``, ``missing``, ``step_dropout``
            (dropped tokens become ``<unk>``), ``bucket_by_length`` (see
            :class:`FileDataModule`).
    """

    def __init__(
        self,
        path: str,
        text_column: str = "text",
        label_column: str = "label",
        test_path: str | None = None,
        level: str = "word",
        lowercase: bool = True,
        min_freq: int = 1,
        max_size: int | None = 20000,
        max_length: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._save_hparams(locals())
        if self.noise_std > 0:
            raise ValueError(
                f"noise_std={self.noise_std}: token inputs take no noise; use step_dropout"
            )
        self.task = "classification"
        self.path, self.test_path = str(path), test_path
        self.text_column, self.label_column = text_column, label_column
        self.level = check_level(level)
        self.lowercase = bool(lowercase)
        self.min_freq = check_int("min_freq", min_freq)
        self.max_size = None if max_size is None else check_int("max_size", max_size, minimum=3)
        self.max_length = None if max_length is None else check_int("max_length", max_length)
        self.vocab: Vocabulary | None = None
        self.class_names: list[str] | None = None

    # ----------------------------------------------------------------- reading
    def _read(self, path: str, *, need_labels: bool = True) -> tuple[list[str], Any, np.ndarray]:
        """``(texts, labels or None, kept row numbers)`` after the missing-value policy."""
        columns = [self.text_column]
        has_labels = need_labels or self.label_column in table_columns(check_file(path))
        if has_labels:
            columns.append(self.label_column)
        frame = read_table(path, columns)
        rows = frame.index.to_numpy()
        text_missing = frame[self.text_column].isna().to_numpy()
        label_missing = frame[self.label_column].isna().to_numpy() if has_labels else None
        if self.missing == "drop":
            keep = ~text_missing & (~label_missing if has_labels else True)
            frame, rows = frame[keep], rows[keep]
        else:
            if label_missing is not None and label_missing.any():
                row = int(rows[np.argmax(label_missing)])
                raise DataFileError(
                    path, f"label missing at row {row}, column {self.label_column!r}"
                )
            if self.missing == "error" and text_missing.any():
                row = int(rows[np.argmax(text_missing)])
                raise DataFileError(
                    path,
                    f"missing text at row {row}, column {self.text_column!r}; set missing=mask "
                    "(empty text) or missing=drop",
                )
        texts = frame[self.text_column].fillna("").astype(str).tolist()
        labels = frame[self.label_column].to_numpy(dtype=object) if has_labels else None
        return texts, labels, rows

    def _tokens(self, texts: list[str]) -> list[list[str]]:
        out = [tokenize(t, self.level, self.lowercase) for t in texts]
        return [t[: self.max_length] for t in out] if self.max_length else out

    def _ids(self, token_lists: list[list[str]]) -> tuple[Tensor, Tensor]:
        """Padded ids ``(N, T_max)`` int64 and lengths ``(N,)``; empty texts -> ``[<unk>]``."""
        assert self.vocab is not None
        encoded = [self.vocab.encode(t) or [self.vocab.unk_index] for t in token_lists]
        lengths = torch.tensor([len(e) for e in encoded], dtype=torch.long)
        ids = torch.zeros(len(encoded), int(lengths.max()), dtype=torch.long)
        flat = torch.tensor([i for e in encoded for i in e], dtype=torch.long)
        valid = torch.arange(ids.shape[1]) < lengths.unsqueeze(1)  # (N, T)
        ids[valid] = flat
        return ids, lengths

    # ----------------------------------------------------------------- FileDataModule
    def prepare_splits(self) -> None:
        texts, labels, _ = self._read(self.path)
        n = len(texts)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed)).numpy()
        test_fraction = 0.0 if self.test_path else self.test_fraction
        n_train, n_val, _ = split_counts(n, self.val_fraction, test_fraction)
        if n_train < 1 or n_val < 1 or (not self.test_path and n - n_train - n_val < 1):
            raise DataFileError(self.path, f"{n} usable rows are too few for train/val/test splits")
        index = {
            "train": order[:n_train],
            "val": order[n_train : n_train + n_val],
            "test": order[n_train + n_val :],
        }
        parts = {k: ([texts[i] for i in idx], labels[idx], self.path) for k, idx in index.items()}
        if self.test_path:
            t_texts, t_labels, _ = self._read(self.test_path)
            parts["test"] = (t_texts, t_labels, self.test_path)
        train_tokens = self._tokens(parts["train"][0])
        vocab = Vocabulary.build(train_tokens, self.min_freq, self.max_size)
        names = sorted({str(v) for v in parts["train"][1]})
        if len(names) < 2:
            raise DataFileError(self.path, f"the training labels hold {len(names)} class: need 2+")
        self.fitted = {"kind": "text", "vocabulary": vocab.itos, "class_names": names}
        self.after_load_state()
        self.splits = {}
        for name, (split_texts, split_labels, source) in parts.items():
            ids, lengths = self._ids(train_tokens if name == "train" else self._tokens(split_texts))
            y = encode_labels(source, split_labels, names)
            self.splits[name] = SequenceDataset(ids, y, lengths)
        self._baseline = classification_baseline(
            self.splits["train"].y, self.splits["test"].y, len(names)
        )

    def after_load_state(self) -> None:
        assert self.fitted is not None
        self.vocab = Vocabulary(self.fitted["vocabulary"])
        self.class_names = list(self.fitted["class_names"])

    @property
    def input_kwargs(self) -> dict[str, int]:
        return {"vocab_size": len(self.require_fitted()["vocabulary"]), "padding_idx": 0}

    def target_kwargs(self) -> dict[str, Any]:
        return {"num_classes": len(self.require_fitted()["class_names"])}

    def augment_kwargs(self) -> dict[str, Any]:
        return {**super().augment_kwargs(), "drop_token": Vocabulary.unk_index}

    def encode_file(self, path: str) -> Encoded:
        import pandas as pd

        self.require_fitted()
        texts, labels, rows = self._read(path, need_labels=False)
        if not texts:
            raise DataFileError(path, "no usable rows")
        ids, lengths = self._ids(self._tokens(texts))
        index = pd.DataFrame({"row": rows, "num_tokens": lengths.numpy()})
        encoded = Encoded(
            SequenceDataset(ids, torch.zeros(len(ids), dtype=torch.long), lengths), index
        )
        if labels is not None:
            encoded.extra["labels"] = labels
        return encoded

    def format_predictions(self, outputs: dict[str, Tensor], encoded: Encoded) -> Any:
        return format_sequence_predictions("classification", self.fitted, outputs, encoded)


__all__ = ["TextDataModule"]
