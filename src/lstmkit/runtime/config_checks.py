"""Checks of a composed config that fail early with one line naming the key and allowed values.

Used by the entry points before anything is trained: ``check_argv`` runs before Hydra composes
(unknown config names such as ``data=foo``), ``check_config`` on the composed config (``???``
left unset, unknown choices, negative sizes), and ``instantiate_checked`` turns a constructor's
``ValueError``/``TypeError`` into a :class:`ConfigError` that names the config group.

The encoder's values (``model.encoder.*``) have no rule of their own here: torch.nn.LSTM's
arguments are checked by `lstmkit._lstm_args.check_lstm_args`, the function the cores run in
their constructors (torch-free, so a bad ``hidden_size`` answers before torch loads), and the
rest by the constructor itself, which ``override_checks`` builds on the ``meta`` device before a
command starts; either way the error becomes one line naming the key. The tables below cover
what cannot be built that cheaply before the data is read (the task's head, the datamodule),
with the same bounds as those constructors.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from lstmkit._errors import DataFileError, TrainingDivergedError
from lstmkit.runtime._config_dir import group_options

#: Exit status of a command stopped by a bad config (as argparse's usage errors).
EXIT_CONFIG_ERROR = 2
#: Exit status of a training run stopped by a non-finite loss or gradient.
EXIT_DIVERGED = 3

#: ``<key>: allowed values`` for keys with a fixed set of values.
CHOICES: dict[str, tuple[str, ...]] = {
    "model.pooling": ("last", "mean", "max"),
    "model.loss": ("mse", "mae", "huber", "quantile", "gaussian"),
}
#: The subtree whose values only its constructor checks (see the module docstring); its
#: ``backend`` is checked against `lstmkit._backend_names`, the list the registry itself uses.
ENCODER = "model.encoder"
#: Keys (last name part, under ``data`` and ``model``) that must be integers >= 1 ...
POSITIVE_INTS = {
    "hidden_size", "num_layers", "batch_size", "num_train", "num_val", "num_test", "seq_len",
    "window", "horizon", "embedding_dim", "num_symbols", "copy_len", "delay", "num_channels",
    "num_components", "min_len", "max_len", "max_step", "num_threads", "season", "channels",
    "kernel_size", "stride",
}  # fmt: skip
#: ... integers >= 0 ...
NON_NEGATIVE_INTS = {"proj_size", "head_hidden_size", "num_workers", "max_start", "seed"}
#: Keys of the above that may also be ``auto`` (the value then comes from the data).
AUTO_VALUES = {"window", "season", "residual", "relative_inputs"}
#: ... and probabilities in [0, 1).
PROBABILITIES = {"dropout", "recurrent_dropout", "label_smoothing"}
#: Keys (last name part, under ``data`` and ``model``) that must be true or false.
BOOLEANS = {
    "bias", "batch_first", "bidirectional", "layer_norm", "peephole", "variable_length",
    "include_target", "log_target", "future_covariates", "residual", "relative_inputs",
    "stateful", "compile", "standardize", "bucket_by_length", "reverse_input", "norm",
}  # fmt: skip


class ConfigError(ValueError):
    """A bad config value; the message is one line that names the key and what is allowed."""


def _walk(node: Any, prefix: str) -> list[tuple[str, Any]]:
    """``(dotted key, value)`` of every leaf under ``node``, ``_target_``-like keys skipped."""
    from omegaconf import DictConfig

    if not isinstance(node, DictConfig):
        return [(prefix, node)]
    items = []
    for key, value in node.items():
        if not str(key).startswith("_"):
            items.extend(_walk(value, f"{prefix}.{key}"))
    return items


def check_config(cfg: Any, backends: Sequence[str] = ()) -> None:
    """Raise :class:`ConfigError` for the first bad value in ``cfg`` (hydra's keys excluded).

    Args:
        cfg: the composed DictConfig.
        backends: allowed ``model.encoder.backend`` names (``lstmkit.nn.BACKEND_NAMES``).
    """
    from omegaconf import OmegaConf

    for key in sorted(OmegaConf.missing_keys(cfg)):
        if key.startswith("hydra."):
            continue
        hint = "a checkpoint path" if key.endswith("ckpt_path") else "a value"
        raise ConfigError(f"{key} is required but unset ('???'): pass {key}=<{hint}>")
    choices = dict(CHOICES)
    if backends:
        choices["model.encoder.backend"] = tuple(backends)
    for key, allowed in choices.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and value not in allowed:
            raise ConfigError(f"{key}={value!r} is not allowed: choose one of {', '.join(allowed)}")
    _check_value("num_threads", cfg.get("num_threads"))
    _check_value("seed", cfg.get("seed"))
    for group in ("data", "model"):
        node = cfg.get(group)
        if node is None:
            continue
        for key, value in _walk(node, group):
            if not key.startswith(f"{ENCODER}."):
                _check_value(key, value)
    check_encoder_args(OmegaConf.select(cfg, ENCODER, default=None))


def check_encoder_args(encoder: Any) -> None:
    """torch.nn.LSTM's arguments of an encoder config, by the cores' own rule
    (`lstmkit._lstm_args.check_lstm_args`, torch's types and ranges); unset ones take
    torch.nn.LSTM's defaults, an unset ``hidden_size`` or an interpolation is left to the build.

    Raises:
        ConfigError: ``model.encoder.<key>=<value> is not allowed: <the rule's message>``.
    """
    from omegaconf import DictConfig

    from lstmkit._lstm_args import LSTM_DEFAULTS, check_lstm_args

    if not isinstance(encoder, DictConfig) or "hidden_size" not in encoder:
        return
    names = ["hidden_size", *LSTM_DEFAULTS]
    if any(encoder._get_node(n)._is_interpolation() for n in names if n in encoder):
        return
    args = {**LSTM_DEFAULTS, **{n: encoder[n] for n in names if n in encoder}}
    try:
        check_lstm_args(input_size=1, **args)
    except (TypeError, ValueError) as err:
        message = str(err)
        name = message.split(" ", 1)[0]
        if name not in args:
            raise ConfigError(f"{ENCODER}: {message}") from None
        raise ConfigError(f"{ENCODER}.{name}={args[name]!r} is not allowed: {message}") from None


def _check_value(key: str, value: Any) -> None:
    name = key.rsplit(".", 1)[-1]
    if value is None or (value == "auto" and name in AUTO_VALUES):
        return
    if name in POSITIVE_INTS | NON_NEGATIVE_INTS:
        minimum = 1 if name in POSITIVE_INTS else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{key}={value!r} is not allowed: must be an integer >= {minimum}")
    elif name in BOOLEANS and not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} is not allowed: must be true or false")
    elif name in PROBABILITIES and (
        isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1
    ):
        raise ConfigError(f"{key}={value!r} is not allowed: must be a number in [0, 1)")


_ARG_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*)=")


def instantiate_checked(node: Any, group: str, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate(node, **kwargs)``; a constructor's ValueError or TypeError
    becomes a one-line :class:`ConfigError` prefixed with the config group."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__ or err
        lightning_config = type(cause).__name__ == "MisconfigurationException"  # Lightning's
        if not (isinstance(cause, ValueError | TypeError | ImportError) or lightning_config):
            raise
        message = str(cause).strip().splitlines()[0]
        first_word = re.match(r"[A-Za-z_]+", message)
        encoder = node.get("encoder") if group == "model" and hasattr(node, "get") else None
        if first_word and hasattr(encoder, "keys") and first_word.group() in encoder:
            group = "model.encoder"  # e.g. proj_size, backend: a key of the encoder config
        match = _ARG_NAME.match(message)
        if match and not message.startswith(f"{group}."):
            raise ConfigError(f"{group}.{message}") from err
        raise ConfigError(f"{group}: {message}") from err


def _argv_config_dirs(argv: Sequence[str]) -> list[str]:
    dirs = []
    for i, arg in enumerate(argv):
        if arg in ("--config-dir", "-cd") and i + 1 < len(argv):
            dirs.append(argv[i + 1])
        elif arg.startswith("--config-dir="):
            dirs.append(arg.split("=", 1)[1])
    return dirs


def check_argv(argv: Sequence[str], groups: Sequence[str]) -> None:
    """Raise :class:`ConfigError` for ``group=name`` overrides naming no config of the group.

    Runs before Hydra, which would otherwise answer with a multi-line report. Sweeps
    (``data=adding,sine``) are checked name by name; ``+``/``~`` overrides, sweep functions and
    custom search paths are left to Hydra.
    """
    if any(a.startswith("hydra.searchpath") for a in argv):
        return
    extra_dirs = _argv_config_dirs(argv)
    for arg in argv:
        if arg.startswith(("-", "+", "~")) or "=" not in arg:
            continue
        key, value = arg.split("=", 1)
        if key not in groups or "(" in value:
            continue
        options = group_options(key, extra_dirs)
        for name in value.strip("[]").split(","):  # a sweep, or a list: callbacks=[a,b]
            name = name.strip()
            if name and name != "null" and name not in options:
                raise ConfigError(
                    f"{key}={name!r} is not a config: choose one of {', '.join(options)}"
                )


def quiet_library_logging() -> None:
    """Under Hydra's logging, let Lightning's records go to Hydra's handlers only (Lightning
    adds its own console handler, which would print every line twice) and drop a deprecation
    warning Lightning triggers in torch's pytree."""
    import logging
    import warnings

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if isinstance(handler, logging.StreamHandler):
                logger.removeHandler(handler)
        logger.propagate = True
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


def run_cli(command: str, fn: Callable[[], Any], run_dir: str | os.PathLike | None = None) -> Any:
    """Run ``fn``; a :class:`ConfigError` ends the program with one line on stderr and exit
    status 2 (the traceback only with ``HYDRA_FULL_ERROR=1``), and the run folder Hydra made
    for this refused command (``run_dir``) is removed again (:func:`discard_refused_run_dir`)."""
    try:
        return fn()
    except (ConfigError, DataFileError) as err:  # DataFileError: a bad data file
        if run_dir is not None:
            discard_refused_run_dir(run_dir)
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"{command}: error: {one_line(err)}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG_ERROR) from None
    except TrainingDivergedError as err:  # a NaN/Inf loss or gradient (lstmkit.runtime.callbacks)
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"{command}: error: {err}", file=sys.stderr)
        raise SystemExit(EXIT_DIVERGED) from None


