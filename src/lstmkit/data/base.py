"""In-memory sequence datasets and the shared synthetic LightningDataModule.

Every datamodule yields batches ``(x, y, lengths)``:

- ``x``: ``(B, T, C)`` float features, or ``(B, T)`` int64 token ids; zero after each length.
- ``y``: many-to-one targets ``(B,)`` (class ids) / ``(B, O)`` / ``(B, H, O)`` (regression with
  horizon ``H > 1``), or per-step class ids ``(B, T)`` with ``IGNORE_INDEX`` at padded steps.
- ``lengths``: ``(B,)`` int64, the number of valid steps of each sequence.

Batches are gathered by tensor indexing (``SequenceDataset.__getitems__``), not by a Python loop
over samples and a collate function, and trimmed to the longest sequence in the batch.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from lightning.pytorch import LightningDataModule
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lstmkit._logging import get_logger
from lstmkit._validation import check_int

log = get_logger(__name__)

#: Label of padded steps in per-step targets (the default ``ignore_index`` of cross-entropy).
IGNORE_INDEX = -100

Batch = tuple[Tensor, Tensor, Tensor]


def _keep_batch(batch: Batch) -> Batch:
    """``collate_fn`` for datasets whose ``__getitems__`` already returns a whole batch."""
    return batch


class SequenceDataset(Dataset):
    """Padded in-memory sequences; a list of indices is gathered in one indexing operation.

    Args:
        x: ``(N, T, C)`` float or ``(N, T)`` int64, zero-padded after each length.
        y: targets, ``(N, ...)``; per-step targets are ``(N, T)``.
        lengths: ``(N,)`` valid steps per sequence.
        per_step: whether ``y`` has a time axis to trim along with ``x``.
    """

    def __init__(self, x: Tensor, y: Tensor, lengths: Tensor, *, per_step: bool = False) -> None:
        if not (len(x) == len(y) == len(lengths)):
            raise ValueError(
                f"x, y and lengths must have the same first dimension, got "
                f"{len(x)}, {len(y)} and {len(lengths)}"
            )
        self.x, self.y, self.lengths, self.per_step = x, y, lengths.long(), per_step

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: int) -> Batch:
        length = int(self.lengths[index])
        y = self.y[index, :length] if self.per_step else self.y[index]
        return self.x[index, :length], y, self.lengths[index]

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        idx = torch.as_tensor(indices, dtype=torch.long)
        lengths = self.lengths[idx]  # (B,)
        steps = int(lengths.max())
        x = self.x[idx, :steps]  # (B, T_batch, C) or (B, T_batch)
        y = self.y[idx, :steps] if self.per_step else self.y[idx]
        return x, y, lengths

    def loader(
        self, batch_size: int, *, shuffle: bool, seed: int, num_workers: int = 0
    ) -> DataLoader:
        """A DataLoader that gathers whole batches through ``__getitems__``."""
        generator = torch.Generator().manual_seed(seed) if shuffle else None
        return DataLoader(
            self,
            batch_size=batch_size,
            shuffle=shuffle,
            generator=generator,
            collate_fn=_keep_batch,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
        )


class SequenceDataModule(LightningDataModule, ABC):
    """What every lstmkit datamodule shares: batches ``(x, y, lengths)`` from :attr:`splits`,
    :meth:`model_kwargs` handing the data's sizes and target scaling to the task, and a trivial
    baseline to beat.

    Subclasses fill :attr:`splits` (``train``/``val``/``test``) and ``self._baseline`` in
    :meth:`setup`, and implement :attr:`input_kwargs`, :meth:`target_kwargs` and
    :meth:`target_scaling`.
    """

    #: ``"regression"``, ``"classification"`` or ``"seq2seq"``: which task fits the targets.
    task: str = "regression"
    #: Whether targets are per-step labels (sequence labelling) rather than one per sequence.
    per_step: ClassVar[bool] = False

    def __init__(self, batch_size: int, seed: int, num_workers: int) -> None:
        super().__init__()
        self.batch_size = check_int("batch_size", batch_size)
        self.seed = check_int("seed", seed, minimum=0)
        self.num_workers = check_int("num_workers", num_workers, minimum=0)
        self.splits: dict[str, Dataset] = {}
        self._baseline: dict[str, float] = {}

    # ----------------------------------------------------------------- to implement
    @property
    @abstractmethod
    def input_kwargs(self) -> dict[str, int]:
        """``{"input_size": C}`` for float features or ``{"vocab_size": V}`` for token ids."""

    @abstractmethod
    def target_kwargs(self) -> dict[str, Any]:
        """Target sizes for the task: ``num_classes`` or ``output_size`` and ``horizon``."""

    def target_scaling(self) -> dict[str, list[float]]:
        """``{"target_mean": [..], "target_std": [..]}`` of regression targets (train split)."""
        raise NotImplementedError

    @abstractmethod
    def _loader(self, split: str, *, shuffle: bool) -> DataLoader:
        """The DataLoader of one split."""

    # ----------------------------------------------------------------- lightning hooks
    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        """The validation batches; ``[]`` (Lightning then skips validation) when the data has
        no validation split (``val_fraction=0``)."""
        self.setup()
        if "val" not in self.splits:
            return []
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    # ----------------------------------------------------------------- public helpers
    def model_kwargs(self) -> dict[str, Any]:
        """Everything the task needs to know about this data, passed at instantiation.

        Returns plain Python values (saved in the task's hyperparameters), e.g.
        ``{"input_size": 2, "output_size": 1, "horizon": 1, "target_mean": [..],
        "target_std": [..]}`` or ``{"vocab_size": 10, "num_classes": 9, "per_step": False}``.
        """
        self.setup()
        kwargs: dict[str, Any] = {**self.input_kwargs, **self.target_kwargs()}
        if self.task == "classification":
            kwargs["per_step"] = self.per_step
        elif self.task == "regression":
            kwargs |= self.target_scaling()
        return kwargs

    def trivial_baseline(self) -> dict[str, float]:
        """Test metrics of a model that ignores its input (see :attr:`baseline_description`)."""
        self.setup()
        return dict(self._baseline)

    @property
    def baseline_description(self) -> str:
        if self.task == "regression":
            return "always predict the training-target mean"
        return "always predict the most frequent training class"


def classification_baseline(y_train: Tensor, y_test: Tensor, num_classes: int) -> dict[str, float]:
    """Accuracy and cross-entropy of always predicting the training class frequencies."""
    train = y_train[y_train != IGNORE_INDEX]
    test = y_test[y_test != IGNORE_INDEX]
    freq = torch.bincount(train, minlength=num_classes).double() / len(train)
    return {
        "test/acc": (test == freq.argmax()).double().mean().item(),
        "test/loss": -freq.clamp_min(1e-12).log()[test].mean().item(),
    }


def regression_baseline(y_train_mean: Tensor, y_test: Tensor) -> dict[str, float]:
    """MSE and MAE of always predicting the training-target mean (original units)."""
    err = y_test - y_train_mean
    return {"test/mse": err.pow(2).mean().item(), "test/mae": err.abs().mean().item()}


class SyntheticDataModule(SequenceDataModule):
    """Base of the synthetic datamodules: seeded splits generated in vectorised torch.

    Subclasses implement :meth:`generate` and :attr:`input_kwargs`; regression targets are
    standardised with the training split's per-output mean and std, which
    :meth:`model_kwargs` hands to the task so that predictions come back in original units.

    Args:
        num_train, num_val, num_test: number of sequences in each split.
        batch_size: sequences per batch.
        seed: seed of the data (each split draws from its own generator) and of the shuffling.
        num_workers: DataLoader worker processes (0 loads in the main process; the data is
            in memory, so more rarely helps).
    """

    #: Whether inputs share the targets' units and are standardised with the same scaler.
    scale_inputs_like_targets: ClassVar[bool] = False

    def __init__(
        self,
        num_train: int = 2048,
        num_val: int = 256,
        num_test: int = 256,
        batch_size: int = 64,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, seed, num_workers)
        self.num_train = check_int("num_train", num_train)
        self.num_val = check_int("num_val", num_val)
        self.num_test = check_int("num_test", num_test)
        self.target_mean: Tensor | None = None
        self.target_std: Tensor | None = None

    def _save_hparams(self) -> None:
        """Save the calling subclass's and these base arguments as plain hyperparameters.

        Checkpoints store them, so ``lstmkit-eval`` can rebuild the datamodule of a run.
        """
        frame = inspect.currentframe().f_back  # the subclass's __init__
        names = inspect.signature(type(self).__init__).parameters
        own = {
            k: v for k, v in frame.f_locals.items() if k in names and k not in ("self", "kwargs")
        }
        base = {
            "num_train": self.num_train,
            "num_val": self.num_val,
            "num_test": self.num_test,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "num_workers": self.num_workers,
        }
        self.save_hyperparameters({**own, **base})

    # ----------------------------------------------------------------- to implement
    @abstractmethod
    def generate(self, n: int, generator: torch.Generator) -> Batch:
        """Return ``n`` fresh samples ``(x, y, lengths)`` drawn with ``generator``."""

    # ----------------------------------------------------------------- lightning hooks
    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        raw = {}
        sizes = {"train": self.num_train, "val": self.num_val, "test": self.num_test}
        for offset, (name, n) in enumerate(sizes.items()):
            generator = torch.Generator().manual_seed(self.seed * 7919 + offset)
            raw[name] = self.generate(n, generator)
        if self.task == "regression":
            self._fit_scaler(raw["train"][1])
        self._baseline = self._compute_baseline(raw["train"][1], raw["test"][1], raw["test"][2])
        for name, (x, y, lengths) in raw.items():
            x, y = self._scale(x, y, lengths)
            self.splits[name] = SequenceDataset(x, y, lengths, per_step=self.per_step)
        log.info(
            "%s: %d/%d/%d train/val/test sequences",
            type(self).__name__,
            self.num_train,
            self.num_val,
            self.num_test,
        )

    def target_scaling(self) -> dict[str, list[float]]:
        assert self.target_mean is not None and self.target_std is not None
        return {"target_mean": self.target_mean.tolist(), "target_std": self.target_std.tolist()}

    # ----------------------------------------------------------------- internals
    def _loader(self, split: str, *, shuffle: bool) -> DataLoader:
        self.setup()
        return self.splits[split].loader(
            self.batch_size, shuffle=shuffle, seed=self.seed, num_workers=self.num_workers
        )

    def _fit_scaler(self, y: Tensor) -> None:
        flat = y.reshape(-1, y.shape[-1]) if y.dim() > 1 else y.reshape(-1, 1)  # (N*H, O)
        self.target_mean = flat.mean(0)
        self.target_std = flat.std(0).clamp_min(1e-8)

    def _scale(self, x: Tensor, y: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        if self.task != "regression":
            return x, y
        mean, std = self.target_mean, self.target_std
        y = (y - mean) / std if y.dim() > 1 else (y - mean[0]) / std[0]
        if self.scale_inputs_like_targets:
            valid = _valid_mask(lengths, x.shape[1]).unsqueeze(-1)  # (N, T, 1)
            x = torch.where(valid, (x - mean) / std, torch.zeros_like(x))
        return x, y

    def _compute_baseline(
        self, y_train: Tensor, y_test: Tensor, lengths: Tensor
    ) -> dict[str, float]:
        if self.task == "regression":
            return regression_baseline(y_train.mean(dim=tuple(range(y_train.dim() - 1))), y_test)
        return classification_baseline(y_train, y_test, int(self.target_kwargs()["num_classes"]))


def _valid_mask(lengths: Tensor, steps: int) -> Tensor:
    """``(N, T)`` bool mask, True at the valid steps of each sequence."""
    return torch.arange(steps, device=lengths.device) < lengths.unsqueeze(1)


def pad_after_lengths(x: Tensor, lengths: Tensor, value: float = 0.0) -> Tensor:
    """Set every step at or after each sequence's length to ``value``. ``x``: ``(N, T, ...)``."""
    mask = _valid_mask(lengths, x.shape[1])  # (N, T)
    mask = mask.view(*mask.shape, *([1] * (x.dim() - 2)))
    return torch.where(mask, x, torch.full_like(x, value))


def uniform(generator: torch.Generator, shape: Sequence[int], low: float, high: float) -> Tensor:
    """Samples from U[low, high) with a given generator."""
    return low + (high - low) * torch.rand(*shape, generator=generator)


TWO_PI = 2.0 * math.pi
