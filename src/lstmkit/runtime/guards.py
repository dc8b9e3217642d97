"""Checks that keep a run from touching what the user already has; light (no torch).

- :func:`check_run_folder`: a run never writes into a folder that already holds a run (its
  ``config.yaml``, ``metrics.json``, ``metrics.csv`` or checkpoints) unless it resumes from a
  checkpoint inside that folder.
- :func:`check_output_dir`: the output folder can be created and written, checked before
  anything is loaded or trained.
- :func:`check_argv_run_dir`: the same rule for ``hydra.run.dir=...`` on the command line,
  before Hydra writes its own ``.hydra/`` files there.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from lstmkit.runtime.config_checks import ConfigError

#: Files whose presence marks a folder as holding a run.
RUN_MARKERS = ("config.yaml", "metrics.json", "metrics.csv", "checkpoints")


def existing_run_files(folder: str | Path) -> list[str]:
    """The run files already in ``folder`` (an empty ``checkpoints/`` does not count)."""
    folder = Path(folder)
    found = []
    for name in RUN_MARKERS:
        path = folder / name
        if path.is_file() or (path.is_dir() and any(path.iterdir())):
            found.append(name)
    return found


def _inside(path: str | Path, folder: str | Path) -> bool:
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
    except ValueError:
        return False
    return True


def check_run_folder(output_dir: str | Path, ckpt_path: str | None, key: str = "paths.output_dir"):
    """Refuse a folder that holds another run unless ``ckpt_path`` resumes from inside it."""
    found = existing_run_files(output_dir)
    if found and not (ckpt_path and _inside(ckpt_path, output_dir)):
        raise ConfigError(
            f"{key}={str(output_dir)!r} already holds a run ({', '.join(found)}): choose a new "
            f"folder, or resume it with ckpt_path={Path(output_dir) / 'checkpoints' / 'last.ckpt'}"
        )


def check_output_dir(output_dir: str | Path, key: str = "paths.output_dir") -> None:
    """``output_dir`` exists or can be created, and a file can be written in it."""
    path = Path(output_dir)
    for parent in [path, *path.parents]:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(
                    f"{key}={str(output_dir)!r} cannot be created: {str(parent)!r} is a file"
                )
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ConfigError(
                    f"{key}={str(output_dir)!r} is not writable: no write permission on "
                    f"{str(parent)!r}"
                )
            break
    if path.is_dir():
        try:
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as err:
            raise ConfigError(f"{key}={str(output_dir)!r} is not writable: {err}") from err


def check_argv_run_dir(argv: Sequence[str]) -> None:
    """``hydra.run.dir=DIR`` naming a folder with a run, without a ``ckpt_path`` inside it."""
    values = dict(a.split("=", 1) for a in argv if "=" in a and not a.startswith("-"))
    run_dir = values.get("hydra.run.dir")
    if run_dir and "${" not in run_dir:
        check_output_dir(run_dir, "hydra.run.dir")
        check_run_folder(run_dir, values.get("ckpt_path"), "hydra.run.dir")


def requeue_checkpoint(output_dir: str | Path) -> Path | None:
    """In a job SLURM requeued (``SLURM_RESTART_COUNT`` > 0), the newest of the run folder's
    ``checkpoints/preempted.ckpt`` and ``checkpoints/last.ckpt``: the requeued job reruns the same
    command into the same folder, and resumes from there instead of being refused."""
    if os.environ.get("SLURM_RESTART_COUNT", "0") in ("", "0"):
        return None
    folder = Path(output_dir) / "checkpoints"
    found = [p for p in (folder / "preempted.ckpt", folder / "last.ckpt") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None
