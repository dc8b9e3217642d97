"""The shared base of the datamodules that read real data (files or named datasets).

It keeps the contract of :class:`lstmkit.data.SyntheticDataModule` — batches
``(x, y, lengths)``, :meth:`model_kwargs` handing the data's sizes and target scaling to the
task, :meth:`trivial_baseline`, :attr:`task` — and adds what a real dataset needs:

- the preprocessing fitted on the training split (scaler statistics, vocabulary, class names)
  is a plain ``dict`` returned by :meth:`state_dict`, which Lightning stores in every
  checkpoint, so ``lstmkit-predict`` can apply exactly the same preprocessing to a new file
  (``torch.load(..., weights_only=True)`` reads it: no pickled objects);
- :meth:`encode_file` / :meth:`format_predictions` for ``lstmkit-predict``;
- missing-value policies (:mod:`lstmkit.data.missing`), train-time augmentation
  (:mod:`lstmkit.data.augment`) and optional length bucketing.
"""

from __future__ import annotations

import logging
import math
from abc import abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from lstmkit._errors import DataFileError
from lstmkit._validation import check_bool, check_choice, check_float
from lstmkit.data.augment import AugmentedDataset
from lstmkit.data.base import (
    SequenceDataModule,
    SequenceDataset,
    _keep_batch,
    classification_baseline,
    regression_baseline,
)
from lstmkit.data.missing import check_policy

log = logging.getLogger(__name__)

TASKS = ("classification", "regression")


@dataclass
class Encoded:
    """A file encoded for prediction with a checkpoint's preprocessing.

    Attributes:
        dataset: yields ``(x, y, lengths)`` batches (``y`` is a placeholder when the file has
            no targets).
        index: one row per sample (row numbers, ids, times) that starts the predictions CSV.
        targets: the file's targets in original units when it has them (for the CSV).
    """

    dataset: Dataset
    index: Any  # pandas.DataFrame
    targets: Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def plain(value: Any) -> Any:
    """OmegaConf containers, tuples and mappings -> plain dicts/lists (saved hyperparameters)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, DictConfig | ListConfig):
            return OmegaConf.to_container(value, resolve=True)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def split_counts(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """``(train, val, test)`` sizes of ``n`` items; val/test get at least 1 when asked for."""
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    n_val = max(1, round(n * val_fraction)) if val_fraction > 0 else 0
    return n - n_val - n_test, n_val, n_test


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar length: shuffle, sort chunks of ``50 * batch_size`` by length, cut
    into batches, shuffle the batches. Cuts the padding of variable-length data."""

    def __init__(self, lengths: Tensor, batch_size: int, seed: int, chunk: int = 50) -> None:
        self.lengths, self.batch_size, self.seed, self.chunk = lengths, batch_size, seed, chunk
        self.epoch = 0

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        order = torch.randperm(len(self.lengths), generator=generator)
        size = self.chunk * self.batch_size
        batches = []
        for start in range(0, len(order), size):
            part = order[start : start + size]
            part = part[torch.argsort(self.lengths[part], stable=True)]
            batches += list(part.split(self.batch_size))
        for i in torch.randperm(len(batches), generator=generator).tolist():
            yield batches[i].tolist()


