"""The one way lstmkit reads a checkpoint: ``torch.load(weights_only=True)`` plus an allow-list.

A checkpoint is a pickle, and unpickling a stranger's file can run any code. Every load in
lstmkit (``lstmkit-eval``, ``lstmkit-predict``, resuming with ``ckpt_path=``, testing the best
checkpoint) goes through :func:`load_checkpoint`, which only unpickles tensors, plain values and
the few globals listed in :data:`SAFE_GLOBALS`. The class names a checkpoint stores (its task and
datamodule) are resolved by :func:`resolve_class`, which accepts only lstmkit's own classes, so a
checkpoint cannot make lstmkit import or instantiate an arbitrary ``_target_``.

    >>> ckpt = load_checkpoint("run/checkpoints/best.ckpt")        # doctest: +SKIP
    >>> model = load_task("run/checkpoints/best.ckpt")             # doctest: +SKIP
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from lstmkit.runtime.config_checks import ConfigError

#: Globals a Lightning checkpoint of an lstmkit task needs besides tensors and builtins.
#: Declared here, explicitly, so that an unexpected type is refused instead of unpickled.
SAFE_GLOBALS: list[Any] = []

#: Module prefixes a checkpoint's stored class names may point into.
ALLOWED_PREFIXES = ("lstmkit.",)
#: ... and its optimizer/scheduler specs.
OPTIMIZER_PREFIXES = ("torch.optim.", "lstmkit.")


def _safe_globals() -> list[Any]:
    if not SAFE_GLOBALS:
        import collections

        from lightning.fabric.utilities.data import AttributeDict

        SAFE_GLOBALS.extend([AttributeDict, collections.OrderedDict])
    return SAFE_GLOBALS


def load_checkpoint(path: str | Path, key: str = "ckpt_path") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` onto the CPU.

    Args:
        path: the ``.ckpt`` file.
        key: the argument the path came from, named in error messages.

    Returns:
        The checkpoint dictionary.

    Raises:
        ConfigError: the file is missing, not a checkpoint, or carries pickled objects other
            than tensors and plain values (which are refused, never run).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{key}={str(path)!r} is not a file: pass a .ckpt of a run")
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        refused = "weights_only" in str(err) or "global" in str(err).lower()
        what = "refused: it holds pickled code or objects, not only tensors and plain values"
        raise ConfigError(
            f"{key}={str(path)!r} {what if refused else 'is not a readable checkpoint'} ({first})"
        ) from err
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"{key}={str(path)!r} is not a readable checkpoint ({first})") from err
    if not isinstance(checkpoint, dict):
        raise ConfigError(f"{key}={str(path)!r} is not a Lightning checkpoint (no dictionary)")
    return checkpoint


def lstmkit_info(checkpoint: dict[str, Any], path: str | Path, key: str = "ckpt_path") -> dict:
    """The ``lstmkit`` entry tasks write (``{"task": ..., "datamodule": ...}``)."""
    info = checkpoint.get("lstmkit")
    if not isinstance(info, dict) or not isinstance(info.get("task"), str):
        raise ConfigError(
            f"{key}={str(path)!r} was not written by an lstmkit task: pass a checkpoint written "
            "by lstmkit-train"
        )
    return info


def resolve_class(name: Any, base: type, what: str, path: str | Path, key: str = "ckpt_path"):
    """Import the class a checkpoint names, only if it is lstmkit's own and subclasses ``base``.

    Raises:
        ConfigError: the name points outside lstmkit or at something else than a ``base``.
    """
    if not isinstance(name, str) or not name.startswith(ALLOWED_PREFIXES):
        raise ConfigError(
            f"{key}={str(path)!r} names {what} {name!r}: only lstmkit's own classes are loaded "
            "from a checkpoint"
        )
    from hydra.utils import get_class

    try:
        cls = get_class(name)
    except Exception as err:  # hydra raises ImportError or ValueError
        raise ConfigError(f"{key}={str(path)!r} names {what} {name!r}, which is unknown") from err
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(
            f"{key}={str(path)!r} names {what} {name!r}, which is not a {base.__name__}"
        )
    return cls


def task_class(checkpoint: dict[str, Any], path: str | Path, key: str = "ckpt_path") -> type:
    """The checkpoint's task class (a :class:`lstmkit.tasks.SequenceTask`), allow-listed."""
    from lstmkit.tasks.base import SequenceTask

    return resolve_class(lstmkit_info(checkpoint, path, key)["task"], SequenceTask, "task", path)


