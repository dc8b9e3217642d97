"""Labelled variable-length sequences: classification or regression, one target per sequence.

Sources: ``.npz`` files (an object array of ``(T_i, C)`` arrays, or padded ``x`` + ``lengths``;
and ``y``), UCR/UEA ``.ts`` files read with aeon (uni-/multivariate, equal or unequal length),
or the archive's datasets by name (:class:`lstmkit.data.ArchiveDataModule`).
"""

from __future__ import annotations

import logging
import os
from abc import abstractmethod
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence

from lstmkit._errors import DataFileError
from lstmkit._validation import check_bool
from lstmkit.data.base import SequenceDataset
from lstmkit.data.filebase import (
    Encoded,
    FileDataModule,
    classification_baseline,
    encode_labels,
    regression_baseline,
    split_counts,
)
from lstmkit.data.files import read_sequences
from lstmkit.data.missing import first_missing, mask_missing

log = logging.getLogger(__name__)

#: ``(sequences, labels, source)``: a list of ``(T_i, C)`` float32 arrays, labels (or None)
#: and the name of the file for messages.
RawSplit = tuple[list[np.ndarray], Any, str]


def pad(sequences: list[np.ndarray]) -> tuple[Tensor, Tensor]:
    """``[(T_i, C)]`` -> padded ``(N, T_max, C)`` float32 (NaN kept) and lengths ``(N,)``."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    x = pad_sequence([torch.from_numpy(s) for s in sequences], batch_first=True)  # (N, T, C)
    return x, lengths


class LabelledSequencesDataModule(FileDataModule):
    """Base of :class:`SequencesDataModule` and :class:`ArchiveDataModule`.

    Inputs are standardised per channel with the training sequences' mean and std over their
    valid steps (``standardize=True``); regression targets likewise (the task gets the scaling).
    Classification labels may be any values; the class names are the sorted distinct training
    labels, as text.

    Args:
        task: ``"classification"`` or ``"regression"``.
        standardize: standardise the inputs.
        **kwargs: ``val_fraction``, ``test_fraction`` (ignored when the data has its own test
            split), ``batch_size``, ``seed``, ``missing``, ``impute``, ``noise_std``,
            ``step_dropout``, ``bucket_by_length`` (see :class:`FileDataModule`).
    """

    def __init__(self, task: str = "classification", standardize: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.task = self.check_task(task)
        self.standardize = check_bool("standardize", standardize)
        self.class_names: list[str] | None = None

    @abstractmethod
    def read_splits(self) -> tuple[RawSplit, RawSplit | None]:
        """``(train-or-all, test or None)``; with no test split, ``test_fraction`` cuts one."""

    # ----------------------------------------------------------------- preprocessing
    def _missing(self, x: Tensor, lengths: Tensor, source: str, keep: Tensor | None = None):
        """Apply the missing policy to padded ``x`` ``(N, T, C)``; returns ``(x, keep)`` where
        ``keep`` ``(N,)`` marks the sequences kept (all but dropped ones)."""
        valid = (torch.arange(x.shape[1]) < lengths.unsqueeze(1)).unsqueeze(-1)  # (N, T, 1)
        x = torch.where(valid, x, torch.zeros_like(x))  # NaN only at valid steps
        keep = torch.ones(len(x), dtype=torch.bool) if keep is None else keep
        if torch.isinf(x).any():  # never a missing value: no missing= policy applies
            n, t, c = (int(i) for i in torch.nonzero(torch.isinf(x))[0])
            raise DataFileError(
                source, f"infinite value in sequence {n}, step {t}, channel {c}; replace it"
            )
        if self.missing == "error":
            where = first_missing(x)
            if where is not None:
                n, t, c = where
                raise DataFileError(
                    source,
                    f"missing value (NaN) in sequence {n}, step {t}, channel {c}; "
                    "set missing=mask (impute + indicator) or missing=drop",
                )
        elif self.missing == "drop":
            keep = keep & ~torch.isnan(x).flatten(1).any(1)
        return x, keep

    def _encode_inputs(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Standardise with the fitted stats, impute + indicators (``mask``), zero padding."""
        stats = self.require_fitted()
        if self.standardize:
            x = (x - torch.tensor(stats["input_mean"])) / torch.tensor(stats["input_std"])
        if self.missing == "mask":
            x = mask_missing(x, self.impute)  # (N, T, 2C)
        valid = (torch.arange(x.shape[1]) < lengths.unsqueeze(1)).unsqueeze(-1)
        return torch.where(valid, x, torch.zeros_like(x)).float()

    def _fit(self, x: Tensor, lengths: Tensor, labels: Any, source: str) -> None:
        valid = torch.arange(x.shape[1]) < lengths.unsqueeze(1)  # (N, T)
        steps = x[valid].double()  # (sum T_i, C)
        mean = torch.nanmean(steps, 0)
        std = torch.nanmean((steps - mean).pow(2), 0).sqrt()
        std = torch.where(std > 1e-8, std, torch.ones_like(std))
        fitted: dict[str, Any] = {
            "kind": "sequences",
            "num_channels": int(x.shape[-1]),
            "input_mean": mean.tolist(),
            "input_std": std.tolist(),
        }
        if self.task == "classification":
            names = sorted({str(v) for v in np.asarray(labels).reshape(-1)})
            if len(names) < 2:
                raise DataFileError(source, f"the training labels hold {len(names)} class: need 2+")
            fitted["class_names"] = names
        else:
            y = self._float_targets(labels, source)
            fitted["target_mean"] = y.double().mean(0).tolist()
            fitted["target_std"] = y.double().std(0, correction=0).clamp_min(1e-8).tolist()
        self.fitted = fitted
        self.after_load_state()
        if self.standardize:
            log.info(
                "%s: inputs standardised per channel (%d) with the training split's mean and std "
                "over valid steps (data.standardize=false: as they are)",
                source,
                x.shape[-1],
            )

    def after_load_state(self) -> None:
        self.class_names = self.fitted.get("class_names") if self.fitted else None

    def _float_targets(self, labels: Any, source: str) -> Tensor:
        try:
            y = torch.as_tensor(np.asarray(labels, dtype=np.float32))
        except (TypeError, ValueError) as err:
            raise DataFileError(source, f"task=regression needs numeric targets: {err}") from err
        y = y.reshape(len(y), -1)  # (N, O)
        if torch.isnan(y).any():
            i = int(torch.isnan(y).any(1).to(torch.uint8).argmax())
            raise DataFileError(source, f"target of sequence {i} is missing (NaN)")
        return y

    def _targets(self, labels: Any, source: str) -> Tensor:
        stats = self.require_fitted()
        if self.task == "classification":
            return encode_labels(source, labels, stats["class_names"])
        y = self._float_targets(labels, source)
        y = (y - torch.tensor(stats["target_mean"])) / torch.tensor(stats["target_std"])
        return y.float()

    def _dataset(self, x: Tensor, lengths: Tensor, labels: Any, source: str) -> SequenceDataset:
        return SequenceDataset(
            self._encode_inputs(x, lengths), self._targets(labels, source), lengths
        )

    # ----------------------------------------------------------------- FileDataModule
    def prepare_splits(self) -> None:
        (seqs, labels, source), test = self.read_splits()
        labels = _check_labels(labels, len(seqs), source, self.task)
        x, lengths = pad(seqs)
        x, keep = self._missing(x, lengths, source)
        n = len(x)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        order = order[keep[order]]  # drop (missing="drop") after a fixed shuffle
        n_train, n_val, n_test = split_counts(
            len(order), self.val_fraction, 0.0 if test is not None else self.test_fraction
        )
        if n_train < 1 or (test is None and n_test < 1) or n_val < 1:
            raise DataFileError(
                source,
                f"{len(order)} usable sequences are too few for train/val/test splits of "
                f"{n_train}/{n_val}/{n_test}",
            )
        index = {
            "train": order[:n_train],
            "val": order[n_train : n_train + n_val],
            "test": order[n_train + n_val :],
        }
        labels = np.asarray(labels, dtype=object)
        parts = {k: (x[i], lengths[i], labels[i.numpy()], source) for k, i in index.items()}
        if test is not None:
            t_seqs, t_labels, t_source = test
            t_labels = _check_labels(t_labels, len(t_seqs), t_source, self.task)
            tx, tl = pad(t_seqs)
            if tx.shape[-1] != x.shape[-1]:
                raise DataFileError(
                    t_source, f"has {tx.shape[-1]} channels; {source} has {x.shape[-1]}"
                )
            tx, tkeep = self._missing(tx, tl, t_source)
            parts["test"] = (tx[tkeep], tl[tkeep], np.asarray(t_labels, dtype=object)[tkeep.numpy()],
                             t_source)  # fmt: skip
        self._fit(*parts["train"])
        self.splits = {k: self._dataset(*v) for k, v in parts.items()}
        y_train, y_test = self.splits["train"].y, self.splits["test"].y
        if self.task == "classification":
            self._baseline = classification_baseline(y_train, y_test, len(self.class_names))
        else:
            mean, std = (
                torch.tensor(self.fitted["target_mean"]),
                torch.tensor(self.fitted["target_std"]),
            )
            self._baseline = regression_baseline(mean, y_test * std + mean)

    @property
    def input_kwargs(self) -> dict[str, int]:
        c = int(self.require_fitted()["num_channels"])
        return {"input_size": 2 * c if self.missing == "mask" else c}

    def target_kwargs(self) -> dict[str, Any]:
        fitted = self.require_fitted()
        if self.task == "classification":
            return {"num_classes": len(fitted["class_names"])}
        return {"output_size": len(fitted["target_mean"]), "horizon": 1}

    def augment_kwargs(self) -> dict[str, Any]:
        c = int(self.require_fitted()["num_channels"])
        return {**super().augment_kwargs(), "value_channels": c}

    def encode_file(self, path: str) -> Encoded:
        """Every sequence of an ``.npz``/``.ts`` file (labels optional); ``missing="drop"``
        leaves out sequences with a missing value (the CSV's ``sequence`` column tells)."""
        import pandas as pd

        stats = self.require_fitted()
        seqs, labels = read_sequences(path, need_labels=False)
        channels = {s.shape[1] for s in seqs}
        if channels != {stats["num_channels"]}:
            raise DataFileError(
                path,
                f"sequences have {sorted(channels)} channels; the checkpoint was trained on "
                f"{stats['num_channels']}",
            )
        x, lengths = pad(seqs)
        x, keep = self._missing(x, lengths, str(path))
        ids = torch.arange(len(x))[keep]
        x, lengths = x[keep], lengths[keep]
        x = self._encode_inputs(x, lengths)
        y = torch.zeros(len(x), dtype=torch.long)  # placeholder: predict ignores it
        index = pd.DataFrame({"sequence": ids.numpy(), "length": lengths.numpy()})
        encoded = Encoded(SequenceDataset(x, y, lengths), index)
        if labels is not None:
            encoded.extra["labels"] = np.asarray(labels, dtype=object)[keep.numpy()]
        return encoded

    def format_predictions(self, outputs: dict[str, Tensor], encoded: Encoded) -> Any:
        return format_sequence_predictions(self.task, self.fitted, outputs, encoded)


