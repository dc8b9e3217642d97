"""`build_lstm`: the one place a recurrent core is chosen by name."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from lstmkit._backend_names import BACKEND_NAMES

from .auto import AutoLSTM
from .cudnn import CudnnLSTM
from .custom import CustomLSTM

BACKENDS: dict[str, Callable[..., nn.Module]] = {"custom": CustomLSTM, "cudnn": CudnnLSTM}
if set(BACKEND_NAMES) != {"auto", *BACKENDS}:
    raise ImportError(f"lstmkit._backend_names lists {BACKEND_NAMES}, the registry {[*BACKENDS]}")

# Options only the custom backend can honour, with the value that means "off".
CUSTOM_ONLY_OPTIONS = {
    "layer_norm": False,
    "peephole": False,
    "recurrent_dropout": 0.0,
    "zoneout": 0.0,
    "implementation": "fused",
}


def _asked_custom_options(kwargs: dict) -> list[str]:
    asked = []
    for name, off in CUSTOM_ONLY_OPTIONS.items():
        value = kwargs.get(name, off)
        if name == "zoneout" and not isinstance(value, (int, float)):
            value = 0.0 if not any(value) else value
        if value != off:
            asked.append(name)
    return asked


def build_lstm(backend: str = "auto", **kwargs) -> nn.Module:
    """Build a recurrent core by backend name.

    Args:
        backend: ``"custom"`` (`CustomLSTM`), ``"cudnn"`` (`CudnnLSTM`), or ``"auto"``
            (`AutoLSTM`: the same weights as both, each call on the fastest engine for its
            device, dtype, ``lengths`` and options — the custom fused path on a CPU, cuDNN for
            a plain LSTM on CUDA; each choice and its reason are logged once).
        **kwargs: the core's constructor arguments (torch.nn.LSTM's plus the options).

    Raises:
        ValueError: unknown backend, or an option the chosen backend cannot honour (never a
            silent swap of backends).
    """
    if backend not in BACKEND_NAMES:
        raise ValueError(
            f"unknown LSTM backend {backend!r}; choose one of {', '.join(BACKEND_NAMES)}"
        )
    custom_options = _asked_custom_options(kwargs)
    if backend == "auto":
        return AutoLSTM(**kwargs)
    if backend == "cudnn":
        if custom_options:
            raise ValueError(
                f"backend 'cudnn' cannot honour {', '.join(custom_options)}: use backend='custom' "
                "(or 'auto', which picks it)"
            )
        kwargs = {k: v for k, v in kwargs.items() if k not in CUSTOM_ONLY_OPTIONS}
    return BACKENDS[backend](**kwargs)
