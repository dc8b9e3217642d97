"""Every override checked before a command starts: before Hydra writes its run folder.

:func:`precheck` runs in each command's ``main()`` ahead of ``@hydra.main``. It composes the
config exactly as the command will (Hydra's compose API, the same overrides) and stops at the
first problem with a one-line :class:`~lstmkit.runtime.config_checks.ConfigError`:

1. override syntax (``data.seq_len==5``, an unclosed list) and ambiguous sweeps (``a=1,2``
   without ``--multirun``);
2. unknown keys, with the closest key (``trainr.max_epochs`` -> ``trainer.max_epochs``) and,
   for a constructor argument the config does not set, the ``+key=value`` that adds it;
3. the rules of :func:`lstmkit.runtime.config_checks.check_config` (``???``, choices, sizes);
4. each ``_target_`` node against its class's signature: unknown arguments, and values of the
   wrong type for the argument's default (``lr=abc``);
5. values the constructors refuse (``lr=-1``, ``zoneout=1.5``, an unknown accelerator): the
   encoder, front end, optimizer, scheduler, datamodule, Lightning callbacks and the Trainer
   are built (the encoder on the ``meta`` device: no memory), and the key whose value the
   constructor refuses is named by building again without each key in turn. Types and ranges
   live in the constructors alone;
6. ``trainer.max_epochs`` that trains nothing, and a ``trainer.precision`` that this machine
   cannot run an LSTM in (probed on the configured encoder, not assumed).

Lightning is imported only for the checks that need it (5 and 6), after the cheap ones.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from lstmkit.runtime.config_checks import ConfigError

#: Hydra's own command-line flags after which lstmkit checks nothing (help, printing configs).
PASS_THROUGH = {
    "-h", "--help", "--hydra-help", "-c", "--cfg", "-i", "--info", "--resolve", "-p",
    "--package", "-sc", "--shell-completion", "--version", "--experimental-rerun",
}  # fmt: skip
_WITH_VALUE = {"-cd", "--config-dir", "-cn", "--config-name", "-cp", "--config-path"}

#: Run-folder ancestors that existed before this command (the cleanup of a refused run
#: removes only folders it created).
EXISTING_BEFORE: set[str] = set()


def split_argv(argv: Sequence[str]) -> tuple[list[str], dict[str, str], bool]:
    """``(overrides, {flag: value}, multirun)`` of a command line."""
    overrides, flags, multirun = [], {}, False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-m", "--multirun"):
            multirun = True
        elif arg in _WITH_VALUE and i + 1 < len(argv):
            flags[arg] = argv[i + 1]
            i += 1
        elif arg.startswith("--") and "=" in arg and arg.split("=", 1)[0] in _WITH_VALUE:
            key, value = arg.split("=", 1)
            flags[key] = value
        elif not arg.startswith("-"):
            overrides.append(arg)
        i += 1
    return overrides, flags, multirun


def precheck(command: str, config_name: str, argv: Sequence[str]) -> Any:
    """Check ``argv`` for ``command`` (config ``config_name``); return the composed config,
    or None when Hydra's own flags (``--help``, ``--cfg``) take over.

    Raises:
        ConfigError: the first problem, in one line naming the key, the value and what is
            allowed.
    """
    if any(a in PASS_THROUGH or a.split("=", 1)[0] in PASS_THROUGH for a in argv):
        return None
    overrides, flags, multirun = split_argv(argv)
    if flags.get("-cn") or flags.get("--config-name") or flags.get("-cp"):
        return None  # another primary config: Hydra reports on it
    parsed = _parse(overrides)
    if multirun:  # the sweeper expands sweeps; check the rest
        overrides = [o for o, p in zip(overrides, parsed, strict=True) if not p.is_sweep_override()]
    config_dir = flags.get("-cd") or flags.get("--config-dir")
    cfg = compose_checked(config_name, overrides, config_dir)
    check_composed(cfg, command)
    return cfg


def _parse(overrides: list[str]) -> list[Any]:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = OverridesParser.create()
    parsed = []
    for text in overrides:
        try:
            parsed += parser.parse_overrides([text])
        except OverrideParseException as err:
            lines = [ln for ln in str(err).splitlines() if ln.strip(" ^") and ln.strip()]
            reason = next((ln for ln in lines[1:] if not ln.startswith("See ")), lines[0])
            reason = reason.split(" expecting ")[0].replace(f": {text}", "")
            raise ConfigError(
                f"{text!r} is not a valid override ({reason}): write key=value, a list as "
                "key=[a,b], a text with special characters (, ; = [ ] { } spaces) quoted "
                "for Hydra inside shell quotes: \"key=';'\""
            ) from None
    return parsed


def parse_arguments(
    argv: Sequence[str],
    function: Callable[..., Any],
    keys: dict[str, str],
    check: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """``key=value`` arguments of a command without a Hydra config (``lstmkit-predict``),
    parsed the way every command parses its overrides (Hydra's override grammar: ``true``,
    ``256``, ``null``, quoted texts) and checked against ``function``'s signature.

    Args:
        argv: the command line after the command's name.
        function: what the arguments are passed to; its defaults give their types.
        keys: the command-line key of each argument -> ``function``'s parameter name.
        check: ``function``'s own rules for the values given (called with the parsed
            arguments before the required ones are looked for), raising ``ConfigError``.

    Returns:
        ``{parameter name: value}`` for the arguments given (a path-like value as its text).

    Raises:
        ConfigError: bad syntax, an unknown key (with the closest one), a value of the wrong
            type, or a missing required argument; one line naming the key.
    """
    params = inspect.signature(function).parameters
    allowed = ", ".join(f"{k}=" for k in keys)
    args: dict[str, Any] = {}
    for text, override in zip(argv, _parse(list(argv)), strict=True):
        key, raw = override.key_or_group, text.split("=", 1)[-1]
        if override.is_sweep_override():
            raise ConfigError(f"{text} is ambiguous: write a text with a comma as {key}='{raw}'")
        if key not in keys or override.is_add() or override.is_delete() or override.is_force_add():
            close = difflib.get_close_matches(key.lstrip("+~"), list(keys), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}={raw}?" if close else f"use {allowed}"
            raise ConfigError(f"{text!r} is not an argument: {hint}")
        param = params[keys[key]]
        value = override.value()
        check_value_type(key, value, param)
        if _expected_type(param) is None and value is not None and not isinstance(value, str):
            value = raw  # a path that reads as a number or a bool: the text as written
        args[keys[key]] = value
    if check is not None:
        check(args)
    for key, name in keys.items():
        if params[name].default is inspect.Parameter.empty and name not in args:
            raise ConfigError(f"{key} is required: pass {key}=<path>")
    return args


def compose_checked(config_name: str, overrides: list[str], config_dir: str | None) -> Any:
    """Hydra's compose of ``config_name`` with ``overrides``; composition errors as one line."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import ConfigCompositionException

    from lstmkit.runtime._config_dir import CONFIG_DIR

    extra = [f"hydra.searchpath=[file://{Path(config_dir).resolve()}]"] if config_dir else []
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name, overrides=[*extra, *overrides], return_hydra_config=True)
    except ConfigCompositionException as err:  # MissingConfigException too (a subclass)
        raise ConfigError(_composition_message(err, config_name, overrides, config_dir)) from None
    finally:
        GlobalHydra.instance().clear()
    HydraConfig.instance().set_config(cfg)  # ${hydra:...} resolves as in the real run
    _remember_run_dir_parents(cfg)
    return cfg