def one_line(err: BaseException) -> str:
    """The message of ``err`` on one line (a library's multi-line message joined)."""
    return " ".join(part.strip() for part in str(err).strip().splitlines() if part.strip())


#: When this process started (files newer than this in a refused run folder are its own).
_STARTED = time.time() - 1.0


def _hydra_log_names() -> list[str]:
    """The name of the log file Hydra's job logging writes (``<task_name>.log``)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        filename = HydraConfig.get().job_logging.handlers.file.filename
    except Exception:  # no Hydra run, or another logging config: leave logs alone
        return []
    return [os.path.basename(str(filename))]


def discard_refused_run_dir(run_dir: str | os.PathLike) -> list[str]:
    """Remove what Hydra wrote for a command that was then refused: ``.hydra/`` and the log
    file in ``run_dir`` (only files this process wrote), then the folder and its parents while
    they are empty and did not exist before the command (``override_checks.EXISTING_BEFORE``).

    Returns:
        The paths removed.
    """
    import shutil
    from pathlib import Path

    from lstmkit.runtime.guards import existing_run_files
    from lstmkit.runtime.override_checks import EXISTING_BEFORE

    folder = Path(run_dir)
    removed: list[str] = []
    # a DDP worker shares rank 0's folder; a folder holding a run (a SLURM requeue) is kept
    if not folder.is_dir() or os.environ.get("LOCAL_RANK", "0") != "0":
        return removed
    if existing_run_files(folder):
        return removed
    hydra_dir = folder / ".hydra"
    own = [p for p in hydra_dir.glob("*") if p.is_file() and p.stat().st_mtime >= _STARTED]
    if hydra_dir.is_dir() and len(own) == len(list(hydra_dir.iterdir())):
        shutil.rmtree(hydra_dir)
        removed.append(str(hydra_dir))
    for log_file in [folder / name for name in _hydra_log_names()]:
        if log_file.is_file() and log_file.stat().st_mtime >= _STARTED:
            log_file.unlink()
            removed.append(str(log_file))
    current = folder.absolute()
    while current.is_dir() and not any(current.iterdir()) and str(current) not in EXISTING_BEFORE:
        if current == Path.cwd().absolute() or current.parent == current:
            break
        if current != folder.absolute() and not EXISTING_BEFORE:
            break  # no record of what existed: remove the run folder only
        current.rmdir()
        removed.append(str(current))
        current = current.parent
    return removed