def datamodule_class(checkpoint: dict[str, Any], path: str | Path, key: str = "ckpt_path"):
    """The checkpoint's datamodule class (a LightningDataModule of lstmkit), or None."""
    from lightning.pytorch import LightningDataModule

    name = lstmkit_info(checkpoint, path, key).get("datamodule")
    if name is None:
        return None
    return resolve_class(name, LightningDataModule, "datamodule", path)


def load_task(path: str | Path, key: str = "ckpt_path", checkpoint: dict | None = None) -> Any:
    """Rebuild an lstmkit task from a checkpoint: its stored arguments, then its weights.

    Equivalent to ``Task.load_from_checkpoint(path)``, but the file is read once, safely, and
    the task class comes from the allow-list.
    """
    checkpoint = load_checkpoint(path, key) if checkpoint is None else checkpoint
    cls = task_class(checkpoint, path, key)
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, dict) or "state_dict" not in checkpoint:
        raise ConfigError(f"{key}={str(path)!r} holds no model arguments or weights")
    for name in ("optimizer", "scheduler"):  # built only if the model is trained further
        spec = hparams.get(name)
        target = spec.get("_target_") if isinstance(spec, dict) else None
        if target is not None and not str(target).startswith(OPTIMIZER_PREFIXES):
            raise ConfigError(
                f"{key}={str(path)!r} stores {name}._target_={target!r}: a checkpoint may only "
                f"name {' or '.join(p + '*' for p in OPTIMIZER_PREFIXES)}"
            )
    try:
        model = cls(**hparams)
        model.load_state_dict(checkpoint["state_dict"])
    except (TypeError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0]
        raise ConfigError(f"{key}={str(path)!r} does not rebuild {cls.__name__}: {first}") from err
    model.eval()
    return model


def check_resume(
    path: str | Path, task_target: str, key: str = "ckpt_path", resumable_loader: bool = True
) -> dict[str, Any]:
    """Before training resumes from ``path``: it must be a safe lstmkit checkpoint of the same
    task class as the config's ``model._target_``; a mid-epoch checkpoint that recorded the
    training loader's position (``lstmkit.runtime.callbacks.EpochSeed``) needs ``resumable_loader``.

    Returns:
        The checkpoint (already read; Lightning reads it again with ``weights_only=True``).
    """
    checkpoint = load_checkpoint(path, key)
    cls = task_class(checkpoint, path, key)
    wanted = task_target.rsplit(".", 1)[-1]
    if cls.__name__ != wanted:
        raise ConfigError(
            f"{key}={str(path)!r} is a {cls.__name__} checkpoint but model._target_ builds a "
            f"{wanted}: pass a checkpoint of the same task (or the matching model=...)"
        )
    for name in ("state_dict", "optimizer_states", "loops"):
        if name not in checkpoint:
            raise ConfigError(
                f"{key}={str(path)!r} holds no {name}: resume needs a checkpoint written by "
                "Lightning during training (e.g. checkpoints/last.ckpt)"
            )
    loops = checkpoint["loops"].get("fit_loop", {}).get("state_dict", {})
    states = loops.get("combined_loader") or []
    mid_epoch = any(
        0 < s.get("yielded", 0) < s.get("size", 0) for s in states if isinstance(s, dict)
    )
    if mid_epoch and not resumable_loader:
        raise ConfigError(
            f"{key}={str(path)!r} was saved mid-epoch with the training loader's position, "
            "which only callbacks.epoch_seed (with a seed) restores: resume with the run's own "
            "callbacks and seed, or from an end-of-epoch checkpoint (last.ckpt)"
        )
    return checkpoint


def safe_globals() -> Any:
    """A context in which Lightning's own ``torch.load(weights_only=True)`` (resume with
    ``trainer.fit(ckpt_path=...)``, ``trainer.test(ckpt_path=...)``) accepts exactly
    :data:`SAFE_GLOBALS`."""
    import torch

    return torch.serialization.safe_globals(_safe_globals())