def _composition_message(
    err: Exception, config_name: str, overrides: list[str], config_dir: str | None
) -> str:
    text = str(err).strip()
    first = text.splitlines()[0]
    if first.startswith("Ambiguous value for argument"):
        arg = first.split("'", 1)[1].rsplit("'", 1)[0]
        key, value = arg.split("=", 1)
        return (
            f"{arg} is ambiguous: write a list as {key}=[{value}], a text as {key}='{value}', "
            "or sweep over the values with --multirun"
        )
    if first.startswith("Could not override 'model/frontend'. No match in the defaults"):
        chosen = [o for o in overrides if o.startswith("model=")]
        model = chosen[-1] if chosen else "the chosen model"
        return (
            f"model/frontend is not an option of {model}: a convolutional front end "
            "shortens the input, and only model=classifier and model=regressor read a "
            "shortened sequence (one output per sequence); drop model/frontend"
        )
    cause = err.__cause__
    if first.startswith("Could not override") and cause is not None:
        arg_key = first.split("'", 2)[1]
        arg = next((o for o in overrides if o.split("=", 1)[0].lstrip("+~") == arg_key), arg_key)
        return unknown_key_message(arg, cause)
    detail = str(cause).strip().splitlines()[0] if cause is not None and str(cause) else ""
    return f"{first}{': ' + detail if detail else ''}"


