"""Callbacks that make training survive faults: exact resume, NaN guards, preemption.

- :class:`EpochSeed` reseeds every random generator at the start of each epoch from
  ``(seed, epoch)``: Python, NumPy, torch and the training DataLoader's shuffling generator.
  An epoch is then a function of the weights, the optimizer state and its number, so resuming
  from an end-of-epoch checkpoint (``last.ckpt``) gives the same numbers as never stopping. On
  one device it also makes the training loader resumable, so mid-epoch checkpoints resume
  exactly as well.
- :class:`NonFiniteGuard` stops training at the first non-finite loss or gradient, before the
  optimizer applies it, with a message naming the step and a likely cause. The checkpoints
  already written (``last.ckpt``, ``best.ckpt``) are never replaced by the diverged weights.
- :class:`PreemptionCheckpoint` saves ``checkpoints/preempted.ckpt`` when the run is stopped by
  SIGTERM (how SLURM preempts; Lightning turns it into ``SIGTERMException`` after the current
  batch) and logs how to resume.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch import Callback
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.utils.data import BatchSampler, RandomSampler, Sampler

from lstmkit._errors import TrainingDivergedError
from lstmkit._logging import get_logger

log = get_logger(__name__)


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed for ``epoch`` derived from the run's ``seed`` (distinct across epochs)."""
    return (int(seed) * 1_000_003 + int(epoch) * 7919 + 17) % (2**31 - 1)


class EpochSeed(Callback):
    """Reseed Python, NumPy, torch and the train loader's generator at every epoch start, and
    make the training loader resumable mid-epoch.

    On a single device with ``num_workers=0`` and a shuffled ``BatchSampler`` (the synthetic and
    file datamodules without ``bucket_by_length``), the loader also gets Lightning's
    ``state_dict``/``load_state_dict`` interface: a checkpoint records how far into the epoch's
    order the loader is and the RNG states, and resuming skips the batches already trained on
    and restores the RNG states, so a mid-epoch resume gives the same numbers too.

    Args:
        seed: the run's seed; None leaves every generator alone.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        datamodule = trainer.datamodule
        if self.seed is None or stage != "fit" or trainer.world_size != 1 or datamodule is None:
            return
        original = datamodule.train_dataloader

        def train_dataloader() -> Any:
            loader = original()
            _make_resumable(loader, self.seed)
            return loader

        datamodule.train_dataloader = train_dataloader  # an instance attribute, undone below

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        datamodule = trainer.datamodule
        if datamodule is not None and "train_dataloader" in vars(datamodule):
            del datamodule.train_dataloader

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.seed is None:
            return
        s = epoch_seed(self.seed, trainer.current_epoch)
        random.seed(s)
        np.random.seed(s)
        torch.manual_seed(s)
        loaders = trainer.train_dataloader
        for loader in loaders if isinstance(loaders, list | tuple) else [loaders]:
            _reseed_loader(loader, s)


class EpochShuffle(Sampler[int]):
    """A permutation of ``range(n)`` drawn from its own generator seeded with :attr:`seed`.

    Replaces a DataLoader's ``RandomSampler`` (inside its batch sampler) so that the order of
    an epoch depends on ``(seed, epoch)`` only, not on how often the loader's generator was
    drawn from before (Lightning creates the first iterator of a run before the epoch starts).
    :attr:`yielded` counts the indices handed out this epoch; :attr:`skip` (set on resume)
    leaves out that many at the start of the next iteration.
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed = n, seed
        self.skip = self.yielded = 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(self.n, generator=generator).tolist()
        skip, self.skip = self.skip, 0
        self.yielded = skip
        for index in order[skip:]:
            self.yielded += 1
            yield index


def _reseed_loader(loader: Any, seed: int) -> None:
    """Give ``loader`` the shuffle of ``seed`` and reseed its dataset's own generator."""
    batch_sampler = getattr(loader, "batch_sampler", None)
    sampler = getattr(batch_sampler, "sampler", None)
    if isinstance(sampler, RandomSampler) and not sampler.replacement:
        batch_sampler.sampler = sampler = EpochShuffle(len(sampler.data_source))
    if isinstance(sampler, EpochShuffle):
        sampler.seed = seed
    generator = getattr(getattr(loader, "dataset", None), "generator", None)
    if isinstance(generator, torch.Generator):  # e.g. AugmentedDataset's noise
        generator.manual_seed(seed)


