"""Helpers for the task, data and command-line tests: the real configs, shrunk.

``compose_config`` composes ``configs/`` exactly as the command line does and then shrinks the
run: CPU, tiny datasets and encoder, one epoch, no progress bar, run folder under tmp_path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from lstmkit.runtime._config_dir import CONFIG_DIR

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

#: Overrides that make any train/eval config tiny: CPU, 1 epoch of few batches, small data.
SHRINK = (
    "trainer=cpu",
    "trainer.max_epochs=1",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
    "~callbacks.rich_progress_bar",
    "~callbacks.model_summary",
)
TINY_DATA = ("data.num_train=64", "data.num_val=32", "data.num_test=32", "data.batch_size=16")
TINY_MODEL = ("model.encoder.hidden_size=8",)


def compose_config(
    tmp_path: Path,
    overrides: Sequence[str] = (),
    config_name: str = "train",
    shrink: bool = True,
) -> DictConfig:
    """Compose ``configs/<config_name>.yaml`` with overrides; the run folder is ``tmp_path``."""
    GlobalHydra.instance().clear()
    extra = [*SHRINK, *TINY_DATA, *TINY_MODEL] if shrink else []
    if config_name == "eval" and shrink:
        extra = [o for o in extra if not o.startswith(("~callbacks", "model."))]
        extra = [o for o in extra if not o.startswith("data.") or "data=" in " ".join(overrides)]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name, overrides=[*extra, *overrides], return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # for ${hydra:...} and the chosen config names
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
        cfg.paths.log_dir = str(tmp_path)
        del cfg["hydra"]
    return cfg


def run_command(
    args: Sequence[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess:
    """Run a command with the project's venv first on PATH; capture text output."""
    full_env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    full_env.pop("HYDRA_FULL_ERROR", None)
    full_env.update(env or {})
    return subprocess.run(
        list(args), cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def sampled_grid(values: Sequence, ids: Sequence[str], every: int) -> list:
    """``values`` as pytest params, all but every ``every``-th marked ``slow``: ``make check``
    (``-m "not slow"``) runs a spread sample of a large grid, ``make test`` the whole grid."""
    import pytest

    return [
        pytest.param(v, id=i, marks=() if k % every == 0 else pytest.mark.slow)
        for k, (v, i) in enumerate(zip(values, ids, strict=True))
    ]


#: Libraries a command's ``--help`` (and a refused override) must answer without importing.
HEAVY_MODULES = ("torch", "lightning", "torchmetrics", "pandas", "pyarrow", "matplotlib")


def imported_modules(args: Sequence[str], cwd: Path) -> tuple[subprocess.CompletedProcess, set]:
    """Run a command (any Python program, console scripts included) and return its result and
    the top-level names of every module it imported (``PYTHONPROFILEIMPORTTIME``, which goes to
    stderr; the result's stderr keeps the program's own lines only)."""
    result = run_command(args, cwd, env={"PYTHONPROFILEIMPORTTIME": "1"})
    names, rest = set(), []
    for line in result.stderr.splitlines():
        if line.startswith("import time:"):
            name = line.rsplit("|", 1)[-1].strip()
            if name and name != "package":
                names.add(name.split(".")[0])
        else:
            rest.append(line)
    result.stderr = "\n".join(rest)
    return result, names
