"""torch.nn.LSTM's constructor rules, without importing torch: the one rule for a core's
arguments, run by the cores themselves (`lstmkit.nn.base`) and, before torch loads, by the
commands' config checks on ``model.encoder`` (`lstmkit.runtime.config_checks`).
"""

from __future__ import annotations

import numbers

#: torch.nn.LSTM's defaults for the arguments `check_lstm_args` takes (``input_size`` and
#: ``hidden_size`` have none).
LSTM_DEFAULTS = {
    "num_layers": 1,
    "bias": True,
    "batch_first": False,
    "dropout": 0.0,
    "bidirectional": False,
    "proj_size": 0,
}


def check_lstm_args(
    input_size: int,
    hidden_size: int,
    num_layers: int,
    bias: bool,
    batch_first: bool,
    dropout: float,
    bidirectional: bool,
    proj_size: int,
) -> None:
    """Validate torch.nn.LSTM's constructor arguments: torch's exception types and wording
    (``TypeError`` for a wrong type, ``ValueError`` for a wrong value), plus the value given."""
    for name, value in (
        ("input_size", input_size),
        ("hidden_size", hidden_size),
        ("num_layers", num_layers),
        ("proj_size", proj_size),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(
                f"{name} should be of type int, got: {type(value).__name__} ({value!r})"
            )
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
        if value <= 0:
            raise ValueError(f"{name} must be greater than zero, got {value}")
    if num_layers <= 0:
        raise ValueError(f"num_layers must be greater than zero, got {num_layers}")
    if proj_size < 0:
        raise ValueError(
            "proj_size should be a positive integer or zero to disable projections, "
            f"got {proj_size}"
        )
    if proj_size >= hidden_size:
        raise ValueError(
            f"proj_size has to be smaller than hidden_size, got proj_size={proj_size} "
            f"and hidden_size={hidden_size}"
        )
    for name, value in (
        ("bias", bias),
        ("batch_first", batch_first),
        ("bidirectional", bidirectional),
    ):
        if not isinstance(value, bool):
            raise TypeError(f"{name} should be of type bool, got: {type(value).__name__}")
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout <= 1:
        raise ValueError(
            "dropout should be a number in range [0, 1] representing the probability of an "
            f"element being zeroed, got {dropout!r}"
        )