def _make_resumable(loader: Any, seed: int) -> None:
    """Give a single-process shuffled DataLoader Lightning's ``state_dict``/``load_state_dict``
    (plain values and tensors only: checkpoints stay loadable with ``weights_only=True``)."""
    batch_sampler = getattr(loader, "batch_sampler", None)
    if (
        getattr(loader, "num_workers", 1) != 0
        or type(batch_sampler) is not BatchSampler
        or not isinstance(batch_sampler.sampler, RandomSampler)
        or batch_sampler.sampler.replacement
    ):
        return
    shuffle = EpochShuffle(len(batch_sampler.sampler.data_source), epoch_seed(seed, 0))
    batch_sampler.sampler = shuffle

    def state_dict() -> dict[str, Any]:
        generator = getattr(loader.dataset, "generator", None)
        np_state = np.random.get_state()
        return {
            "shuffle_seed": shuffle.seed,
            "yielded": shuffle.yielded,
            "size": shuffle.n,
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": [np_state[0], np_state[1].tolist(), *np_state[2:]],
            "python_rng": random.getstate(),
            "dataset_rng": generator.get_state()
            if isinstance(generator, torch.Generator)
            else None,
        }

    def load_state_dict(state: dict[str, Any]) -> None:
        if not 0 < state["yielded"] < shuffle.n:
            return  # an end-of-epoch checkpoint: the next epoch is reseeded anyway
        shuffle.seed, shuffle.skip = state["shuffle_seed"], state["yielded"]
        torch.set_rng_state(state["torch_rng"])
        kind, keys, *rest = state["numpy_rng"]
        np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
        version, internal, gauss = state["python_rng"]
        random.setstate((version, tuple(internal), gauss))
        generator = getattr(loader.dataset, "generator", None)
        if state["dataset_rng"] is not None and isinstance(generator, torch.Generator):
            generator.set_state(state["dataset_rng"])

    loader.state_dict = state_dict
    loader.load_state_dict = load_state_dict


def _likely_cause(trainer: pl.Trainer) -> str:
    lrs = [g.get("lr") for opt in trainer.optimizers for g in opt.param_groups]
    lr = f"the learning rate (lr={lrs[0]:g})" if lrs and lrs[0] is not None else "the learning rate"
    clip = trainer.gradient_clip_val
    clip_hint = "" if clip else "; set trainer.gradient_clip_val=1.0"
    return (
        f"likely causes: {lr} is too high (lower model.optimizer.lr{clip_hint}), or the data "
        "holds NaN/Inf or extreme values (check data.missing and the scaling)"
    )


def _kept(trainer: pl.Trainer) -> str:
    saved = []
    for ckpt in trainer.checkpoint_callbacks:
        for path in (getattr(ckpt, "last_model_path", ""), getattr(ckpt, "best_model_path", "")):
            if path and Path(path).is_file() and path not in saved:
                saved.append(path)
    if not saved:
        return "no checkpoint was written before this step"
    return "kept the last good checkpoints: " + ", ".join(saved)


class NonFiniteGuard(Callback):
    """Stop at the first non-finite training loss or gradient, before the optimizer step.

    Raises:
        TrainingDivergedError: naming the global step, the epoch and a likely cause.
    """

    def on_before_backward(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor
    ) -> None:
        if not torch.isfinite(loss.detach()).all():
            self._stop(trainer, f"non-finite training loss ({float(loss.detach()):g})")

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any
    ) -> None:
        named = [(n, p.grad) for n, p in pl_module.named_parameters() if p.grad is not None]
        if not named:
            return
        # One reduction for all gradients (the max-norm is finite iff every entry is; NaN
        # propagates), one host sync; the per-parameter search only runs when it fails.
        largest = torch.nn.utils.get_total_norm([g for _, g in named], norm_type=float("inf"))
        if torch.isfinite(largest):
            return
        for name, grad in named:
            if not torch.isfinite(grad).all():
                self._stop(trainer, f"non-finite gradient of {name}")

    @staticmethod
    def _stop(trainer: pl.Trainer, what: str) -> None:
        raise TrainingDivergedError(
            f"training stopped at step {trainer.global_step} (epoch {trainer.current_epoch}, "
            f"batch {trainer.fit_loop.epoch_loop.batch_idx}): {what}; {_likely_cause(trainer)}; "
            f"{_kept(trainer)}"
        )


class PreemptionCheckpoint(Callback):
    """On SIGTERM (SLURM preemption), save ``<dirpath>/<filename>.ckpt`` and log how to resume.

    Lightning stops after the current batch by raising ``SIGTERMException`` (a ``SystemExit``
    with status 0); this callback writes the checkpoint from ``on_exception``. The checkpoint
    is mid-epoch unless the signal came at an epoch's end; see ``docs/reliability.md``.

    Args:
        dirpath: folder of the checkpoint (the run's ``checkpoints/``).
        filename: its name without ``.ckpt``.
    """

    def __init__(self, dirpath: str | Path, filename: str = "preempted") -> None:
        self.dirpath = Path(dirpath)
        self.filename = filename
        self.saved_path: Path | None = None

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != TrainerFn.FITTING:
            return
        path = self.dirpath / f"{self.filename}.ckpt"
        trainer.save_checkpoint(path)
        self.saved_path = path
        self._report(trainer, path)

    @rank_zero_only
    def _report(self, trainer: pl.Trainer, path: Path) -> None:
        log.warning(
            "Preempted (SIGTERM) at step %d, epoch %d: saved %s; resume with ckpt_path=%s",
            trainer.global_step,
            trainer.current_epoch,
            path,
            path,
        )