def unknown_key_message(arg: str, cause: Any) -> str:
    """``trainr.max_epochs=1: ... did you mean trainer.max_epochs=1?`` for an OmegaConf
    key error ``cause`` raised while applying the override ``arg``."""
    from omegaconf import DictConfig

    key, _, value = arg.partition("=")
    full = str(getattr(cause, "full_key", "") or key)
    missing = str(getattr(cause, "key", "") or full.rsplit(".", 1)[-1])
    parent_path = full.rsplit(".", 1)[0] if "." in full else ""
    parent = getattr(cause, "parent_node", None)
    keys = [str(k) for k in parent] if isinstance(parent, DictConfig) else []
    keys = [k for k in keys if not k.startswith("_") and k != "hydra"]
    rest = key[len(full) :]  # the part of the override's key below the missing one
    where = f"{parent_path} has" if parent_path else "the config has"
    target = parent.get("_target_") if isinstance(parent, DictConfig) else None
    params = signature_params(target) if target else None
    if params is not None and missing in params:
        return (
            f"{arg}: {missing!r} is an argument of {target} that the config does not set: add "
            f"it with +{key}={value}"
        )
    pool = keys + ([p for p in params if p not in keys] if params else [])
    close = difflib.get_close_matches(missing, pool, n=1, cutoff=0.6)
    if close:
        fixed = f"{parent_path + '.' if parent_path else ''}{close[0]}{rest}"
        plus = "+" if close[0] not in keys else ""
        return f"{arg}: {where} no key {missing!r}; did you mean {plus}{fixed}={value}?"
    shown = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")
    return f"{arg}: {where} no key {missing!r} (keys: {shown}); add a new key with +{key}={value}"


def signature_params(target: Any) -> dict[str, inspect.Parameter] | None:
    """The constructor parameters of a ``_target_`` path (None: it takes ``**kwargs`` or
    cannot be imported or inspected)."""
    try:
        from hydra.utils import get_object

        obj = get_object(str(target))
        sig = inspect.signature(obj)
    except Exception:  # an import error is reported when the object is built
        return None
    params = dict(sig.parameters)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return params


def _remember_run_dir_parents(cfg: Any) -> None:
    """Record which ancestors of the run folder exist before Hydra creates it."""
    from omegaconf import OmegaConf

    try:
        run_dir = OmegaConf.select(cfg, "hydra.run.dir", throw_on_resolution_failure=True)
    except Exception:  # an unresolvable run dir: Hydra reports it
        return
    if run_dir:
        for parent in Path(str(run_dir)).absolute().parents:
            if parent.exists():
                EXISTING_BEFORE.add(str(parent))


# --------------------------------------------------------------------------- composed checks
def check_composed(cfg: Any, command: str) -> None:
    """The checks 3-6 of the module docstring on a composed config."""
    from omegaconf import DictConfig, OmegaConf, open_dict

    from lstmkit.runtime.config_checks import check_config

    with open_dict(cfg):
        cfg = cfg.copy()
        cfg.pop("hydra", None)
        if OmegaConf.select(cfg, "paths.output_dir") is not None:
            cfg.paths.output_dir = str(Path("lstmkit-precheck-unused").absolute())
    backends = _backend_names() if OmegaConf.select(cfg, "model.encoder") else ()
    check_config(cfg, backends=backends)
    check_trainer_values(cfg)
    # the torch-only pieces first (encoder, optimizer, scheduler), then what imports Lightning
    # (the tasks, datamodules, callbacks and the Trainer): most bad values answer sooner
    nodes = sorted(_target_nodes(cfg), key=lambda kv: not str(kv[1]._target_).startswith("torch."))
    builders: dict[str, Callable[[dict[str, Any]], Any]] = {}
    if isinstance(OmegaConf.select(cfg, "model.encoder"), DictConfig):
        builders["model.encoder"] = _build_encoder
    if isinstance(OmegaConf.select(cfg, "model.frontend"), DictConfig):
        builders["model.frontend"] = _build_frontend
    for key in ("model.optimizer", "model.scheduler"):
        node = OmegaConf.select(cfg, key)
        if isinstance(node, DictConfig) and "_target_" in node:
            builders[key] = _build_optimizer if key.endswith("optimizer") else _build_scheduler
    for key, node in nodes:
        if str(node._target_).startswith("torch."):
            check_signature(key, node)
    for key, build in builders.items():
        check_constructor(key, OmegaConf.select(cfg, key), build)
    for key, node in nodes:
        if not str(node._target_).startswith("torch."):
            check_signature(key, node)
    if isinstance(cfg.get("data"), DictConfig) and "_target_" in cfg.data:
        check_constructor("data", cfg.data, _build_plain(cfg.data._target_))
    if isinstance(cfg.get("trainer"), DictConfig) and "_target_" in cfg.trainer:
        _check_lightning(cfg)


