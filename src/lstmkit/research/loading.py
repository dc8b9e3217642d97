"""Rebuild a finished run's task and datamodule from its checkpoint (shared by the research
commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lstmkit.runtime.config_checks import ConfigError


def load_run(ckpt_path: str | Path, data_cfg: Any = None) -> tuple[Any, Any]:
    """``(task, datamodule)`` of a checkpoint written by ``lstmkit-train``.

    The task is rebuilt from its stored arguments (in eval mode, on the CPU); the datamodule
    from ``data_cfg`` (a Hydra node) if given, else from the checkpoint's own arguments.

    Raises:
        ConfigError: not a readable lstmkit checkpoint, or no datamodule to rebuild.
    """
    from lstmkit.runtime.checkpoints import datamodule_class, load_checkpoint, load_task
    from lstmkit.runtime.config_checks import instantiate_checked

    checkpoint = load_checkpoint(ckpt_path)
    model = load_task(ckpt_path, checkpoint=checkpoint)
    if data_cfg is not None:
        return model, instantiate_checked(data_cfg, "data")
    dm_cls = datamodule_class(checkpoint, ckpt_path)
    if dm_cls is None:
        raise ConfigError("data is unset and the checkpoint names no datamodule: pass data=<name>")
    return model, dm_cls(**checkpoint.get("datamodule_hyper_parameters", {}))


def run_folder(ckpt_path: str | Path) -> Path:
    """The run folder of ``<run>/checkpoints/<name>.ckpt`` (the checkpoint's folder otherwise)."""
    parent = Path(ckpt_path).resolve().parent
    return parent.parent if parent.name == "checkpoints" else parent
