"""Pooling of encoder outputs over valid steps, output heads, and hyperparameter plumbing."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from lstmkit._validation import check_float, check_int

POOLINGS = ("last", "mean", "max")


def valid_mask(lengths: Tensor | None, batch: int, steps: int, device: torch.device) -> Tensor:
    """``(B, T)`` bool, True at each sequence's valid steps (all True without ``lengths``)."""
    if lengths is None:
        return torch.ones(batch, steps, dtype=torch.bool, device=device)
    lengths = torch.as_tensor(lengths, device=device)
    return torch.arange(steps, device=device) < lengths.unsqueeze(1)


def pool(
    output: Tensor, h_n: Tensor, lengths: Tensor | None, mode: str, num_directions: int
) -> Tensor:
    """Summarise a sequence of encoder outputs into one vector per sequence.

    Args:
        output: ``(B, T, D*H)`` encoder outputs (zero at padded steps).
        h_n: ``(L*D, B, H)`` final hidden states, each taken at the sequence's own last step.
        lengths: ``(B,)`` valid steps, or None when every sequence fills ``T``.
        mode: ``"last"`` (final states of the top layer; the reverse direction's final state
            is its output at step 0), ``"mean"`` or ``"max"`` over the valid steps.
        num_directions: 2 if the encoder is bidirectional, else 1.

    Returns:
        ``(B, D*H)``.
    """
    if mode == "last":
        top = h_n[-num_directions:]  # (D, B, H): the top layer, directions in output order
        return top.transpose(0, 1).reshape(h_n.shape[1], -1)  # (B, D*H)
    mask = valid_mask(lengths, output.shape[0], output.shape[1], output.device).unsqueeze(-1)
    if mode == "mean":
        total = output.masked_fill(~mask, 0.0).sum(1)  # (B, D*H)
        return total / mask.sum(1).clamp_min(1)
    if mode == "max":
        return output.masked_fill(~mask, float("-inf")).amax(1)  # (B, D*H)
    raise ValueError(f"pooling={mode!r}: must be one of {', '.join(POOLINGS)}")


class MLPHead(nn.Module):
    """``Dropout -> Linear`` or, with ``hidden_size > 0``,
    ``Dropout -> Linear -> ReLU -> Dropout -> Linear``. Works on ``(..., in_features)``.
    """

    def __init__(
        self, in_features: int, out_features: int, hidden_size: int = 0, dropout: float = 0.0
    ) -> None:
        super().__init__()
        check_int("head_hidden_size", hidden_size, minimum=0)
        check_float("dropout", dropout, low=0.0, high=1.0, high_inclusive=False)
        if hidden_size == 0:
            layers: list[nn.Module] = [nn.Dropout(dropout), nn.Linear(in_features, out_features)]
        else:
            layers = [
                nn.Dropout(dropout),
                nn.Linear(in_features, hidden_size),
                nn.ReLU(),
                nn.Dropout(dropout),
                nn.Linear(hidden_size, out_features),
            ]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def to_plain(value: Any) -> Any:
    """OmegaConf containers, tuples and mappings -> plain dicts/lists (for saved hparams)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        DictConfig = ListConfig = ()
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return value


def _qualified_name(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def callable_spec(value: Any, name: str) -> dict[str, Any] | None:
    """Turn an optimizer/scheduler factory into a plain Hydra spec ``{"_target_", "_partial_"}``.

    Accepts None, a ``functools.partial`` (what Hydra builds from ``_partial_: true``), a class
    such as ``torch.optim.Adam``, or a mapping with ``_target_``. Plain specs keep checkpoints
    free of pickled objects; :func:`build_from_spec` turns them back into callables.
    """
    if value is None:
        return None
    if isinstance(value, functools.partial):
        if value.args:
            raise TypeError(f"{name}: give a partial with keyword arguments only, got {value!r}")
        spec = {"_target_": _qualified_name(value.func), **to_plain(value.keywords)}
    elif isinstance(value, type) or (callable(value) and hasattr(value, "__qualname__")):
        spec = {"_target_": _qualified_name(value)}
    else:
        spec = to_plain(value)
        if not isinstance(spec, dict) or "_target_" not in spec:
            raise TypeError(
                f"{name}={value!r}: must be None, a functools.partial, a class or a mapping "
                "with '_target_'"
            )
    spec["_partial_"] = True
    return spec


def build_from_spec(spec: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
    """Call the target of a plain spec from :func:`callable_spec` with extra arguments."""
    from hydra.utils import instantiate

    return instantiate(dict(spec))(*args, **kwargs)


def encoder_kwargs(value: Any) -> dict[str, Any]:
    """Normalise an encoder spec to the plain keyword arguments of ``lstmkit.nn.build_lstm``.

    Accepts a mapping (a Hydra config of ``build_lstm`` with or without ``_target_``) or a
    ``functools.partial(build_lstm, ...)``. ``input_size`` and ``batch_first`` are the task's.
    """
    from lstmkit.nn import build_lstm

    if isinstance(value, functools.partial):
        if value.func is not build_lstm or value.args:
            raise TypeError(
                f"encoder={value!r}: a partial must wrap lstmkit.nn.build_lstm with keywords only"
            )
        kwargs = to_plain(value.keywords)
    elif isinstance(value, Mapping) or hasattr(value, "keys"):
        kwargs = to_plain(value)
        target = kwargs.pop("_target_", None)
        kwargs.pop("_partial_", None)
        if target not in (None, "lstmkit.nn.build_lstm", "lstmkit.nn.registry.build_lstm"):
            raise TypeError(f"encoder._target_={target!r}: must be lstmkit.nn.build_lstm")
    else:
        raise TypeError(
            f"encoder must be a mapping of lstmkit.nn.build_lstm arguments, got "
            f"{type(value).__name__}; modules are not accepted so that checkpoints rebuild "
            "the model from plain hyperparameters"
        )
    for key in ("input_size", "batch_first"):
        if key in kwargs:
            raise ValueError(
                f"encoder.{key}={kwargs[key]!r}: set by the task (input_size comes from the "
                "data or embedding_dim; batch_first is always True); remove it"
            )
    kwargs.setdefault("backend", "auto")
    return kwargs


__all__ = [
    "POOLINGS",
    "MLPHead",
    "build_from_spec",
    "callable_spec",
    "encoder_kwargs",
    "pool",
    "to_plain",
    "valid_mask",
]