def check_encoder(cfg: Any) -> None:
    """``cfg.model.encoder`` built by its own constructor (`lstmkit.nn.build_lstm`, on the
    ``meta`` device): the one rule for the encoder's values, for a config that did not come
    through :func:`precheck` (``lstmkit.cli.train.train(cfg)`` from Python).

    Raises:
        ConfigError: the value the constructor refuses, in one line naming its key.
    """
    from omegaconf import DictConfig, OmegaConf

    node = OmegaConf.select(cfg, "model.encoder")
    if isinstance(node, DictConfig):
        check_constructor("model.encoder", node, _build_encoder)


def _backend_names() -> tuple[str, ...]:
    from lstmkit._backend_names import BACKEND_NAMES  # torch-free: answers before torch loads

    return tuple(BACKEND_NAMES)


def check_trainer_values(cfg: Any) -> None:
    """Trainer values that Lightning accepts but that train nothing."""
    from omegaconf import OmegaConf

    epochs = OmegaConf.select(cfg, "trainer.max_epochs", default=None)
    if epochs is None or not cfg.get("train", True):
        return
    steps = OmegaConf.select(cfg, "trainer.max_steps", default=-1)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or (epochs < 1 and epochs != -1):
        raise ConfigError(
            f"trainer.max_epochs={epochs!r} is not allowed: must be an integer >= 1 (or -1 "
            "with trainer.max_steps or trainer.max_time to stop); to test a checkpoint "
            "without training use lstmkit-eval ckpt_path=..."
        )
    if epochs == -1 and steps in (-1, None) and OmegaConf.select(cfg, "trainer.max_time") is None:
        raise ConfigError(
            "trainer.max_epochs=-1 trains forever: set trainer.max_steps or trainer.max_time"
        )


def _target_nodes(cfg: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    from omegaconf import DictConfig

    for key, node in cfg.items():
        if key == "hydra" or not isinstance(node, DictConfig):
            continue
        path = f"{prefix}{key}"
        if "_target_" in node:
            yield path, node
        yield from _target_nodes(node, f"{path}.")


def check_signature(key: str, node: Any) -> None:
    """The keys of a ``_target_`` node are arguments of its target, with values of the
    argument's type (that of its default, or of a plain annotation)."""
    params = signature_params(node._target_)
    if params is None:
        return
    for name in node:
        name = str(name)
        if name.startswith("_"):
            continue
        if name not in params:
            names = [p for p in params if p not in ("self", "args", "kwargs")]
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
            hint = f"did you mean {key}.{close[0]}?" if close else f"arguments: {', '.join(names)}"
            raise ConfigError(f"{key}.{name} is not an argument of {node._target_}: {hint}")
        _check_type(f"{key}.{name}", node._get_node(name), params[name])


#: Arguments whose value ``auto`` the run replaces from the data before anything is built
#: (``lstmkit.runtime.runs.resolve_auto_patience``): early stopping's and the plateau scheduler's.
AUTO_ARGUMENTS = ("patience",)


def _check_type(key: str, child: Any, param: inspect.Parameter) -> None:
    from omegaconf import ValueNode

    if not isinstance(child, ValueNode) or child._is_interpolation():
        return
    check_value_type(key, child._value(), param)


def check_value_type(key: str, value: Any, param: inspect.Parameter) -> None:
    """``value`` has the type of ``param`` (that of its default, or of a plain annotation):
    true/false for a bool, an integer for an int, a number for a float; anything else passes."""
    if value is None or (isinstance(value, str) and value == "???"):
        return
    if value == "auto" and param.name in AUTO_ARGUMENTS:
        return
    expected = _expected_type(param)
    if expected is None:
        return
    if expected is bool and not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} is not allowed: must be true or false")
    if expected in (int, float) and (isinstance(value, bool) or not isinstance(value, int | float)):
        what = "an integer" if expected is int else "a number"
        raise ConfigError(f"{key}={value!r} is not allowed: must be {what}")
    if expected is int and isinstance(value, float) and not value.is_integer():
        raise ConfigError(f"{key}={value!r} is not allowed: must be an integer")


