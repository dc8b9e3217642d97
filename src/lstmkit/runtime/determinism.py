"""``deterministic=true``: bit-reproducible runs in one flag, and a record of what was set.

:func:`apply` (called by ``lstmkit-train`` before anything is built) makes sure that

- a seed is set (``seed``; ``null`` becomes 0 with a warning) — Lightning's ``seed_everything``
  then seeds Python, NumPy, torch and the DataLoader workers;
- ``trainer.deterministic=true``: Lightning calls ``torch.use_deterministic_algorithms(True)``
  (an op without a deterministic kernel then raises instead of silently varying);
- ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (needed by cuBLAS on CUDA >= 10.2; kept if already set);
- ``torch.backends.cudnn.benchmark = False`` (no autotuned, run-dependent kernel choice);

and warns about the one known exception: cuDNN's LSTM with ``dropout > 0`` and
``num_layers > 1`` is non-deterministic on GPUs (pytorch#18110). The settings are written to
``determinism.json`` in the run folder.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from lstmkit._logging import get_logger

log = get_logger(__name__)

CUBLAS_WORKSPACE = ":4096:8"


def cudnn_dropout_warning(encoder_cfg: Any) -> str | None:
    """The warning for a cuDNN-capable encoder with dropout between several layers, or None."""
    if not encoder_cfg:
        return None
    backend = encoder_cfg.get("backend", "auto")
    layers = int(encoder_cfg.get("num_layers", 1) or 1)
    dropout = float(encoder_cfg.get("dropout", 0.0) or 0.0)
    if backend in ("auto", "cudnn") and layers > 1 and dropout > 0:
        return (
            f"deterministic=true with model.encoder.backend={backend}, num_layers={layers}, "
            f"dropout={dropout}: cuDNN's multi-layer LSTM dropout is not deterministic on GPUs "
            "(pytorch#18110); use model/encoder=custom or dropout=0 for bit-identical GPU runs"
        )
    return None


def apply(cfg: DictConfig) -> dict[str, Any] | None:
    """Apply ``cfg.deterministic`` to ``cfg`` and the process; the settings, or None if off."""
    if not cfg.get("deterministic"):
        return None
    import torch

    with open_dict(cfg):
        if cfg.get("seed") is None:
            log.warning("deterministic=true needs a seed: seed=null replaced by seed=0")
            cfg.seed = 0
        cfg.trainer.deterministic = True
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    warning = cudnn_dropout_warning(cfg.get("model", {}).get("encoder"))
    if warning:
        log.warning(warning)
    return {
        "deterministic": True,
        "seed": int(cfg.seed),
        "data_seed": cfg.get("data", {}).get("seed"),
        "trainer.deterministic": True,
        "torch.use_deterministic_algorithms": True,
        "CUBLAS_WORKSPACE_CONFIG": os.environ["CUBLAS_WORKSPACE_CONFIG"],
        "cudnn.benchmark": False,
        "cudnn.deterministic": True,
        "warnings": [warning] if warning else [],
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version()
            if torch.backends.cudnn.is_available()
            else None,
        },
    }


def write_record(settings: dict[str, Any] | None, output_dir: str | Path) -> Path | None:
    """``determinism.json`` in the run folder (rank 0 only)."""
    from lightning.pytorch.utilities import rank_zero_only

    if settings is None or rank_zero_only.rank != 0:
        return None
    path = Path(output_dir) / "determinism.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    return path
