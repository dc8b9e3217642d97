"""A callback the fault tests add to real ``lstmkit-train`` runs (``+callbacks.fault=...``).

It marks a chosen batch by writing a file, then waits there so that the test can kill or
preempt the process at a known point; with ``nan_at_step`` it poisons one batch instead.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from lightning.pytorch import Callback


class WaitAtBatch(Callback):
    """At ``(epoch, batch)`` write ``marker`` and wait up to ``timeout`` s (or until SIGTERM)."""

    def __init__(self, epoch: int, batch: int, marker: str, timeout: float = 60.0) -> None:
        self.epoch, self.batch, self.marker, self.timeout = epoch, batch, Path(marker), timeout

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if (trainer.current_epoch, batch_idx) != (self.epoch, self.batch):
            return
        self.marker.write_text(f"{trainer.global_step}\n")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline and not trainer.received_sigterm:
            time.sleep(0.02)


class PoisonBatch(Callback):
    """Put a NaN into the inputs of the batch at global step ``step`` (a bad data row)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            x = batch[0]
            x.view(-1)[0] = torch.nan