def _expected_type(param: inspect.Parameter) -> type | None:
    """bool, int or float when the parameter's default (or a plain annotation) says so."""
    default = param.default
    if default is not inspect.Parameter.empty and default is not None:
        if isinstance(default, bool):
            return bool
        if isinstance(default, int | float):
            # an int default of a float argument (ReduceLROnPlateau's min_lr=0) takes floats
            takes_float = isinstance(default, float) or "float" in str(param.annotation)
            return float if takes_float else int
        return None
    import typing

    annotation = param.annotation
    names = {"bool": bool, "int": int, "float": float, "None": type(None)}
    if isinstance(annotation, str):  # "int | None", "Optional[int]"
        text = annotation.replace("Optional[", "").rstrip("]")
        parts = {names.get(p.strip(), object) for p in text.split("|")}
    else:
        args = typing.get_args(annotation) or (annotation,)
        parts = {a if a in (bool, int, float, type(None)) else object for a in args}
    parts.discard(type(None))
    if parts == {bool}:
        return bool
    if parts and parts <= {int, float}:
        return float if float in parts else int
    return None


def check_constructor(key: str, node: Any, build: Callable[[dict[str, Any]], Any]) -> None:
    """Build ``node`` with ``build``; a ``ValueError``/``TypeError`` names the key whose value
    the constructor refuses (found by building again with each key left at its default, or, for
    a required argument, the key its message starts with)."""
    from omegaconf import OmegaConf

    kwargs = OmegaConf.to_container(node, resolve=True)
    try:
        build(kwargs)
        return
    except (ValueError, TypeError) as err:
        error = err
    except Exception:  # not a refused value (e.g. a core that cannot live on `meta`): the
        return  # real build, inside the run, reports it
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    for name in [k for k in kwargs if not str(k).startswith("_")]:
        rest = {k: v for k, v in kwargs.items() if k != name}
        try:
            build(rest)
        except Exception:  # still refused without this key: not the culprit
            continue
        value = kwargs[name]
        if message.startswith(f"{name}="):
            raise ConfigError(f"{key}.{message}") from None
        raise ConfigError(f"{key}.{name}={value!r} is not allowed: {message}") from None
    # a required argument (no default to fall back on): the message names it first
    name = message.split(" ", 1)[0].split("=", 1)[0]
    if name in kwargs:
        raise ConfigError(f"{key}.{name}={kwargs[name]!r} is not allowed: {message}") from None
    raise ConfigError(f"{key}: {message}") from None


def _quiet_build(fn: Callable[[], Any]) -> Any:
    with warnings.catch_warnings(), _logging_level(logging.WARNING):
        warnings.simplefilter("ignore")
        return fn()


@contextlib.contextmanager
def _logging_level(level: int) -> Iterator[None]:
    names = ("lstmkit", "lightning", "lightning.pytorch", "lightning.fabric")
    loggers = [logging.getLogger(n) for n in names]
    previous = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(level)
    try:
        yield
    finally:
        for lg, old in zip(loggers, previous, strict=True):
            lg.setLevel(old)


def _build_encoder(kwargs: dict[str, Any]) -> Any:
    """The encoder with one input channel, on the meta device (no memory, no data)."""
    import torch

    from lstmkit.nn import build_lstm

    kwargs = {k: v for k, v in kwargs.items() if not k.startswith("_")}
    with torch.device("meta"):
        return _quiet_build(lambda: build_lstm(**kwargs, input_size=1, batch_first=True))


def _build_frontend(kwargs: dict[str, Any]) -> Any:
    """The convolutional front end (``model.frontend``) on one input channel, on ``meta``."""
    import torch

    from lstmkit.nn import build_frontend

    kwargs = {k: v for k, v in kwargs.items() if k != "auto"}  # the task's switch, not the module's
    with torch.device("meta"):
        return _quiet_build(lambda: build_frontend(1, kwargs))