class FileDataModule(SequenceDataModule):
    """Base of the datamodules of real data.

    Subclasses implement :meth:`prepare_splits` (read, check, fit the preprocessing on the
    training split, fill :attr:`splits`, :attr:`fitted` and the baseline), :meth:`encode_file`,
    :meth:`format_predictions`, :attr:`input_kwargs` and :meth:`target_kwargs`.

    Args:
        val_fraction, test_fraction: shares of the data held out for validation and test.
        batch_size: samples per batch.
        seed: seed of the splits, the shuffling and the augmentation.
        num_workers: DataLoader worker processes.
        missing: ``"error"``, ``"mask"`` or ``"drop"`` (see :mod:`lstmkit.data.missing`).
        impute: ``"ffill"`` or ``"zero"``, for ``missing="mask"``.
        noise_std: train-time Gaussian noise on standardised inputs (0: off).
        step_dropout: train-time probability of dropping a step (0: off).
        bucket_by_length: batch training sequences of similar length together.
    """

    def __init__(
        self,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        batch_size: int = 32,
        seed: int = 0,
        num_workers: int = 0,
        missing: str = "error",
        impute: str = "ffill",
        noise_std: float = 0.0,
        step_dropout: float = 0.0,
        bucket_by_length: bool = False,
    ) -> None:
        super().__init__(batch_size, seed, num_workers)
        self.val_fraction = check_float("val_fraction", val_fraction, low=0.0, high=1.0)
        self.test_fraction = check_float("test_fraction", test_fraction, low=0.0, high=1.0)
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError(
                f"val_fraction={val_fraction} + test_fraction={test_fraction}: must be < 1 "
                "(something must be left to train on)"
            )
        check_policy(missing, impute)
        self.missing, self.impute = missing, impute
        self.noise_std = check_float("noise_std", noise_std, low=0.0)
        self.step_dropout = check_float(
            "step_dropout", step_dropout, low=0.0, high=1.0, high_inclusive=False
        )
        self.bucket_by_length = check_bool("bucket_by_length", bucket_by_length)
        #: The preprocessing fitted on the training split, plain values (see state_dict).
        self.fitted: dict[str, Any] | None = None
        self.task: str = "regression"

    _BASE_ARGS = (
        "val_fraction", "test_fraction", "batch_size", "seed", "num_workers", "missing",
        "impute", "noise_std", "step_dropout", "bucket_by_length",
    )  # fmt: skip

    def _save_hparams(self, init_locals: dict[str, Any]) -> None:
        """Save a subclass's ``__init__`` arguments and the base's as plain hyperparameters
        (checkpoints store them, so ``lstmkit-eval``/``lstmkit-predict`` rebuild this object)."""
        own = {k: v for k, v in init_locals.items() if k not in ("self", "kwargs", "__class__")}
        base = {name: getattr(self, name) for name in self._BASE_ARGS}
        self.save_hyperparameters(plain({**own, **base}))

    # ----------------------------------------------------------------- to implement
    @abstractmethod
    def prepare_splits(self) -> None:
        """Read the data, fit the preprocessing on the training split, fill :attr:`splits`
        (``train``/``val``/``test``), :attr:`fitted` and ``self._baseline``."""

    @abstractmethod
    def encode_file(self, path: str) -> Encoded:
        """Encode a new file with the fitted preprocessing (for ``lstmkit-predict``)."""

    @abstractmethod
    def format_predictions(self, outputs: dict[str, Tensor], encoded: Encoded) -> Any:
        """The predictions CSV as a DataFrame, from ``predict_step`` outputs."""

    # ----------------------------------------------------------------- lightning hooks
    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        self.prepare_splits()
        sizes = "/".join(str(len(self.splits.get(s, ()))) for s in ("train", "val", "test"))
        log.info("%s: %s train/val/test samples", type(self).__name__, sizes)

    def state_dict(self) -> dict[str, Any]:
        """The fitted preprocessing as plain values (empty before :meth:`setup`)."""
        return dict(self.fitted) if self.fitted else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the fitted preprocessing from a checkpoint (for :meth:`encode_file`)."""
        if state_dict:
            self.fitted = dict(state_dict)
            self.after_load_state()

    def after_load_state(self) -> None:
        """Rebuild helper objects from :attr:`fitted` (e.g. a vocabulary)."""

    # ----------------------------------------------------------------- public helpers
    def target_scaling(self) -> dict[str, list[float]]:
        fitted = self.require_fitted()
        return {
            "target_mean": list(fitted["target_mean"]),
            "target_std": list(fitted["target_std"]),
        }

    def require_fitted(self) -> dict[str, Any]:
        if not self.fitted:
            raise RuntimeError(
                f"{type(self).__name__}: no fitted preprocessing; call setup() or "
                "load_state_dict() with a checkpoint's state first"
            )
        return self.fitted

    # ----------------------------------------------------------------- internals
    def _loader(self, split: str, *, shuffle: bool) -> DataLoader:
        self.setup()
        dataset = self.splits[split]
        if split == "train" and (self.noise_std > 0 or self.step_dropout > 0):
            dataset = AugmentedDataset(dataset, **self.augment_kwargs())
        batch_sampler = None
        if shuffle and self.bucket_by_length:
            batch_sampler = BucketBatchSampler(
                self.splits[split].lengths, self.batch_size, self.seed
            )
        return make_loader(
            dataset,
            self.batch_size,
            shuffle=shuffle,
            seed=self.seed,
            num_workers=self.num_workers,
            batch_sampler=batch_sampler,
        )

    def augment_kwargs(self) -> dict[str, Any]:
        """Arguments of :class:`AugmentedDataset` for the training split."""
        return {"noise_std": self.noise_std, "step_dropout": self.step_dropout, "seed": self.seed}

    @staticmethod
    def check_task(task: str) -> str:
        return check_choice("task", task, TASKS)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int,
    num_workers: int = 0,
    batch_sampler: Sampler | None = None,
) -> DataLoader:
    """A DataLoader over a dataset whose ``__getitems__`` gathers whole batches."""
    if batch_sampler is not None:
        return DataLoader(
            dataset,
            batch_sampler=batch_sampler,
            collate_fn=_keep_batch,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=torch.Generator().manual_seed(seed) if shuffle else None,
        collate_fn=_keep_batch,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )


def encode_labels(path: str, labels: Any, class_names: list[str]) -> Tensor:
    """Class labels -> ids in ``class_names`` (labels compared as text); unknown -> error."""
    import numpy as np

    text = np.asarray([str(v) for v in labels])
    names = np.asarray(class_names)
    order = np.argsort(names)
    pos = np.searchsorted(names[order], text)
    pos = np.clip(pos, 0, len(names) - 1)
    ids = order[pos]
    bad = names[ids] != text
    if bad.any():
        i = int(np.argmax(bad))
        raise DataFileError(
            path,
            f"label {text[i]!r} of sample {i} is not a class of the training data "
            f"({', '.join(class_names)})",
        )
    return torch.as_tensor(ids, dtype=torch.long)


__all__ = [
    "TASKS",
    "BucketBatchSampler",
    "Encoded",
    "FileDataModule",
    "SequenceDataset",
    "classification_baseline",
    "encode_labels",
    "make_loader",
    "plain",
    "regression_baseline",
    "split_counts",
]