def format_sequence_predictions(
    task: str, fitted: dict[str, Any], outputs: dict[str, Tensor], encoded: Encoded
) -> Any:
    """Predictions CSV rows: class label + one probability per class, or values per output."""
    frame = encoded.index.copy()
    labels = encoded.extra.get("labels")
    if task == "classification":
        names = list(fitted["class_names"])
        frame["pred"] = np.asarray(names, dtype=object)[outputs["pred"].numpy()]
        if labels is not None:
            frame["label"] = [str(v) for v in labels]
        for k, name in enumerate(names):
            frame[f"prob_{name}"] = outputs["prob"][:, k].numpy()
        return frame
    pred = outputs["pred"].reshape(len(frame), -1)
    single = pred.shape[1] == 1
    for o in range(pred.shape[1]):
        frame["pred" if single else f"pred_{o}"] = pred[:, o].numpy()
    if labels is not None:
        truth = np.asarray(labels, dtype=np.float64).reshape(len(frame), -1)
        for o in range(truth.shape[1]):
            frame["target" if single else f"target_{o}"] = truth[:, o]
    return frame


def _check_labels(labels: Any, n: int, source: str, task: str) -> Any:
    if labels is None:
        raise DataFileError(source, "the labels are missing")
    if len(labels) != n:
        raise DataFileError(source, f"{len(labels)} labels for {n} sequences")
    if task == "classification":
        arr = np.asarray(labels, dtype=object)
        missing = np.asarray([v is None or (isinstance(v, float) and np.isnan(v)) for v in arr])
        if missing.any():
            raise DataFileError(
                source, f"the label of sequence {int(np.argmax(missing))} is missing"
            )
    return labels