def _instantiate(kwargs: dict[str, Any], *args: Any) -> Any:
    """``hydra.utils.instantiate``; a constructor's refusal (ValueError, TypeError, an
    ImportError of an optional backend, Lightning's MisconfigurationException) comes out as a
    ValueError with the constructor's own message."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        built = _quiet_build(lambda: instantiate(kwargs))
        return built(*args) if args else built
    except InstantiationException as err:
        cause = err.__cause__
        refused = isinstance(cause, ValueError | TypeError | ImportError)
        if refused or type(cause).__name__ == "MisconfigurationException":
            raise ValueError(str(cause).strip().splitlines()[0]) from cause
        raise RuntimeError(str(cause)) from cause


def _build_optimizer(kwargs: dict[str, Any]) -> Any:
    import torch

    param = torch.nn.Parameter(torch.zeros(1))
    return _instantiate({**kwargs, "_partial_": True}, [param])


def _build_scheduler(kwargs: dict[str, Any]) -> Any:
    import torch

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    return _instantiate({**kwargs, "_partial_": True}, optimizer)


def _build_plain(target: str, **extra: Any) -> Callable[[dict[str, Any]], Any]:
    def build(kwargs: dict[str, Any]) -> Any:
        return _instantiate({**kwargs, **extra, "_target_": target})

    return build


def _check_lightning(cfg: Any) -> None:
    """Lightning's own callbacks and the Trainer are built (nothing is written by their
    constructors), then ``trainer.precision`` is probed on this machine."""
    from omegaconf import DictConfig

    callbacks = cfg.get("callbacks") or {}
    for name, node in callbacks.items():
        if isinstance(node, DictConfig) and str(node.get("_target_", "")).startswith(
            "lightning.pytorch.callbacks."
        ):
            check_constructor(f"callbacks.{name}", node, _build_plain(node._target_))
    build_trainer = _build_plain(cfg.trainer._target_, logger=False, callbacks=[])

    if os.environ.get("LOCAL_RANK", "0") != "0":
        return  # a DDP worker: rank 0 checked the same config
    check_constructor("trainer", cfg.trainer, build_trainer)
    check_precision(cfg)


def check_precision(cfg: Any) -> None:
    """``trainer.precision`` in 16 or bf16 on a CPU: run the configured encoder (two steps,
    forward and backward) in that precision here; refuse the value if it fails."""
    import torch

    precision = str(cfg.trainer.get("precision", "32-true"))
    low = {"16": torch.float16, "bf16": torch.bfloat16}.get(precision.split("-")[0])
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if low is None or not on_cpu:
        return
    from omegaconf import OmegaConf

    encoder = OmegaConf.select(cfg, "model.encoder", default=None) or {}
    error = probe_precision(encoder, low, mixed=not precision.endswith("-true"))
    if error:
        other, other_dtype = (
            ("bf16-mixed", torch.bfloat16) if low is torch.float16 else ("16-mixed", torch.float16)
        )
        runs_other = probe_precision(encoder, other_dtype, mixed=True) is None
        works = f" or {other}, which it runs" if runs_other else ""
        raise ConfigError(
            f"trainer.precision={precision!r} cannot run here: this CPU fails an LSTM step in "
            f"{str(low).split('.')[-1]} ({error}); use trainer.precision=32-true{works}, or "
            "a GPU (trainer=gpu)"
        )


def probe_precision(encoder: dict[str, Any], dtype: Any, *, mixed: bool) -> str | None:
    """None if the encoder runs forward and backward in ``dtype`` on the CPU, else the
    error's first line."""
    import torch
    from omegaconf import OmegaConf

    from lstmkit.nn import build_lstm

    plain = (
        OmegaConf.to_container(encoder, resolve=True) if OmegaConf.is_config(encoder) else encoder
    )
    kwargs = {str(k): v for k, v in dict(plain).items() if not str(k).startswith("_")}
    kwargs["hidden_size"] = min(int(kwargs.get("hidden_size", 8)), 8)
    if kwargs.get("proj_size"):
        kwargs["proj_size"] = min(int(kwargs["proj_size"]), kwargs["hidden_size"] - 1)
    try:
        lstm = _quiet_build(lambda: build_lstm(**kwargs, input_size=2, batch_first=True))
        x = torch.randn(2, 3, 2)
        lengths = torch.tensor([3, 2])
        if mixed:
            with torch.autocast("cpu", dtype=dtype):
                out, _ = lstm(x, lengths=lengths)
        else:
            lstm = lstm.to(dtype)
            out, _ = lstm(x.to(dtype), lengths=lengths)
        out.float().sum().backward()
    except Exception as err:  # any failure means: cannot run here
        return str(err).strip().splitlines()[0][:160] or type(err).__name__
    return None


__all__ = ["EXISTING_BEFORE", "check_composed", "precheck", "probe_precision", "split_argv"]
