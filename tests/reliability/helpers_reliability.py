"""Helpers for the reliability tests: tiny runs, file snapshots and hostile checkpoints."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from run_helpers import SHRINK, TINY_DATA, TINY_MODEL, compose_config

#: Overrides of a tiny run on a file datamodule (no ``data.num_train``-style keys there).
FILE_RUN = (*SHRINK, *TINY_MODEL)
#: ... and on a synthetic one.
SYNTH_RUN = (*SHRINK, *TINY_DATA, *TINY_MODEL)


def snapshot(folder: Path) -> dict[str, tuple[int, int, str]]:
    """``relative path -> (size, mtime_ns, sha256)`` of every file under ``folder``."""
    snap = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            snap[str(path.relative_to(folder))] = (stat.st_size, stat.st_mtime_ns, digest)
    return snap


def write_series(path: Path, n: int = 80, **columns: Any) -> None:
    t = np.arange(n)
    frame = pd.DataFrame({"time": t, "y": np.sin(t / 5.0), "x1": np.cos(t / 5.0)})
    for name, values in columns.items():
        frame[name] = values
    frame.to_csv(path, index=False)


def run_in_process(command: str, fn: Callable[[], Any], capsys) -> tuple[int, str]:
    """Run ``fn`` under the CLIs' ``run_cli``; return (exit status, stderr)."""
    from lstmkit.runtime.config_checks import run_cli

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_cli(command, fn)
    return exit_info.value.code, capsys.readouterr().err


def train_tiny(run_dir: Path, overrides: Sequence[str]) -> Path:
    """Train a tiny run into ``run_dir``; return its ``best.ckpt``."""
    from lstmkit.cli.train import train

    train(compose_config(run_dir, overrides, shrink=False))
    return run_dir / "checkpoints" / "best.ckpt"


class Payload:
    """Unpickling this runs ``touch <marker>`` (what a hostile checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_malicious_checkpoint(path: Path, marker: Path, like: Path | None = None) -> None:
    """A checkpoint (a real one if ``like`` is given) with a code-running pickle inside."""
    ckpt = torch.load(like, weights_only=True) if like else {"state_dict": {}}
    ckpt["callbacks"] = {"evil": Payload(marker)}
    torch.save(ckpt, path)


def rewrite_checkpoint(src: Path, dst: Path, edit: Callable[[dict], None]) -> Path:
    """Copy a checkpoint with ``edit`` applied to its (plain) dictionary."""
    ckpt = torch.load(src, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, dst)
    return dst