def _check_path(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, str | os.PathLike):
        raise TypeError(
            f"{name}={type(value).__name__}: must be the path of a .npz/.ts file (str or "
            "pathlib.Path); save arrays with np.savez(path, x=..., y=...) first"
        )


class SequencesDataModule(LabelledSequencesDataModule):
    """Labelled sequences from a ``.npz`` or ``.ts`` file.

    Example:
        >>> dm = SequencesDataModule("train.ts", test_path="test.ts")  # doctest: +SKIP

    Args:
        path: the sequences (all of them, or the training part when ``test_path`` is set).
        test_path: a separate test file (UCR/UEA archives ship ``_TRAIN``/``_TEST``), or None
            to cut ``test_fraction`` off ``path``.
        task, standardize: see :class:`LabelledSequencesDataModule`.
        **kwargs: see :class:`FileDataModule`.
    """

    def __init__(
        self,
        path: str,
        test_path: str | None = None,
        task: str = "classification",
        standardize: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(task, standardize, **kwargs)
        _check_path("path", path)
        _check_path("test_path", test_path)
        self._save_hparams(locals())
        self.path = str(path)
        self.test_path = None if test_path is None else str(test_path)

    def read_splits(self) -> tuple[RawSplit, RawSplit | None]:
        seqs, labels = read_sequences(self.path)
        test = None
        if self.test_path is not None:
            t_seqs, t_labels = read_sequences(self.test_path)
            test = (t_seqs, t_labels, str(self.test_path))
        return (seqs, labels, self.path), test


__all__ = [
    "LabelledSequencesDataModule",
    "SequencesDataModule",
    "format_sequence_predictions",
    "pad",
]
